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
use crate::gate::{Decision, Gate};
use crate::guest::{Failure, GuestState};
use crate::{RunStats, StopReason};

/// Tool results larger than this are refused (the model cannot use more, and
/// a capability must not be able to flood the host).
const MAX_TOOL_OUTPUT: usize = 1 << 20;

/// What the agent's imports act on.
pub(crate) struct AgentHost {
    pub run_id: String,
    pub policy: Policy,
    pub gate: Gate,
    pub capabilities: BTreeMap<String, CapabilityInstance>,
    pub brain: BrainInstance,
    pub stats: RunStats,
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
        let capability = host
            .capabilities
            .get_mut(&tool.capability)
            .expect("invariant: granted tools have an instance");
        let call = Invocation {
            tool: tool
                .spec
                .name
                .split_once('.')
                .map_or("", |(_, t)| t)
                .to_owned(),
            // The capability receives exactly the value that was validated.
            arguments: arguments.to_string(),
            idempotency_key: format!("{}:{step}", host.run_id),
        };
        tracing::info!(target: "femtoclaw::decision", step, tool = %name, decision = "allow", %rule, component = %capability.hash, "tool call allowed");
        let started = Instant::now();
        let result = match capability.invoke(call).await {
            Ok(Ok(output)) if output.len() > MAX_TOOL_OUTPUT => {
                Err(ToolError::LimitExceeded(format!(
                    "`{name}` returned {} bytes, over the cap of {MAX_TOOL_OUTPUT}",
                    output.len()
                )))
            }
            Ok(Ok(output)) => Gate::check_output(
                tool,
                &output,
                JsonLimits {
                    max_bytes: MAX_TOOL_OUTPUT,
                    ..JsonLimits::default()
                },
            )
            .map(|()| output),
            Ok(Err(error)) => Err(error),
            Err(Failure::Limit(m)) => {
                Err(ToolError::LimitExceeded(format!("`{name}` stopped: {m}")))
            }
            Err(Failure::Trap(m)) => Err(ToolError::Failed(format!("`{name}` trapped: {m}"))),
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
