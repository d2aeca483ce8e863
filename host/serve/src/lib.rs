//! `fc-host serve`: many tenants' agent runs in one long-running process.
//!
//! Each tenant has its own journal (runs, agent memory, accepted runs,
//! stored bundles) in its state directory or in a shared database, a memory
//! pool and a fuel meter
//! its runs share, and quotas checked before a run is accepted. A run is
//! acknowledged only once it is on disk; the runs of one tenant share one
//! journal handle, so one commit covers many of them. After a crash, the
//! next process resumes what was running and starts what was accepted.
//!
//! Rooms: [`config`] (the operator's file), [`auth`] (tokens), `tenant`
//! (state and admission), `runs` (a run's life), `api` and `sse` (HTTP), `mcp` (`/mcp`),
//! `listen` (connections, TLS, limits), [`problem`] (RFC 9457 errors),
//! `fleet` (nodes sharing tenants' journals in PostgreSQL, run by run).

#![deny(missing_docs)]

mod api;
mod approvals;
pub mod auth;
pub mod config;
mod drain;
mod fleet;
pub mod journal;
mod listen;
mod mcp;
mod metrics;
pub mod problem;
mod runs;
mod sse;
mod tenant;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub use config::{Config, ConfigError};
use tenant::Tenant;

/// The OpenAPI document of the API (served at `/v1/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// A running server's shared state.
pub struct Server {
    config: Config,
    /// One engine for every tenant: the built-in components run in place
    /// from fc-host's own text, which an engine can register only once per
    /// process (docs/decisions.md). Its compile cache (`STATE/cache`) holds
    /// only components the operator's policies name: tenants upload none.
    runtime: femtoclaw_runtime::Runtime,
    tenants: Vec<Arc<Tenant>>,
    /// Set by `SIGTERM`: no new runs, no new connections.
    draining: AtomicBool,
    /// Runs of this process (queued or running).
    running: AtomicUsize,
    /// Told when `running` drops to zero.
    idle: tokio::sync::Notify,
    counters: Counters,
}

/// What the server counts for `/metrics`.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    requests: AtomicU64,
    refused_connections: AtomicU64,
    open_connections: AtomicU64,
    /// Responses by status class (index 1 to 5).
    responses: [AtomicU64; 6],
}

impl Server {
    /// `503` while the server drains: it starts nothing new (`what`: "runs",
    /// "MCP sessions").
    fn refuse_if_draining(&self, what: &str) -> Result<(), problem::Problem> {
        if !self.draining.load(Ordering::Relaxed) {
            return Ok(());
        }
        Err(problem::Problem::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            format!(
                "the server is shutting down and accepts no new {what}; retry against its successor"
            ),
        )
        .retry_after(5))
    }

    fn tenant_of_token(&self, token: &str) -> Option<&Arc<Tenant>> {
        auth::find(token, self.tenants.iter().map(|t| t.config.token)).map(|i| &self.tenants[i])
    }
}

/// Checks a configuration and every tenant policy in it (`--check`).
pub fn check(path: &std::path::Path) -> Result<Config, ConfigError> {
    Config::load(path)
}

/// Serves until `SIGTERM` or `SIGINT`, then drains: no new connections or
/// runs, running runs get `limits.drain` to finish, and the rest stay
/// resumable for the next process. `on_listening` is told the bound
/// address (the port, when the configuration asks for port 0).
pub fn serve(
    config: Config,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fc-serve")
        .build()
        .map_err(|e| format!("cannot start the server's threads: {e}"))?;
    let result = runtime.block_on(run(config, on_listening));
    // A host call stuck in the kernel must not hold the process.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn run(
    config: Config,
    on_listening: impl FnOnce(std::net::SocketAddr),
) -> Result<(), String> {
    let mut tenants = Vec::new();
    let node = fleet::node_name(&config.state);
    for t in &config.tenants {
        tenants.push(Arc::new(Tenant::open(
            t.clone(),
            &config.state,
            config.journal.as_ref(),
            &node,
        )?));
    }
    let runtime = femtoclaw_runtime::Runtime::new()
        .and_then(|r| r.with_cache(&config.state.join("cache")))
        .map(|r| r.with_connector(Arc::new(femtoclaw_mcp::McpConnector)))
        .map_err(|e| e.to_string())?;
    let acceptor = listen::tls_acceptor(&config.transport)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on `{}` (`listen`): {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let server = Arc::new(Server {
        config,
        runtime,
        tenants,
        draining: AtomicBool::new(false),
        running: AtomicUsize::new(0),
        idle: tokio::sync::Notify::new(),
        counters: Counters::default(),
    });
    for tenant in &server.tenants {
        server.recover(tenant)?;
    }
    tokio::spawn(fleet::tend(server.clone()));
    tracing::info!(target: "femtoclaw::serve", %address, tenants = server.tenants.len(), "serving");
    on_listening(address);
    let router = api::router(server.clone());
    let shutdown = async {
        let signal = femtoclaw_runtime::embed::shutdown_signal().await;
        tracing::info!(target: "femtoclaw::serve", %signal, "stopping");
    };
    listen::accept_loop(server.clone(), listener, acceptor, router, shutdown).await;
    server.drain().await;
    Ok(())
}

impl Server {
    /// Lets running runs finish within `limits.drain`, then makes what the
    /// rest appended durable; they stay `running` in their journals and the
    /// next process resumes them.
    async fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        // MCP sessions are driven by clients, not by the server: they end
        // now, each run's end durable.
        for tenant in &self.tenants {
            if let Some(door) = tenant.mcp.get() {
                door.close_all().await;
            }
        }
        let grace = self.config.limits.drain;
        tracing::info!(target: "femtoclaw::serve", runs = self.running.load(Ordering::SeqCst), ?grace, "draining");
        let all_done = async {
            loop {
                let notified = self.idle.notified();
                if self.running.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let finished = tokio::time::timeout(grace, all_done).await.is_ok();
        for tenant in &self.tenants {
            if let Err(e) = tenant.journal.lock().sync() {
                tracing::error!(target: "femtoclaw::serve", tenant = %tenant.id(), error = %e, "the journal could not be checkpointed");
            }
            fleet::let_go(tenant);
        }
        let left = self.running.load(Ordering::SeqCst);
        tracing::info!(target: "femtoclaw::serve", finished, left, "stopped: runs left are resumed by the next server");
    }
}
