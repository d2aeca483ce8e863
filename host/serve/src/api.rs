//! The HTTP API (`/v1`, described by `openapi.json`): every tenant route
//! authenticates its bearer token first, and sees only its tenant's runs
//! (another tenant's run is `404`, exactly like one that does not exist).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use femtoclaw_policy::OnUncertain;
use femtoclaw_runtime::RunError;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Server;
use crate::problem::Problem;
use crate::runs::{self, NewRun};
use crate::tenant::Tenant;

pub(crate) type Shared = State<Arc<Server>>;
pub(crate) type Answer = Result<Response, Problem>;

/// Every route.
pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/runs", post(create).get(list))
        .route("/v1/bundles", post(store_bundle))
        .route("/v1/runs/{id}", get(show))
        .route("/v1/runs/{id}/events", get(events))
        .route("/v1/runs/{id}/audit", get(audit))
        .route("/v1/runs/{id}/cancel", post(cancel))
        .route("/v1/runs/{id}/approvals", get(crate::approvals::list))
        .route(
            "/v1/runs/{id}/approvals/{call}",
            post(crate::approvals::answer),
        )
        .route("/v1/runs/{id}/resume", post(resume))
        .route("/v1/runs/{id}/replay", post(replay))
        .route("/mcp", axum::routing::any(crate::mcp::endpoint))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            crate::drain::unread_bodies,
        ))
        .layer(axum::middleware::from_fn_with_state(server.clone(), count))
        .with_state(server)
}

/// Counts requests and responses by status class.
async fn count(State(server): Shared, request: Request, next: Next) -> Response {
    server.counters.requests.fetch_add(1, Ordering::Relaxed);
    let response = next.run(request).await;
    let class = usize::from(response.status().as_u16() / 100).min(5);
    server.counters.responses[class].fetch_add(1, Ordering::Relaxed);
    response
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).expect("invariant: JSON serializes");
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The tenant whose token the request bears.
pub fn tenant(server: &Server, headers: &HeaderMap) -> Result<Arc<Tenant>, Problem> {
    let unauthorized =
        |detail: &str| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
    let Some(token) = crate::auth::bearer(headers.get(header::AUTHORIZATION)) else {
        return Err(unauthorized(
            "no bearer token: send `Authorization: Bearer TOKEN` with the tenant's token",
        ));
    };
    server
        .tenant_of_token(token)
        .cloned()
        .ok_or_else(|| unauthorized("the bearer token is not a tenant's token"))
}

/// Reads a request body within `limits.max-body` and `limits.body-timeout`.
pub(crate) async fn read_body(server: &Server, body: Body) -> Result<Bytes, Problem> {
    let limits = server.config.limits;
    read_limited(server, body, limits.max_body, "limits.max-body").await
}

/// Reads a request body of at most `max` bytes (the limit `key`).
async fn read_limited(
    server: &Server,
    body: Body,
    max: usize,
    key: &str,
) -> Result<Bytes, Problem> {
    let limits = server.config.limits;
    let limited = http_body_util::Limited::new(body, max);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            format!(
                "the request body did not arrive within {:?} (`limits.body-timeout`)",
                limits.body_timeout
            ),
        )),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("the request body is over {max} bytes (`{key}`)"),
            ))
        }
        Ok(Err(e)) => Err(Problem::bad_request(format!(
            "the request body could not be read: {e}"
        ))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Parses a JSON body; an empty body is `default` when one is given.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    default: Option<T>,
) -> Result<T, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace)
        && let Some(value) = default
    {
        return Ok(value);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::bad_request(format!(
            "the request body is not the JSON this route takes: {e}"
        ))
    })
}

/// `?wait=true`.
fn wants_wait(uri: &Uri) -> Result<bool, Problem> {
    let mut wait = false;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("wait", "true" | "1" | "") => wait = true,
            ("wait", "false" | "0") => wait = false,
            (name, _) => {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter `{}` (this route takes `wait=true|false`)",
                    femtoclaw_runtime::text::escape(name)
                )));
            }
        }
    }
    Ok(wait)
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({ "status": "ok" }))
}

async fn readyz(State(server): Shared) -> Response {
    if server.draining.load(Ordering::Relaxed) {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "draining" }),
        );
    }
    json_response(StatusCode::OK, &json!({ "status": "ready" }))
}

async fn openapi() -> Response {
    let mut response = crate::OPENAPI.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn not_found(uri: Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no-such-route",
        format!(
            "no route `{}`: see /v1/openapi.json",
            femtoclaw_runtime::text::escape(uri.path())
        ),
    )
}

async fn method_not_allowed(uri: Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!(
            "`{}` does not take this method: see /v1/openapi.json",
            femtoclaw_runtime::text::escape(uri.path())
        ),
    )
}

async fn create(State(server): Shared, uri: Uri, headers: HeaderMap, body: Body) -> Answer {
    let tenant = tenant(&server, &headers)?;
    let wait = wants_wait(&uri)?;
    let bytes = read_body(&server, body).await?;
    let request: NewRun = parse_json(&bytes, None)?;
    let id = server.accept(&tenant, request)?;
    let location = format!("/v1/runs/{id}");
    let mut response = if wait {
        let active = tenant.lock_active().get(&id).cloned();
        if let Some(active) = active {
            runs::finished(&active).await;
        }
        let view = runs::view(&tenant, &id, true)?.unwrap_or_else(|| json!({ "id": id }));
        json_response(StatusCode::OK, &view)
    } else {
        json_response(
            StatusCode::ACCEPTED,
            &json!({ "id": id, "status": "queued", "location": location }),
        )
    };
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `POST /v1/bundles`: a signed bundle (the `.fcb` bytes), verified under
/// the tenant's `[trust]` and kept in its journal by sha256.
async fn store_bundle(State(server): Shared, headers: HeaderMap, body: Body) -> Answer {
    let tenant = tenant(&server, &headers)?;
    let max = server.config.limits.max_bundle;
    let bytes = read_limited(&server, body, max, "limits.max-bundle").await?;
    let bundle = femtoclaw_bundle::Bundle::parse(&bytes)
        .map_err(|e| runs::refused_bundle(&e.to_string()))?;
    let signer = femtoclaw_runtime::bundle_signer(&bundle, &tenant.config.policy)
        .map_err(|e| runs::refused_bundle(&e.to_string()))?;
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    tenant
        .journal
        .lock()
        .store_component(&sha256, &bytes)
        .map_err(|e| Problem::internal(format!("the bundle could not be stored: {e}")))?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({
            "sha256": sha256,
            "name": bundle.manifest.name,
            "version": bundle.manifest.version.to_string(),
            "signer": signer,
        }),
    ))
}

async fn list(State(server): Shared, headers: HeaderMap) -> Answer {
    let tenant = tenant(&server, &headers)?;
    Ok(json_response(StatusCode::OK, &runs::list(&tenant)?))
}

async fn show(State(server): Shared, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let tenant = tenant(&server, &headers)?;
    let view = runs::view(&tenant, &id, true)?.ok_or_else(|| Problem::no_run(&id))?;
    Ok(json_response(StatusCode::OK, &view))
}

async fn events(State(server): Shared, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let tenant = tenant(&server, &headers)?;
    runs::view(&tenant, &id, false)?.ok_or_else(|| Problem::no_run(&id))?;
    let from = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|seen| seen + 1)
            .ok_or_else(|| {
                Problem::bad_request(
                    "`Last-Event-ID` must be the id (a number) of an event received",
                )
            })?,
    };
    Ok(crate::sse::response(tenant, id, from))
}

async fn audit(State(server): Shared, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let tenant = tenant(&server, &headers)?;
    let loaded = tenant.journal.lock().load(&id);
    match loaded {
        Ok((info, events)) => Ok(json_response(
            StatusCode::OK,
            &json!({
                "id": info.id,
                "status": info.status.as_str(),
                "policy_sha256": info.policy_hash,
                "agent_sha256": info.agent_hash,
                "decisions": femtoclaw_journal::decisions(&events),
            }),
        )),
        Err(femtoclaw_journal::JournalError::UnknownRun(_)) => {
            // Accepted and not started: no decision yet.
            runs::view(&tenant, &id, false)?.ok_or_else(|| Problem::no_run(&id))?;
            Ok(json_response(
                StatusCode::OK,
                &json!({ "id": id, "status": "queued", "decisions": [] }),
            ))
        }
        Err(e @ femtoclaw_journal::JournalError::Damaged { .. }) => {
            Err(Problem::new(StatusCode::CONFLICT, "damaged", e.to_string()))
        }
        Err(e) => Err(Problem::internal(e.to_string())),
    }
}

async fn cancel(State(server): Shared, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let tenant = tenant(&server, &headers)?;
    let active = tenant.lock_active().get(&id).cloned();
    match active {
        Some(active) => {
            active.cancel.cancel();
            Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({ "id": id, "status": "cancelling" }),
            ))
        }
        None => {
            let view = runs::view(&tenant, &id, false)?.ok_or_else(|| Problem::no_run(&id))?;
            if let Some(node) = view["node"].as_str() {
                // Running on another node: it cancels the run at its next
                // renewal of the run's lease.
                crate::fleet::ask_cancel(&tenant, &id)?;
                return Ok(json_response(
                    StatusCode::ACCEPTED,
                    &json!({ "id": id, "status": "cancelling", "node": node }),
                ));
            }
            Err(Problem::new(
                StatusCode::CONFLICT,
                "not-running",
                format!(
                    "the run is not running here (`{}`): there is nothing to cancel",
                    view["status"].as_str().unwrap_or("?")
                ),
            ))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResumeRequest {
    /// `fail`, `retry` or `skip`: what to do with a `write` call of unknown
    /// outcome.
    on_uncertain: Option<String>,
}

async fn resume(
    State(server): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let tenant = tenant(&server, &headers)?;
    let bytes = read_body(&server, body).await?;
    let request: ResumeRequest = parse_json(&bytes, Some(ResumeRequest::default()))?;
    let on_uncertain = request
        .on_uncertain
        .map(|text| {
            OnUncertain::parse(&text).ok_or_else(|| {
                Problem::bad_request("`on_uncertain` is `fail`, `retry` or `skip`")
                    .with("key", "on_uncertain")
            })
        })
        .transpose()?;
    server.resume(&tenant, &id, on_uncertain)?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({ "id": id, "status": "resuming" }),
    ))
}

async fn replay(State(server): Shared, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let tenant = tenant(&server, &headers)?;
    let recorded = match tenant.journal.lock().run(&id) {
        Ok(info) => info,
        Err(_) => return Err(Problem::no_run(&id)),
    };
    let outcome = server
        .runtime
        .replay_shared(&tenant.journal, &id, Some(tenant.id()))
        .await;
    let mut view = json!({ "id": id, "recorded_status": recorded.status.as_str() });
    match outcome {
        Ok(outcome) => {
            view["status"] = json!("replayed");
            match outcome.answer {
                Ok(answer) => view["answer"] = json!(answer),
                Err(e) => view["error"] = json!(e.to_string()),
            }
        }
        Err(e @ RunError::Divergence { .. }) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "diverged",
                e.to_string(),
            ));
        }
        Err(e @ RunError::Journal(_)) => {
            return Err(Problem::new(StatusCode::CONFLICT, "damaged", e.to_string()));
        }
        // The replay reproduced the run's stop (a limit, a trap, a cancel).
        Err(e) => {
            view["status"] = json!("replayed");
            view["error"] = json!(e.to_string());
        }
    }
    Ok(json_response(StatusCode::OK, &view))
}

async fn metrics(State(server): Shared, headers: HeaderMap) -> Answer {
    let Some(expected) = server.config.operator_token else {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "no-operator",
            "metrics need the operator's token, and the configuration has none: add `[operator] token-sha256`",
        ));
    };
    let token = crate::auth::bearer(headers.get(header::AUTHORIZATION));
    if !token.is_some_and(|t| crate::auth::same(&crate::auth::token_hash(t), &expected)) {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "metrics need the operator's bearer token",
        ));
    }
    let out = crate::metrics::exposition(&server);
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(response)
}
