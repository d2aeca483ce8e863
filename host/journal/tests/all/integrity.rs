//! A damaged run is never read as a shorter complete one; readers and
//! writers share one file; the counters and records the runtime relies on.

use femtoclaw_journal::{FILE_NAME, Journal, JournalError, MemoryEffect, RunStatus};
use serde_json::json;

use crate::crash::run_info;

const EVENTS: redb::TableDefinition<(&[u8], u64), &[u8]> = redb::TableDefinition::new("events");
const HEADS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("heads");

/// A finished run of `n` events plus its end, in a fresh state directory.
fn finished_run(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path()).unwrap();
    journal.create_run(&run_info("r1")).unwrap();
    for i in 0..n {
        journal
            .append("r1", "x", json!({ "i": i, "pad": "p".repeat(200) }), None)
            .unwrap();
    }
    journal
        .append(
            "r1",
            "run-end",
            json!({ "status": "ok", "outcome": "all written" }),
            None,
        )
        .unwrap();
    journal
        .finish_run("r1", RunStatus::Ok, Some("all written".into()))
        .unwrap();
    dir
}

/// Changes the file directly, as damage or an attacker would.
fn edit(dir: &std::path::Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::open(dir.join(FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    f(&txn);
    txn.commit().unwrap();
}

fn damaged(result: Result<impl std::fmt::Debug, JournalError>) -> String {
    match result {
        Err(e @ JournalError::Damaged { .. }) => e.to_string(),
        other => panic!("expected damage, got {other:?}"),
    }
}

#[test]
fn a_run_that_lost_events_is_damaged_not_shorter() {
    let dir = finished_run(40);
    edit(dir.path(), |txn| {
        let mut t = txn.open_table(EVENTS).unwrap();
        for seq in 20..41 {
            t.remove((&b"r1"[..], seq)).unwrap();
        }
    });
    let journal = Journal::open_read_only(dir.path()).unwrap().unwrap();
    let message = damaged(journal.load("r1"));
    assert!(
        message.contains("41 events were committed, but only 20 are readable"),
        "{message}"
    );
    let listing = journal.runs().unwrap();
    assert_eq!(listing.runs.len(), 1);
    assert!(listing.damage_of("r1").is_some(), "{listing:?}");
}

#[test]
fn a_finished_run_without_its_end_is_damaged_even_with_a_forged_head() {
    let dir = finished_run(5);
    edit(dir.path(), |txn| {
        let mut events = txn.open_table(EVENTS).unwrap();
        let last = events
            .remove((&b"r1"[..], 5))
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        drop(events);
        let prev: serde_json::Value = serde_json::from_slice(&last).unwrap();
        // The head now points at event 4, as if the run had 5 events.
        let mut heads = txn.open_table(HEADS).unwrap();
        let head = json!({ "events": 5, "hash": prev["prev"], "bytes": 0 }).to_string();
        heads.insert(&b"r1"[..], head.as_bytes()).unwrap();
    });
    let journal = Journal::open_read_only(dir.path()).unwrap().unwrap();
    let message = damaged(journal.load("r1"));
    assert!(message.contains("`run-end` event is missing"), "{message}");
}

#[test]
fn byte_flips_never_read_as_a_shorter_run() {
    let dir = finished_run(120);
    let file = dir.path().join(FILE_NAME);
    let good = std::fs::read(&file).unwrap();
    let (mut refused, mut intact) = (0, 0);
    for offset in (0..good.len()).step_by(good.len() / 300 + 1) {
        let mut bytes = good.clone();
        bytes[offset] ^= 0x01;
        std::fs::write(&file, &bytes).unwrap();
        let loaded = Journal::open_read_only(dir.path()).and_then(|j| j.unwrap().load("r1"));
        match loaded {
            Ok((info, events)) => {
                assert_eq!(
                    events.len(),
                    121,
                    "offset {offset}: {} events",
                    events.len()
                );
                assert_eq!(info.status, RunStatus::Ok);
                intact += 1;
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        refused > 0 && intact > 0,
        "{refused} refused, {intact} intact"
    );
}

#[test]
fn readers_open_beside_a_writer_and_see_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Journal::open(dir.path()).unwrap();
    writer.create_run(&run_info("r1")).unwrap();
    writer.append("r1", "a", json!(1), None).unwrap();
    writer.sync().unwrap();
    writer.append("r1", "b", json!(2), None).unwrap();
    let reader = Journal::open_read_only(dir.path()).unwrap().unwrap();
    let (info, events) = reader.load("r1").unwrap();
    assert_eq!(info.status, RunStatus::Running);
    assert_eq!(events.len(), 1, "what is committed, not what is buffered");
    drop(reader);
    // A second writer (another run of the same state directory) appends too.
    let mut other = Journal::open(dir.path()).unwrap();
    other.create_run(&run_info("r2")).unwrap();
    other.append("r2", "c", json!(3), None).unwrap();
    other.sync().unwrap();
    writer.sync().unwrap();
    let reader = Journal::open_read_only(dir.path()).unwrap().unwrap();
    assert_eq!(reader.events("r1").unwrap().len(), 2);
    assert_eq!(reader.events("r2").unwrap().len(), 1);
    assert!(reader.runs().unwrap().damage.is_empty());
    assert!(
        Journal::open_read_only(tempfile::tempdir().unwrap().path())
            .unwrap()
            .is_none(),
        "no journal, nothing created"
    );
}

#[test]
fn memory_bytes_are_counted_across_overwrites_deletes_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let set = |k: &str, v: &str| MemoryEffect::Set {
        scope: "a".into(),
        key: k.into(),
        value: v.into(),
    };
    {
        let mut j = Journal::open(dir.path()).unwrap();
        j.create_run(&run_info("r1")).unwrap();
        j.append("r1", "memory-set", json!(1), Some(set("k1", "12345")))
            .unwrap();
        assert_eq!(j.memory_bytes().unwrap(), 7, "buffered changes count");
        j.append("r1", "memory-set", json!(2), Some(set("k1", "1")))
            .unwrap();
        j.append("r1", "memory-set", json!(3), Some(set("k2", "xyz")))
            .unwrap();
        assert_eq!(j.memory_bytes().unwrap(), 3 + 5);
        j.sync().unwrap();
        assert_eq!(j.memory_bytes().unwrap(), 8);
        let delete = MemoryEffect::Delete {
            scope: "a".into(),
            key: "k2".into(),
        };
        j.append("r1", "memory-delete", json!(4), Some(delete))
            .unwrap();
        assert_eq!(j.memory_bytes().unwrap(), 3);
        assert_eq!(j.memory_get("a", "k2").unwrap(), None);
        j.sync().unwrap();
    }
    let j = Journal::open(dir.path()).unwrap();
    assert_eq!(j.memory_bytes().unwrap(), 3);
    assert_eq!(j.memory_list("a", "").unwrap(), ["k1"]);
}

#[test]
fn records_only_rise_and_components_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(dir.path()).unwrap();
    let greater = |new: &str, old: &str| new.parse::<u32>().unwrap() > old.parse::<u32>().unwrap();
    assert_eq!(j.raise_record("b", "2", greater).unwrap(), None);
    assert_eq!(
        j.raise_record("b", "1", greater).unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(
        j.raise_record("b", "3", greater).unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(
        j.raise_record("b", "1", greater).unwrap().as_deref(),
        Some("3")
    );
    j.create_run(&run_info("r1")).unwrap();
    j.keep_component("abc", b"\0asm-bytes").unwrap();
    j.sync().unwrap();
    drop(j);
    let j = Journal::open_read_only(dir.path()).unwrap().unwrap();
    assert_eq!(
        j.component("abc").unwrap().as_deref(),
        Some(&b"\0asm-bytes"[..])
    );
    assert_eq!(j.component("def").unwrap(), None);
}
