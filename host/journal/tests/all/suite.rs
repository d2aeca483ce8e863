//! The journal's behaviour on every backend: commit points, replay, the hash
//! chain against tampering and loss, memory, records, and several handles
//! (processes, or nodes of a fleet) on one store. Each test runs on a fresh
//! redb file and on a fresh PostgreSQL schema.

use femtoclaw_journal::{Event, JournalError, MemoryEffect, RunStatus};
use serde_json::json;

use crate::crash::run_info;
use crate::stores::Store;

fn set(scope: &str, key: &str, value: &str) -> MemoryEffect {
    MemoryEffect::Set {
        scope: scope.into(),
        key: key.into(),
        value: value.into(),
    }
}

/// A finished run `r1` of `n` events plus its end.
pub(crate) fn finished_run(store: &Store, n: u64) {
    let mut journal = store.open();
    journal.create_run(&run_info("r1")).unwrap();
    for i in 0..n {
        let effect = (i % 3 == 0).then(|| set("agent", &format!("k{i}"), &"v".repeat(i as usize)));
        journal
            .append("r1", "x", json!({ "i": i, "pad": "p".repeat(200) }), effect)
            .unwrap();
    }
    journal
        .append("r1", "run-end", json!({ "status": "ok" }), None)
        .unwrap();
    journal
        .finish_run("r1", RunStatus::Ok, Some("all written".into()))
        .unwrap();
}

#[test]
fn what_a_commit_point_made_durable_survives_a_crash_and_the_run_goes_on() {
    for store in Store::each() {
        let mut journal = store.open();
        journal.create_run(&run_info("r1")).unwrap();
        journal.append("r1", "brain-turn", json!(1), None).unwrap();
        // The commit point before a write tool runs: its call is durable.
        let call = journal
            .append("r1", "tool-call", json!({ "name": "fs.write_file" }), None)
            .unwrap();
        journal.sync_run("r1").unwrap();
        // Appended after the last commit point: lost with the process,
        // together with everything after it, never half.
        journal
            .append("r1", "tool-result", json!("ok"), None)
            .unwrap();
        journal.append("r1", "brain-turn", json!(2), None).unwrap();
        drop(journal);

        let mut journal = store.open();
        let (info, events) = journal.load("r1").unwrap();
        assert_eq!(info.status, RunStatus::Running, "{}", store.name());
        assert_eq!(events.len(), 2, "{}", store.name());
        // What a resumed run sees: a write whose outcome is uncertain.
        assert_eq!(events.last(), Some(&call), "{}", store.name());
        // The resumed run continues the chain where the commit left it.
        journal
            .append("r1", "tool-result", json!("uncertain"), None)
            .unwrap();
        journal
            .append("r1", "run-end", json!({ "status": "ok" }), None)
            .unwrap();
        journal.finish_run("r1", RunStatus::Ok, None).unwrap();
        let (info, events) = store.open().load("r1").unwrap();
        assert_eq!(info.status, RunStatus::Ok, "{}", store.name());
        assert_eq!(events.len(), 4, "{}", store.name());
        assert_eq!(events[2].prev, call.hash, "{}", store.name());
    }
}

#[test]
fn a_run_reads_back_identically_a_hundred_times() {
    for store in Store::each() {
        finished_run(&store, 30);
        let first: Vec<Event> = store.open().events("r1").unwrap();
        assert_eq!(first.len(), 31);
        let mut journal = store.open();
        for i in 0..100 {
            if i % 25 == 0 {
                journal = store.open();
            }
            assert_eq!(
                journal.events("r1").unwrap(),
                first,
                "{} read {i}",
                store.name()
            );
        }
    }
}

#[test]
fn a_changed_event_breaks_the_chain_at_that_event() {
    for store in Store::each() {
        finished_run(&store, 5);
        let text = serde_json::to_string(&store.open().events("r1").unwrap()[3]).unwrap();
        let forged = text.replace("\"i\":3", "\"i\":33");
        assert_ne!(forged, text);
        store.set_event("r1", 3, forged.as_bytes());
        match store.open().events("r1") {
            Err(JournalError::Tampered { seq: 3, detail, .. }) => {
                assert!(detail.contains("does not match its hash"), "{detail}");
            }
            other => panic!(
                "{}: expected tampering at event 3, got {other:?}",
                store.name()
            ),
        }
        store.set_event("r1", 2, b"\xff not json");
        match store.open().events("r1") {
            Err(JournalError::Tampered { seq: 2, .. }) => {}
            other => panic!(
                "{}: expected tampering at event 2, got {other:?}",
                store.name()
            ),
        }
    }
}

#[test]
fn a_run_that_lost_events_is_damaged_not_shorter() {
    for store in Store::each() {
        finished_run(&store, 40);
        store.remove_events("r1", 20..41);
        let journal = store.open();
        match journal.load("r1") {
            Err(e @ JournalError::Damaged { .. }) => assert!(
                e.to_string()
                    .contains("41 events were committed, but only 20 are readable"),
                "{}: {e}",
                store.name()
            ),
            other => panic!("{}: expected damage, got {other:?}", store.name()),
        }
        let listing = journal.runs().unwrap();
        assert_eq!(listing.runs.len(), 1);
        assert!(listing.damage_of("r1").is_some(), "{listing:?}");
    }
}

#[test]
fn memory_is_scoped_listed_by_prefix_and_counted_across_handles() {
    for store in Store::each() {
        let mut journal = store.open();
        journal.create_run(&run_info("r1")).unwrap();
        for (scope, key) in [
            ("a", "note/1"),
            ("a", "note/2"),
            ("a", "other"),
            ("b", "note/3"),
        ] {
            let effect = set(scope, key, &format!("{scope}:{key}"));
            journal
                .append("r1", "memory-set", json!(key), Some(effect))
                .unwrap();
        }
        let delete = MemoryEffect::Delete {
            scope: "a".into(),
            key: "note/2".into(),
        };
        journal
            .append("r1", "memory-delete", json!(0), Some(delete))
            .unwrap();
        // Appends are buffered until the next commit; reads see them already.
        assert_eq!(journal.memory_list("a", "note/").unwrap(), ["note/1"]);
        assert_eq!(journal.memory_list("a", "").unwrap(), ["note/1", "other"]);
        assert_eq!(
            journal.memory_get("b", "note/3").unwrap().as_deref(),
            Some("b:note/3")
        );
        assert_eq!(journal.memory_get("a", "note/3").unwrap(), None);
        let bytes = (6 + 8) + (5 + 7) + (6 + 8);
        assert_eq!(journal.memory_bytes().unwrap(), bytes, "{}", store.name());
        journal.sync().unwrap();
        // Another handle overwrites and deletes; the count stays exact.
        let mut other = store.open();
        other.create_run(&run_info("r2")).unwrap();
        other
            .append("r2", "memory-set", json!(1), Some(set("a", "other", "x")))
            .unwrap();
        let delete = MemoryEffect::Delete {
            scope: "b".into(),
            key: "note/3".into(),
        };
        other
            .append("r2", "memory-delete", json!(2), Some(delete))
            .unwrap();
        other.sync().unwrap();
        let reopened = store.open();
        assert_eq!(
            reopened.memory_bytes().unwrap(),
            (6 + 8) + (5 + 1),
            "{}",
            store.name()
        );
        assert_eq!(reopened.memory_list("b", "").unwrap(), Vec::<String>::new());
        assert!(matches!(
            reopened.run("nope"),
            Err(JournalError::UnknownRun(_))
        ));
    }
}

#[test]
fn records_only_rise_daily_counts_are_shared_and_components_are_kept() {
    let greater = |new: &str, old: &str| new.parse::<u32>().unwrap() > old.parse::<u32>().unwrap();
    for store in Store::each() {
        let (mut a, mut b) = (store.open(), store.open());
        assert_eq!(a.raise_record("signer", "2", greater).unwrap(), None);
        assert_eq!(
            b.raise_record("signer", "1", greater).unwrap().as_deref(),
            Some("2")
        );
        assert_eq!(
            b.raise_record("signer", "3", greater).unwrap().as_deref(),
            Some("2")
        );
        assert_eq!(
            a.raise_record("signer", "1", greater).unwrap().as_deref(),
            Some("3")
        );
        // Two handles (two nodes) draw on one day's allowance.
        let scopes = [("tenant".to_owned(), 3)];
        assert_eq!(a.take_daily(100, &scopes).unwrap(), None);
        assert_eq!(b.take_daily(100, &scopes).unwrap(), None);
        assert_eq!(a.take_daily(100, &scopes).unwrap(), None);
        assert_eq!(
            b.take_daily(100, &scopes).unwrap(),
            Some(0),
            "{}",
            store.name()
        );
        assert_eq!(a.take_daily(101, &scopes).unwrap(), None, "a new day");
        a.create_run(&run_info("r1")).unwrap();
        a.keep_component("abc", b"\0asm-bytes").unwrap();
        a.sync().unwrap();
        assert_eq!(
            b.component("abc").unwrap().as_deref(),
            Some(&b"\0asm-bytes"[..])
        );
        assert_eq!(b.component("abd").unwrap(), None);
        assert!(matches!(
            b.create_run(&run_info("r1")),
            Err(JournalError::Storage { detail, .. }) if detail.contains("already exists")
        ));
        assert_eq!(
            store.open().runs().unwrap().runs.len(),
            1,
            "{}",
            store.name()
        );
    }
}

#[test]
fn a_journal_is_opened_used_and_dropped_on_async_runtime_threads() {
    // A server calls the journal from its runtime's worker threads, an
    // embedding from an async task; neither may stop the journal (the
    // PostgreSQL driver runs a runtime of its own).
    for store in Store::each() {
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let workers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        for (i, runtime) in [current, workers].iter().enumerate() {
            let run = format!("async{i}");
            runtime.block_on(async {
                let mut journal = store.open();
                journal.create_run(&run_info(&run)).unwrap();
                journal.append(&run, "x", json!(i), None).unwrap();
                journal.sync_run(&run).unwrap();
                assert_eq!(journal.events(&run).unwrap().len(), 1, "{}", store.name());
                assert!(journal.stored_bytes().unwrap() > 0, "{}", store.name());
                let scopes = [("tenant".to_owned(), 5)];
                assert_eq!(journal.take_daily(1, &scopes).unwrap(), None);
                drop(journal);
            });
        }
    }
}
