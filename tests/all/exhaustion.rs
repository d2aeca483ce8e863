//! A guest cannot exhaust what the host needs to keep its promises: the
//! disk and memory through durable `memory` or the journal, the run's
//! thread through a file that blocks, and every limit it hits is reported
//! as the limit it is (exit 3), naming it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

fn hostile_agent(s: &Scratch, state: &std::path::Path, task: &str) -> Output {
    s.run_agent(state, artifacts::AGENT_HOSTILE, Some(task))
}

fn answer(out: &Output) -> Value {
    assert_eq!(out.code, exit::OK, "{out:#?}");
    serde_json::from_str(out.stdout.trim()).unwrap()
}

#[test]
fn memory_quotas_bound_what_an_agent_keeps() {
    let s = Scratch::new();
    s.setup(&policy(""), json!([]));
    let state = fresh_dir();
    // The write that grew a journal to 2.7 GB: 6000 values of 64 KiB.
    let flood = answer(&hostile_agent(&s, &state, "fill:6000:65536"));
    let per_value = 65536 + "fill/0".len();
    assert_eq!(
        flood["stored"],
        (1 << 20) / per_value,
        "`memory.max-written` (1 MiB per run) ends it: {flood}"
    );
    assert_eq!(
        flood["refused"]["quota-exceeded"],
        6000 - flood["stored"].as_u64().unwrap()
    );
    assert!(
        flood["last_error"]
            .as_str()
            .unwrap()
            .contains("`memory.max-written` allows 1048576 per run"),
        "{flood}"
    );
    let journal = std::fs::metadata(state.join("journal.redb")).unwrap().len();
    assert!(
        journal < 16 << 20,
        "the journal stays small: {journal} bytes"
    );

    // Tight quotas from the policy: keys per agent, bytes in the directory,
    // value size; each refusal is typed and names its key.
    s.write(
        "policy.toml",
        &policy("[memory]\nmax-keys = 3\nmax-value = \"100B\"\nmax-stored = \"250B\"\n"),
    );
    let state = fresh_dir();
    let keys = answer(&hostile_agent(&s, &state, "fill:10:10"));
    assert_eq!(
        (
            keys["stored"].as_u64(),
            keys["refused"]["quota-exceeded"].as_u64()
        ),
        (Some(3), Some(7)),
        "{keys}"
    );
    assert!(
        keys["last_error"]
            .as_str()
            .unwrap()
            .contains("`memory.max-keys` allows 3"),
        "{keys}"
    );
    let big = answer(&hostile_agent(&s, &state, "fill:1:101"));
    assert_eq!(big["refused"]["too-large"], 1, "{big}");
    assert!(
        big["last_error"]
            .as_str()
            .unwrap()
            .contains("`memory.max-value`"),
        "{big}"
    );
    // Rewriting existing keys with larger values fills the directory.
    let stored = answer(&hostile_agent(&s, &state, "fill:3:90"));
    assert_eq!(stored["stored"], 2, "3 × 96 B > 250 B: {stored}");
    assert!(
        stored["last_error"]
            .as_str()
            .unwrap()
            .contains("`memory.max-stored` allows 250"),
        "{stored}"
    );
    // A replay answers each write as the run did.
    let runs: Value = serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    let last = runs.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let replay = fc(&state, &["replay", &last]);
    assert_eq!(answer(&replay), stored);
}

#[test]
fn the_journal_quota_stops_a_run_as_a_limit() {
    let s = Scratch::new();
    let many: Vec<(&str, Value)> = (0..40)
        .map(|i| ("h.echo", json!({ "pad": "x".repeat(1000), "i": i })))
        .collect();
    s.setup(
        &policy(&format!(
            "[limits]\nmax-journal = \"16KiB\"\nmax-tool-calls = 64\n[capabilities.h]\ncomponent = {:?}\ntools = [\"echo\"]\n",
            artifacts::CAP_HOSTILE
        )),
        calls(&many),
    );
    let state = fresh_dir();
    let out = fc(
        &state,
        &[
            "run",
            artifacts::AGENT_ECHO,
            "--policy",
            s.path("policy.toml").to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, exit::LIMIT, "{out:#?}");
    assert!(
        out.stderr.contains(
            "journal quota exhausted: the run's events exceed `limits.max-journal` (16384 bytes)"
        ),
        "{}",
        out.stderr
    );
    let id = first_run_id(&state);
    let inspect: Value =
        serde_json::from_str(&fc(&state, &["inspect", &id, "--json"]).stdout).unwrap();
    assert_eq!(inspect["run"]["status"], "limit");
    let events = inspect["events"].as_array().unwrap();
    assert!(events.len() < 20, "stopped early: {} events", events.len());
    assert_eq!(events[events.len() - 2]["kind"], "stop");
    let replay = fc(&state, &["replay", &id]);
    assert_eq!(
        replay.code,
        exit::LIMIT,
        "a replay stops where the run did: {replay:#?}"
    );
}

/// `fc-host run` that must end within `limit` (the test fails rather than
/// hangs when it does not).
fn run_bounded(cmd: &mut std::process::Command, limit: Duration) -> Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return Output {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            };
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("fc-host did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn special_files_in_a_mount_are_refused_and_the_run_ends() {
    let s = Scratch::new();
    s.write("data/plain.txt", "plain");
    let fifo = s.path("data/fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    s.setup(
        &policy(
            "[limits]\nrun-timeout = \"20s\"\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\", \"list_dir\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"ro\" }, { guest = \"/dev\", host = \"/dev\", mode = \"ro\" }]\n",
        ),
        calls(&[
            ("fs.read_file", json!({ "path": "/data/fifo" })),
            ("fs.read_file", json!({ "path": "/dev/zero" })),
            ("fs.list_dir", json!({ "path": "/data" })),
            ("fs.read_file", json!({ "path": "/data/plain.txt" })),
        ]),
    );
    let state = fresh_dir();
    let out = run_bounded(
        fc_host()
            .env("FC_STATE_DIR", &state)
            .args(["run", artifacts::AGENT_ECHO, "--policy"])
            .arg(s.path("policy.toml")),
        Duration::from_secs(60),
    );
    let t = out.transcript();
    assert_eq!(kinds(&t), ["failed", "failed", "ok", "ok"], "{t:#?}");
    for refused in &t[..2] {
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("is a special file (a FIFO, socket or device): not supported"),
            "{refused}"
        );
    }
    assert!(
        t[2]["ok"].as_str().unwrap().contains("\"fifo\""),
        "listing still works"
    );
    let runs: Value = serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs[0]["status"], "ok", "the journal holds the end");
}

#[test]
fn limits_are_reported_as_limits_naming_the_limit() {
    let s = Scratch::new();
    s.setup(
        &policy("[limits]\nfuel = 200000000\nmemory = \"64MiB\"\n"),
        json!([]),
    );
    let state = fresh_dir();
    // One host call with more than the host takes in one call.
    let big = hostile_agent(&s, &state, "bigcall");
    assert_eq!(big.code, exit::LIMIT, "{big:#?}");
    assert!(
        big.stderr.contains("host-call limit of 8 MiB"),
        "{}",
        big.stderr
    );
    // A brain that exhausts its fuel, or its memory: the run cannot go on.
    for (task, limit) in [
        (
            "spin",
            "the brain stopped: fuel budget of 200000000 exhausted",
        ),
        ("grow", "the brain stopped: memory limit of 64 MiB"),
    ] {
        let out = fc(
            &state,
            &[
                "run",
                "--policy",
                s.path("policy.toml").to_str().unwrap(),
                "--brain",
                artifacts::BRAIN_PROBE,
                "--task",
                task,
            ],
        );
        assert_eq!(out.code, exit::LIMIT, "{task}: {out:#?}");
        assert!(out.stderr.contains(limit), "{task}: {}", out.stderr);
    }
    let runs: Value = serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["limit", "limit", "limit"]);
    let audit: Value = serde_json::from_str(
        &fc(
            &state,
            &["audit", runs[1]["id"].as_str().unwrap(), "--json"],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(audit["decisions"][0]["decision"], "stop", "{audit:#}");
}
