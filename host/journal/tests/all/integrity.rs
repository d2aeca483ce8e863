//! The redb file under damage the other backends cannot have (flipped bytes,
//! a forged head), and readers beside writers in one file.

use femtoclaw_journal::{FILE_NAME, Journal, JournalError, RunStatus};
use serde_json::json;

use crate::crash::run_info;
use crate::stores::Store;

const EVENTS: redb::TableDefinition<(&[u8], u64), &[u8]> = redb::TableDefinition::new("events");
const HEADS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("heads");

/// A finished run of `n` events plus its end, in a fresh state directory.
fn finished_run(n: u64) -> Store {
    let store = Store::redb();
    crate::suite::finished_run(&store, n);
    store
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
fn a_finished_run_without_its_end_is_damaged_even_with_a_forged_head() {
    let store = finished_run(5);
    edit(store.dir(), |txn| {
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
    let journal = Journal::open_read_only(store.dir()).unwrap().unwrap();
    let message = damaged(journal.load("r1"));
    assert!(message.contains("`run-end` event is missing"), "{message}");
}

#[test]
fn byte_flips_never_read_as_a_shorter_run() {
    let store = finished_run(120);
    let file = store.dir().join(FILE_NAME);
    let good = std::fs::read(&file).unwrap();
    let (mut refused, mut intact) = (0, 0);
    for offset in (0..good.len()).step_by(good.len() / 300 + 1) {
        let mut bytes = good.clone();
        bytes[offset] ^= 0x01;
        std::fs::write(&file, &bytes).unwrap();
        let loaded = Journal::open_read_only(store.dir()).and_then(|j| j.unwrap().load("r1"));
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
