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
fn an_uncertain_write_stops_a_resume_when_the_policy_says_fail() {
    // A journal whose last event is the intent of a write: the process died
    // while the write ran. Build it by running, then cutting the journal.
    let s = setup();
    let text = std::fs::read_to_string(s.path("policy.toml"))
        .unwrap()
        .replace("\"retry\"", "\"fail\"");
    s.write("policy.toml", &text);
    let state = fresh_dir();
    let out = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .args(["run", "--policy"])
        .arg(s.path("policy.toml")));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let id = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("fc-host: run "))
        .unwrap()
        .to_owned();
    let db = redb::Database::open(state.join("journal.redb")).unwrap();
    let events: redb::TableDefinition<(&[u8], u64), &[u8]> = redb::TableDefinition::new("events");
    let runs: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("runs");
    let txn = db.begin_write().unwrap();
    {
        use redb::ReadableTable;
        let mut t = txn.open_table(events).unwrap();
        // Events: 0 start, then per step inference, tool-call, tool-result.
        // Keep up to the tool-call of step 3 (event 8).
        for seq in 9..100 {
            t.remove((id.as_bytes(), seq)).unwrap();
        }
        let mut r = txn.open_table(runs).unwrap();
        let info =
            String::from_utf8(r.get(id.as_bytes()).unwrap().unwrap().value().to_vec()).unwrap();
        let info = info.replace("\"status\":\"ok\"", "\"status\":\"running\"");
        r.insert(id.as_bytes(), info.as_bytes()).unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    let resumed = run(fc_host().env("FC_STATE_DIR", &state).args(["resume", &id]));
    assert_eq!(resumed.code, 8, "{resumed:#?}");
    assert!(
        resumed.stderr.contains(&format!(
            "`h.append` (idempotency key `{id}:3`) may or may not have run"
        )),
        "{}",
        resumed.stderr
    );
}
