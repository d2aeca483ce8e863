//! The agent's host: `tools` and `inference` imports. Every tool call passes
//! the gate and the validator before a capability runs it; budgets that run
//! out end the run by trapping the agent with a [`StopReason`].

use std::collections::BTreeMap;
use std::time::Instant;

use femtoclaw_policy::Policy;
use femtoclaw_protocol::Limits as JsonLimits;

use crate::bindings::agent::femtoclaw::runtime::{inference, tools};
use crate::bindings::brain::exports::femtoclaw::runtime::model::Request;
use crate::bindings::capability::exports::femtoclaw::runtime::tool_provider::Invocation;
use crate::bindings::{BrainError, Completion, Message, ToolError, ToolSpec};
use crate::brain::{BrainInstance, failure_text};
use crate::capability::CapabilityInstance;
use crate::gate::{Decision, Gate, GrantedTool};
use crate::guest::{Failure, GuestState};
use crate::redact::Redactor;
use crate::{RunStats, StopReason};

/// What the agent's imports act on.
pub(crate) struct AgentHost {
    pub run_id: String,
    pub policy: Policy,
    pub gate: Gate,
    pub capabilities: BTreeMap<String, CapabilityInstance>,
    pub brain: BrainInstance,
    pub stats: RunStats,
    /// Calls per tool address so far, for `max-calls` quotas.
    pub calls_per_tool: BTreeMap<String, u32>,
}

impl tools::Host for GuestState<AgentHost> {
    async fn list(&mut self) -> wasmtime::Result<Vec<ToolSpec>> {
        Ok(self.data.gate.specs())
    }

    async fn call(
        &mut self,
        name: String,
        arguments: String,
    ) -> wasmtime::Result<Result<String, ToolError>> {
        let redact = self.redact.clone();
        let host = &mut self.data;
        let max = host.policy.limits.max_tool_calls;
        if host.stats.tool_calls >= max {
            tracing::warn!(target: "femtoclaw::decision", tool = %name, decision = "stop", rule = "limits.max-tool-calls", "tool-call budget exhausted");
            return Err(wasmtime::Error::new(StopReason::MaxToolCalls(max)));
        }
        host.stats.tool_calls += 1;
        let step = host.stats.tool_calls;
        let (tool, arguments, rule) = match host.gate.decide(&host.policy, &name, &arguments) {
            Decision::Allow {
                tool,
                arguments,
                rule,
            } => (tool, arguments, rule),
            Decision::Refuse { rule, error } => {
                host.stats.refused += 1;
                tracing::info!(target: "femtoclaw::decision", step, tool = %name, decision = "deny", %rule, error = ?error, "tool call refused");
                return Ok(Err(error));
            }
        };
        if let Some(error) = quota_exhausted(&host.policy, &mut host.calls_per_tool, tool, &name) {
            host.stats.refused += 1;
            tracing::info!(target: "femtoclaw::decision", step, tool = %name, decision = "deny", rule = %format!("capabilities.{}.max-calls", tool.capability), "tool call quota exhausted");
            return Ok(Err(error));
        }
        let capability = host
            .capabilities
            .get_mut(&tool.capability)
            .expect("invariant: granted tools have an instance");
        let call = Invocation {
            tool: tool.spec.name[tool.capability.len() + 1..].to_owned(),
            // The capability receives exactly the value that was validated.
            arguments: arguments.to_string(),
            idempotency_key: format!("{}:{step}", host.run_id),
        };
        tracing::info!(target: "femtoclaw::decision", step, tool = %name, decision = "allow", %rule, component = %capability.hash, "tool call allowed");
        let started = Instant::now();
        let outcome = capability.invoke(call).await;
        let max_output = usize::try_from(host.policy.limits.max_tool_output).unwrap_or(usize::MAX);
        let result = match outcome {
            Ok(Ok(output)) => checked_output(tool, output, max_output, &redact),
            Ok(Err(error)) => Err(redact_error(&redact, error)),
            Err(Failure::Limit(m)) => {
                Err(ToolError::LimitExceeded(format!("`{name}` stopped: {m}")))
            }
            Err(Failure::Trap(m)) => Err(ToolError::Failed(
                redact.apply(&format!("`{name}` trapped: {m}")).into_owned(),
            )),
            Err(Failure::Stop(r)) => return Err(wasmtime::Error::new(r)),
        };
        let elapsed_us = started.elapsed().as_micros() as u64;
        match &result {
            Ok(output) => {
                tracing::info!(target: "femtoclaw::tool", step, tool = %name, outcome = "ok", output_bytes = output.len(), elapsed_us, "tool call finished")
            }
            Err(error) => {
                tracing::info!(target: "femtoclaw::tool", step, tool = %name, outcome = "error", error = ?error, elapsed_us, "tool call finished")
            }
        }
        Ok(result)
    }
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

impl inference::Host for GuestState<AgentHost> {
    async fn complete(
        &mut self,
        messages: Vec<Message>,
    ) -> wasmtime::Result<Result<Completion, BrainError>> {
        let host = &mut self.data;
        let max = host.policy.limits.max_steps;
        if host.stats.steps >= max {
            tracing::warn!(target: "femtoclaw::decision", decision = "stop", rule = "limits.max-steps", "step budget exhausted");
            return Err(wasmtime::Error::new(StopReason::MaxSteps(max)));
        }
        host.stats.steps += 1;
        let request = Request {
            messages,
            tools: host.gate.specs(),
        };
        let started = Instant::now();
        let result = match host.brain.complete(request).await {
            Ok(result) => result,
            Err(Failure::Stop(r)) => return Err(wasmtime::Error::new(r)),
            Err(f) => Err(BrainError::Provider(format!(
                "brain failed: {}",
                failure_text(&f)
            ))),
        };
        let proposed = result.as_ref().map_or(0, |c| c.tool_calls.len());
        tracing::info!(target: "femtoclaw::inference", step = host.stats.steps, component = %host.brain.hash, ok = result.is_ok(), proposed, elapsed_us = started.elapsed().as_micros() as u64, "brain turn");
        Ok(result)
    }
}
