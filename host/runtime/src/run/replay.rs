//! Replaying and resuming journaled runs. A replay needs nothing but the
//! journal: the agent's bytes are kept in it, the policy is read back
//! without looking for the files it names, and no brain or capability runs.

use std::path::{Path, PathBuf};

use femtoclaw_journal::{Event, Journal, RunInfo, RunStatus, SharedJournal};
use femtoclaw_policy::Policy;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::execute::{Execution, PreparedAgent};
use super::live::{provider_of, resolve_secrets, sink};
use super::{BrainChoice, Resume, RunOutcome};
use crate::agent::Uncertain;
use crate::bindings::ToolSpec;
use crate::guest::Controls;
use crate::record::Recorder;
use crate::redact::Redactor;
use crate::{Builtin, ComponentRef, RunError, Runtime};

impl Runtime {
    /// Replays a journaled run without calling any brain or capability: the
    /// agent gets its recorded inputs, and every request it makes must match
    /// the journal. `agent` replaces the recorded agent component. The
    /// journal is only read, beside any run in progress.
    pub async fn replay(
        &self,
        state: &Path,
        run_id: &str,
        agent: Option<ComponentRef>,
    ) -> Result<RunOutcome, RunError> {
        let journal = Journal::open_read_only(state)
            .map_err(|e| RunError::Journal(e.to_string()))?
            .ok_or_else(|| RunError::Journal(no_journal(state)))?;
        let (info, events) = load_run(&journal, run_id)?;
        if is_session(&info) {
            drop(journal);
            return self.replay_recorded_session(&info, events).await;
        }
        let execution = self.replay_execution(&journal, info, events, agent, None)?;
        drop(journal);
        self.execute(execution).await
    }

    async fn replay_recorded_session(
        &self,
        info: &RunInfo,
        events: Vec<Event>,
    ) -> Result<RunOutcome, RunError> {
        let policy = recorded_policy(info, |p, t| Policy::parse_recorded(p, t))?;
        self.replay_session(info, events, policy).await
    }

    /// [`Runtime::replay`] of the recorded agent, reading the run through a
    /// journal handle shared with the runs of this process, compiling under
    /// `compile_scope` (see [`Hooks`](super::Hooks)).
    pub async fn replay_shared(
        &self,
        journal: &SharedJournal,
        run_id: &str,
        compile_scope: Option<&str>,
    ) -> Result<RunOutcome, RunError> {
        let (info, events) = load_run(&journal.lock(), run_id)?;
        if is_session(&info) {
            return self.replay_recorded_session(&info, events).await;
        }
        let execution =
            self.replay_execution(&journal.lock(), info, events, None, compile_scope)?;
        self.execute(execution).await
    }

    fn replay_execution(
        &self,
        journal: &Journal,
        info: RunInfo,
        events: Vec<Event>,
        agent: Option<ComponentRef>,
        scope: Option<&str>,
    ) -> Result<Execution, RunError> {
        let run_id = &info.id;
        let prepared = match agent {
            Some(other) => self.prepare_agent(&other, scope)?,
            None => self.recorded_agent(journal, &info, scope)?,
        };
        let (policy, task, _) = plan_parts(&info, |p, t| Policy::parse_recorded(p, t))?;
        let specs = recorded_specs(&events)?;
        let max = policy.limits.max_journal;
        let recorder =
            Recorder::replaying(run_id.to_owned(), events, None, max, Redactor::default());
        let on_uncertain = Uncertain::new(&policy, None);
        Ok(Execution {
            agent: prepared,
            policy,
            specs,
            live: None,
            recorder,
            redact: Redactor::default(),
            task,
            on_uncertain,
            controls: Controls::default(),
        })
    }

    /// Continues a run that was killed: its journal is replayed, then the
    /// run goes on live, appending to the same journal.
    pub async fn resume(
        &self,
        state: &Path,
        run_id: &str,
        options: Resume,
    ) -> Result<RunOutcome, RunError> {
        let mut journal = sink(&options.hooks, Some(state))?
            .expect("invariant: a state directory gives a journal");
        let (info, events) = journal.with(|j| load_run(j, run_id))?;
        if is_session(&info) {
            return Err(RunError::Config(format!(
                "run `{run_id}` is a session: the client that made its calls is gone, so it cannot be resumed; replay it instead"
            )));
        }
        if info.status != RunStatus::Running {
            return Err(RunError::Config(format!(
                "run `{run_id}` already ended (`{}`); replay it instead",
                info.status
            )));
        }
        let scope = options.hooks.compile_scope.as_deref();
        let prepared = journal.with(|j| self.recorded_agent(j, &info, scope))?;
        let (policy, task, brain) = plan_parts(&info, |p, t| Policy::parse(p, t))?;
        self.guard_own_dirs(&policy, Some(state))?;
        let bundle = resumed_bundle(&info, &policy, options.bundle.as_deref())?;
        let turns = events.iter().filter(|e| e.kind == "inference").count();
        let secrets = resolve_secrets(&policy, provider_of(&policy, &brain))?;
        let redact = secrets.redact.clone();
        let controls = options.hooks.controls();
        let (live, specs, redact) = self
            .start_live(&policy, &brain, turns, bundle, secrets, &controls)
            .await
            .map_err(|e| redact.run_error(e))?;
        // A run killed before its start event was committed has no events:
        // nothing of it left the sandbox but the capabilities' and brain's
        // start-up, so it starts again from the beginning.
        let fresh = events.is_empty();
        if !fresh && json!(specs) != json!(recorded_specs(&events)?) {
            return Err(RunError::Divergence {
                event: 0,
                expected: "the tools recorded at the start of the run".into(),
                actual: "capabilities that now describe different tools".into(),
            });
        }
        tracing::info!(target: "femtoclaw::run", run_id = %run_id, replayed = events.len(), "run resumed");
        let max = policy.limits.max_journal;
        let mut recorder = Recorder::replaying(
            run_id.to_owned(),
            events,
            Some(journal),
            max,
            redact.clone(),
        )
        .with_hook(options.hooks.on_event.clone());
        if fresh {
            recorder.record("run-start", json!({ "tools": specs }), None)?;
        }
        let on_uncertain = Uncertain::new(&policy, options.on_uncertain);
        self.execute(Execution {
            agent: prepared,
            policy,
            specs,
            live: Some(live),
            recorder,
            redact,
            task,
            on_uncertain,
            controls,
        })
        .await
    }

    /// The agent a run recorded, checked by its sha256: fc-host's own
    /// built-in if it is the same, else the bytes kept in the journal, else
    /// (a journal written before components were kept) the file it names.
    fn recorded_agent(
        &self,
        journal: &Journal,
        info: &RunInfo,
        scope: Option<&str>,
    ) -> Result<PreparedAgent, RunError> {
        let source = if info.agent_hash == Builtin::Agent.sha256() {
            ComponentRef::Builtin(Builtin::Agent)
        } else {
            match journal
                .component(&info.agent_hash)
                .map_err(|e| RunError::Journal(e.to_string()))?
            {
                Some(bytes) => ComponentRef::Bundled {
                    label: info.agent.clone(),
                    bytes: std::sync::Arc::new(bytes),
                },
                None if !info.agent.starts_with("builtin:")
                    && !info.agent.starts_with("bundle:") =>
                {
                    ComponentRef::File(PathBuf::from(&info.agent))
                }
                None => {
                    return Err(RunError::Journal(format!(
                        "run `{}`: the journal does not hold its agent `{}` (sha256 {}), and this fc-host's built-in agent is a different one",
                        info.id, info.agent, info.agent_hash
                    )));
                }
            }
        };
        let prepared = self.prepare_agent(&source, scope)?;
        if prepared.hash != info.agent_hash {
            return Err(RunError::Divergence {
                event: 0,
                expected: format!("agent `{}` with sha256 {}", info.agent, info.agent_hash),
                actual: format!("a component with sha256 {}", prepared.hash),
            });
        }
        Ok(prepared)
    }
}

fn no_journal(state: &Path) -> String {
    format!(
        "no journal in `{}`: no run has been recorded there",
        state.display()
    )
}

/// The bundle a resumed run goes on with: the one it started from, byte
/// for byte, or none if it ran none.
fn resumed_bundle<'a>(
    info: &RunInfo,
    policy: &Policy,
    given: Option<&'a femtoclaw_bundle::Bundle>,
) -> Result<Option<&'a femtoclaw_bundle::Bundle>, RunError> {
    let recorded = &info.plan["bundle"];
    let Some(sha256) = recorded["sha256"].as_str() else {
        if plan_has_bundle(policy) {
            return Err(RunError::Config(format!(
                "run `{}` ran a bundle's capabilities, but its record does not say which bundle (an fc-host before 0.1 started it): replay it instead",
                info.id
            )));
        }
        return Ok(None);
    };
    let source = recorded["source"].as_str().unwrap_or("?");
    let given = given.ok_or_else(|| {
        RunError::Config(format!(
            "run `{}` ran the bundle {source}; resuming it needs that bundle",
            info.id
        ))
    })?;
    let actual = hex::encode(sha2::Sha256::digest(given.to_bytes()));
    if actual != sha256 {
        return Err(RunError::Config(format!(
            "run `{}` started from {source} with sha256 {sha256}; the bundle there now has sha256 {actual}: put the original back, or replay the run instead",
            info.id
        )));
    }
    Ok(Some(given))
}

fn plan_has_bundle(policy: &Policy) -> bool {
    policy
        .capabilities
        .values()
        .any(|g| matches!(g.component, femtoclaw_policy::ComponentSource::Bundle(_)))
}

fn load_run(journal: &Journal, run_id: &str) -> Result<(RunInfo, Vec<Event>), RunError> {
    journal
        .load(run_id)
        .map_err(|e| RunError::Journal(e.to_string()))
}

/// The policy, task and brain a journaled run started with.
fn plan_parts(
    info: &RunInfo,
    parse: impl Fn(&str, &str) -> femtoclaw_policy::Result<Policy>,
) -> Result<(Policy, String, BrainChoice), RunError> {
    let bad = |what: &str| {
        RunError::Journal(format!(
            "run `{}` has no usable {what} in its record",
            info.id
        ))
    };
    let plan = &info.plan;
    let policy = recorded_policy(info, parse)?;
    let task = plan["task"].as_str().ok_or_else(|| bad("task"))?.to_owned();
    if let Some(text) = plan["brain"]["script"].as_str() {
        return Ok((policy, task, BrainChoice::Script(text.to_owned())));
    }
    let brain = match (
        &plan["brain"]["scripted"],
        &plan["brain"]["component"],
        &plan["brain"]["provider"],
    ) {
        (Value::String(p), _, _) => BrainChoice::Scripted(p.into()),
        (_, Value::String(p), _) => BrainChoice::Component(p.into()),
        (_, _, p) if p.is_object() => {
            BrainChoice::Provider(serde_json::from_value(p.clone()).map_err(|_| bad("brain"))?)
        }
        _ => return Err(bad("brain")),
    };
    Ok((policy, task, brain))
}

/// Whether a journaled run is a session (its calls came from a client).
fn is_session(info: &RunInfo) -> bool {
    info.plan["session"].is_object()
}

/// The policy a journaled run started with.
fn recorded_policy(
    info: &RunInfo,
    parse: impl Fn(&str, &str) -> femtoclaw_policy::Result<Policy>,
) -> Result<Policy, RunError> {
    let bad = |what: &str| {
        RunError::Journal(format!(
            "run `{}` has no usable {what} in its record",
            info.id
        ))
    };
    let path = info.plan["policy_path"]
        .as_str()
        .ok_or_else(|| bad("policy path"))?;
    let text = info.plan["policy_text"]
        .as_str()
        .ok_or_else(|| bad("policy"))?;
    Ok(parse(path, text)?)
}

/// The tool specs journaled when the run started.
pub(super) fn recorded_specs(events: &[Event]) -> Result<Vec<ToolSpec>, RunError> {
    let start = match events.first() {
        Some(e) if e.kind == "run-start" => e,
        // A run that failed before it started records only its end.
        Some(e) if e.kind == "run-end" => {
            return Err(RunError::Config(format!(
                "the run failed before it started ({}): nothing was recorded to replay",
                e.data["outcome"].as_str().unwrap_or("no reason recorded")
            )));
        }
        _ => return Err(RunError::Journal("the run has no start event".into())),
    };
    serde_json::from_value(start.data["tools"].clone())
        .map_err(|e| RunError::Journal(format!("event 0: {e}")))
}
