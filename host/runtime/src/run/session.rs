//! Sessions: journaled runs whose tool calls come from a client outside the
//! sandbox (an MCP client) instead of an agent component. Each call takes the
//! path an agent's call takes — gate, strict JSON, input schema, quota,
//! capability, result check, redaction, journal — so `runs`, `inspect` and
//! `audit` show a session like any run. Its replay walks the recorded calls
//! through the same path, served from the journal, and checks that what the
//! client was shown comes out the same (the run's end records its digest).

use std::path::PathBuf;
use std::sync::Arc;

use femtoclaw_bundle::Bundle;
use femtoclaw_journal::{Event, RunInfo};
use femtoclaw_policy::Policy;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::execute::finish;
use super::live::{new_run_info, record_failed_start, resolve_secrets, sink};
use super::{Hooks, RunOutcome, RunStats, new_run_id};
use crate::agent::{AgentHost, HostParts, Live, Uncertain};
use crate::bindings::{ToolError, ToolSpec};
use crate::record::Recorder;
use crate::redact::Redactor;
use crate::text::tool_error;
use crate::{RunError, Runtime, StopReason};

/// What the journal records as a session's "agent": no component runs.
const SESSION_AGENT: &str = "session";

/// Everything a session needs.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// The operator's policy: the tools the client may call, and the limits.
    pub policy: Policy,
    /// Who drives the session, as the journal and the audit name it (for
    /// example `mcp:claude-desktop 1.2`).
    pub client: String,
    /// The state directory whose journal records it (none: not journaled).
    pub state: Option<PathBuf>,
    /// A verified bundle whose components the policy names `bundle:NAME`.
    pub bundle: Option<Arc<Bundle>>,
    /// What the session shares with its process.
    pub hooks: Hooks,
}

/// What a client is shown of one call: the capability's output, or the
/// error with the rule that refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The output (JSON text), or the error message.
    pub text: String,
    /// Whether the call failed or was refused.
    pub is_error: bool,
}

/// An open session: its capabilities are running, and each call is
/// journaled before its result is returned.
pub struct Session {
    host: AgentHost,
    redact: Redactor,
    /// Over everything the client was shown, in order.
    shown: Sha256,
    span: tracing::Span,
    /// What ended the session early (a limit, a cancellation), if it did.
    ended: Option<RunError>,
}

impl Runtime {
    /// Opens a session: the run is durable, then the capabilities start.
    pub async fn open_session(&self, plan: SessionPlan) -> Result<Session, RunError> {
        super::live::check_capability_trust(&plan.policy, plan.bundle.is_some())?;
        self.guard_own_dirs(&plan.policy, plan.state.as_deref())?;
        let mut secrets = resolve_secrets(&plan.policy, None)?;
        let run_id = new_run_id();
        let client = secrets.redact.apply(&plan.client).into_owned();
        let mut journal = sink(&plan.hooks, plan.state.as_deref())?;
        if let Some(journal) = &mut journal {
            let info = new_run_info(
                &run_id,
                client.clone(),
                hex::encode(Sha256::digest(SESSION_AGENT)),
                &plan.policy,
                json!({
                    "task": format!("a session with {client}"),
                    "session": { "client": client },
                }),
            );
            journal
                .with(|j| j.create_run(&info))
                .map_err(|e| RunError::Journal(e.to_string()))?;
        }
        tracing::info!(target: "femtoclaw::run", run_id = %run_id, policy = %plan.policy.path.display(), client = %client, "session started");
        let redact = secrets.redact.clone();
        let controls = plan.hooks.controls();
        let started = self
            .start_capabilities(
                &plan.policy,
                plan.bundle.as_deref(),
                &mut secrets,
                &controls,
            )
            .await;
        let (gate, capabilities) = match started {
            Ok(started) => started,
            Err(error) => {
                let error = redact.run_error(error);
                if let Some(journal) = &mut journal {
                    record_failed_start(journal, &run_id, &error);
                }
                return Err(error);
            }
        };
        let specs = gate.specs();
        let mut recorder = Recorder::recording(
            run_id.clone(),
            journal,
            plan.policy.limits.max_journal,
            redact.clone(),
        )
        .with_hook(plan.hooks.on_event.clone());
        recorder.record("run-start", json!({ "tools": specs }), None)?;
        let span = tracing::info_span!("session", run_id = %run_id);
        let on_uncertain = Uncertain::new(&plan.policy, None);
        let live = Live {
            gate,
            capabilities,
            brain: None,
        };
        let host = AgentHost::new(HostParts {
            policy: plan.policy,
            specs,
            live: Some(live),
            recorder,
            memory_scope: SESSION_AGENT.into(),
            on_uncertain,
            cancel: controls.cancel.clone(),
            approver: controls.approver.clone(),
            metrics: self.metrics.clone(),
            run_span: span.clone(),
        });
        Ok(Session {
            host,
            redact,
            shown: Sha256::new(),
            span,
            ended: None,
        })
    }

    /// Replays a journaled session: every recorded call passes the gate's
    /// journal path again, and what the client was shown must hash to what
    /// the run's end recorded.
    pub(super) async fn replay_session(
        &self,
        info: &RunInfo,
        events: Vec<Event>,
        policy: Policy,
    ) -> Result<RunOutcome, RunError> {
        let calls: Vec<(String, String)> = events
            .iter()
            .filter(|e| e.kind == "tool-call")
            .map(|e| {
                let text = |k: &str| e.data[k].as_str().unwrap_or_default().to_owned();
                (text("name"), text("arguments"))
            })
            .collect();
        let specs = super::replay::recorded_specs(&events)?;
        let max = policy.limits.max_journal;
        let recorder = Recorder::replaying(info.id.clone(), events, None, max, Redactor::default());
        let span = tracing::info_span!("session", run_id = %info.id);
        let on_uncertain = Uncertain::new(&policy, None);
        let host = AgentHost::new(HostParts {
            policy,
            specs,
            live: None,
            recorder,
            memory_scope: SESSION_AGENT.into(),
            on_uncertain,
            cancel: Default::default(),
            approver: None,
            metrics: self.metrics.clone(),
            run_span: span.clone(),
        });
        let mut session = Session {
            host,
            redact: Redactor::default(),
            shown: Sha256::new(),
            span,
            ended: None,
        };
        for (name, arguments) in calls {
            if session.ended.is_some() {
                break;
            }
            session.call(&name, &arguments).await?;
        }
        session.close()
    }
}

impl Session {
    /// The session's run id.
    pub fn run_id(&self) -> &str {
        &self.host.recorder.run_id
    }

    /// The tools the client may call: exactly the granted ones.
    pub fn tools(&self) -> &[ToolSpec] {
        &self.host.specs
    }

    /// What ended the session before its client closed it, if it did.
    pub fn ended(&self) -> Option<&RunError> {
        self.ended.as_ref()
    }

    /// One call from the client. A refusal, a failure or a limit is shown to
    /// the client as an error naming its rule; only damage to the journal is
    /// an `Err`. Once a limit has ended the session, every call is refused.
    pub async fn call(&mut self, name: &str, arguments: &str) -> Result<Shown, RunError> {
        if let Some(why) = &self.ended {
            return Ok(Shown {
                text: format!("the session has ended: {why}"),
                is_error: true,
            });
        }
        let outcome = self
            .host
            .call_tool(name, arguments, &self.redact)
            .instrument(self.span.clone())
            .await;
        let shown = match outcome {
            Ok(Ok(output)) => Shown {
                text: output,
                is_error: false,
            },
            Ok(Err(error)) => Shown {
                text: shown_error(&error, &self.host.refused_by),
                is_error: true,
            },
            Err(error) => {
                let reason = error
                    .downcast::<StopReason>()
                    .map_err(|e| RunError::Internal(format!("a session call failed: {e:#}")))?;
                return self.stop(reason);
            }
        };
        self.shown.update(shown_bytes(name, &shown));
        Ok(shown)
    }

    /// A limit or a cancellation ended the session: the run ends with it.
    fn stop(&mut self, reason: StopReason) -> Result<Shown, RunError> {
        let error = RunError::from(reason);
        if matches!(error, RunError::Journal(_) | RunError::Divergence { .. }) {
            return Err(error);
        }
        let why = error.to_string();
        let outcome = Err(error);
        finish(&mut self.host.recorder, &outcome)?;
        tracing::warn!(target: "femtoclaw::run", run_id = %self.run_id(), reason = %why, "session ended by a limit");
        if let Err(error) = outcome {
            self.ended = Some(error);
        }
        Ok(Shown {
            text: format!("the session has ended: {why}"),
            is_error: true,
        })
    }

    /// Ends the session: the run's end, with the digest of what the client
    /// was shown, is durable before this returns. A session a limit ended
    /// returns that error (its end is already journaled).
    pub fn close(mut self) -> Result<RunOutcome, RunError> {
        if let Some(error) = self.ended.take() {
            return Err(error);
        }
        let stats = self.host.stats;
        let answer = summary(&stats, &self.shown.clone().finalize());
        finish(&mut self.host.recorder, &Ok(Ok(answer.clone())))?;
        tracing::info!(target: "femtoclaw::run", run_id = %self.run_id(), tool_calls = stats.tool_calls, refused = stats.refused, "session finished");
        Ok(RunOutcome {
            run_id: self.host.recorder.run_id.clone(),
            answer: Ok(answer),
            stats,
        })
    }
}

/// What a client is shown of an error: its kind and message, and for a
/// refusal the rule that refused it.
fn shown_error(error: &ToolError, refused_by: &str) -> String {
    match refused_by {
        "" => tool_error(error),
        rule => format!("{} (refused by `{rule}`)", tool_error(error)),
    }
}

/// One call as it enters the digest of a session: unambiguous framing of
/// the tool, whether it failed, and the text.
fn shown_bytes(name: &str, shown: &Shown) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(name.len() + shown.text.len() + 24);
    for part in [name.as_bytes(), shown.text.as_bytes()] {
        bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
        bytes.extend_from_slice(part);
    }
    bytes.push(u8::from(shown.is_error));
    bytes
}

/// A session's answer: what it did, and the digest of what it showed.
fn summary(stats: &RunStats, digest: &[u8]) -> String {
    format!(
        "session of {} tool calls ({} refused); what the client was shown has sha256 {}",
        stats.tool_calls,
        stats.refused,
        hex::encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_frames_each_part() {
        let a = Shown {
            text: "bc".into(),
            is_error: false,
        };
        let b = Shown {
            text: "c".into(),
            is_error: false,
        };
        assert_ne!(shown_bytes("a", &a), shown_bytes("ab", &b));
        let failed = Shown {
            is_error: true,
            ..a.clone()
        };
        assert_ne!(shown_bytes("a", &a), shown_bytes("a", &failed));
    }

    #[test]
    fn a_refusal_names_its_rule() {
        let error = ToolError::Denied("tool `fs.write_file` is not granted".into());
        let text = shown_error(&error, "capabilities.fs.tools");
        assert_eq!(
            text,
            "denied: tool `fs.write_file` is not granted (refused by `capabilities.fs.tools`)"
        );
        assert_eq!(shown_error(&error, ""), tool_error(&error));
    }
}
