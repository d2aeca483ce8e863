//! Runs: a new run, the replay of a journaled one, and the resumption of a
//! killed one. All three drive the same agent host; they differ in where the
//! agent's inputs come from.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use femtoclaw_bundle::Bundle;

use femtoclaw_journal::{Journal, RunInfo, RunStatus};
use femtoclaw_policy::{BrainSpec, Policy, ProviderBrain};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::Instrument;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::WasiCtxBuilder;

use crate::agent::{AgentHost, Live};
use crate::bindings::ToolSpec;
use crate::bindings::agent::{Agent, AgentPre};
use crate::brain::{BrainInstance, probe, provider_key};
use crate::capability::{CapabilityInstance, resolve_env};
use crate::gate::Gate;
use crate::guest::{Budget, Failure, GuestState, MAX_RANDOM_SIZE, Setup, guarded};
use crate::net::NetGate;
use crate::record::{Next, Recorder};
use crate::redact::Redactor;
use crate::{Builtin, ComponentRef, RunError, Runtime};

/// Which brain a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrainChoice {
    /// The built-in scripted brain replaying this JSON file.
    Scripted(PathBuf),
    /// The built-in provider brain (OpenAI or Anthropic over HTTP).
    Provider(ProviderBrain),
    /// A component of the `brain` world (with the policy's provider
    /// settings and network grant, if it names a provider).
    Component(PathBuf),
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The operator's policy.
    pub policy: Policy,
    /// The agent component (the built-in default agent unless replaced).
    pub agent: ComponentRef,
    /// The brain; when `None`, the policy's `[brain]`.
    pub brain: Option<BrainChoice>,
    /// The task handed to the agent.
    pub task: String,
    /// The state directory whose journal records the run (none: not
    /// journaled, and the agent has no durable memory).
    pub state: Option<PathBuf>,
    /// The run's id (a fresh one when `None`).
    pub run_id: Option<String>,
    /// A verified bundle whose components the policy names `bundle:NAME`
    /// (and whose agent runs unless `agent` names another).
    pub bundle: Option<Arc<Bundle>>,
}

impl RunPlan {
    /// The built-in agent on `task`, with the policy's brain, not journaled.
    pub fn new(policy: Policy, task: impl Into<String>) -> RunPlan {
        RunPlan {
            policy,
            agent: ComponentRef::Builtin(Builtin::Agent),
            brain: None,
            task: task.into(),
            state: None,
            run_id: None,
            bundle: None,
        }
    }
}

/// Counters of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Brain turns.
    pub steps: u32,
    /// Tool calls the agent made (allowed or refused).
    pub tool_calls: u32,
    /// Tool calls refused by the gate or the validator.
    pub refused: u32,
    /// Model tokens read, as the provider reported them.
    pub input_tokens: u64,
    /// Model tokens written, as the provider reported them.
    pub output_tokens: u64,
}

/// A run that reached its end.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run's id.
    pub run_id: String,
    /// The agent's final answer, or its own error.
    pub answer: Result<String, String>,
    /// What the run did.
    pub stats: RunStats,
}

/// A fresh run id: start time and randomness, sortable by time.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let random = RandomState::new().hash_one(std::process::id()) as u16;
    format!("{:x}-{random:04x}", now.as_millis())
}

/// A compiled agent, ready to instantiate.
struct PreparedAgent {
    pre: AgentPre<GuestState<AgentHost>>,
    label: String,
    hash: String,
}

impl Runtime {
    /// Runs an agent under a policy to its end.
    pub async fn run(&self, plan: RunPlan) -> Result<RunOutcome, RunError> {
        let brain = match (plan.brain.clone(), &plan.policy.brain) {
            (Some(choice), _) => choice,
            (None, Some(BrainSpec::Scripted { script })) => BrainChoice::Scripted(script.clone()),
            (None, Some(BrainSpec::Provider(p))) => BrainChoice::Provider(p.clone()),
            (None, None) => {
                return Err(RunError::Config(format!(
                    "no brain: the policy `{}` has no [brain] section and no --brain was given",
                    plan.policy.path.display()
                )));
            }
        };
        check_trust(&plan, &brain)?;
        let agent_source = match (&plan.agent, &plan.bundle) {
            (ComponentRef::Builtin(Builtin::Agent), Some(bundle)) => {
                crate::bundled::agent(bundle).unwrap_or(plan.agent.clone())
            }
            (agent, _) => agent.clone(),
        };
        // Check the agent before starting anything else.
        let agent = self.prepare_agent(&agent_source)?;
        let (live, specs, redact) = self
            .start_live(&plan.policy, &brain, 0, plan.bundle.as_deref())
            .await?;
        let run_id = plan.run_id.unwrap_or_else(new_run_id);
        let journal = match &plan.state {
            Some(dir) => {
                let mut journal = open_journal(dir)?;
                let info = RunInfo {
                    id: run_id.clone(),
                    started: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs(),
                    status: RunStatus::Running,
                    agent: agent.label.clone(),
                    agent_hash: agent.hash.clone(),
                    policy_hash: hex::encode(Sha256::digest(plan.policy.text.as_bytes())),
                    plan: json!({
                        "policy_path": plan.policy.path,
                        "policy_text": plan.policy.text,
                        "task": plan.task,
                        "brain": brain_json(&brain),
                    }),
                    outcome: None,
                };
                journal
                    .create_run(&info)
                    .map_err(|e| RunError::Journal(e.to_string()))?;
                Some(journal)
            }
            None => None,
        };
        tracing::info!(target: "femtoclaw::run", run_id = %run_id, policy = %plan.policy.path.display(), agent = %agent.label, "run started");
        let mut recorder = Recorder::recording(run_id, journal);
        recorder.record("run-start", json!({ "tools": specs }), None)?;
        self.execute(
            agent,
            plan.policy,
            specs,
            Some(live),
            recorder,
            redact,
            plan.task,
        )
        .await
    }

    /// Replays a journaled run without calling any brain or capability: the
    /// agent gets its recorded inputs, and every request it makes must match
    /// the journal. `agent` replaces the recorded agent component.
    pub async fn replay(
        &self,
        state: &Path,
        run_id: &str,
        agent: Option<ComponentRef>,
    ) -> Result<RunOutcome, RunError> {
        let journal = open_journal(state)?;
        let (info, events) = load_run(&journal, run_id)?;
        drop(journal);
        let recorded = agent_ref(&info.agent);
        let prepared = self.prepare_agent(agent.as_ref().unwrap_or(&recorded))?;
        if agent.is_none() && prepared.hash != info.agent_hash {
            return Err(RunError::Divergence {
                event: 0,
                expected: format!("agent `{}` with sha256 {}", info.agent, info.agent_hash),
                actual: format!("a component with sha256 {}", prepared.hash),
            });
        }
        let (policy, task, _) = plan_parts(&info)?;
        let specs = recorded_specs(&events)?;
        let recorder = Recorder::replaying(run_id.to_owned(), events, None);
        self.execute(
            prepared,
            policy,
            specs,
            None,
            recorder,
            Redactor::default(),
            task,
        )
        .await
    }

    /// Continues a run that was killed: its journal is replayed, then the
    /// run goes on live, appending to the same journal.
    pub async fn resume(&self, state: &Path, run_id: &str) -> Result<RunOutcome, RunError> {
        let journal = open_journal(state)?;
        let (info, events) = load_run(&journal, run_id)?;
        if info.status != RunStatus::Running {
            return Err(RunError::Config(format!(
                "run `{run_id}` already ended ({:?}); replay it instead",
                info.status
            )));
        }
        let prepared = self.prepare_agent(&agent_ref(&info.agent))?;
        if prepared.hash != info.agent_hash {
            return Err(RunError::Divergence {
                event: 0,
                expected: format!("agent `{}` with sha256 {}", info.agent, info.agent_hash),
                actual: format!("a component with sha256 {}", prepared.hash),
            });
        }
        let (policy, task, brain) = plan_parts(&info)?;
        let turns = events.iter().filter(|e| e.kind == "inference").count();
        let (live, specs, redact) = self.start_live(&policy, &brain, turns, None).await?;
        if json!(specs) != json!(recorded_specs(&events)?) {
            return Err(RunError::Divergence {
                event: 0,
                expected: "the tools recorded at the start of the run".into(),
                actual: "capabilities that now describe different tools".into(),
            });
        }
        tracing::info!(target: "femtoclaw::run", run_id = %run_id, replayed = events.len(), "run resumed");
        let recorder = Recorder::replaying(run_id.to_owned(), events, Some(journal));
        self.execute(prepared, policy, specs, Some(live), recorder, redact, task)
            .await
    }

    fn prepare_agent(&self, source: &ComponentRef) -> Result<PreparedAgent, RunError> {
        let loaded = self.load(source)?;
        let mut linker = Linker::new(&self.engine);
        let link = |e: wasmtime::Error| RunError::Internal(format!("linking the agent: {e:#}"));
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        Agent::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(link)?;
        let reject = |e: wasmtime::Error| RunError::Component {
            component: loaded.label.clone(),
            message: format!("does not fit the `agent` world: {e:#}"),
        };
        let pre = AgentPre::new(linker.instantiate_pre(&loaded.component).map_err(reject)?)
            .map_err(reject)?;
        Ok(PreparedAgent {
            pre,
            label: loaded.label,
            hash: loaded.hash,
        })
    }

    /// Starts the capabilities and the brain.
    async fn start_live(
        &self,
        policy: &Policy,
        brain: &BrainChoice,
        start_turn: usize,
        bundle: Option<&Bundle>,
    ) -> Result<(Live, Vec<ToolSpec>, Redactor), RunError> {
        // Secrets are read once; every store redacts all of them.
        let mut env = BTreeMap::new();
        let mut secrets = Vec::new();
        for (name, grant) in &policy.capabilities {
            let (vars, secret_values) = resolve_env(name, grant)?;
            env.insert(name.clone(), vars);
            secrets.extend(secret_values);
        }
        let provider = match brain {
            BrainChoice::Provider(p) => Some(p),
            BrainChoice::Component(_) => match &policy.brain {
                Some(BrainSpec::Provider(p)) => Some(p),
                _ => None,
            },
            BrainChoice::Scripted(_) => None,
        };
        let key = provider.map(provider_key).transpose()?.flatten();
        if let Some(key) = &key {
            secrets.push(("BRAIN_API_KEY".to_owned(), key.clone()));
        }
        if let Some(p) = provider {
            probe(p).await?;
        }
        let redact = Redactor::new(secrets);
        let limits = policy.limits;
        let mut gate = Gate::default();
        let mut capabilities = BTreeMap::new();
        for (name, grant) in &policy.capabilities {
            let vars = env.remove(name).unwrap_or_default();
            let (instance, specs) = CapabilityInstance::start(
                self,
                name,
                grant,
                vars,
                limits.max_log_lines,
                limits.max_tool_output,
                redact.clone(),
                bundle,
            )
            .await?;
            gate.register(policy, name, specs)?;
            capabilities.insert(name.clone(), instance);
        }
        let brain = BrainInstance::start(
            self,
            brain,
            provider,
            key,
            &limits,
            redact.clone(),
            start_turn,
        )
        .await?;
        let specs = gate.specs();
        Ok((
            Live {
                gate,
                capabilities,
                brain,
            },
            specs,
            redact,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        agent: PreparedAgent,
        policy: Policy,
        specs: Vec<ToolSpec>,
        live: Option<Live>,
        recorder: Recorder,
        redact: Redactor,
        task: String,
    ) -> Result<RunOutcome, RunError> {
        let limits = policy.limits;
        let run_span =
            tracing::info_span!("run", run_id = %recorder.run_id, tenant = tracing::field::Empty);
        // The agent's WASI view is empty: no preopens, no environment, no
        // network, stdin closed; its clocks and random source are virtual
        // and seeded, so the same inputs give the same run.
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(crate::VirtualClock::default())
            .monotonic_clock(crate::VirtualClock::default())
            .secure_random(crate::seeded_rng(0))
            .insecure_random(crate::seeded_rng(1))
            .insecure_random_seed(2)
            .max_random_size(MAX_RANDOM_SIZE);
        // The agent's run is one call: its wall budget is the run's.
        let budget = Budget {
            wall: limits.run_timeout,
            ..Budget::from(limits.component)
        };
        let setup = Setup {
            name: "agent".into(),
            wasi,
            budget,
            max_log_lines: limits.max_log_lines,
            net: NetGate::none("agent"),
            redact,
        };
        let host = AgentHost {
            policy,
            specs,
            live,
            recorder,
            memory_scope: agent.hash.clone(),
            stats: Default::default(),
            calls_per_tool: Default::default(),
            metrics: self.metrics.clone(),
            run_span: run_span.clone(),
            step_span: run_span.clone(),
        };
        let mut store = GuestState::store(&self.engine, setup, host);
        let pre = agent.pre;
        let result = guarded(&mut store, budget, async |s| {
            let agent = pre.instantiate_async(&mut *s).await?;
            agent.femtoclaw_runtime_runner().call_run(s, &task).await
        })
        .instrument(run_span.clone())
        .await;
        let _in_run = run_span.enter();
        let host = &mut store.data_mut().data;
        let stats = host.stats;
        let run_id = host.recorder.run_id.clone();
        let outcome = match result {
            Ok(answer) => Ok(answer),
            Err(Failure::Limit(m)) => Err(RunError::Limit(format!("the agent hit its {m}"))),
            Err(Failure::Trap(m)) => Err(RunError::Trap {
                component: "agent".into(),
                message: m,
            }),
            Err(Failure::Stop(reason)) => Err(RunError::from(reason)),
        };
        let finished = finish(&mut host.recorder, &outcome);
        let status = match (&outcome, &finished) {
            (_, Err(_)) => "failed",
            (Ok(Ok(_)), _) => "ok",
            (Ok(Err(_)), _) => "agent-error",
            (Err(RunError::Limit(_)), _) => "limit",
            (Err(RunError::Trap { .. }), _) => "trap",
            (Err(_), _) => "failed",
        };
        self.metrics
            .add("fc_runs_total", vec![("status", status.into())], 1);
        finished?;
        let answer = outcome?;
        tracing::info!(target: "femtoclaw::run", run_id = %run_id, ok = answer.is_ok(), steps = stats.steps, tool_calls = stats.tool_calls, refused = stats.refused, input_tokens = stats.input_tokens, output_tokens = stats.output_tokens, "run finished");
        Ok(RunOutcome {
            run_id,
            answer,
            stats,
        })
    }
}

/// Under `[trust] require-signature`, every component that is not built
/// into fc-host must come from the (verified) bundle.
fn check_trust(plan: &RunPlan, brain: &BrainChoice) -> Result<(), RunError> {
    if !plan.policy.trust.require_signature {
        return Ok(());
    }
    let refuse = |what: String| {
        RunError::Component {
            component: what,
            message: "the policy requires signed components (`[trust] require-signature`): run it from a signed bundle".into(),
        }
    };
    if let ComponentRef::File(path) = &plan.agent {
        return Err(refuse(path.display().to_string()));
    }
    if let BrainChoice::Component(path) = brain {
        return Err(refuse(path.display().to_string()));
    }
    for grant in plan.policy.capabilities.values() {
        if let femtoclaw_policy::ComponentSource::File(path) = &grant.component {
            return Err(refuse(path.display().to_string()));
        }
    }
    if plan.bundle.is_none()
        && plan
            .policy
            .capabilities
            .values()
            .any(|g| matches!(g.component, femtoclaw_policy::ComponentSource::Bundle(_)))
    {
        return Err(RunError::Config(
            "the policy names bundle components, but no bundle is being run".into(),
        ));
    }
    Ok(())
}

/// Journals the end of a run durably, before anything is printed (in a
/// replay: checks it against the recorded end).
fn finish(
    recorder: &mut Recorder,
    outcome: &Result<Result<String, String>, RunError>,
) -> Result<(), RunError> {
    if !recorder.writes() && outcome.is_err() {
        // A replay that failed reports its own failure.
        return Ok(());
    }
    let (status, text) = match outcome {
        Ok(Ok(answer)) => (RunStatus::Ok, answer.clone()),
        Ok(Err(error)) => (RunStatus::AgentError, error.clone()),
        Err(RunError::Limit(m)) => (RunStatus::Limit, m.clone()),
        Err(RunError::Trap { message, .. }) => (RunStatus::Trap, message.clone()),
        Err(e) => (RunStatus::Failed, e.to_string()),
    };
    let data = json!({ "status": status, "outcome": text });
    let same = |d: &Value| *d == data;
    match recorder.next("run-end", same, || {
        format!("a run that ended {status:?}: {text}")
    })? {
        Next::Replay(_) => {}
        Next::Live => recorder.record("run-end", data.clone(), None)?,
    }
    let run_id = recorder.run_id.clone();
    if let Some(journal) = recorder.journal() {
        journal
            .finish_run(&run_id, status, Some(text))
            .map_err(|e| RunError::Journal(e.to_string()))?;
    }
    Ok(())
}

fn open_journal(dir: &Path) -> Result<Journal, RunError> {
    Journal::open(dir).map_err(|e| RunError::Journal(e.to_string()))
}

fn load_run(
    journal: &Journal,
    run_id: &str,
) -> Result<(RunInfo, Vec<femtoclaw_journal::Event>), RunError> {
    journal
        .load(run_id)
        .map_err(|e| RunError::Journal(e.to_string()))
}

fn agent_ref(label: &str) -> ComponentRef {
    match label {
        "builtin:agent" => ComponentRef::Builtin(Builtin::Agent),
        path => ComponentRef::File(PathBuf::from(path)),
    }
}

fn brain_json(brain: &BrainChoice) -> Value {
    match brain {
        BrainChoice::Scripted(path) => json!({ "scripted": path }),
        BrainChoice::Component(path) => json!({ "component": path }),
        BrainChoice::Provider(p) => json!({ "provider": p }),
    }
}

/// The policy, task and brain a journaled run started with.
fn plan_parts(info: &RunInfo) -> Result<(Policy, String, BrainChoice), RunError> {
    let bad = |what: &str| {
        RunError::Journal(format!(
            "run `{}` has no usable {what} in its record",
            info.id
        ))
    };
    let plan = &info.plan;
    let path = plan["policy_path"]
        .as_str()
        .ok_or_else(|| bad("policy path"))?;
    let text = plan["policy_text"].as_str().ok_or_else(|| bad("policy"))?;
    let policy = Policy::parse(path, text)?;
    let task = plan["task"].as_str().ok_or_else(|| bad("task"))?.to_owned();
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

/// The tool specs journaled when the run started.
fn recorded_specs(events: &[femtoclaw_journal::Event]) -> Result<Vec<ToolSpec>, RunError> {
    let start = events
        .first()
        .filter(|e| e.kind == "run-start")
        .ok_or_else(|| RunError::Journal("the run has no start event".into()))?;
    serde_json::from_value(start.data["tools"].clone())
        .map_err(|e| RunError::Journal(format!("event 0: {e}")))
}
