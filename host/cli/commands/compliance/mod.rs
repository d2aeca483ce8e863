//! `fc-host compliance [AGENT] --policy P`: checks this policy and these
//! components, not the project's fixtures (docs/compliance.md lists every
//! check and what it proves).

mod determinism;
mod network;
mod performance;
mod probe;
mod protocol;
mod report;
mod safety;
mod secrets;

use std::path::PathBuf;

use anyhow::Context as _;
use femtoclaw_runtime::prelude::*;
use femtoclaw_runtime::{Hooks, SessionPlan};

use report::Report;

use crate::state::StateArgs;

/// The sections, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// Fresh runs compared, the recorded run replayed.
    Determinism,
    /// Malformed and hostile calls of every granted tool refused.
    Protocol,
    /// Each capability's grant attacked from inside the sandbox.
    Safety,
    /// A trivial run, a tool call and memory beside a bare baseline.
    Performance,
}

/// Check a policy and its components: determinism, hostile tool calls,
/// and each capability's grant attacked from inside the sandbox.
#[derive(clap::Args)]
pub struct ComplianceCommand {
    /// The agent: a component, a bundle (`.fcb`) or `oci://…` (as for
    /// `fc-host run`); the built-in agent if omitted.
    agent: Option<PathBuf>,
    /// The policy file, or a preset (`Strict`, `Standard`, `Dev`).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// The brain of the determinism runs (as for `fc-host run`); a script
    /// (`scripted:FILE`) makes two fresh runs comparable.
    #[arg(long, value_name = "SPEC")]
    brain: Option<String>,
    /// The task of the determinism runs.
    #[arg(long, value_name = "TEXT", default_value = "")]
    task: String,
    /// How many times the recorded run is replayed.
    #[arg(long, value_name = "N", default_value_t = 100)]
    replays: usize,
    /// Run only these sections (repeatable; default: all).
    #[arg(long = "only", value_name = "SECTION", value_enum)]
    only: Vec<Section>,
    #[command(flatten)]
    state: StateArgs,
    /// Fail the performance check of a trivial run slower than this (median).
    #[arg(long, value_name = "MS")]
    max_run_ms: Option<f64>,
    /// Fail the performance check of a tool call whose overhead over the
    /// bare call is more than this (median).
    #[arg(long, value_name = "US")]
    max_call_overhead_us: Option<f64>,
    /// Fail the performance check of peak memory above this.
    #[arg(long, value_name = "MIB")]
    max_rss_mib: Option<f64>,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the report as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

impl ComplianceCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let policy = Policy::load(&self.policy)?;
        let mut plan = RunPlan::new(policy, self.task.clone());
        super::run::admit_agent(&mut plan, self.agent.as_deref(), &self.state, false)?;
        plan.brain = femtoclaw_runtime::choose_brain(self.brain.as_deref(), &plan.policy)?;
        // Approval requests of the runs are denied: nobody is asked.
        let runtime = super::run::runtime(&self.state)?;
        // The user's own directories, which no mount may reach.
        let (state, cache) = (self.state.dir()?, self.state.cache_dir()?);
        // The runs journal here, never into the user's state.
        let scratch = tempfile::tempdir().context("cannot make a scratch state directory")?;
        let wanted = |s: Section| self.only.is_empty() || self.only.contains(&s);
        let mut report = Report::default();
        super::run::block_on(async {
            // A section that cannot go on (a capability that does not
            // start, a damaged journal) ends the command with that error's
            // own exit code.
            let fail = |e: anyhow::Error| {
                e.downcast::<RunError>()
                    .unwrap_or_else(|e| RunError::Internal(format!("{e:#}")))
            };
            if wanted(Section::Determinism) {
                determinism::check(&runtime, &plan, self.replays, scratch.path(), &mut report)
                    .await
                    .map_err(fail)?;
            }
            if wanted(Section::Protocol) {
                let session = SessionPlan {
                    policy: plan.policy.clone(),
                    client: "fc-host compliance".into(),
                    state: None,
                    bundle: plan.bundle.clone(),
                    hooks: Hooks::default(),
                };
                protocol::check(&runtime, session, &mut report)
                    .await
                    .map_err(fail)?;
            }
            if wanted(Section::Safety) {
                let own = safety::OwnDirs {
                    state: &state,
                    cache: &cache,
                };
                safety::check(&runtime, &plan.policy, own, scratch.path(), &mut report)
                    .await
                    .map_err(fail)?;
            }
            if wanted(Section::Performance) {
                let thresholds = performance::Thresholds {
                    run_ms: self.max_run_ms,
                    call_overhead_us: self.max_call_overhead_us,
                    rss_mib: self.max_rss_mib,
                };
                performance::check(&runtime, &plan, scratch.path(), thresholds, &mut report)
                    .await
                    .map_err(fail)?;
            }
            Ok(())
        })?;
        super::run::leave(runtime);
        if let Some(file) = &self.junit {
            std::fs::write(file, report.junit()).with_context(|| {
                format!("cannot write the JUnit report to `{}`", file.display())
            })?;
        }
        if self.json {
            crate::console::out_json(&report.json());
        } else {
            crate::console::write_stdout(&report.table());
        }
        Ok(if report.failed() == 0 {
            crate::exit::OK
        } else {
            crate::exit::COMPLIANCE
        })
    }
}

/// At most `max` characters of `text`, on one line, with `…` if cut.
fn shorten(text: &str, max: usize) -> String {
    let line = text.replace(['\n', '\r'], " ");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}
