//! `/mcp`: the tenant's granted tools as an MCP server over Streamable HTTP
//! (docs/mcp.md), its bearer token the authorization. The tools offered are
//! the tenant policy's; each MCP session is a journaled run in the tenant's
//! state, opened at its first call with the tenant's quotas, pool, fuel
//! meter and threads, and ended with the session.

use std::sync::{Arc, Weak};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use femtoclaw_mcp::{Gateway, HttpDoor, HttpOptions, Offer, Opened, Opener};
use femtoclaw_runtime::{Cancel, Hooks, SessionPlan};
use http::StatusCode;

use crate::Server;
use crate::problem::Problem;
use crate::tenant::Tenant;

/// `/mcp` (any method: POST, GET and DELETE are MCP's).
pub async fn endpoint(State(server): State<Arc<Server>>, request: Request) -> Response {
    match serve(&server, request).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn serve(server: &Arc<Server>, request: Request) -> Result<Response, Problem> {
    let tenant = crate::api::tenant(server, request.headers())?;
    let door = tenant
        .mcp
        .get_or_try_init(|| open_door(server, &tenant))
        .await?;
    let starts_session =
        request.method() == http::Method::POST && !request.headers().contains_key("mcp-session-id");
    if starts_session {
        server.refuse_if_draining("MCP sessions")?;
        let quota = tenant.config.quotas.mcp_sessions;
        if door.sessions().await >= quota {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "mcp-sessions",
                format!(
                    "the tenant has {quota} MCP sessions open, the quota `mcp-sessions`: close one (HTTP DELETE) or let one idle out"
                ),
            )
            .retry_after(1));
        }
    }
    Ok(door.handle(request).await.map(Body::new))
}

/// The tenant's door: its offer (the ceiling policy's granted tools, as
/// their capabilities describe them), and how its sessions open.
async fn open_door(server: &Arc<Server>, tenant: &Arc<Tenant>) -> Result<Arc<HttpDoor>, Problem> {
    let plan = SessionPlan {
        policy: tenant.config.policy.clone(),
        client: "mcp:describe".into(),
        state: None,
        bundle: None,
        hooks: hooks(tenant),
    };
    let unavailable = |why: String| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "mcp-unavailable",
            format!("the tenant's tools cannot be offered: {why}"),
        )
    };
    let describe = server
        .runtime
        .open_session(plan)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let offer = Offer::new(describe.tools()).map_err(|e| unavailable(e.to_string()));
    // Not journaled: nothing to record.
    let _ = describe.close();
    let offer = Arc::new(offer?);
    let weak = Arc::downgrade(server);
    let tenant_for = tenant.clone();
    let opener: Opener = Arc::new(move || {
        let (server, tenant) = (weak.clone(), tenant_for.clone());
        Box::pin(async move { open_session(server, tenant).await })
    });
    let executor = tenant.executor.clone();
    let options = HttpOptions {
        allowed_hosts: server.config.mcp_hosts.clone(),
        max_body: server.config.limits.max_body,
        idle: server.config.limits.idle_timeout,
    };
    let door = HttpDoor::new(
        move || Gateway::lazy(offer.clone(), opener.clone(), executor.clone()),
        options,
    );
    Ok(Arc::new(door))
}

fn hooks(tenant: &Tenant) -> Hooks {
    Hooks {
        cancel: Cancel::new(),
        memory_pool: Some(tenant.pool.clone()),
        fuel: Some(tenant.fuel.clone()),
        journal: Some(tenant.journal.clone()),
        on_event: None,
        compile_scope: Some(tenant.id().to_owned()),
        // No one to ask in a session (docs/mcp.md, "Approvals").
        approver: None,
        decide_only: false,
    }
}

/// A session's run, opened at its first call: admitted like a run (the
/// tenant's journal, per-minute and fuel quotas) and holding one of the
/// tenant's run slots until it ends. A refusal is the call's tool error.
async fn open_session(server: Weak<Server>, tenant: Arc<Tenant>) -> Result<Opened, String> {
    let server = server
        .upgrade()
        .ok_or_else(|| "refused: the server is shutting down".to_owned())?;
    server
        .refuse_if_draining("sessions")
        .map_err(|problem| format!("refused: {}", problem.detail))?;
    tenant
        .admit()
        .map_err(|problem| format!("refused: {}", problem.detail))?;
    tenant.dequeue();
    let slot = tenant.slots.clone().try_acquire_owned().map_err(|_| {
        format!(
            "refused: all {} of the tenant's run slots are busy (quota `concurrent-runs`); retry when a run ends",
            tenant.config.quotas.concurrent_runs
        )
    })?;
    let plan = SessionPlan {
        policy: tenant.config.policy.clone(),
        client: "mcp:http".into(),
        state: Some(tenant.dir.clone()),
        bundle: None,
        hooks: hooks(&tenant),
    };
    let session = server
        .runtime
        .open_session(plan)
        .await
        .map_err(|e| format!("the session could not start: {e}"))?;
    tracing::info!(target: "femtoclaw::serve", tenant = %tenant.id(), run = %session.run_id(), "mcp session opened");
    Ok(Opened {
        session,
        hold: Box::new(slot),
    })
}
