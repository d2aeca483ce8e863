//! `fc-host runs`, `inspect RUN`, `audit RUN`, `replay RUN`, `resume RUN`.
//! The first four only read: they open the journal read-only, beside any
//! run in progress, and never create a state directory.

use std::path::PathBuf;

use femtoclaw_journal::{Event, Journal, RunInfo};
use femtoclaw_policy::OnUncertain;
use femtoclaw_runtime::prelude::*;
use serde_json::{Value, json};

use crate::commands::run;
use crate::console::{out_json, outln};
use crate::state::StateArgs;

fn journal_error(e: femtoclaw_journal::JournalError) -> anyhow::Error {
    RunError::Journal(e.to_string()).into()
}

/// The journal, read-only; `None` when the state directory has none.
fn open(state: &StateArgs) -> anyhow::Result<Option<Journal>> {
    Journal::open_read_only(&state.dir()?).map_err(journal_error)
}

/// A run's record and its events, verified.
fn load(state: &StateArgs, run: &str) -> anyhow::Result<(RunInfo, Vec<Event>)> {
    let Some(journal) = open(state)? else {
        return Err(journal_error(femtoclaw_journal::JournalError::UnknownRun(
            run.to_owned(),
        )));
    };
    journal.load(run).map_err(journal_error)
}

/// List the runs of the journal.
#[derive(clap::Args)]
pub struct RunsCommand {
    #[command(flatten)]
    state: StateArgs,
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

impl RunsCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let listing = match open(&self.state)? {
            Some(journal) => journal.runs().map_err(journal_error)?,
            None => femtoclaw_journal::Listing {
                runs: Vec::new(),
                damage: Vec::new(),
            },
        };
        let status = |r: &RunInfo| match listing.damage_of(&r.id) {
            Some(_) => "damaged".to_owned(),
            None => r.status.to_string(),
        };
        if self.json {
            let list: Vec<_> = listing
                .runs
                .iter()
                .map(|r| json!({ "id": r.id, "started": r.started, "started_at": utc(r.started, "%Y-%m-%dT%H:%M:%SZ"), "status": status(r), "agent": r.agent, "agent_hash": r.agent_hash, "policy_hash": r.policy_hash }))
                .collect();
            out_json(&json!(list));
        } else {
            outln!(
                "{:<36} {:<20} {:<12} {:<16} {:<16} agent",
                "id",
                "started (UTC)",
                "status",
                "agent sha256",
                "policy sha256"
            );
            for r in &listing.runs {
                outln!(
                    "{:<36} {:<20} {:<12} {:<16} {:<16} {}",
                    r.id,
                    utc(r.started, "%Y-%m-%d %H:%M:%S"),
                    status(r),
                    &r.agent_hash[..16.min(r.agent_hash.len())],
                    &r.policy_hash[..16.min(r.policy_hash.len())],
                    r.agent
                );
            }
        }
        if listing.damage.is_empty() {
            return Ok(crate::exit::OK);
        }
        for damage in &listing.damage {
            crate::console::error_line(&format!("journal: {damage}"), &[]);
        }
        Err(RunError::Journal(format!(
            "{} of the journal's runs are damaged (above); `inspect` shows each run only when it is whole",
            listing.damage.len()
        ))
        .into())
    }
}

/// Print a run's timeline: every journaled event, in order, after checking
/// the hash chain and that no event is missing.
#[derive(clap::Args)]
pub struct InspectCommand {
    /// The run id.
    run: String,
    #[command(flatten)]
    state: StateArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl InspectCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let (info, events) = load(&self.state, &self.run)?;
        if self.json {
            out_json(&json!({ "run": info, "events": events }));
            return Ok(crate::exit::OK);
        }
        outln!(
            "run {} ({}), agent {} ({}), policy sha256 {}",
            info.id,
            info.status,
            info.agent,
            info.agent_hash,
            info.policy_hash
        );
        let bundle = &info.plan["bundle"];
        if let (Some(name), Some(source)) = (bundle["name"].as_str(), bundle["source"].as_str()) {
            outln!(
                "bundle {name} {} (sha256 {}) from {source}",
                bundle["version"].as_str().unwrap_or("?"),
                bundle["sha256"].as_str().unwrap_or("?")
            );
        }
        for e in &events {
            outln!("{:>4} {:<14} {}", e.seq, e.kind, summary(&e.kind, &e.data));
        }
        if let Some(outcome) = &info.outcome {
            outln!("outcome: {outcome}");
        }
        Ok(crate::exit::OK)
    }
}

/// One line per event.
fn summary(kind: &str, d: &Value) -> String {
    let cut = |s: String| {
        if s.len() > 120 {
            format!("{}…", &s[..s.floor_char_boundary(120)])
        } else {
            s
        }
    };
    match kind {
        "tool-call" => cut(format!(
            "{} {} (key {}, {})",
            d["name"].as_str().unwrap_or("?"),
            d["arguments"].as_str().unwrap_or(""),
            d["key"].as_str().unwrap_or(""),
            d["effect"]
        )),
        "tool-result" => cut(d["result"].to_string()),
        "inference" => cut(d["result"].to_string()),
        "run-start" => format!("{} tools", d["tools"].as_array().map_or(0, Vec::len)),
        _ => cut(d.to_string()),
    }
}

/// Print the decisions of a run, from its journal: each tool call, whether
/// it was allowed, the policy rule behind the decision, and its outcome
/// (with a refusal's full detail, which the agent is not told); each
/// approval and who gave or refused it; each stop; each choice made for a
/// call of unknown outcome; each turn the model did not complete.
#[derive(clap::Args)]
pub struct AuditCommand {
    /// The run id.
    run: String,
    #[command(flatten)]
    state: StateArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl AuditCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let (info, events) = load(&self.state, &self.run)?;
        let rows = femtoclaw_journal::decisions(&events);
        if self.json {
            out_json(&json!({ "run": info.id, "status": info.status, "decisions": rows }));
            return Ok(crate::exit::OK);
        }
        outln!(
            "run {} ({}), agent {}, policy sha256 {}",
            info.id,
            info.status,
            info.agent_hash,
            info.policy_hash
        );
        for r in rows {
            let s = |k: &str| {
                r[k].as_str().map(str::to_owned).unwrap_or_else(|| {
                    if r[k].is_null() {
                        String::new()
                    } else {
                        r[k].to_string()
                    }
                })
            };
            let unsandboxed = if r["unsandboxed"] == true {
                "  (unsandboxed: a host process ran it)"
            } else {
                ""
            };
            let by = match s("by") {
                by if by.is_empty() => by,
                by => format!(" by {by}"),
            };
            let detail = match s("detail") {
                d if d.is_empty() => d,
                d => format!("  ({d})"),
            };
            outln!(
                "{:>4}  {:<6} {:<20} rule {:<28} {}{by}{unsandboxed}{detail}",
                r["event"],
                s("decision"),
                s("tool"),
                s("rule"),
                s("outcome")
            );
        }
        Ok(crate::exit::OK)
    }
}

/// Re-run a journaled run without calling any brain or capability; the
/// agent must make exactly the recorded requests. Needs only the journal.
#[derive(clap::Args)]
pub struct ReplayCommand {
    /// The run id.
    run: String,
    #[command(flatten)]
    state: StateArgs,
    /// Replay with this agent component instead of the recorded one (to
    /// check that a new version behaves the same).
    #[arg(long, value_name = "AGENT.wasm")]
    agent: Option<PathBuf>,
}

impl ReplayCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let dir = self.state.dir()?;
        let agent = self.agent.map(ComponentRef::File);
        let runtime = run::runtime(&self.state)?;
        let outcome = run::block_on(runtime.replay(&dir, &self.run, agent));
        run::leave(runtime);
        Ok(run::print_answer(outcome?))
    }
}

/// What to do with a `write` call of unknown outcome.
#[derive(Clone, Copy, clap::ValueEnum)]
enum UncertainChoice {
    /// Stop and say so (the run stays resumable).
    Fail,
    /// Run it again with the same idempotency key.
    Retry,
    /// Do not run it again; the agent is told its outcome is unknown.
    Skip,
}

/// Continue a killed run from where its journal ends.
#[derive(clap::Args)]
pub struct ResumeCommand {
    /// The run id.
    run: String,
    #[command(flatten)]
    state: StateArgs,
    /// What to do with a `write` call whose outcome is unknown (it was
    /// started but its result never journaled), instead of the policy's
    /// `[journal] on-uncertain`; journaled as the operator's decision.
    #[arg(long, value_enum, value_name = "CHOICE")]
    on_uncertain: Option<UncertainChoice>,
    /// Who answers approval requests the resumed run makes (as for `run`).
    #[arg(long, value_name = "WHO", value_enum)]
    approve: Option<crate::approve::ApproveMode>,
}

impl ResumeCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let dir = self.state.dir()?;
        let runtime = run::runtime(&self.state)?;
        let mut options = Resume {
            on_uncertain: self.on_uncertain.map(|c| match c {
                UncertainChoice::Fail => OnUncertain::Fail,
                UncertainChoice::Retry => OnUncertain::Retry,
                UncertainChoice::Skip => OnUncertain::Skip,
            }),
            ..Resume::default()
        };
        options.hooks.approver = Some(crate::approve::approver(self.approve)?);
        let info = open(&self.state)?.and_then(|j| j.run(&self.run).ok());
        // A bundle run goes on with the bundle it started from: the same
        // digest from the store or its registry, or its file (the runtime
        // checks the bytes against the journaled sha256).
        if let Some(source) = info
            .as_ref()
            .and_then(|i| i.plan["bundle"]["source"].as_str())
        {
            let bundle = if super::oci::is_reference(std::path::Path::new(source)) {
                super::oci::fetch(source, &dir)?.1
            } else {
                super::bundle::read_bundle(std::path::Path::new(source))?
            };
            options.bundle = Some(std::sync::Arc::new(bundle));
        }
        // A resumed run has the same deadline as any run: its policy's.
        let timeout = info
            .and_then(|info| info.plan["policy_text"].as_str().map(str::to_owned))
            .and_then(|text| femtoclaw_policy::Policy::parse_recorded("", &text).ok())
            .map_or(femtoclaw_policy::Limits::default().run_timeout, |p| {
                p.limits.run_timeout
            });
        let watchdog = run::Watchdog::start(&self.run, timeout);
        let outcome = run::block_on(runtime.resume(&dir, &self.run, options));
        watchdog.done();
        run::leave(runtime);
        Ok(run::print_answer(outcome?))
    }
}

/// A journaled start time (Unix seconds) in UTC, as `format` writes it.
fn utc(seconds: u64, format: &str) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(|| seconds.to_string(), |t| t.format(format).to_string())
}
