//! Human approval of tool calls. A call that the policy says needs approval
//! (`approve`, or a rule with `action = "approve"`) is validated first, then
//! waits for the run's [`Approver`]: a person at a terminal, a fixed answer
//! for scripted use, an embedding program's callback, or a server's pending
//! approvals. No answer within `limits.approval-timeout` is a denial, and so
//! is a run without an approver. Each answer is journaled with who gave it,
//! so a replay never asks again.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::guest::Cancel;

/// What a person is asked to approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRequest {
    /// The run that makes the call.
    pub run_id: String,
    /// The call's number in the run (1-based).
    pub call: u32,
    /// The tool, `<capability>.<tool>`.
    pub tool: String,
    /// The validated arguments, secrets redacted.
    pub arguments: String,
    /// The policy rule that asks for approval (`approve`, `rules.NAME`).
    pub rule: String,
}

/// A person's (or a stand-in's) answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Whether the call may run.
    pub approved: bool,
    /// Who or what answered, for the journal and the audit (`terminal`,
    /// `--approve allow`, `timeout`, an API token's tenant …).
    pub by: String,
}

impl Approval {
    /// An answer given by `by`.
    pub fn new(approved: bool, by: impl Into<String>) -> Approval {
        Approval {
            approved,
            by: by.into(),
        }
    }
}

/// A boxed future of an answer.
pub type ApprovalFuture<'a> = Pin<Box<dyn Future<Output = Approval> + Send + 'a>>;

/// Answers approval requests. Implemented for closures of
/// `Fn(&ApprovalRequest) -> Approval` (an embedding program's callback);
/// an implementation that waits (for a person) returns a future that the
/// runtime bounds by `limits.approval-timeout` and the run's cancellation.
pub trait Approver: Send + Sync {
    /// The answer to `request`.
    fn decide<'a>(&'a self, request: &'a ApprovalRequest) -> ApprovalFuture<'a>;
}

impl<F> Approver for F
where
    F: Fn(&ApprovalRequest) -> Approval + Send + Sync,
{
    fn decide<'a>(&'a self, request: &'a ApprovalRequest) -> ApprovalFuture<'a> {
        let answer = self(request);
        Box::pin(async move { answer })
    }
}

/// The same answer to every request (`fc-host run --approve allow|deny`).
#[derive(Debug, Clone)]
pub struct Fixed(pub Approval);

impl Approver for Fixed {
    fn decide<'a>(&'a self, _: &'a ApprovalRequest) -> ApprovalFuture<'a> {
        let answer = self.0.clone();
        Box::pin(async move { answer })
    }
}

/// How often a wait looks at the run's cancellation.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Asks `approver`, if any, within `timeout`; `None` if the run was
/// cancelled while it waited.
pub(crate) async fn ask(
    approver: Option<&Arc<dyn Approver>>,
    request: &ApprovalRequest,
    timeout: Duration,
    cancel: &Cancel,
) -> Option<Approval> {
    let Some(approver) = approver else {
        return Some(Approval::new(false, "no approver"));
    };
    let answer = approver.decide(request);
    let cancelled = async {
        while !cancel.is_cancelled() {
            tokio::time::sleep(CANCEL_POLL).await;
        }
    };
    tokio::select! {
        answer = tokio::time::timeout(timeout, answer) => {
            Some(answer.unwrap_or_else(|_| Approval::new(false, "timeout")))
        }
        () = cancelled => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ApprovalRequest {
        ApprovalRequest {
            run_id: "r".into(),
            call: 1,
            tool: "fs.write_file".into(),
            arguments: "{}".into(),
            rule: "approve".into(),
        }
    }

    #[tokio::test]
    async fn no_answer_in_time_and_no_approver_deny() {
        struct Never;
        impl Approver for Never {
            fn decide<'a>(&'a self, _: &'a ApprovalRequest) -> ApprovalFuture<'a> {
                Box::pin(std::future::pending())
            }
        }
        let never: Arc<dyn Approver> = Arc::new(Never);
        let cancel = Cancel::new();
        let answer = ask(Some(&never), &request(), Duration::from_millis(20), &cancel).await;
        assert_eq!(answer, Some(Approval::new(false, "timeout")));
        let answer = ask(None, &request(), Duration::from_secs(5), &cancel).await;
        assert_eq!(answer, Some(Approval::new(false, "no approver")));
        cancel.cancel();
        assert_eq!(
            ask(Some(&never), &request(), Duration::from_secs(5), &cancel).await,
            None
        );
    }

    #[tokio::test]
    async fn a_callback_answers() {
        let callback: Arc<dyn Approver> =
            Arc::new(|r: &ApprovalRequest| Approval::new(r.tool == "fs.write_file", "callback"));
        let answer = ask(
            Some(&callback),
            &request(),
            Duration::from_secs(5),
            &Cancel::new(),
        )
        .await;
        assert_eq!(answer, Some(Approval::new(true, "callback")));
    }
}
