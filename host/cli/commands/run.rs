//! `fc-host run [AGENT.wasm] --policy FILE [--brain SPEC] [--task TEXT]`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use femtoclaw_runtime::prelude::*;
use serde_json::json;

use crate::exit;
use crate::state::StateArgs;

/// Run an agent under a policy.
#[derive(clap::Args)]
pub struct RunCommand {
    /// An agent component (`agent` world; under `[trust]
    /// require-signature` with its `FILE.sig` from `fc-host sign`), or a
    /// bundle (`.fcb`, or
    /// `oci://HOST/REPO:TAG` / `…@sha256:DIGEST` from a registry; verified
    /// first, whose agent and `bundle:NAME` capabilities run); the built-in
    /// agent if omitted.
    agent: Option<PathBuf>,
    /// The policy file, or a preset (`Strict`, `Standard`, `Dev`: the
    /// working directory read-only; read-write; read-write, larger budgets).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The brain: `local[=URL]` (an OpenAI-compatible server, Ollama's
    /// `http://127.0.0.1:11434/v1` by default or `OLLAMA_HOST`, no key), `remote` (the
    /// policy's provider, else `OPENAI_BASE_URL` / `OPENAI_API_KEY`),
    /// `scripted:FILE` (a JSON script) or `PATH.wasm` (a component of the
    /// `brain` world). Defaults to the policy's [brain], else `local`. The
    /// model comes from the policy, else `FC_MODEL`.
    #[arg(long, value_name = "SPEC")]
    brain: Option<String>,
    /// The task handed to the agent.
    #[arg(long, value_name = "TEXT", default_value = "")]
    task: String,
    #[command(flatten)]
    state: StateArgs,
    /// Write the run's metrics to FILE (Prometheus text format) when it ends.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Run a bundle older than one already run from the same signer.
    #[arg(long)]
    allow_downgrade: bool,
    /// Print the outcome as one JSON object on stdout (run id, status,
    /// answer or error, exit code, counters) instead of the bare answer.
    #[arg(long)]
    json: bool,
    /// Who answers the policy's approval requests: `prompt` (a person at
    /// this terminal; the default when there is one), `allow` or `deny`
    /// (the default without a terminal).
    #[arg(long, value_name = "WHO", value_enum)]
    approve: Option<crate::approve::ApproveMode>,
}

impl RunCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let policy = Policy::load(&self.policy)?;
        // The agent named on the command line is admitted first: a
        // bundle's rollback record is in the journal the agent then opens.
        let mut admitted = RunPlan::new(policy.clone(), "");
        admit_agent(
            &mut admitted,
            self.agent.as_deref(),
            &self.state,
            self.allow_downgrade,
        )?;
        // fc-host is a user of the embedding API: its flags are a `Config`.
        let mut config = Config::default()
            .name("fc-host")
            .state_dir(self.state.dir()?)
            .cache_dir(self.state.cache_dir()?)
            .agent(admitted.agent)
            .approver(crate::approve::approver(self.approve)?)
            .connector(std::sync::Arc::new(femtoclaw_mcp::McpConnector));
        if let Some(spec) = &self.brain {
            config = config.brain(spec);
        }
        let agent = Agent::new(config);
        agent.enforce_policy(policy);
        let mut plan = agent.plan(&self.task)?;
        plan.bundle = admitted.bundle;
        plan.bundle_source = admitted.bundle_source;
        let run_id = femtoclaw_runtime::new_run_id();
        crate::console::notice(&format!("run {run_id}"), &[("run_id", json!(run_id))]);
        plan.run_id = Some(run_id.clone());
        let runtime = agent.runtime()?;
        let watchdog = Watchdog::start(&run_id, plan.policy.limits.run_timeout);
        let outcome = block_on(runtime.run(plan));
        watchdog.done();
        if let Some(file) = &self.metrics {
            std::fs::write(file, runtime.metrics().render())
                .with_context(|| format!("cannot write metrics to `{}`", file.display()))?;
        }
        // As `leave` does for a runtime: the OS frees it all at exit.
        std::mem::forget(agent);
        if !self.json {
            return Ok(print_answer(outcome?));
        }
        match outcome {
            Ok(outcome) => Ok(print_json(&outcome)),
            Err(e) => {
                // Scripts get their object; the error line goes to stderr too.
                let code = exit::for_error(&e);
                crate::console::out_json(&json!({
                    "run_id": run_id,
                    "status": "error",
                    "error": crate::console::chain(&e),
                    "exit_code": code,
                }));
                Err(e)
            }
        }
    }
}

/// Puts the agent named on the command line into `plan`: a bundle (a file
/// or `oci://`), verified against the policy's trust and its rollback
/// record; a component file, with its signature where the policy requires
/// one; the built-in agent if none is named.
pub fn admit_agent(
    plan: &mut RunPlan,
    agent: Option<&std::path::Path>,
    state: &StateArgs,
    allow_downgrade: bool,
) -> anyhow::Result<()> {
    match agent {
        Some(path)
            if super::oci::is_reference(path) || path.extension().is_some_and(|e| e == "fcb") =>
        {
            let (source, bundle) =
                super::bundle::admit(path, &plan.policy, state, allow_downgrade)?;
            plan.bundle = Some(std::sync::Arc::new(bundle));
            plan.bundle_source = Some(source);
        }
        Some(agent) => plan.agent = super::sign::admit_file(agent, &plan.policy)?,
        None => {}
    }
    Ok(())
}

/// The outcome as one JSON object on stdout; returns the exit code.
fn print_json(outcome: &RunOutcome) -> u8 {
    let s = outcome.stats;
    let stats = json!({
        "steps": s.steps, "tool_calls": s.tool_calls, "refused": s.refused,
        "input_tokens": s.input_tokens, "output_tokens": s.output_tokens,
    });
    let (status, text, code) = match &outcome.answer {
        Ok(answer) => ("ok", ("answer", answer.clone()), exit::OK),
        Err(e @ AgentError::Failed(_)) => ("failed", ("error", e.to_string()), exit::AGENT_ERROR),
        Err(e @ AgentError::Incomplete(_)) => {
            ("incomplete", ("error", e.to_string()), exit::INCOMPLETE)
        }
    };
    let mut value =
        json!({ "run_id": outcome.run_id, "status": status, "exit_code": code, "stats": stats });
    value[text.0] = json!(text.1);
    crate::console::out_json(&value);
    code
}

/// Ends the process if a run outlives its `run-timeout` (plus a grace)
/// whatever it is blocked on: a host thread stuck in the kernel cannot be
/// interrupted, and waiting for it would hold the journal's run open and
/// never print an outcome. The run stays `running` in the journal
/// (everything up to its last commit point is there): `fc-host resume`
/// continues it.
pub struct Watchdog(std::sync::Arc<std::sync::Mutex<bool>>);

/// Time past `run-timeout` before the watchdog acts: the run's own limit
/// stops it cleanly first whenever it can.
const GRACE: Duration = Duration::from_secs(5);

impl Watchdog {
    pub fn start(run_id: &str, timeout: Duration) -> Watchdog {
        let run_id = run_id.to_owned();
        Watchdog::with_action(timeout + GRACE, move || {
            crate::console::error_line(
                &format!(
                    "run stopped: wall-time limit of {timeout:?} (`limits.run-timeout`) passed while a host call was blocked; run `{run_id}` stays resumable (`fc-host resume {run_id}`)"
                ),
                &[("run_id", json!(run_id)), ("exit_code", json!(exit::LIMIT))],
            );
            std::process::exit(i32::from(exit::LIMIT));
        })
    }

    /// Runs `expire` after `deadline` unless [`Watchdog::done`] came first.
    fn with_action(deadline: Duration, expire: impl FnOnce() + Send + 'static) -> Watchdog {
        let done = std::sync::Arc::new(std::sync::Mutex::new(false));
        let seen = done.clone();
        let started = std::thread::Builder::new()
            .name("fc-watchdog".into())
            .spawn(move || {
                std::thread::sleep(deadline);
                let finished = seen.lock().unwrap_or_else(|p| p.into_inner());
                if !*finished {
                    // Holding the lock: the run cannot be reported as
                    // finished while the process ends.
                    expire();
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "no watchdog thread: a blocked host call could outlive the run's timeout");
        }
        Watchdog(done)
    }

    pub fn done(self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }
}

/// The runtime, with its compile cache in the state directory, able to
/// reach the MCP servers policies name.
pub fn runtime(state: &StateArgs) -> anyhow::Result<Runtime> {
    Ok(Runtime::new()?
        .with_cache(&state.cache_dir()?)?
        .with_connector(std::sync::Arc::new(femtoclaw_mcp::McpConnector)))
}

/// Leaves the runtime to the end of the process once a command is done with
/// it (its run's journal is closed by then). The OS frees the engine and the
/// compiled code in one go; dropping them piece by piece (unmapping each
/// component's code, unregistering its unwind tables) took 0.2 ms of a 3 ms
/// run.
pub fn leave(runtime: Runtime) {
    std::mem::forget(runtime);
}

/// Runs a future on a small single-threaded runtime (timers and sockets on).
/// The runtime is not waited for when it ends: a blocking-pool thread stuck
/// in the kernel must not hold the process.
pub fn block_on<T>(f: impl Future<Output = Result<T, RunError>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .enable_io()
        .build()?;
    let result = runtime.block_on(f);
    runtime.shutdown_background();
    Ok(result?)
}

/// Prints the answer on stdout (or why there is none on stderr).
pub fn print_answer(outcome: RunOutcome) -> u8 {
    let (message, code) = match &outcome.answer {
        Ok(answer) => {
            crate::console::answer(answer);
            return exit::OK;
        }
        Err(e @ AgentError::Failed(_)) => (e.to_string(), exit::AGENT_ERROR),
        Err(e @ AgentError::Incomplete(_)) => (e.to_string(), exit::INCOMPLETE),
    };
    crate::console::error_line(
        &message,
        &[
            ("run_id", json!(outcome.run_id)),
            ("exit_code", json!(code)),
        ],
    );
    code
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::Watchdog;

    #[test]
    fn the_watchdog_acts_only_for_a_run_that_outlives_its_deadline() {
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let _late = Watchdog::with_action(Duration::from_millis(10), move || {
            f.store(true, Ordering::SeqCst)
        });
        let ended = Arc::new(AtomicBool::new(false));
        let e = ended.clone();
        let finished = Watchdog::with_action(Duration::from_millis(100), move || {
            e.store(true, Ordering::SeqCst)
        });
        finished.done();
        // Bounded: both deadlines have passed well before this.
        for _ in 0..100 {
            if fired.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            fired.load(Ordering::SeqCst),
            "a run past its deadline is ended"
        );
        assert!(
            !ended.load(Ordering::SeqCst),
            "a finished run is left alone"
        );
    }
}
