//! The journal end to end: replay reproduces runs, detects changed agents
//! and tampered entries, memory persists, and damaged files are refused.

use serde_json::json;

use crate::common::*;

#[test]
fn a_journaled_run_replays_identically_and_lists_with_its_status() {
    let state = fresh_dir();
    let first = fc(
        &state,
        &[
            "run",
            "--policy",
            "examples/hello/policy.toml",
            "--task",
            "What is in /data?",
        ],
    );
    assert_eq!(first.code, exit::OK, "{first:#?}");
    let id = first_run_id(&state);
    assert!(
        first.stderr.contains(&format!("run {id}")),
        "the id is printed when the run starts"
    );
    let runs: serde_json::Value =
        serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs[0]["status"], "ok");
    assert_eq!(runs[0]["agent"], "builtin:agent");

    for _ in 0..3 {
        let replay = fc(&state, &["replay", &id]);
        assert_eq!(replay.code, exit::OK, "{replay:#?}");
        assert_eq!(replay.stdout, first.stdout);
        assert_eq!(
            replay.events_named("tool call allowed").len(),
            0,
            "replay calls no capability"
        );
    }
    let timeline = fc(&state, &["inspect", &id, "--json"]);
    let timeline: serde_json::Value = serde_json::from_str(&timeline.stdout).unwrap();
    let kinds: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "run-start");
    assert_eq!(kinds.iter().filter(|k| **k == "tool-call").count(), 4);
    assert_eq!(*kinds.last().unwrap(), "run-end");
}

#[test]
fn replay_against_a_changed_agent_names_the_divergence() {
    let state = fresh_dir();
    assert_eq!(
        fc(&state, &["run", "--policy", "examples/hello/policy.toml"]).code,
        exit::OK
    );
    let id = first_run_id(&state);
    let out = fc(&state, &["replay", &id, "--agent", artifacts::AGENT_ECHO]);
    assert_eq!(out.code, exit::DIVERGENCE, "{out:#?}");
    assert!(
        out.stderr.contains("replay diverged at event 1"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_tampered_entry_is_refused_naming_the_event() {
    let state = fresh_dir();
    assert_eq!(
        fc(&state, &["run", "--policy", "examples/hello/policy.toml"]).code,
        exit::OK
    );
    let id = first_run_id(&state);
    // Forge the result of the first read: another file's content.
    let db = redb::Database::open(state.join("journal.redb")).unwrap();
    let table: redb::TableDefinition<(&[u8], u64), &[u8]> = redb::TableDefinition::new("events");
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(table).unwrap();
        let text = {
            use redb::ReadableTable;
            String::from_utf8(t.get((id.as_bytes(), 6)).unwrap().unwrap().value().to_vec()).unwrap()
        };
        let forged = text.replace("FemtoClaw decides", "the model decides");
        assert_ne!(forged, text, "event 6 is the read of notes.txt: {text}");
        t.insert((id.as_bytes(), 6), forged.as_bytes()).unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    for args in [vec!["replay", id.as_str()], vec!["inspect", id.as_str()]] {
        let out = fc(&state, &args);
        assert_eq!(out.code, exit::JOURNAL, "{out:#?}");
        assert!(
            out.stderr.contains("event 6 fails the hash chain"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn memory_persists_across_runs_and_replay_reproduces_reads() {
    let state = fresh_dir();
    let s = Scratch::new();
    s.setup(&policy(""), json!([]));
    let agent = |task: &str| s.run_agent(&state, artifacts::AGENT_HOSTILE, Some(task));
    let first = agent("remember:the sky is green");
    assert_eq!(first.code, exit::OK, "{first:#?}");
    assert_eq!(
        first.stdout.trim(),
        r#"{"refused_big":true,"stored":"note/0"}"#
    );
    assert_eq!(
        agent("remember:water is wet").stdout.trim(),
        r#"{"refused_big":true,"stored":"note/1"}"#
    );
    let recall = agent("recall");
    assert_eq!(
        recall.stdout.trim(),
        r#"{"keys":["note/0","note/1"],"values":["the sky is green","water is wet"]}"#
    );

    // Another agent does not see this agent's memory.
    let other = s.run_agent(&state, artifacts::AGENT_ECHO, None);
    assert_eq!(
        other.code, 1,
        "the echo agent's script is empty: {other:#?}"
    );

    // Replay of the recall answers from the journal, even after the memory
    // changed since.
    let runs: serde_json::Value =
        serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    let recall_id = runs[2]["id"].as_str().unwrap().to_owned();
    assert_eq!(agent("remember:a third note").code, exit::OK);
    let replay = fc(&state, &["replay", &recall_id]);
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
    assert_eq!(replay.stdout, recall.stdout);
}

#[test]
fn damaged_journal_files_are_refused_clearly() {
    let state = fresh_dir();
    assert_eq!(
        fc(&state, &["run", "--policy", "examples/hello/policy.toml"]).code,
        exit::OK
    );
    let file = state.join("journal.redb");
    let good = std::fs::read(&file).unwrap();
    let mut refused = 0;
    let mut cases: Vec<Vec<u8>> = vec![
        good[..good.len() / 2].to_vec(),
        good[..100].to_vec(),
        vec![0; good.len()],
    ];
    for offset in (0..good.len()).step_by(good.len() / 23 + 1) {
        let mut bytes = good.clone();
        bytes[offset] ^= 0x5a;
        cases.push(bytes);
    }
    for bytes in cases {
        std::fs::write(&file, &bytes).unwrap();
        let out = fc(&state, &["runs"]);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(
            out.code == exit::OK || out.code == exit::JOURNAL,
            "{out:#?}"
        );
        if out.code == exit::JOURNAL {
            assert!(
                out.stderr.contains("journal.redb"),
                "names the file: {}",
                out.stderr
            );
            refused += 1;
            // And no run starts on it.
            let run = fc(&state, &["run", "--policy", "examples/hello/policy.toml"]);
            assert_eq!(run.code, exit::JOURNAL, "{run:#?}");
            assert!(run.stdout.is_empty());
        }
    }
    assert!(
        refused >= 3,
        "truncation and zeroing are always detected ({refused})"
    );
}
