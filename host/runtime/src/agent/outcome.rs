//! How a tool call ends: its result journaled with the rule that allowed
//! or refused it (and a refusal's full detail), what the agent is told, and
//! whether a refusal ends the run (`on-refusal = "stop"`).

use femtoclaw_policy::OnRefusal;
use serde_json::json;

use super::AgentHost;
use crate::StopReason;
use crate::bindings::ToolError;
use crate::metrics::{Metrics, Rule, ToolDecision};
use crate::text::tool_error;

/// What a call that ran used, for the rates and the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Bytes {
    pub read: u64,
    pub written: u64,
}

impl AgentHost {
    /// Refuses a call: the detail goes to the logs, the metrics and the
    /// journal; the agent is told `told`. `ran` holds what a call that ran
    /// before it was refused used (it counts as a call of the tool).
    pub(super) fn refuse(
        &mut self,
        name: &str,
        step: u32,
        rule: &str,
        detail: ToolError,
        told: ToolError,
        ran: Option<Bytes>,
    ) -> Result<Result<String, ToolError>, StopReason> {
        self.stats.refused += 1;
        count_denial(&self.metrics, name, rule);
        tracing::info!(target: "femtoclaw::decision", call = step, tool = %name, decision = "deny", %rule, error = %tool_error(&detail), "tool call refused");
        self.finish(
            name,
            Err(told),
            Some(&detail),
            ran.is_some(),
            rule,
            ran.unwrap_or_default(),
        )
    }

    /// Journals a call's result. `detail` is a refusal's full text (the
    /// agent got `result`); `rule` the rule that allowed or refused it; a
    /// `counted` call counts against its tool's `max-calls` (as a replayed
    /// one does, from the same journaled flag).
    pub(super) fn finish(
        &mut self,
        name: &str,
        result: Result<String, ToolError>,
        detail: Option<&ToolError>,
        counted: bool,
        rule: &str,
        bytes: Bytes,
    ) -> Result<Result<String, ToolError>, StopReason> {
        let refused = detail.is_some();
        if counted {
            self.count_call(name);
        }
        self.refused_by = if refused {
            rule.to_owned()
        } else {
            String::new()
        };
        let mut data =
            json!({ "result": result, "counted": counted, "refused": refused, "rule": rule });
        if let Some(detail) = detail {
            data["detail"] = json!(tool_error(detail));
        }
        if bytes.read > 0 {
            data["read"] = json!(bytes.read);
        }
        if bytes.written > 0 {
            data["written"] = json!(bytes.written);
        }
        self.recorder.record("tool-result", data, None)?;
        let detail = detail.map(tool_error).unwrap_or_default();
        match self.refusal_stops(refused, rule, &detail) {
            Some(reason) => Err(self.recorder.stop(reason)),
            None => Ok(result),
        }
    }

    /// Counts a call of `name` against its `max-calls` quota (allocating
    /// only at a tool's first call).
    pub(super) fn count_call(&mut self, name: &str) {
        match self.calls_per_tool.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                self.calls_per_tool.insert(name.to_owned(), 1);
            }
        }
    }

    /// Under `on-refusal = "stop"`, the stop a refusal by `rule` makes
    /// (live or replayed alike): the run ends there, and the model is never
    /// handed the refusal.
    pub(super) fn refusal_stops(
        &self,
        refused: bool,
        rule: &str,
        detail: &str,
    ) -> Option<StopReason> {
        if !refused || self.policy.on_refusal != OnRefusal::Stop {
            return None;
        }
        tracing::warn!(target: "femtoclaw::decision", decision = "stop", %rule, "a refused call ends the run (`on-refusal` = `stop`)");
        Some(StopReason::Refused(format!(
            "the policy refused a tool call ({detail}), and `on-refusal` is `stop`: the run ended there"
        )))
    }
}

/// What the agent is told of a refusal: which tool and what kind of
/// refusal, never the policy's rules or internal detail (those go to the
/// journal and the audit). Errors about the call itself (not strict JSON,
/// against the schema the agent was given, no such tool) are the agent's to
/// fix, and it gets them whole.
pub(super) fn told(name: &str, detail: &ToolError) -> ToolError {
    match detail {
        ToolError::Denied(_) => {
            ToolError::Denied(format!("the policy does not allow this call of `{name}`"))
        }
        ToolError::LimitExceeded(_) => {
            ToolError::LimitExceeded(format!("`{name}` has no calls left in this run"))
        }
        other => other.clone(),
    }
}

fn count_denial(metrics: &Metrics, tool: &str, rule: &str) {
    metrics
        .tool_calls
        .get_or_create(&ToolDecision {
            tool: tool.to_owned(),
            decision: "deny",
        })
        .inc();
    metrics
        .denials
        .get_or_create(&Rule {
            rule: rule.to_owned(),
        })
        .inc();
}
