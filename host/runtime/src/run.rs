//! One run: start the capabilities and the brain, then run the agent.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;

use femtoclaw_policy::{BrainSpec, Policy};
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::WasiCtxBuilder;

use crate::agent::AgentHost;
use crate::bindings::agent::{Agent, AgentPre};
use crate::brain::BrainInstance;
use crate::capability::{CapabilityInstance, resolve_env};
use crate::gate::Gate;
use crate::guest::{Budget, Failure, GuestState, MAX_RANDOM_SIZE, Setup, guarded};
use crate::net::NetGate;
use crate::redact::Redactor;
use crate::{Builtin, ComponentRef, RunError, Runtime};

/// Which brain a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrainChoice {
    /// The built-in scripted brain replaying this JSON file.
    Scripted(PathBuf),
    /// A component of the `brain` world.
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
}

impl RunPlan {
    /// The built-in agent on `task`, with the policy's brain.
    pub fn new(policy: Policy, task: impl Into<String>) -> RunPlan {
        RunPlan {
            policy,
            agent: ComponentRef::Builtin(Builtin::Agent),
            brain: None,
            task: task.into(),
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

impl Runtime {
    /// Runs an agent under a policy to its end.
    pub async fn run(&self, plan: RunPlan) -> Result<RunOutcome, RunError> {
        let run_id = new_run_id();
        let brain_choice = match (plan.brain, &plan.policy.brain) {
            (Some(choice), _) => choice,
            (None, Some(BrainSpec::Scripted { script })) => BrainChoice::Scripted(script.clone()),
            (None, None) => {
                return Err(RunError::Config(format!(
                    "no brain: the policy `{}` has no [brain] section and no --brain was given",
                    plan.policy.path.display()
                )));
            }
        };
        tracing::info!(target: "femtoclaw::run", run_id = %run_id, policy = %plan.policy.path.display(), agent = %plan.agent, "run started");

        // Check the agent before starting anything else.
        let loaded = self.load(&plan.agent)?;
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

        // Secrets are read once; every store redacts all of them.
        let mut env = BTreeMap::new();
        let mut secrets = Vec::new();
        for (name, grant) in &plan.policy.capabilities {
            let (vars, secret_values) = resolve_env(name, grant)?;
            env.insert(name.clone(), vars);
            secrets.extend(secret_values);
        }
        let redact = Redactor::new(secrets);
        let limits = plan.policy.limits;

        let mut gate = Gate::default();
        let mut capabilities = BTreeMap::new();
        for (name, grant) in &plan.policy.capabilities {
            let vars = env.remove(name).unwrap_or_default();
            let (instance, specs) = CapabilityInstance::start(
                self,
                name,
                grant,
                vars,
                limits.max_log_lines,
                limits.max_tool_output,
                redact.clone(),
            )
            .await?;
            gate.register(&plan.policy, name, specs)?;
            capabilities.insert(name.clone(), instance);
        }
        let brain = BrainInstance::start(self, &brain_choice, &limits, redact.clone()).await?;

        // The agent's WASI view is empty: no preopens, no environment, no
        // network, stdin closed; its clocks and random source are virtual
        // and seeded so that the same inputs give the same run.
        let wasi = WasiCtxBuilder::new()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(crate::VirtualClock::default())
            .monotonic_clock(crate::VirtualClock::default())
            .secure_random(crate::seeded_rng(0))
            .insecure_random(crate::seeded_rng(1))
            .insecure_random_seed(2)
            .max_random_size(MAX_RANDOM_SIZE)
            .build();
        let host = AgentHost {
            run_id: run_id.clone(),
            policy: plan.policy,
            gate,
            capabilities,
            brain,
            stats: Default::default(),
            calls_per_tool: Default::default(),
        };
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
            net: NetGate {
                component: "agent".into(),
                patterns: Default::default(),
                max_body: 0,
            },
            redact,
        };
        let mut store = GuestState::store(&self.engine, setup, host);
        let task = plan.task;
        let result = guarded(&mut store, budget, async |s| {
            let agent = pre.instantiate_async(&mut *s).await?;
            agent.femtoclaw_runtime_runner().call_run(s, &task).await
        })
        .await;
        let stats = store.data().data.stats;
        let answer = match result {
            Ok(answer) => answer,
            Err(Failure::Limit(m)) => {
                return Err(RunError::Limit(format!("the agent hit its {m}")));
            }
            Err(Failure::Trap(m)) => {
                return Err(RunError::Trap {
                    component: "agent".into(),
                    message: m,
                });
            }
            Err(Failure::Stop(reason)) => return Err(RunError::Limit(reason.to_string())),
        };
        tracing::info!(target: "femtoclaw::run", run_id = %run_id, ok = answer.is_ok(), steps = stats.steps, tool_calls = stats.tool_calls, refused = stats.refused, "run finished");
        Ok(RunOutcome {
            run_id,
            answer,
            stats,
        })
    }
}

fn new_run_id() -> String {
    let a = RandomState::new().hash_one(std::process::id());
    let b = RandomState::new().hash_one(std::time::SystemTime::now());
    format!("{:016x}", a ^ b.rotate_left(17))
}
