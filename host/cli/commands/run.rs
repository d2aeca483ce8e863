//! `fc-host run [AGENT.wasm] --policy FILE [--brain SPEC] [--task TEXT]`.

use std::path::PathBuf;

use anyhow::bail;
use femtoclaw_runtime::prelude::*;

use crate::exit;
use crate::state::StateArgs;

/// Run an agent under a policy.
#[derive(clap::Args)]
pub struct RunCommand {
    /// An agent component (`agent` world); the built-in agent if omitted.
    agent: Option<PathBuf>,
    /// The policy file.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The brain: `scripted:FILE` (a JSON script) or `PATH.wasm` (a
    /// component of the `brain` world). Defaults to the policy's [brain].
    #[arg(long, value_name = "SPEC")]
    brain: Option<String>,
    /// The task handed to the agent.
    #[arg(long, value_name = "TEXT", default_value = "")]
    task: String,
    #[command(flatten)]
    state: StateArgs,
}

impl RunCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let policy = Policy::load(&self.policy)?;
        let mut plan = RunPlan::new(policy, self.task);
        if let Some(agent) = self.agent {
            plan.agent = ComponentRef::File(agent);
        }
        plan.brain = self.brain.as_deref().map(parse_brain).transpose()?;
        plan.state = Some(self.state.dir()?);
        let run_id = femtoclaw_runtime::new_run_id();
        eprintln!("fc-host: run {run_id}");
        plan.run_id = Some(run_id);
        let runtime = runtime(&self.state)?;
        let outcome = block_on(runtime.run(plan))?;
        Ok(print_answer(outcome))
    }
}

/// The runtime, with its compile cache in the state directory.
pub fn runtime(state: &StateArgs) -> anyhow::Result<Runtime> {
    Ok(Runtime::new()?.with_cache(&state.dir()?.join("cache"))?)
}

/// Runs a future on a small single-threaded runtime (timers and sockets on).
pub fn block_on<T>(f: impl Future<Output = Result<T, RunError>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .enable_io()
        .build()?;
    Ok(runtime.block_on(f)?)
}

/// Prints the answer on stdout (or the agent's error on stderr).
pub fn print_answer(outcome: RunOutcome) -> u8 {
    match outcome.answer {
        Ok(answer) => {
            println!("{answer}");
            exit::OK
        }
        Err(error) => {
            eprintln!("fc-host: the agent failed: {error}");
            exit::AGENT_ERROR
        }
    }
}

fn parse_brain(spec: &str) -> anyhow::Result<BrainChoice> {
    if let Some(file) = spec.strip_prefix("scripted:") {
        return Ok(BrainChoice::Scripted(PathBuf::from(file)));
    }
    if spec.ends_with(".wasm") {
        return Ok(BrainChoice::Component(PathBuf::from(spec)));
    }
    bail!(RunError::Config(format!(
        "unknown --brain `{spec}` (expected `scripted:FILE` or `PATH.wasm`)"
    )))
}
