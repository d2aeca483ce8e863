//! `tools.list` and `tools.call`: the journal (replayed, or resumed after a
//! crash), the gate, admission (`admit`), the output-commit rule, the
//! capability, the result check, the journaled outcome (`outcome`).

use std::time::Instant;

use femtoclaw_policy::OnUncertain;
use femtoclaw_protocol::Limits as JsonLimits;
use serde_json::{Value, json};
use tracing::Instrument;

use super::admit::{Admit, Granted};
use super::outcome::{self, Bytes};
use super::rates;
use super::{AgentHost, HostResult, halt};
use crate::StopReason;
use crate::approval::Approval;
use crate::bindings::agent::femtoclaw::runtime::tools;
use crate::bindings::capability::exports::femtoclaw::runtime::tool_provider::Invocation;
use crate::bindings::{EffectClass, ToolError, ToolSpec};
use crate::gate::{Decision, Gate, GrantedTool};
use crate::guest::{Failure, GuestState};
use crate::metrics::{Component, Tool, ToolDecision};
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
            Ok(Next::Replay(intent)) => {
                let at = intent.data["at"].as_u64().unwrap_or(0);
                match host.recorder.next("tool-result", |_| true, actual) {
                    Ok(Next::Replay(event)) => host.replayed(name, at, &event.data, event.seq),
                    // The intent was journaled but not its result: the
                    // process died while the call ran.
                    Ok(Next::Live) => host.uncertain(name, arguments, step, key, at, redact).await,
                    Err(reason) => halt(reason),
                }
            }
            Ok(Next::Live) => {
                let span = tracing::info_span!(parent: &host.step_span, "tool_call", tool = %name, call = step);
                let call = Call {
                    name,
                    arguments,
                    step,
                    key,
                    at: now_ms(),
                    answered: None,
                };
                let outcome = host.live_call(call, true, redact).instrument(span).await;
                outcome.or_else(halt)
            }
        }
    }

    /// A call's journaled result, with the counters it fed.
    fn replayed(
        &mut self,
        name: &str,
        at: u64,
        data: &Value,
        seq: u64,
    ) -> HostResult<Result<String, ToolError>> {
        if data["counted"] == true {
            self.count_call(name);
            let bytes = |k: &str| data[k].as_u64().unwrap_or(0);
            self.rates
                .record(&self.policy, name, at, bytes("read"), bytes("written"));
        }
        let refused = data["refused"] == true;
        let rule = data["rule"].as_str().unwrap_or_default();
        self.refused_by = if refused {
            rule.to_owned()
        } else {
            String::new()
        };
        if refused {
            self.stats.refused += 1;
        }
        let result = serde_json::from_value::<Result<String, ToolError>>(data["result"].clone());
        let result = result.or_else(|e| halt(StopReason::Journal(format!("event {seq}: {e}"))))?;
        let detail = match (data["detail"].as_str(), &result) {
            (Some(detail), _) => detail.to_owned(),
            (None, Err(error)) => tool_error(error),
            (None, Ok(_)) => String::new(),
        };
        match self.refusal_stops(refused, rule, &detail) {
            Some(reason) => halt(self.recorder.stop(reason)),
            None => Ok(result),
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
        at: u64,
        redact: &Redactor,
    ) -> HostResult<Result<String, ToolError>> {
        // A call that waited for a person when the process died never ran
        // unless it was approved: it is asked again (or refused again), not
        // treated as uncertain.
        let mut asked = false;
        let mut answer = None;
        for e in self.recorder.passed() {
            let d = &e.data;
            if e.kind == "decision" && d["for"] == "approval" && d["call"] == step {
                match d["decision"].as_str() {
                    Some("ask") => asked = true,
                    Some(decision) => {
                        let by = d["by"].as_str().unwrap_or("?");
                        answer = Some(Approval::new(decision == "approve", by));
                    }
                    None => {}
                }
            }
        }
        let approved = answer.as_ref().is_some_and(|a| a.approved);
        let call = Call {
            name,
            arguments,
            step,
            key,
            at,
            answered: answer,
        };
        if asked && !approved {
            return self.live_call(call, false, redact).await.or_else(halt);
        }
        let key = &call.key;
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
            return self
                .finish(name, Err(error), None, true, "", Bytes::default())
                .or_else(halt);
        }
        self.live_call(call, false, redact).await.or_else(halt)
    }

    /// Decides, journals and runs one call against the live capabilities.
    async fn live_call(
        &mut self,
        call: Call<'_>,
        record_intent: bool,
        redact: &Redactor,
    ) -> Result<Result<String, ToolError>, StopReason> {
        let Call {
            name,
            arguments,
            step,
            key,
            at,
            answered,
        } = call;
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
            let mut intent = json!({ "name": name, "arguments": arguments, "key": key, "effect": effect, "at": at });
            if unsandboxed {
                // The audit shows which calls ran outside the sandbox.
                intent["unsandboxed"] = json!(true);
            }
            self.recorder.record("tool-call", intent, None)?;
        }
        let (capability, arguments) = match decision {
            Decision::Allow { tool, arguments } => (tool.capability.clone(), arguments),
            Decision::Refuse { rule, error } => {
                let told = outcome::told(name, &error);
                return self.refuse(name, step, &rule, error, told, None);
            }
        };
        let granted = Granted {
            name,
            capability: &capability,
            arguments: &arguments,
            step,
            key: &key,
            at,
            answered: answered.as_ref(),
        };
        let (rule, text) = match self.admit(granted, redact).await? {
            Admit::Run { rule, text } => (rule, text),
            Admit::Refused(result) => return Ok(result),
        };
        let written = text.len() as u64;
        let live = self
            .live
            .as_mut()
            .expect("invariant: live calls happen only with live components");
        let tool = live
            .gate
            .tool(name)
            .expect("invariant: the gate allowed the call");
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
            arguments: text,
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
        // What a call that ran used counts only where a rate applies (and is
        // journaled there, for a resumed run to count again).
        if !rates::applies(&self.policy, name) {
            return self.finish(name, result, None, true, &rule, Bytes::default());
        }
        let read = result.as_ref().map_or(0, |o| o.len() as u64);
        let bytes = Bytes { read, written };
        let over = self.rates.after(&self.policy, name, read);
        self.rates.record(&self.policy, name, at, read, written);
        if let Some(over) = over {
            // It ran, and counts as having run; the agent does not get what
            // it read past its budget.
            let detail = ToolError::LimitExceeded(format!(
                "`{name}`: {} (`{}`); the result was withheld",
                over.message, over.rule
            ));
            let told = ToolError::LimitExceeded(format!(
                "`{name}` returned more than the policy lets this run read"
            ));
            return self.refuse(name, step, &over.rule, detail, told, Some(bytes));
        }
        self.finish(name, result, None, true, &rule, bytes)
    }
}

/// One call as the gate sees it.
pub(super) struct Call<'a> {
    name: &'a str,
    arguments: &'a str,
    /// Its number in the run.
    step: u32,
    /// Its idempotency key.
    key: String,
    /// When it was made (ms since the Unix epoch), as journaled.
    at: u64,
    /// The answer it was given before the process died (a resumed call
    /// that waited for approval).
    answered: Option<Approval>,
}

/// The time a call is journaled with, in ms since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
