//! What the policy says of a granted, schema-valid call beyond the grant,
//! in this order: its rules (`[[rules]]`), its `max-calls` quota, its rates
//! over time, a person's approval, and last, just before the call runs, its
//! daily count. A call refused at any step is journaled as refused and the
//! agent is told only what kind of refusal it was.

use femtoclaw_policy::{Action, Policy};
use serde_json::{Value, json};

use super::AgentHost;
use super::rates::{self, RateBook};
use crate::StopReason;
use crate::approval::{Approval, ApprovalRequest};
use crate::bindings::ToolError;
use crate::record::Recorder;
use crate::redact::Redactor;

/// Whether a granted call runs.
pub(super) enum Admit {
    /// It runs: the rule that allowed it, and the arguments it is handed
    /// (the validated value as text).
    Run { rule: String, text: String },
    /// It was refused, and its refusal journaled: what the agent gets.
    Refused(Result<String, ToolError>),
}

/// A granted call, as admission sees it.
#[derive(Clone, Copy)]
pub(super) struct Granted<'a> {
    pub name: &'a str,
    /// Its capability.
    pub capability: &'a str,
    /// Its validated arguments.
    pub arguments: &'a Value,
    /// Its number in the run, idempotency key and journaled time (ms).
    pub step: u32,
    pub key: &'a str,
    pub at: u64,
    /// The answer it was given before the process died (a resumed call).
    pub answered: Option<&'a Approval>,
}

/// What the agent is told when a rate of the policy refuses a call.
fn over_a_rate(name: &str) -> ToolError {
    ToolError::LimitExceeded(format!(
        "`{name}` is over a rate limit of the policy; try later, or do without it"
    ))
}

impl AgentHost {
    pub(super) async fn admit(
        &mut self,
        call: Granted<'_>,
        redact: &Redactor,
    ) -> Result<Admit, StopReason> {
        let Granted {
            name,
            capability,
            arguments,
            step,
            ..
        } = call;
        let verdict = self.policy.judge(name, arguments);
        if verdict.action == Action::Deny {
            let detail = ToolError::Denied(match verdict.rule.as_str() {
                "rules" => format!("no `allow` rule of `{name}` matches these arguments (`rules`)"),
                rule => format!("`{name}` with these arguments is refused by `{rule}`"),
            });
            let told = super::outcome::told(name, &detail);
            return self.refused(name, step, &verdict.rule, detail, told);
        }
        if let Some(error) = self.quota_exhausted(capability, name) {
            let rule = format!("capabilities.{capability}.max-calls");
            let told = super::outcome::told(name, &error);
            return self.refused(name, step, &rule, error, told);
        }
        let text = arguments.to_string();
        let written = text.len() as u64;
        if let Some(over) = self.rates.before(&self.policy, name, call.at, written) {
            let detail =
                ToolError::LimitExceeded(format!("`{name}`: {} (`{}`)", over.message, over.rule));
            return self.refused(name, step, &over.rule, detail, over_a_rate(name));
        }
        if verdict.action == Action::Approve {
            let approval = self.approval(call, &verdict.rule, redact).await?;
            if !approval.approved {
                let detail = ToolError::Denied(format!(
                    "`{name}` was not approved (`{}`, answered by {})",
                    verdict.rule, approval.by
                ));
                let told = ToolError::Denied(format!("`{name}` was not approved"));
                return self.refused(name, step, &verdict.rule, detail, told);
            }
        }
        let daily = take_daily(
            &self.policy,
            &mut self.recorder,
            &mut self.rates,
            name,
            call.at,
        )?;
        if let Some((rule, limit)) = daily {
            let detail = ToolError::LimitExceeded(format!(
                "`{name}` ran {limit} times today (UTC) in this state directory; at most {limit} may (`{rule}`)"
            ));
            return self.refused(name, step, &rule, detail, over_a_rate(name));
        }
        Ok(Admit::Run {
            rule: verdict.rule,
            text,
        })
    }

    fn refused(
        &mut self,
        name: &str,
        step: u32,
        rule: &str,
        detail: ToolError,
        told: ToolError,
    ) -> Result<Admit, StopReason> {
        self.refuse(name, step, rule, detail, told, None)
            .map(Admit::Refused)
    }

    /// The error if the tool's `max-calls` quota is used up (a call is
    /// counted against it when it is journaled as counted: `finish`).
    fn quota_exhausted(&self, capability: &str, name: &str) -> Option<ToolError> {
        let short = &name[capability.len() + 1..];
        let quota = *self.policy.capabilities[capability].max_calls.get(short)?;
        let used = self.calls_per_tool.get(name).copied().unwrap_or(0);
        (used >= quota).then(|| {
            let rule = format!("capabilities.{capability}.max-calls");
            ToolError::LimitExceeded(format!(
                "`{name}` may be called {quota} times per run (`{rule}`)"
            ))
        })
    }

    /// A person's answer: the one journaled before the process died (a
    /// resumed call), or the approver's, asked once the request is durable.
    async fn approval(
        &mut self,
        call: Granted<'_>,
        rule: &str,
        redact: &Redactor,
    ) -> Result<Approval, StopReason> {
        let Granted {
            name, step, key, ..
        } = call;
        if let Some(answered) = call.answered {
            return Ok(answered.clone());
        }
        let request = ApprovalRequest {
            run_id: self.recorder.run_id.clone(),
            call: step,
            tool: name.to_owned(),
            arguments: redact.apply_json(&call.arguments.to_string()),
            rule: rule.to_owned(),
        };
        tracing::info!(target: "femtoclaw::decision", call = step, tool = %name, decision = "ask", %rule, "waiting for approval");
        // Durable and announced (a server streams it) before a person, who
        // may take minutes, is asked.
        self.recorder.record(
            "decision",
            json!({ "for": "approval", "call": step, "tool": name, "key": key, "decision": "ask", "rule": rule, "arguments": request.arguments }),
            None,
        )?;
        self.recorder.sync()?;
        let timeout = self.policy.limits.approval_timeout;
        let asked =
            crate::approval::ask(self.approver.as_ref(), &request, timeout, &self.cancel).await;
        let Some(approval) = asked else {
            return Err(self.recorder.stop(StopReason::Cancelled));
        };
        let decision = if approval.approved { "approve" } else { "deny" };
        tracing::info!(target: "femtoclaw::decision", call = step, tool = %name, decision, %rule, by = %approval.by, "approval answered");
        self.recorder.record(
            "decision",
            json!({ "for": "approval", "call": step, "tool": name, "key": key, "decision": decision, "rule": rule, "by": approval.by }),
            None,
        )?;
        Ok(approval)
    }
}

/// Takes one of today's calls of `tool` from each `calls-per-day` that
/// applies, all or none, from the state directory's shared counts (the
/// run's own, without a journal). Taken last, just before the call runs, so
/// a call refused for any other reason takes none, and a process that dies
/// before the call runs has used one (fail closed). The rule and limit of
/// the first that has none left.
fn take_daily(
    policy: &Policy,
    recorder: &mut Recorder,
    book: &mut RateBook,
    tool: &str,
    at: u64,
) -> Result<Option<(String, u64)>, StopReason> {
    let daily = rates::daily(policy, tool);
    if daily.is_empty() {
        return Ok(None);
    }
    let day = at / rates::DAY_MS;
    let scopes: Vec<(String, u64)> = daily.iter().map(|d| (d.scope.clone(), d.limit)).collect();
    let full = match recorder.with_journal(|j| j.take_daily(day, &scopes)) {
        Some(taken) => taken.map_err(|e| StopReason::Journal(e.to_string()))?,
        None => book.take_daily(day, &scopes),
    };
    Ok(full.map(|i| (daily[i].rule.clone(), daily[i].limit)))
}
