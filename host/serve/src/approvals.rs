//! Pending approvals of a tenant's runs: a call that needs a person's
//! approval waits here until `POST /v1/runs/{id}/approvals/{call}` answers
//! it, the policy's `approval-timeout` denies it, or the run is cancelled.
//! The request is journaled (a `decision` event with `"decision": "ask"`),
//! so the run's event stream announces it; the answer is journaled with the
//! tenant that gave it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use axum::body::Body;
use axum::extract::{Path, State};
use femtoclaw_runtime::approval::{Approval, ApprovalFuture, ApprovalRequest, Approver};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::api::{Answer, Shared, json_response, parse_json, read_body, tenant};
use crate::problem::Problem;

/// The calls of one run waiting for an answer, by call number.
#[derive(Default)]
pub struct Pending(Mutex<BTreeMap<u32, Waiting>>);

struct Waiting {
    request: ApprovalRequest,
    answer: oneshot::Sender<Approval>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Waiting>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What is waiting, in call order.
    pub fn list(&self) -> Vec<ApprovalRequest> {
        self.lock().values().map(|w| w.request.clone()).collect()
    }

    /// Answers call `call`; false if nothing waits for it.
    pub fn answer(&self, call: u32, approval: Approval) -> bool {
        match self.lock().remove(&call) {
            Some(waiting) => waiting.answer.send(approval).is_ok(),
            None => false,
        }
    }
}

/// The approver of one run in the server.
pub struct RunApprover(pub Weak<Pending>);

/// Removes a request that stopped waiting (answered, timed out, cancelled).
struct Withdraw(Weak<Pending>, u32);

impl Drop for Withdraw {
    fn drop(&mut self) {
        if let Some(pending) = self.0.upgrade() {
            pending.lock().remove(&self.1);
        }
    }
}

impl Approver for RunApprover {
    fn decide<'a>(&'a self, request: &'a ApprovalRequest) -> ApprovalFuture<'a> {
        Box::pin(async move {
            let Some(pending) = self.0.upgrade() else {
                return Approval::new(false, "the run ended");
            };
            let (tx, rx) = oneshot::channel();
            pending.lock().insert(
                request.call,
                Waiting {
                    request: request.clone(),
                    answer: tx,
                },
            );
            let _withdraw = Withdraw(Arc::downgrade(&pending), request.call);
            drop(pending);
            rx.await
                .unwrap_or_else(|_| Approval::new(false, "the server stopped waiting"))
        })
    }
}

/// `GET /v1/runs/{id}/approvals`: the run's calls waiting for an answer.
pub(crate) async fn list(
    State(server): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let tenant = tenant(&server, &headers)?;
    let active = tenant.lock_active().get(&id).cloned();
    let pending = match active {
        Some(active) => active.approvals.list(),
        None => {
            here_or_nowhere(&tenant, &id)?;
            Vec::new()
        }
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({ "id": id, "pending": pending }),
    ))
}

/// The body of `POST /v1/runs/{id}/approvals/{call}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answered {
    /// Whether the call may run.
    approve: bool,
}

/// `POST /v1/runs/{id}/approvals/{call}` with `{"approve": true|false}`.
pub(crate) async fn answer(
    State(server): Shared,
    headers: HeaderMap,
    Path((id, call)): Path<(String, String)>,
    body: Body,
) -> Answer {
    let tenant = tenant(&server, &headers)?;
    let call: u32 = call.parse().map_err(|_| {
        Problem::bad_request("the call is a number: one of `GET .../approvals`' `call` values")
    })?;
    let bytes = read_body(&server, body).await?;
    let answered: Answered = parse_json(&bytes, None)?;
    let active = tenant.lock_active().get(&id).cloned();
    let by = format!("api (tenant {})", tenant.id());
    let given = active.is_some_and(|a| {
        a.approvals
            .answer(call, Approval::new(answered.approve, by))
    });
    if !given {
        here_or_nowhere(&tenant, &id)?;
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "no-pending-approval",
            format!(
                "call {call} of run `{id}` is not waiting for approval (answered, timed out, or never asked): see `GET /v1/runs/{id}/approvals`"
            ),
        ));
    }
    let decision = if answered.approve { "approve" } else { "deny" };
    Ok(json_response(
        StatusCode::OK,
        &json!({ "id": id, "call": call, "decision": decision }),
    ))
}

/// For a run not executing here: `404` when the tenant has no such run,
/// `409 running-elsewhere` naming the node that executes it (its calls
/// wait for approval there), else nothing.
fn here_or_nowhere(tenant: &crate::tenant::Tenant, id: &str) -> Result<(), Problem> {
    let view = crate::runs::view(tenant, id, false)?.ok_or_else(|| Problem::no_run(id))?;
    match view["node"].as_str() {
        Some(node) => Err(crate::fleet::elsewhere(node)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(call: u32) -> ApprovalRequest {
        ApprovalRequest {
            run_id: "r".into(),
            call,
            tool: "fs.write_file".into(),
            arguments: "{}".into(),
            rule: "approve".into(),
        }
    }

    #[tokio::test]
    async fn a_waiting_call_is_listed_answered_and_withdrawn() {
        let pending = Arc::new(Pending::default());
        let approver = RunApprover(Arc::downgrade(&pending));
        let req = request(3);
        let waiting = approver.decide(&req);
        let answer = tokio::spawn({
            let pending = pending.clone();
            async move {
                for _ in 0..1000 {
                    if !pending.list().is_empty() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                assert_eq!(pending.list(), [request(3)]);
                assert!(!pending.answer(4, Approval::new(true, "x")));
                assert!(pending.answer(3, Approval::new(true, "api")));
            }
        });
        assert_eq!(waiting.await, Approval::new(true, "api"));
        answer.await.unwrap();
        assert!(pending.list().is_empty());
        // A request given up on (its future dropped) is withdrawn.
        let req = request(5);
        let mut waiting = approver.decide(&req);
        assert!(futures_poll_once(&mut waiting).await.is_none());
        assert_eq!(pending.list().len(), 1);
        drop(waiting);
        assert!(pending.list().is_empty());
    }

    /// Polls a future once.
    async fn futures_poll_once(f: &mut ApprovalFuture<'_>) -> Option<Approval> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match f.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
