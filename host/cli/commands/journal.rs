//! `fc-host runs`, `inspect RUN`, `replay RUN`, `resume RUN`.

use std::path::PathBuf;

use femtoclaw_journal::Journal;
use femtoclaw_runtime::prelude::*;
use serde_json::json;

use crate::commands::run;
use crate::state::StateArgs;

fn open(state: &StateArgs) -> anyhow::Result<Journal> {
    let dir = state.dir()?;
    Journal::open(&dir).map_err(|e| RunError::Journal(e.to_string()).into())
}

/// A run's record and its events (hash chain checked).
fn load(
    state: &StateArgs,
    run: &str,
) -> anyhow::Result<(femtoclaw_journal::RunInfo, Vec<femtoclaw_journal::Event>)> {
    Ok(open(state)?
        .load(run)
        .map_err(|e| RunError::Journal(e.to_string()))?)
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
        let runs = open(&self.state)?
            .runs()
            .map_err(|e| RunError::Journal(e.to_string()))?;
        if self.json {
            let list: Vec<_> = runs
                .iter()
                .map(|r| json!({ "id": r.id, "started": r.started, "status": r.status, "agent": r.agent, "agent_hash": r.agent_hash, "policy_hash": r.policy_hash }))
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        } else {
            println!(
                "{:<20} {:>11} {:<12} {:<16} {:<16} agent",
                "id", "started", "status", "agent sha256", "policy sha256"
            );
            for r in runs {
                let status = serde_json::to_value(r.status)?;
                println!(
                    "{:<20} {:>11} {:<12} {:<16} {:<16} {}",
                    r.id,
                    r.started,
                    status.as_str().unwrap_or("?"),
                    &r.agent_hash[..16.min(r.agent_hash.len())],
                    &r.policy_hash[..16.min(r.policy_hash.len())],
                    r.agent
                );
            }
        }
        Ok(crate::exit::OK)
    }
}

/// Print a run's timeline: every journaled event, in order, after checking
/// the hash chain.
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
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "run": info, "events": events }))?
            );
            return Ok(crate::exit::OK);
        }
        println!(
            "run {} ({:?}), agent {} ({}), policy sha256 {}",
            info.id, info.status, info.agent, info.agent_hash, info.policy_hash
        );
        for e in &events {
            println!("{:>4} {:<14} {}", e.seq, e.kind, summary(&e.kind, &e.data));
        }
        if let Some(outcome) = &info.outcome {
            println!("outcome: {outcome}");
        }
        Ok(crate::exit::OK)
    }
}

/// One line per event.
fn summary(kind: &str, d: &serde_json::Value) -> String {
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
/// it was allowed, the policy rule behind the decision, and its outcome.
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
        let mut rows = Vec::new();
        let mut pending: Option<&femtoclaw_journal::Event> = None;
        for e in &events {
            match e.kind.as_str() {
                "tool-call" => pending = Some(e),
                "tool-result" => {
                    let Some(call) = pending.take() else { continue };
                    let name = call.data["name"].as_str().unwrap_or("?");
                    let refused = e.data["refused"] == true;
                    let rule = match e.data["rule"].as_str() {
                        Some(r) if !r.is_empty() => r.to_owned(),
                        _ if refused => "?".to_owned(),
                        _ => format!(
                            "capabilities.{}.tools",
                            name.split('.').next().unwrap_or("?")
                        ),
                    };
                    let outcome = match &e.data["result"] {
                        serde_json::Value::Object(m) if m.contains_key("Ok") => "ok".to_owned(),
                        serde_json::Value::Object(m) => m
                            .get("Err")
                            .and_then(|e| e.as_object())
                            .and_then(|e| e.keys().next().cloned())
                            .unwrap_or_default(),
                        _ => "?".to_owned(),
                    };
                    rows.push(json!({
                        "event": call.seq, "tool": name, "key": call.data["key"], "arguments": call.data["arguments"],
                        "decision": if refused { "deny" } else { "allow" }, "rule": rule, "outcome": outcome,
                    }));
                }
                "stop" => rows
                    .push(json!({ "event": e.seq, "decision": "stop", "rule": e.data["reason"] })),
                _ => {}
            }
        }
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({ "run": info.id, "status": info.status, "decisions": rows })
                )?
            );
            return Ok(crate::exit::OK);
        }
        println!(
            "run {} ({:?}), agent {}, policy sha256 {}",
            info.id, info.status, info.agent_hash, info.policy_hash
        );
        for r in rows {
            let s = |k: &str| {
                r[k].as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| r[k].to_string())
            };
            println!(
                "{:>4}  {:<6} {:<20} rule {:<28} {}",
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
/// agent must make exactly the recorded requests.
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

/// Continue a run that was killed from where its journal ends.
#[derive(clap::Args)]
pub struct ResumeCommand {
    /// The run id.
    run: String,
    #[command(flatten)]
    state: StateArgs,
}

impl ResumeCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let dir = self.state.dir()?;
        let runtime = run::runtime(&self.state)?;
        let outcome = run::block_on(runtime.resume(&dir, &self.run));
        run::leave(runtime);
        Ok(run::print_answer(outcome?))
    }
}
