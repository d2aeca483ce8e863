//! `inference.complete`: a brain turn, within the step and token budgets.
//! What the brain answers is redacted before the agent or the journal sees
//! it; a brain that hits a limit or traps ends the run (it cannot go on
//! without one), as a limit or a trap.

use std::time::Instant;

use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::{AgentHost, HostResult, halt};
use crate::StopReason;
use crate::bindings::agent::femtoclaw::runtime::inference;
use crate::bindings::brain::exports::femtoclaw::runtime::model::Request;
use crate::bindings::{BrainError, Completion, FinishReason, Message};
use crate::guest::{Failure, GuestState};
use crate::metrics::{Component, Direction};
use crate::record::Next;

/// sha256 of a conversation: what the journal keeps of an inference request.
/// The encoding streams into the hash (a conversation grows with every
/// tool result, and is hashed every turn).
fn digest(messages: &[Message]) -> String {
    let mut hash = Sha256::new();
    serde_json::to_writer(&mut hash, messages).expect("invariant: messages serialize");
    hex::encode(hash.finalize())
}

impl inference::Host for GuestState<AgentHost> {
    async fn complete(
        &mut self,
        mut messages: Vec<Message>,
    ) -> HostResult<Result<Completion, BrainError>> {
        let redact = self.redact.clone();
        let host = &mut self.data;
        if let Some(reason) = host.cancelled() {
            return halt(reason);
        }
        let max = host.policy.limits.max_steps;
        if host.stats.steps >= max {
            tracing::warn!(target: "femtoclaw::decision", decision = "stop", rule = "limits.max-steps", "step budget exhausted");
            return halt(host.stop(StopReason::MaxSteps(max), "run"));
        }
        if let Some(max) = host.policy.limits.max_tokens
            && host.stats.input_tokens + host.stats.output_tokens >= max
        {
            tracing::warn!(target: "femtoclaw::decision", decision = "stop", rule = "limits.max-tokens", "token budget exhausted");
            return halt(host.stop(StopReason::MaxTokens(max), "run"));
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
                // The conversation holds only redacted text; redacting it
                // again on the way out keeps that true whatever the agent is.
                redact.messages(&mut messages);
                let request_msg = Request {
                    messages,
                    tools: host.specs.clone(),
                };
                let brain = live
                    .brain
                    .as_mut()
                    .expect("invariant: a run with an agent has a brain");
                let outcome = brain.complete(request_msg).instrument(span.clone()).await;
                let brain_hash = brain.hash.clone();
                let result = match outcome {
                    Ok(Ok(completion)) => Ok(redact.completion(completion)),
                    Ok(Err(error)) => Err(redact_brain_error(&redact, error)),
                    Err(Failure::Stop(r)) => return halt(r),
                    Err(Failure::Limit(limit)) => {
                        let reason = StopReason::ComponentLimit {
                            component: "brain".into(),
                            limit,
                        };
                        tracing::warn!(target: "femtoclaw::decision", step, decision = "stop", rule = "limits", reason = %reason, "the brain hit a limit");
                        return halt(host.stop(reason, "brain"));
                    }
                    Err(Failure::Trap(message)) => {
                        let reason = StopReason::ComponentTrap {
                            component: "brain".into(),
                            message: redact.apply(&message).into_owned(),
                        };
                        host.metrics
                            .traps
                            .get_or_create(&Component {
                                component: "brain".into(),
                            })
                            .inc();
                        return halt(host.recorder.stop(reason));
                    }
                };
                let proposed = result.as_ref().map_or(0, |c| c.tool_calls.len());
                let finish = result.as_ref().map_or("error", |c| finish_name(c.finish));
                let (input_tokens, output_tokens) = result
                    .as_ref()
                    .ok()
                    .and_then(|c| c.usage)
                    .map_or((0, 0), |u| (u.input_tokens, u.output_tokens));
                let _inside = span.enter();
                tracing::info!(target: "femtoclaw::inference", step, component = %brain_hash, ok = result.is_ok(), finish, proposed, input_tokens, output_tokens, elapsed_us = started.elapsed().as_micros() as u64, "brain turn");
                if !matches!(&result, Ok(c) if c.finish == FinishReason::Complete) && result.is_ok()
                {
                    tracing::warn!(target: "femtoclaw::decision", step, decision = "incomplete", finish, "the model did not complete its turn");
                }
                let metrics = &host.metrics;
                metrics
                    .inference_seconds
                    .observe(started.elapsed().as_secs_f64());
                for (direction, tokens) in [("input", input_tokens), ("output", output_tokens)] {
                    metrics
                        .tokens
                        .get_or_create(&Direction { direction })
                        .inc_by(tokens);
                }
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
        // A brain that says its configuration is wrong (no such model, a
        // refused key) cannot be helped by the agent: the run stops as a
        // configuration error, the same way in a replay.
        if let Err(BrainError::Config(message)) = &result {
            tracing::warn!(target: "femtoclaw::decision", step, decision = "stop", rule = "brain", error = %message, "the brain is misconfigured");
            return halt(host.recorder.stop(StopReason::BrainConfig(message.clone())));
        }
        if let Some(usage) = result.as_ref().ok().and_then(|c| c.usage) {
            host.stats.input_tokens += usage.input_tokens;
            host.stats.output_tokens += usage.output_tokens;
        }
        Ok(result)
    }
}

/// The finish reason as the journal and the logs spell it.
pub(crate) fn finish_name(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Complete => "complete",
        FinishReason::Length => "length",
        FinishReason::ContentFilter => "content-filter",
        FinishReason::Refusal => "refusal",
    }
}

fn redact_brain_error(redact: &crate::redact::Redactor, error: BrainError) -> BrainError {
    let r = |m: String| redact.apply(&m).into_owned();
    match error {
        BrainError::Config(m) => BrainError::Config(r(m)),
        BrainError::Transport(m) => BrainError::Transport(r(m)),
        BrainError::Provider(m) => BrainError::Provider(r(m)),
        BrainError::Exhausted => BrainError::Exhausted,
    }
}
