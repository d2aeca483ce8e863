//! The journal keeps its promises under damage and beside other runs: a
//! damaged run is never shown as a shorter complete one, a killed run is
//! there to resume, a replay needs nothing but the journal, and reading
//! never waits for a run in progress.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::*;

fn hello(state: &std::path::Path) -> Output {
    fc(state, &["run", "--policy", "examples/hello/policy.toml"])
}

#[test]
fn a_damaged_journal_never_shows_a_shorter_complete_run() {
    let state = fresh_dir();
    // A run of many events: the hello example's agent, 40 reads.
    let s = Scratch::new();
    s.write("data/a.txt", &"some text ".repeat(30));
    let reads: Vec<(&str, Value)> = (0..40)
        .map(|_| ("fs.read_file", json!({ "path": "/data/a.txt" })))
        .collect();
    s.setup(
        &policy(
            "[limits]\nmax-tool-calls = 64\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"ro\" }]\n",
        ),
        calls(&reads),
    );
    let out = fc(
        &state,
        &["run", "--policy", s.path("policy.toml").to_str().unwrap()],
    );
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let id = first_run_id(&state);
    let whole = fc(&state, &["inspect", &id, "--json"]);
    let events = serde_json::from_str::<Value>(&whole.stdout).unwrap()["events"]
        .as_array()
        .unwrap()
        .len();
    let audit_rows = fc(&state, &["audit", &id]).stdout.lines().count();
    let file = state.join("journal.redb");
    let good = std::fs::read(&file).unwrap();
    let (mut refused, mut intact) = (0, 0);
    for offset in (0..good.len()).step_by(good.len() / 150 + 1) {
        let mut bytes = good.clone();
        bytes[offset] ^= 0x10;
        std::fs::write(&file, &bytes).unwrap();
        let inspect = fc(&state, &["inspect", &id, "--json"]);
        assert!(!inspect.stderr.contains("panicked"), "{}", inspect.stderr);
        match inspect.code {
            exit::OK => {
                let shown: Value = serde_json::from_str(&inspect.stdout).unwrap();
                assert_eq!(
                    shown["events"].as_array().unwrap().len(),
                    events,
                    "offset {offset}: shown whole or not at all"
                );
                let audit = fc(&state, &["audit", &id]);
                if audit.code == exit::OK {
                    assert_eq!(audit.stdout.lines().count(), audit_rows, "offset {offset}");
                }
                intact += 1;
            }
            exit::JOURNAL => {
                assert!(inspect.stderr.contains("journal"), "{}", inspect.stderr);
                refused += 1;
            }
            other => panic!("offset {offset}: exit {other}: {inspect:#?}"),
        }
        let runs = fc(&state, &["runs", "--json"]);
        assert!(
            runs.code == exit::OK || runs.code == exit::JOURNAL,
            "offset {offset}: {runs:#?}"
        );
    }
    assert!(
        refused > 0 && intact > 0,
        "{refused} refused, {intact} intact"
    );
}

fn spawn(state: &std::path::Path, args: &[&str]) -> Child {
    fc_host()
        .env("FC_STATE_DIR", state)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The newest run's id, once the journal lists one (bounded wait).
fn wait_for_run(state: &std::path::Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = fc(state, &["runs", "--json"]);
        if runs.code == exit::OK
            && let Ok(Value::Array(list)) = serde_json::from_str::<Value>(&runs.stdout)
            && let Some(run) = list.last()
        {
            return run.clone();
        }
        assert!(Instant::now() < deadline, "no run appeared: {runs:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn reading_and_other_runs_go_on_beside_a_run_in_progress() {
    let s = Scratch::new();
    s.setup(
        &policy("[limits]\nrun-timeout = \"60s\"\nfuel = 1000000000000\n"),
        json!([]),
    );
    let state = fresh_dir();
    // An agent that spins: its run is in progress until it is killed.
    let mut spinning = spawn(
        &state,
        &[
            "run",
            artifacts::AGENT_HOSTILE,
            "--policy",
            s.path("policy.toml").to_str().unwrap(),
            "--task",
            "spin",
        ],
    );
    let run = wait_for_run(&state);
    assert_eq!(
        run["status"], "running",
        "durable before the agent ran: {run}"
    );
    let id = run["id"].as_str().unwrap();
    for args in [vec!["runs"], vec!["inspect", id], vec!["audit", id]] {
        let out = fc(&state, &args);
        assert_eq!(out.code, exit::OK, "{args:?} beside the run: {out:#?}");
    }
    // Another run on the same state directory, at the same time.
    let other = hello(&state);
    assert_eq!(other.code, exit::OK, "{other:#?}");
    // Killed with kill -9 before any write: still there, and resumable.
    spinning.kill().unwrap();
    spinning.wait().unwrap();
    let runs: Value = serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    let statuses: Vec<(&str, &str)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses.len(), 2, "{runs:#}");
    assert!(statuses.contains(&(id, "running")), "{statuses:?}");
    let inspect = fc(&state, &["inspect", id, "--json"]);
    assert_eq!(inspect.code, exit::OK, "{inspect:#?}");
}

#[test]
fn a_replay_needs_nothing_but_the_journal() {
    // A run with a mount, a brain script and an agent file, all in a
    // directory that is removed before the replay (another machine would
    // not have them either).
    let s = Scratch::new();
    s.write("data/a.txt", "apples");
    let agent = s.path("agent.wasm");
    std::fs::copy(artifacts::AGENT_ECHO, &agent).unwrap();
    s.setup(
        &policy(
            "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"ro\" }]\n",
        ),
        calls(&[("fs.read_file", json!({ "path": "/data/a.txt" }))]),
    );
    let state = fresh_dir();
    let out = fc(
        &state,
        &[
            "run",
            agent.to_str().unwrap(),
            "--policy",
            s.path("policy.toml").to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let id = first_run_id(&state);
    drop(s);
    let replay = fc(&state, &["replay", &id]);
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
    assert_eq!(replay.stdout, out.stdout);
    assert!(replay.stdout.contains("apples"));
}
