//! [`Agent`]: one agent under one policy, run as often as asked.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use femtoclaw_journal::{Journal, SharedJournal};
use femtoclaw_policy::{Policy, Preset};
use serde_json::Value;

use super::config::{Config, Journaling};
use super::error::Error;
use crate::{Hooks, RunError, RunOutcome, RunPlan, RunStats, Runtime, SessionPlan};

/// The policy an agent enforces: a preset (`Policy::Strict`), or a policy
/// read from a file or text (`Policy::load`, `Policy::from_toml`).
#[derive(Debug, Clone)]
pub enum PolicyChoice {
    /// A named built-in policy, its paths resolved against the working
    /// directory when a run starts.
    Preset(&'static Preset),
    /// A policy already read.
    Policy(Box<Policy>),
}

impl From<&'static Preset> for PolicyChoice {
    fn from(preset: &'static Preset) -> PolicyChoice {
        PolicyChoice::Preset(preset)
    }
}

impl From<Policy> for PolicyChoice {
    fn from(policy: Policy) -> PolicyChoice {
        PolicyChoice::Policy(Box::new(policy))
    }
}

/// An agent's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The run's id (in the journal, when the run was journaled).
    pub run_id: String,
    /// The agent's final answer.
    pub text: String,
    /// What the run did.
    pub stats: RunStats,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// An agent (the built-in one, or the component its [`Config`] names)
/// under a policy. Every run and every direct tool call takes the same
/// path: the policy's gate, the tool's schema, the sandboxed capability,
/// the journal and the audit log.
///
/// ```no_run
/// use femtoclaw_runtime::prelude::*;
/// let agent = Agent::new(Config::default().brain("scripted:brain.json"));
/// agent.enforce_policy(Policy::load("policy.toml")?);
/// let answer = agent.run("What is in /data?")?;
/// println!("{answer}");
/// # Ok::<(), Error>(())
/// ```
pub struct Agent {
    pub(crate) config: Config,
    policy: Mutex<Option<PolicyChoice>>,
    /// Made when first needed: `Agent::new` cannot fail.
    parts: Mutex<Option<Parts>>,
}

/// What an agent's runs share.
#[derive(Clone)]
pub(crate) struct Parts {
    pub runtime: Arc<Runtime>,
    /// The state directory and its journal, open once for every run (a
    /// journal is one process's at a time).
    pub journal: Option<(PathBuf, SharedJournal)>,
}

impl Agent {
    /// An agent with these settings. Nothing is started yet: a bad setting
    /// is reported by the first run.
    pub fn new(config: Config) -> Agent {
        Agent {
            config,
            policy: Mutex::new(None),
            parts: Mutex::new(None),
        }
    }

    /// The policy every later run and tool call is held to (replacing the
    /// one enforced before). Until one is enforced, runs are refused: there
    /// is no default grant.
    pub fn enforce_policy(&self, policy: impl Into<PolicyChoice>) {
        *lock(&self.policy) = Some(policy.into());
    }

    /// The enforced policy, as a run gets it.
    pub fn policy(&self) -> Result<Policy, Error> {
        match lock(&self.policy).clone() {
            Some(PolicyChoice::Preset(preset)) => Ok(preset.load()?),
            Some(PolicyChoice::Policy(policy)) => Ok(*policy),
            None => Err(Error::Usage(
                "no policy: call `agent.enforce_policy(Policy::Strict)` (or another preset, `Policy::load(FILE)`, `Policy::from_toml(TEXT)`) before running".into(),
            )),
        }
    }

    /// Runs the agent on `task` to its answer. Blocks; from async code,
    /// use [`Agent::run_async`].
    pub fn run(&self, task: &str) -> Result<Answer, Error> {
        block_on(self.run_async(task))
    }

    /// Runs the agent on `task` to its answer.
    pub async fn run_async(&self, task: &str) -> Result<Answer, Error> {
        self.run_plan_async(self.plan(task)?).await
    }

    /// Runs a plan from [`Agent::plan`], changed where one run needs more
    /// than the config says (another brain, a bundle, lower budgets).
    pub async fn run_plan_async(&self, plan: RunPlan) -> Result<Answer, Error> {
        let parts = self.parts()?;
        answer(parts.runtime.run(plan).await?)
    }

    /// Calls one granted tool directly, without a brain: `name` as the
    /// model would name it (`fs.read_file`), `arguments` as its schema
    /// says. The call is gated, validated, run in its capability and
    /// journaled (as a session of its own) exactly as an agent's call is.
    /// Blocks; from async code, use [`Agent::call_tool_async`].
    pub fn call_tool(&self, name: &str, arguments: Value) -> Result<Value, Error> {
        block_on(self.call_tool_async(name, arguments))
    }

    /// [`Agent::call_tool`], from async code.
    pub async fn call_tool_async(&self, name: &str, arguments: Value) -> Result<Value, Error> {
        let policy = self.policy()?;
        let parts = self.parts()?;
        let plan = SessionPlan {
            policy,
            client: format!("embed:{}", self.config.name),
            state: parts.journal.as_ref().map(|(dir, _)| dir.clone()),
            bundle: None,
            hooks: self.hooks(&parts),
        };
        let mut session = parts.runtime.open_session(plan).await?;
        let shown = session.call(name, &arguments.to_string()).await;
        // The session's end is journaled whatever the call did.
        let closed = session.close();
        let shown = shown?;
        closed?;
        if shown.is_error {
            return Err(Error::Tool(format!("tool `{name}`: {}", shown.text)));
        }
        Ok(serde_json::from_str(&shown.text).unwrap_or(Value::String(shown.text)))
    }

    /// The runtime the agent's runs share (made on first use), for what
    /// the agent does not wrap: a run's whole [`RunOutcome`], replays,
    /// sessions.
    pub fn runtime(&self) -> Result<Arc<Runtime>, Error> {
        Ok(self.parts()?.runtime)
    }

    /// The runtime's metrics so far (Prometheus text format).
    pub fn metrics(&self) -> Result<String, Error> {
        Ok(self.parts()?.runtime.metrics().render())
    }

    /// The plan of a new run of this agent on `task`, as [`Agent::run`]
    /// makes it: the enforced policy, the config's agent and brain, the
    /// journal.
    pub fn plan(&self, task: &str) -> Result<RunPlan, Error> {
        let parts = self.parts()?;
        let mut plan = RunPlan::new(self.policy()?, task);
        plan.agent = self.config.agent.clone();
        plan.brain = crate::choose_brain(self.config.brain.as_deref(), &plan.policy)?;
        plan.state = parts.journal.as_ref().map(|(dir, _)| dir.clone());
        plan.hooks = self.hooks(&parts);
        Ok(plan)
    }

    pub(crate) fn hooks(&self, parts: &Parts) -> Hooks {
        Hooks {
            journal: parts.journal.as_ref().map(|(_, j)| j.clone()),
            approver: self.config.approver.clone(),
            ..Hooks::default()
        }
    }

    /// The runtime and journal, made on first use.
    pub(crate) fn parts(&self) -> Result<Parts, Error> {
        let mut parts = lock(&self.parts);
        if let Some(parts) = &*parts {
            return Ok(parts.clone());
        }
        let state = match &self.config.journaling {
            Journaling::Off => None,
            Journaling::Default => Some(crate::dirs::state_dir(None)?),
            Journaling::Dir(dir) => Some(dir.clone()),
        };
        let cache = match (&self.config.cache, &self.config.journaling) {
            (Some(dir), _) => Some(dir.clone()),
            (None, Journaling::Off) => None,
            (None, Journaling::Default) => Some(crate::dirs::cache_dir(None)?),
            (None, Journaling::Dir(dir)) => Some(crate::dirs::cache_dir(Some(dir))?),
        };
        let mut runtime = Runtime::new()?;
        if let Some(dir) = &cache {
            runtime = runtime.with_cache(dir)?;
        }
        if let Some(connector) = &self.config.connector {
            runtime = runtime.with_connector(connector.clone());
        }
        let journal = match state {
            Some(dir) => {
                // Said as a run says it (`journal: …`).
                let journal = Journal::open(&dir)
                    .map_err(|e| Error::from(RunError::Journal(e.to_string())))?;
                Some((dir, SharedJournal::new(journal)))
            }
            None => None,
        };
        let made = Parts {
            runtime: Arc::new(runtime),
            journal,
        };
        *parts = Some(made.clone());
        Ok(made)
    }
}

/// A run's outcome as the API returns it.
pub(crate) fn answer(outcome: RunOutcome) -> Result<Answer, Error> {
    Ok(Answer {
        text: outcome.answer?,
        run_id: outcome.run_id,
        stats: outcome.stats,
    })
}

/// Runs `f` on a small single-threaded runtime (timers and sockets on),
/// not waited for when it ends: a blocking-pool thread stuck in the kernel
/// must not hold the caller.
pub(crate) fn block_on<T>(f: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::Usage(
            "a blocking call (`run`, `call_tool`, `run_managed`) was made from async code: use `run_async` or `call_tool_async` there".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .enable_io()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start an async runtime: {e}")))?;
    let result = runtime.block_on(f);
    runtime.shutdown_background();
    result
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
