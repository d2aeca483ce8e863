//! Nothing is lost under kill -9: a long run of `write` calls is killed at
//! seeded random points; every effect that left the sandbox has its intent
//! in the journal, the chain is intact, and `resume` finishes the run with
//! the answer of an uninterrupted run, without applying any write twice.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

const STEPS: usize = 20;

fn setup() -> Scratch {
    let s = Scratch::new();
    s.mkdir("out");
    let mut turns: Vec<serde_json::Value> = (1..=STEPS)
        .map(|i| json!({ "content": null, "tool_calls": [{ "name": "h.append", "arguments": { "path": "/out/log", "line": format!("step {i}") } }] }))
        .collect();
    turns.push(json!({ "content": format!("appended {STEPS} lines") }));
    s.setup(
        &policy(&format!(
            "[limits]\nmax-steps = 64\nmax-tool-calls = 64\n[journal]\non-uncertain = \"retry\"\n[capabilities.h]\ncomponent = {:?}\ntools = [\"append\"]\nmounts = [{{ guest = \"/out\", host = \"out\", mode = \"rw\" }}]\n",
            artifacts::CAP_HOSTILE
        )),
        serde_json::Value::Array(turns),
    );
    s
}

fn log_lines(s: &Scratch) -> Vec<String> {
    std::fs::read_to_string(s.path("out/log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn kill_9_at_random_points_loses_nothing_and_resume_finishes() {
    let s = setup();
    let policy = s.path("policy.toml");
    let state = fresh_dir();
    let started = Instant::now();
    let reference = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .args(["run", "--policy"])
        .arg(&policy));
    let duration = started.elapsed();
    assert_eq!(reference.code, exit::OK, "{reference:#?}");
    assert_eq!(log_lines(&s).len(), STEPS);

    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut killed_mid_run = 0;
    for iteration in 0..12 {
        std::fs::remove_file(s.path("out/log")).ok();
        let state = fresh_dir();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Kill once the log holds a seeded number of lines (so most kills
        // land among the writes, not in start-up), plus a seeded few µs.
        let target = (seed >> 40) as usize % (STEPS + 1);
        let delay = Duration::from_micros((seed >> 20) % 4000);
        let mut child = fc_host()
            .env("FC_STATE_DIR", &state)
            .args(["--log-level", "off", "run", "--policy"])
            .arg(&policy)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + duration * 3;
        while log_lines(&s).len() < target
            && Instant::now() < deadline
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(delay);
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let lines = log_lines(&s);
        let Some(id) = stderr
            .lines()
            .find_map(|l| l.strip_prefix("fc-host: run "))
            .map(str::to_owned)
        else {
            assert!(
                lines.is_empty(),
                "iteration {iteration}: effects without a run: {lines:?}"
            );
            continue;
        };
        let inspect = run(fc_host()
            .env("FC_STATE_DIR", &state)
            .args(["inspect", &id, "--json"]));
        if inspect.code == exit::JOURNAL && inspect.stderr.contains("no run") {
            assert!(
                lines.is_empty(),
                "iteration {iteration}: effects before the run was journaled: {lines:?}"
            );
            continue;
        }
        assert_eq!(
            inspect.code,
            exit::OK,
            "iteration {iteration}: the chain is intact: {inspect:#?}"
        );
        let timeline: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
        let intents: Vec<String> = timeline["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "tool-call")
            .map(|e| e["data"]["key"].as_str().unwrap().to_owned())
            .collect();
        for line in &lines {
            let key = line.split(' ').next().unwrap();
            assert!(
                intents.iter().any(|k| k == key),
                "iteration {iteration}: `{line}` happened but its intent is not in the journal"
            );
        }
        if timeline["run"]["status"] == "running" {
            killed_mid_run += 1;
            let resumed = run(fc_host().env("FC_STATE_DIR", &state).args(["resume", &id]));
            assert_eq!(
                resumed.code,
                exit::OK,
                "iteration {iteration}: {resumed:#?}"
            );
            assert_eq!(resumed.stdout, reference.stdout, "iteration {iteration}");
        }
        let lines = log_lines(&s);
        let expected: Vec<String> = (1..=STEPS).map(|i| format!("{id}:{i} step {i}")).collect();
        assert_eq!(
            lines, expected,
            "iteration {iteration}: every write exactly once, in order"
        );
    }
    assert!(
        killed_mid_run >= 6,
        "the seeded kill points hit the middle of runs ({killed_mid_run})"
    );
}

#[test]
fn an_uncertain_write_stops_a_resume_that_the_operator_then_decides() {
    // A journal whose last event is the intent of a write: the process died
    // while the write ran. Build it by running, then cutting the journal.
    let s = setup();
    let text = std::fs::read_to_string(s.path("policy.toml"))
        .unwrap()
        .replace("\"retry\"", "\"fail\"");
    s.write("policy.toml", &text);
    let (state, id) = killed_during_a_write(&s);
    let resumed = run(fc_host().env("FC_STATE_DIR", &state).args(["resume", &id]));
    assert_eq!(resumed.code, 8, "{resumed:#?}");
    assert!(
        resumed.stderr.contains(&format!(
            "`h.append` (idempotency key `{id}:3`) may or may not have run"
        )),
        "{}",
        resumed.stderr
    );
    // The advice can be followed: the run is still resumable, and the
    // operator's choice wins over the journaled policy.
    assert!(
        resumed
            .stderr
            .contains(&format!("fc-host resume {id} --on-uncertain retry")),
        "{}",
        resumed.stderr
    );
    let runs = fc(&state, &["runs", "--json"]);
    assert!(runs.stdout.contains("\"status\": \"running\""), "{runs:#?}");
    let again = fc(&state, &["resume", &id]);
    assert_eq!(
        again.code, 8,
        "still resumable, still the policy's `fail`: {again:#?}"
    );
    let retried = fc(&state, &["resume", &id, "--on-uncertain", "retry"]);
    assert_eq!(retried.code, exit::OK, "{retried:#?}");
    assert_eq!(retried.stdout.trim(), format!("appended {STEPS} lines"));
    // The decision is journaled with who made it, audited, and replayed.
    let audit = fc(&state, &["audit", &id, "--json"]);
    let report: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    let decision = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["outcome"] == "uncertain")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(decision["decision"], "retry");
    assert_eq!(decision["by"], "operator");
    assert_eq!(decision["rule"], "resume --on-uncertain");
    assert_eq!(decision["key"], format!("{id}:3"));
    let replay = fc(&state, &["replay", &id]);
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
    assert_eq!(replay.stdout, retried.stdout);
}

#[test]
fn an_uncertain_write_skipped_by_the_operator_is_reported_to_the_agent() {
    let s = setup();
    let (state, id) = killed_during_a_write(&s);
    let skipped = fc(&state, &["resume", &id, "--on-uncertain", "skip"]);
    assert_eq!(skipped.code, exit::OK, "{skipped:#?}");
    let (_, events) = journal_events(&state, &id);
    let result = events
        .iter()
        .find(|e| e["kind"] == "tool-result" && e["seq"].as_u64() > Some(8))
        .unwrap();
    let message = result["data"]["result"]["Err"]["Failed"].as_str().unwrap();
    assert!(
        message.contains("may or may not have run") && message.contains("`skip`"),
        "{message}"
    );
}

/// A journal whose last event is the intent of a write: the process died
/// while the write ran (built by running, then cutting the journal).
/// Returns the state directory and the run id.
fn killed_during_a_write(s: &Scratch) -> (std::path::PathBuf, String) {
    let state = fresh_dir();
    let out = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .args(["run", "--policy"])
        .arg(s.path("policy.toml")));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let id = out.run_id();
    // Events: 0 start, then per step inference, tool-call, tool-result.
    // Keep up to the tool-call of step 3 (event 8).
    cut_run(&state, &id, 9);
    (state, id)
}

/// A run's record and events as `inspect --json` prints them.
fn journal_events(
    state: &std::path::Path,
    id: &str,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    let out = fc(state, &["inspect", id, "--json"]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    (v["run"].clone(), v["events"].as_array().unwrap().clone())
}
