//! The agent's host: `tools`, `inference` and `memory` imports. Every tool
//! call passes the gate and the validator before a capability runs it; every
//! input the agent receives is journaled (or, when replaying, taken from the
//! journal); budgets that run out end the run with a [`StopReason`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use femtoclaw_journal::MemoryEffect;
use femtoclaw_policy::{OnUncertain, Policy};
use femtoclaw_protocol::Limits as JsonLimits;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::bindings::agent::femtoclaw::runtime::{inference, memory, tools};
use crate::bindings::brain::exports::femtoclaw::runtime::model::Request;
use crate::bindings::capability::exports::femtoclaw::runtime::tool_provider::Invocation;
use crate::bindings::{BrainError, Completion, EffectClass, Message, ToolError, ToolSpec};
use crate::brain::{BrainInstance, failure_text};
use crate::capability::CapabilityInstance;
use crate::gate::{Decision, Gate, GrantedTool};
use crate::guest::{Failure, GuestState};
use crate::metrics::Metrics;
use crate::record::{Next, Recorder};
use crate::redact::Redactor;
use crate::{RunStats, StopReason};
use tracing::Instrument;

/// The components a live run calls (absent in a pure replay).
pub(crate) struct Live {
    pub gate: Gate,
    pub capabilities: BTreeMap<String, CapabilityInstance>,
    pub brain: BrainInstance,
}

/// What the agent's imports act on.
pub(crate) struct AgentHost {
    pub policy: Policy,
    /// The tools the agent may call (granted, or as recorded).
    pub specs: Vec<ToolSpec>,
    pub live: Option<Live>,
    pub recorder: Recorder,
    /// Whose durable memory this agent uses (its component's sha256).
    pub memory_scope: String,
    pub stats: RunStats,
    /// Calls per tool address so far, for `max-calls` quotas.
    pub calls_per_tool: BTreeMap<String, u32>,
    pub metrics: Arc<Metrics>,
    /// The run's span, and the current step's (a brain turn and the tool
    /// calls it proposed): spans nest run → step → inference / tool call.
    pub run_span: tracing::Span,
    pub step_span: tracing::Span,
}

type HostResult<T> = wasmtime::Result<T>;

fn halt<T>(reason: StopReason) -> HostResult<T> {
    Err(wasmtime::Error::new(reason))
}

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
        let host = &mut self.data;
        let max = host.policy.limits.max_tool_calls;
        if host.stats.tool_calls >= max {
            tracing::warn!(target: "femtoclaw::decision", tool = %name, decision = "stop", rule = "limits.max-tool-calls", "tool-call budget exhausted");
            return halt(host.stop(StopReason::MaxToolCalls(max)));
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
                        *host.calls_per_tool.entry(name.clone()).or_default() += 1;
                    }
                    if event.data["refused"] == true {
                        host.stats.refused += 1;
                    }
                    let result = serde_json::from_value::<Result<String, ToolError>>(
                        event.data["result"].clone(),
                    );
                    result
                        .or_else(|e| halt(StopReason::Journal(format!("event {}: {e}", event.seq))))
                }
                // The intent was journaled but not its result: the process
                // died while the call ran.
                Ok(Next::Live) => host.uncertain(&name, &arguments, step, key, &redact).await,
                Err(reason) => halt(reason),
            },
            Ok(Next::Live) => {
                let span = tracing::info_span!(parent: &host.step_span, "tool_call", tool = %name, call = step);
                let outcome = host
                    .live_call(&name, &arguments, step, key, true, &redact)
                    .instrument(span)
                    .await;
                outcome.or_else(halt)
            }
        }
    }
}

impl AgentHost {
    /// Records a stop and returns it.
    fn stop(&mut self, reason: StopReason) -> StopReason {
        self.metrics
            .add("fc_limit_stops_total", vec![("component", "run".into())], 1);
        let replayed = matches!(
            self.recorder.next("stop", |_| true, || reason.to_string()),
            Ok(Next::Replay(_))
        );
        if !replayed {
            let _ = self
                .recorder
                .record("stop", json!({ "reason": reason.to_string() }), None);
        }
        reason
    }

    /// A resumed run reached a call whose result was never journaled.
    /// `pure` and `read` calls run again; a `write` follows the policy.
    async fn uncertain(
        &mut self,
        name: &str,
        arguments: &str,
        step: u32,
        key: String,
        redact: &Redactor,
    ) -> HostResult<Result<String, ToolError>> {
        let effect = self.live.as_ref().and_then(|l| l.gate.effect(name));
        if effect == Some(EffectClass::Write) && self.policy.on_uncertain == OnUncertain::Fail {
            return halt(StopReason::Uncertain(format!(
                "`{name}` (idempotency key `{key}`) may or may not have run before the process died; \
                 `[journal] on-uncertain = \"fail\"`: check its effect, then set `retry` to run it again"
            )));
        }
        tracing::warn!(target: "femtoclaw::decision", call = step, tool = %name, decision = "retry", rule = "journal.on-uncertain", key = %key, "running an uncertain call again");
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
        let effect = match &decision {
            Decision::Allow { tool, .. } => tool.spec.effect,
            Decision::Refuse { .. } => EffectClass::Pure,
        };
        if record_intent {
            self.recorder.record(
                "tool-call",
                json!({ "name": name, "arguments": arguments, "key": key, "effect": effect }),
                None,
            )?;
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
                tracing::info!(target: "femtoclaw::decision", call = step, tool = %name, decision = "deny", %rule, error = ?error, "tool call refused");
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
        tracing::info!(target: "femtoclaw::decision", call = step, tool = %name, decision = "allow", %rule, component = %capability.hash, "tool call allowed");
        self.metrics.add(
            "fc_tool_calls_total",
            vec![("tool", name.to_owned()), ("decision", "allow".into())],
            1,
        );
        let started = Instant::now();
        let outcome = capability.invoke(call).await;
        let component = vec![("component", format!("capability {}", tool.capability))];
        self.metrics.add(
            "fc_fuel_consumed_total",
            component.clone(),
            capability.fuel_used,
        );
        self.metrics.observe(
            "fc_tool_call_seconds",
            vec![("tool", name.to_owned())],
            started.elapsed().as_secs_f64(),
        );
        match &outcome {
            Err(Failure::Trap(_)) => self.metrics.add("fc_traps_total", component, 1),
            Err(Failure::Limit(_)) => self.metrics.add("fc_limit_stops_total", component, 1),
            _ => {}
        }
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
                tracing::info!(target: "femtoclaw::tool", call = step, tool = %name, outcome = "error", error = ?error, elapsed_us, "tool call finished")
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
        let data =
            json!({ "result": result, "counted": counted, "refused": refused, "rule": refused_by });
        self.recorder.record("tool-result", data, None)?;
        Ok(result)
    }
}

fn count_denial(metrics: &Metrics, tool: &str, rule: &str) {
    metrics.add(
        "fc_tool_calls_total",
        vec![("tool", tool.to_owned()), ("decision", "deny".into())],
        1,
    );
    metrics.add("fc_denials_total", vec![("rule", rule.to_owned())], 1);
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

/// sha256 of a conversation: what the journal keeps of an inference request.
fn digest(messages: &[Message]) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(messages).expect("invariant: messages serialize"),
    ))
}

impl inference::Host for GuestState<AgentHost> {
    async fn complete(
        &mut self,
        messages: Vec<Message>,
    ) -> HostResult<Result<Completion, BrainError>> {
        let host = &mut self.data;
        let max = host.policy.limits.max_steps;
        if host.stats.steps >= max {
            tracing::warn!(target: "femtoclaw::decision", decision = "stop", rule = "limits.max-steps", "step budget exhausted");
            return halt(host.stop(StopReason::MaxSteps(max)));
        }
        if let Some(max) = host.policy.limits.max_tokens
            && host.stats.input_tokens + host.stats.output_tokens >= max
        {
            tracing::warn!(target: "femtoclaw::decision", decision = "stop", rule = "limits.max-tokens", "token budget exhausted");
            return halt(host.stop(StopReason::MaxTokens(max)));
        }
        host.stats.steps += 1;
        let step = host.stats.steps;
        host.step_span = tracing::info_span!(parent: &host.run_span, "step", step);
        let span = tracing::info_span!(parent: &host.step_span, "inference", step);
        let request = digest(&messages);
        let actual = || format!("an inference request with conversation sha256 {request}");
        let result: Result<Completion, BrainError> = match host.recorder.next(
            "inference",
            |d| d["request"] == request.as_str(),
            actual,
        ) {
            Err(reason) => return halt(reason),
            Ok(Next::Replay(event)) => match serde_json::from_value(event.data["result"].clone()) {
                Ok(result) => result,
                Err(e) => return halt(StopReason::Journal(format!("event {}: {e}", event.seq))),
            },
            Ok(Next::Live) => {
                let live = host
                    .live
                    .as_mut()
                    .expect("invariant: live inference happens only with live components");
                let started = Instant::now();
                let request_msg = Request {
                    messages,
                    tools: host.specs.clone(),
                };
                let result = match live
                    .brain
                    .complete(request_msg)
                    .instrument(span.clone())
                    .await
                {
                    Ok(result) => result,
                    Err(Failure::Stop(r)) => return halt(r),
                    Err(f) => Err(BrainError::Provider(format!(
                        "brain failed: {}",
                        failure_text(&f)
                    ))),
                };
                let proposed = result.as_ref().map_or(0, |c| c.tool_calls.len());
                let (input_tokens, output_tokens) = result
                    .as_ref()
                    .ok()
                    .and_then(|c| c.usage)
                    .map_or((0, 0), |u| (u.input_tokens, u.output_tokens));
                let _inside = span.enter();
                tracing::info!(target: "femtoclaw::inference", step, component = %live.brain.hash, ok = result.is_ok(), proposed, input_tokens, output_tokens, elapsed_us = started.elapsed().as_micros() as u64, "brain turn");
                host.metrics.observe(
                    "fc_inference_seconds",
                    vec![],
                    started.elapsed().as_secs_f64(),
                );
                host.metrics.add(
                    "fc_tokens_total",
                    vec![("direction", "input".into())],
                    input_tokens,
                );
                host.metrics.add(
                    "fc_tokens_total",
                    vec![("direction", "output".into())],
                    output_tokens,
                );
                if let Err(reason) = host.recorder.record(
                    "inference",
                    json!({ "request": request, "result": result }),
                    None,
                ) {
                    return halt(reason);
                }
                result
            }
        };
        if let Some(usage) = result.as_ref().ok().and_then(|c| c.usage) {
            host.stats.input_tokens += usage.input_tokens;
            host.stats.output_tokens += usage.output_tokens;
        }
        Ok(result)
    }
}

/// Memory keys and values above these sizes are refused.
const MAX_MEMORY_KEY: usize = 256;
const MAX_MEMORY_VALUE: usize = 64 << 10;
const MAX_MEMORY_KEYS: usize = 1000;

impl AgentHost {
    /// One memory operation: replayed from the journal, or done live and
    /// journaled (with its change to the store in the same transaction).
    fn memory_op(
        &mut self,
        kind: &str,
        request: Value,
        live: impl FnOnce(&mut Self) -> Result<(Value, Option<MemoryEffect>), StopReason>,
    ) -> HostResult<Value> {
        let actual = || format!("{kind} {request}");
        match self
            .recorder
            .next(kind, |d| d["request"] == request, actual)
        {
            Err(reason) => halt(reason),
            Ok(Next::Replay(event)) => Ok(event.data["response"].clone()),
            Ok(Next::Live) => {
                let (response, effect) = live(self).or_else(halt)?;
                self.recorder
                    .record(
                        kind,
                        json!({ "request": request, "response": response }),
                        effect,
                    )
                    .or_else(halt)?;
                Ok(response)
            }
        }
    }

    fn memory_read<T>(
        &mut self,
        read: impl FnOnce(&femtoclaw_journal::Journal, &str) -> femtoclaw_journal::Result<T>,
    ) -> Result<Option<T>, StopReason> {
        let scope = self.memory_scope.clone();
        match self.recorder.journal() {
            // Buffered memory writes must be in the database to be read.
            Some(journal) => journal
                .flush()
                .and_then(|()| read(journal, &scope))
                .map(Some)
                .map_err(|e| StopReason::Journal(e.to_string())),
            None => Ok(None),
        }
    }
}

impl memory::Host for GuestState<AgentHost> {
    fn get(&mut self, key: String) -> HostResult<Option<String>> {
        let response = self.data.memory_op("memory-get", json!(key), |host| {
            let value = host
                .memory_read(|j, scope| j.memory_get(scope, &key))?
                .flatten();
            Ok((json!(value), None))
        })?;
        Ok(response.as_str().map(str::to_owned))
    }

    fn set(&mut self, key: String, value: String) -> HostResult<Result<(), String>> {
        if key.len() > MAX_MEMORY_KEY || value.len() > MAX_MEMORY_VALUE {
            return Ok(Err(format!(
                "memory keys are at most {MAX_MEMORY_KEY} bytes and values at most {MAX_MEMORY_VALUE}"
            )));
        }
        let scope = self.data.memory_scope.clone();
        let request = json!({ "key": key, "value": value });
        let response = self.data.memory_op("memory-set", request, |host| {
            if host.recorder.journal().is_none() {
                return Ok((json!("no state directory: memory is unavailable"), None));
            }
            Ok((Value::Null, Some(MemoryEffect::Set { scope, key, value })))
        })?;
        Ok(response.as_str().map_or(Ok(()), |e| Err(e.to_owned())))
    }

    fn delete(&mut self, key: String) -> HostResult<bool> {
        let scope = self.data.memory_scope.clone();
        let response = self.data.memory_op("memory-delete", json!(key), |host| {
            let existed = host
                .memory_read(|j, scope| j.memory_get(scope, &key))?
                .flatten()
                .is_some();
            let effect = existed.then_some(MemoryEffect::Delete { scope, key });
            Ok((json!(existed), effect))
        })?;
        Ok(response == true)
    }

    fn keys(&mut self, prefix: String) -> HostResult<Vec<String>> {
        let response = self.data.memory_op("memory-keys", json!(prefix), |host| {
            let mut keys = host
                .memory_read(|j, scope| j.memory_list(scope, &prefix))?
                .unwrap_or_default();
            keys.truncate(MAX_MEMORY_KEYS);
            Ok((json!(keys), None))
        })?;
        Ok(serde_json::from_value(response).unwrap_or_default())
    }
}
