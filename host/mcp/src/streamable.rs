//! MCP over Streamable HTTP, for a server to mount: one door per tenant.
//! Each MCP session (2025-11-25, `Mcp-Session-Id`) gets a gateway of its
//! own, whose journaled run is opened at its first call and ended when the
//! session ends; a request of the sessionless 2026-07-28 revision gets a
//! gateway for itself, so each of its calls is a run of its own.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::{Closer, Gateway};

/// How a door treats its requests.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// `Host` values accepted (DNS-rebinding protection): names or
    /// `name:port`.
    pub allowed_hosts: Vec<String>,
    /// Bytes of one request body.
    pub max_body: usize,
    /// An MCP session idle this long is ended (its run with it).
    pub idle: Duration,
}

/// The MCP endpoint of one tenant.
pub struct HttpDoor {
    service: StreamableHttpService<Gateway, LocalSessionManager>,
    manager: Arc<LocalSessionManager>,
    /// Every gateway made, to end their sessions when the server stops.
    made: Arc<Mutex<Vec<Weak<Closer>>>>,
}

impl HttpDoor {
    /// A door whose sessions are served by the gateways `make` returns.
    pub fn new(make: impl Fn() -> Gateway + Send + Sync + 'static, options: HttpOptions) -> Self {
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = Some(options.idle);
        let manager = Arc::new(manager);
        let made: Arc<Mutex<Vec<Weak<Closer>>>> = Arc::default();
        let registry = made.clone();
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(options.allowed_hosts)
            .with_max_request_body_bytes(options.max_body)
            .with_json_response(true);
        let service = StreamableHttpService::new(
            move || {
                let gateway = make();
                let mut made = registry.lock().unwrap_or_else(|p| p.into_inner());
                made.retain(|closer| closer.strong_count() > 0);
                made.push(Arc::downgrade(&gateway.slot));
                Ok(gateway)
            },
            manager.clone(),
            config,
        );
        HttpDoor {
            service,
            manager,
            made,
        }
    }

    /// MCP sessions open.
    pub async fn sessions(&self) -> usize {
        self.manager.sessions.read().await.len()
    }

    /// Serves one HTTP request to the endpoint.
    pub async fn handle<B>(
        &self,
        request: http::Request<B>,
    ) -> http::Response<BoxBody<Bytes, Infallible>>
    where
        B: http_body::Body + Send + 'static,
        B::Error: std::fmt::Display,
    {
        self.service.handle(request).await
    }

    /// Ends every open session: their runs' ends are durable when this
    /// returns, and later calls in them are refused.
    pub async fn close_all(&self) {
        let made: Vec<Arc<Closer>> = {
            let made = self.made.lock().unwrap_or_else(|p| p.into_inner());
            made.iter().filter_map(Weak::upgrade).collect()
        };
        for closer in made {
            if let Some(Err(error)) = closer.0.lock().await.close() {
                tracing::error!(target: "femtoclaw::mcp", error = %error, "the session's end could not be journaled");
            }
        }
        self.manager.sessions.write().await.clear();
    }
}
