//! `fc-host run [AGENT.wasm] --policy FILE [--brain SPEC] [--task TEXT]`.

use std::path::PathBuf;

use femtoclaw_policy::{BrainSpec, Protocol, ProviderBrain};
use femtoclaw_runtime::prelude::*;

use crate::exit;
use crate::state::StateArgs;

/// Run an agent under a policy.
#[derive(clap::Args)]
pub struct RunCommand {
    /// An agent component (`agent` world), or a bundle (`.fcb`, verified
    /// first, whose agent and `bundle:NAME` capabilities run); the built-in
    /// agent if omitted.
    agent: Option<PathBuf>,
    /// The policy file.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The brain: `local[=URL]` (an OpenAI-compatible server, Ollama's
    /// `http://127.0.0.1:11434/v1` by default, no key), `remote` (the
    /// policy's provider, else `OPENAI_BASE_URL` / `OPENAI_API_KEY`),
    /// `scripted:FILE` (a JSON script) or `PATH.wasm` (a component of the
    /// `brain` world). Defaults to the policy's [brain]. The model comes from
    /// the policy, else `FC_MODEL`.
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
}

impl RunCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let policy = Policy::load(&self.policy)?;
        let mut plan = RunPlan::new(policy, self.task);
        match self.agent {
            Some(path) if path.extension().is_some_and(|e| e == "fcb") => {
                let bundle = crate::commands::bundle::admit(
                    &path,
                    &plan.policy,
                    &self.state,
                    self.allow_downgrade,
                )?;
                plan.bundle = Some(std::sync::Arc::new(bundle));
            }
            Some(agent) => plan.agent = ComponentRef::File(agent),
            None => {}
        }
        plan.brain = self
            .brain
            .as_deref()
            .map(|b| parse_brain(b, &plan.policy))
            .transpose()?;
        plan.state = Some(self.state.dir()?);
        let run_id = femtoclaw_runtime::new_run_id();
        eprintln!("fc-host: run {run_id}");
        plan.run_id = Some(run_id);
        let runtime = runtime(&self.state)?;
        let outcome = block_on(runtime.run(plan));
        if let Some(file) = &self.metrics {
            std::fs::write(file, runtime.metrics().render()).map_err(|e| {
                anyhow::anyhow!("cannot write metrics to `{}`: {e}", file.display())
            })?;
        }
        leave(runtime);
        Ok(print_answer(outcome?))
    }
}

/// The runtime, with its compile cache in the state directory.
pub fn runtime(state: &StateArgs) -> anyhow::Result<Runtime> {
    Ok(Runtime::new()?.with_cache(&state.dir()?.join("cache"))?)
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

fn parse_brain(spec: &str, policy: &Policy) -> anyhow::Result<BrainChoice> {
    let config = |m: String| anyhow::Error::from(RunError::Config(m));
    let policy_provider = match &policy.brain {
        Some(BrainSpec::Provider(p)) => Some(p.clone()),
        _ => None,
    };
    let model = || {
        policy_provider
            .as_ref()
            .map(|p| p.model.clone())
            .or_else(|| std::env::var("FC_MODEL").ok())
            .or_else(|| std::env::var("OPENAI_MODEL").ok())
    };
    if let Some(rest) = spec.strip_prefix("local") {
        let url = match rest.strip_prefix('=') {
            Some(url) => url.to_owned(),
            None if rest.is_empty() => "http://127.0.0.1:11434/v1".to_owned(),
            None => return Err(config(format!("unknown --brain `{spec}`"))),
        };
        let model = model().unwrap_or_else(|| "llama3.2".to_owned());
        return ProviderBrain::new(Protocol::Openai, &url, &model, None)
            .map(BrainChoice::Provider)
            .map_err(config);
    }
    if spec == "remote" {
        if let Some(p) = policy_provider.clone() {
            return Ok(BrainChoice::Provider(p));
        }
        let url = std::env::var("OPENAI_BASE_URL")
            .unwrap_or_else(|_| "https://api.openai.com/v1".to_owned());
        let model = model().ok_or_else(|| {
            config("--brain remote needs a model: set [brain] in the policy, or FC_MODEL".into())
        })?;
        if std::env::var_os("OPENAI_API_KEY").is_none() {
            return Err(config("--brain remote needs a key: set OPENAI_API_KEY, or [brain] api-key-env in the policy".into()));
        }
        return ProviderBrain::new(
            Protocol::Openai,
            &url,
            &model,
            Some("OPENAI_API_KEY".into()),
        )
        .map(BrainChoice::Provider)
        .map_err(config);
    }
    if let Some(file) = spec.strip_prefix("scripted:") {
        return Ok(BrainChoice::Scripted(PathBuf::from(file)));
    }
    if spec.ends_with(".wasm") {
        return Ok(BrainChoice::Component(PathBuf::from(spec)));
    }
    Err(config(format!(
        "unknown --brain `{spec}` (expected `local[=URL]`, `remote`, `scripted:FILE` or `PATH.wasm`)"
    )))
}
