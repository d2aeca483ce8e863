//! `tools.list` and `tools.call`: the gate, the quotas, the output-commit
//! rule, the capability, the result check, the journal.

use std::collections::BTreeMap;
use std::time::Instant;

use femtoclaw_policy::{OnRefusal, OnUncertain, Policy};
use femtoclaw_protocol::Limits as JsonLimits;
use serde_json::{Value, json};
use tracing::Instrument;

use super::{AgentHost, HostResult, halt};
use crate::StopReason;
use crate::bindings::agent::femtoclaw::runtime::tools;
use crate::bindings::capability::exports::femtoclaw::runtime::tool_provider::Invocation;
use crate::bindings::{EffectClass, ToolError, ToolSpec};
use crate::gate::{Decision, Gate, GrantedTool};
use crate::guest::{Failure, GuestState};
use crate::metrics::{Component, Metrics, Rule, Tool, ToolDecision};
use crate::record::Next;
use crate::redact::Redactor;
use crate::text::tool_error;

impl tools::Host for GuestState<AgentHost> {
    async fn list(&mut self) -> HostResult<Vec<ToolSpec>> {
        Ok(self.data.specs.clone())
    }

    async fn call(
        &mut self,
        name: String,
        arguments: String,
    ) -> HostResult<Result<String, ToolError>> {
        let redact = self.redact.clone();
        self.data.call_tool(&name, &arguments, &redact).await
    }
}

impl AgentHost {
    /// One tool call, whoever makes it (an agent component, or an MCP
    /// client in a session): taken from the journal when it is replayed,
    /// else decided, run and journaled live.
    pub(crate) async fn call_tool(
        &mut self,
        name: &str,
        arguments: &str,
        redact: &Redactor,
    ) -> HostResult<Result<String, ToolError>> {
        let host = self;
        if let Some(reason) = host.cancelled() {
            return halt(reason);
        }
        let max = host.policy.limits.max_tool_calls;
        if host.stats.tool_calls >= max {
            tracing::warn!(target: "femtoclaw::decision", tool = %name, decision = "stop", rule = "limits.max-tool-calls", "tool-call budget exhausted");
            return halt(host.stop(StopReason::MaxToolCalls(max), "run"));
        }
        host.stats.tool_calls += 1;
        let step = host.stats.tool_calls;
        let key = format!("{}:{step}", host.recorder.run_id);
        let same = |d: &Value| d["name"] == name && d["arguments"] == arguments;
        let actual = || format!("tool call `{name}` with {arguments}");
        match host.recorder.next("tool-call", same, actual) {
            Err(reason) => halt(reason),
            Ok(Next::Replay(_)) => match host.recorder.next("tool-result", |_| true, actual) {
                Ok(Next::Replay(event)) => {
                    if event.data["counted"] == true {
                        *host.calls_per_tool.entry(name.to_owned()).or_default() += 1;
                    }
                    if event.data["refused"] == true {
                        host.stats.refused += 1;
                    }
                    event.data["rule"]
                        .as_str()
                        .unwrap_or_default()
                        .clone_into(&mut host.refused_by);
                    let result = serde_json::from_value::<Result<String, ToolError>>(
                        event.data["result"].clone(),
                    );
                    let result = result.or_else(|e| {
                        halt(StopReason::Journal(format!("event {}: {e}", event.seq)))
                    })?;
                    let rule = host.refused_by.clone();
                    match host.refusal_stops(&rule, &result) {
                        Some(reason) => halt(host.recorder.stop(reason)),
                        None => Ok(result),
                    }
                }
                // The intent was journaled but not its result: the process
                // died while the call ran.
                Ok(Next::Live) => host.uncertain(name, arguments, step, key, redact).await,
                Err(reason) => halt(reason),
            },
            Ok(Next::Live) => {
                let span = tracing::info_span!(parent: &host.step_span, "tool_call", tool = %name, call = step);
                let outcome = host
                    .live_call(name, arguments, step, key, true, redact)
                    .instrument(span)
                    .await;
                outcome.or_else(halt)
            }
        }
    }

    /// A resumed run reached a call whose result was never journaled.
    /// `pure` and `read` calls run again; a `write` follows the policy, or
    /// the operator's choice at resume time, and that decision is journaled.
    async fn uncertain(
        &mut self,
        name: &str,
        arguments: &str,
        step: u32,
        key: String,
        redact: &Redactor,
    ) -> HostResult<Result<String, ToolError>> {
        let effect = self.live.as_ref().and_then(|l| l.gate.effect(name));
        let Self { on_uncertain, .. } = *self;
        let (choice, rule) = match (effect, on_uncertain.by_operator) {
            (Some(EffectClass::Write), false) => (on_uncertain.choice, "journal.on-uncertain"),
            (Some(EffectClass::Write), true) => (on_uncertain.choice, "resume --on-uncertain"),
            _ => (OnUncertain::Retry, "effect-class"),
        };
        if choice == OnUncertain::Fail {
            return halt(StopReason::Uncertain(format!(
                "`{name}` (idempotency key `{key}`) may or may not have run before the process died, \
                 and `{rule}` says `fail`: check its effect, then `fc-host resume {run} --on-uncertain retry` \
                 runs it again with the same key, or `--on-uncertain skip` tells the agent its outcome is unknown",
                run = self.recorder.run_id
            )));
        }
        let by = if on_uncertain.by_operator {
            "operator"
        } else {
            "policy"
        };
        tracing::warn!(target: "femtoclaw::decision", call = step, tool = %name, decision = choice.as_str(), %rule, by, key = %key, "a call of unknown outcome");
        self.recorder
            .record(
                "decision",
                json!({ "call": step, "tool": name, "key": key, "decision": choice.as_str(), "rule": rule, "by": by }),
                None,
            )
            .or_else(halt)?;
        if choice == OnUncertain::Skip {
            let error = ToolError::Failed(format!(
                "`{name}` may or may not have run before the process died; it was not run again (`{rule}` = `skip`)"
            ));
            return self.finish_call(Err(error), true, "").or_else(halt);
        }
        self.live_call(name, arguments, step, key, false, redact)
            .await
            .or_else(halt)
    }

    /// Decides, journals and runs one call against the live capabilities.
    async fn live_call(
        &mut self,
        name: &str,
        arguments: &str,
        step: u32,
        key: String,
        record_intent: bool,
        redact: &Redactor,
    ) -> Result<Result<String, ToolError>, StopReason> {
        let live = self
            .live
            .as_mut()
            .expect("invariant: live calls happen only with live components");
        let decision = live.gate.decide(&self.policy, name, arguments);
        let (effect, unsandboxed) = match &decision {
            Decision::Allow { tool, .. } => (tool.spec.effect, tool.unsandboxed),
            Decision::Refuse { .. } => (EffectClass::Pure, false),
        };
        if record_intent {
            let mut intent =
                json!({ "name": name, "arguments": arguments, "key": key, "effect": effect });
            if unsandboxed {
                // The audit shows which calls ran outside the sandbox.
                intent["unsandboxed"] = json!(true);
            }
            self.recorder.record("tool-call", intent, None)?;
        }
        let (tool, arguments, rule) = match decision {
            Decision::Allow {
                tool,
                arguments,
                rule,
            } => (tool, arguments, rule),
            Decision::Refuse { rule, error } => {
                self.stats.refused += 1;
                count_denial(&self.metrics, name, &rule);
                tracing::info!(target: "femtoclaw::decision", call = step, tool = %name, decision = "deny", %rule, error = %tool_error(&error), "tool call refused");
                return self.finish_call(Err(error), false, &rule);
            }
        };
        if let Some(error) = quota_exhausted(&self.policy, &mut self.calls_per_tool, tool, name) {
            let quota_rule = format!("capabilities.{}.max-calls", tool.capability);
            self.stats.refused += 1;
            count_denial(&self.metrics, name, &quota_rule);
            tracing::info!(target: "femtoclaw::decision", call = step, tool = %name, decision = "deny", rule = %quota_rule, "tool call quota exhausted");
            return self.finish_call(Err(error), false, &quota_rule);
        }
        if tool.spec.effect == EffectClass::Write {
            // Output commit: the intent is durable before the effect happens.
            self.recorder.sync()?;
        }
        let capability = live
            .capabilities
            .get_mut(&tool.capability)
            .expect("invariant: granted tools have an instance");
        let call = Invocation {
            tool: tool.spec.name[tool.capability.len() + 1..].to_owned(),
            // The capability receives exactly the value that was validated.
            arguments: arguments.to_string(),
            idempotency_key: key,
        };
        tracing::info!(target: "femtoclaw::decision", call = step, tool = %name, decision = "allow", %rule, component = %capability.identity(), "tool call allowed");
        self.metrics
            .tool_calls
            .get_or_create(&ToolDecision {
                tool: name.to_owned(),
                decision: "allow",
            })
            .inc();
        let started = Instant::now();
        let outcome = capability.invoke(call).await;
        let component = Component {
            component: format!("capability {}", tool.capability),
        };
        self.metrics
            .fuel
            .get_or_create(&component)
            .inc_by(capability.fuel_used());
        self.metrics
            .tool_call_seconds
            .get_or_create(&Tool {
                tool: name.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
        match &outcome {
            Err(Failure::Trap(_)) => self.metrics.traps.get_or_create(&component).inc(),
            Err(Failure::Limit(_)) => self.metrics.limit_stops.get_or_create(&component).inc(),
            _ => 0,
        };
        let max_output = usize::try_from(self.policy.limits.max_tool_output).unwrap_or(usize::MAX);
        let result = match outcome {
            Ok(Ok(output)) => checked_output(tool, output, max_output, redact),
            Ok(Err(error)) => Err(redact_error(redact, error)),
            Err(Failure::Limit(m)) => {
                Err(ToolError::LimitExceeded(format!("`{name}` stopped: {m}")))
            }
            Err(Failure::Trap(m)) => Err(ToolError::Failed(
                redact.apply(&format!("`{name}` trapped: {m}")).into_owned(),
            )),
            Err(Failure::Stop(r)) => return Err(r),
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        match &result {
            Ok(output) => {
                tracing::info!(target: "femtoclaw::tool", call = step, tool = %name, outcome = "ok", output_bytes = output.len(), elapsed_us, "tool call finished")
            }
            Err(error) => {
                tracing::info!(target: "femtoclaw::tool", call = step, tool = %name, outcome = "error", error = %tool_error(error), elapsed_us, "tool call finished")
            }
        }
        self.finish_call(result, true, "")
    }

    /// Journals a call's result; `refused_by` names the rule that refused
    /// it (empty: the capability ran it).
    fn finish_call(
        &mut self,
        result: Result<String, ToolError>,
        counted: bool,
        refused_by: &str,
    ) -> Result<Result<String, ToolError>, StopReason> {
        let refused = !refused_by.is_empty();
        refused_by.clone_into(&mut self.refused_by);
        let data =
            json!({ "result": result, "counted": counted, "refused": refused, "rule": refused_by });
        self.recorder.record("tool-result", data, None)?;
        match self.refusal_stops(refused_by, &result) {
            Some(reason) => Err(self.recorder.stop(reason)),
            None => Ok(result),
        }
    }

    /// Under `on-refusal = "stop"`, the stop a refusal by `rule` makes
    /// (live or replayed alike): the run ends there, and the model is never
    /// handed the refusal.
    fn refusal_stops(&self, rule: &str, result: &Result<String, ToolError>) -> Option<StopReason> {
        let Err(error) = result else { return None };
        if rule.is_empty() || self.policy.on_refusal != OnRefusal::Stop {
            return None;
        }
        tracing::warn!(target: "femtoclaw::decision", decision = "stop", %rule, "a refused call ends the run (`on-refusal` = `stop`)");
        Some(StopReason::Refused(format!(
            "the policy refused a tool call ({}), and `on-refusal` is `stop`: the run ended there",
            crate::text::tool_error(error)
        )))
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

/// Counts a call against the tool's `max-calls` quota; the error if it is
/// used up.
fn quota_exhausted(
    policy: &Policy,
    used: &mut BTreeMap<String, u32>,
    tool: &GrantedTool,
    name: &str,
) -> Option<ToolError> {
    let short = &tool.spec.name[tool.capability.len() + 1..];
    let quota = *policy.capabilities[&tool.capability].max_calls.get(short)?;
    let used = used.entry(name.to_owned()).or_default();
    if *used >= quota {
        let rule = format!("capabilities.{}.max-calls", tool.capability);
        return Some(ToolError::LimitExceeded(format!(
            "`{name}` may be called {quota} times per run (`{rule}`)"
        )));
    }
    *used += 1;
    None
}

/// A capability's result as the agent may see it: within the size cap,
/// strict JSON that satisfies the output schema, and without secrets.
fn checked_output(
    tool: &GrantedTool,
    output: String,
    max: usize,
    redact: &Redactor,
) -> Result<String, ToolError> {
    let name = &tool.spec.name;
    if output.len() > max {
        return Err(ToolError::LimitExceeded(format!(
            "`{name}` returned {} bytes, over `limits.max-tool-output` ({max})",
            output.len()
        )));
    }
    Gate::check_output(
        tool,
        &output,
        JsonLimits {
            max_bytes: max,
            ..JsonLimits::default()
        },
    )?;
    Ok(redact.apply_json(&output))
}

/// A capability's error with the run's secrets removed.
fn redact_error(redact: &Redactor, error: ToolError) -> ToolError {
    let r = |m: String| redact.apply(&m).into_owned();
    match error {
        ToolError::Denied(m) => ToolError::Denied(r(m)),
        ToolError::InvalidArguments(m) => ToolError::InvalidArguments(r(m)),
        ToolError::UnknownTool(m) => ToolError::UnknownTool(r(m)),
        ToolError::LimitExceeded(m) => ToolError::LimitExceeded(r(m)),
        ToolError::Failed(m) => ToolError::Failed(r(m)),
    }
}
