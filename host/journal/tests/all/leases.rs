//! Run ownership on every backend: one owner executes a run at a time, an
//! expired lease is taken over, and the old owner's writes are refused.

use std::time::Duration;

use femtoclaw_journal::JournalError;
use serde_json::json;

use crate::crash::run_info;
use crate::stores::Store;

const MINUTE: Duration = Duration::from_secs(60);

fn lost(result: Result<impl std::fmt::Debug, JournalError>, by: &str) {
    match result {
        Err(JournalError::LeaseLost { owner, .. }) if owner == by => {}
        other => panic!("expected the lease lost to {by}, got {other:?}"),
    }
}

#[test]
fn a_run_is_executed_by_one_owner_at_a_time() {
    for store in Store::each() {
        let mut a = store.open();
        a.create_run(&run_info("r1")).unwrap();
        let token = a.claim("r1", "node-a", MINUTE).unwrap();
        let mut b = store.open();
        match b.claim("r1", "node-b", MINUTE) {
            Err(JournalError::Leased {
                owner,
                remaining_ms,
                ..
            }) => {
                assert_eq!(owner, "node-a");
                assert!(remaining_ms > 0 && remaining_ms <= 60_000, "{remaining_ms}");
            }
            other => panic!("{}: expected the run leased, got {other:?}", store.name()),
        }
        a.append("r1", "x", json!(0), None).unwrap();
        a.sync_run("r1").unwrap();
        a.renew("r1", MINUTE).unwrap();
        assert_eq!(a.lease("r1"), Some(token));
        // Claims race: of eight handles, exactly one gets a free run.
        store.open().create_run(&run_info("r2")).unwrap();
        let winners = std::thread::scope(|scope| {
            let claims: Vec<_> = (0..8)
                .map(|i| {
                    let store = &store;
                    scope.spawn(move || store.open().claim("r2", &format!("n{i}"), MINUTE))
                })
                .collect();
            let results: Vec<_> = claims.into_iter().map(|c| c.join().unwrap()).collect();
            for r in &results {
                assert!(
                    matches!(r, Ok(_) | Err(JournalError::Leased { .. })),
                    "{}: {r:?}",
                    store.name()
                );
            }
            results.iter().filter(|r| r.is_ok()).count()
        });
        assert_eq!(winners, 1, "{}", store.name());
    }
}

#[test]
fn an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off() {
    for store in Store::each() {
        let mut a = store.open();
        a.create_run(&run_info("r1")).unwrap();
        a.create_run(&run_info("r2")).unwrap();
        // Node a stops renewing (it hangs, or its network is cut): its lease
        // expires at once here.
        let old = a.claim("r1", "node-a", Duration::ZERO).unwrap();
        a.append("r1", "x", json!("a0"), None).unwrap();
        a.append("r1", "x", json!("a1"), None).unwrap();
        a.sync_run("r1").unwrap();
        a.append("r1", "x", json!("a2, never committed"), None)
            .unwrap();
        a.append("r2", "x", json!("unleased"), None).unwrap();

        let mut b = store.open();
        let new = b.claim("r1", "node-b", MINUTE).unwrap();
        assert!(new > old, "{}: tokens grow", store.name());
        assert_eq!(b.events("r1").unwrap().len(), 2);
        b.append("r1", "x", json!("b2"), None).unwrap();
        b.sync_run("r1").unwrap();

        // The old owner's commit keeps everything but the lost run.
        lost(a.sync(), "node-b");
        lost(a.append("r1", "x", json!("a3"), None), "node-b");
        lost(a.sync_run("r1"), "node-b");
        lost(a.renew("r1", MINUTE), "node-b");
        a.append("r2", "x", json!("still a's"), None).unwrap();
        a.sync_run("r2").unwrap();

        let reader = store.open();
        let r1: Vec<_> = reader
            .events("r1")
            .unwrap()
            .into_iter()
            .map(|e| e.data)
            .collect();
        assert_eq!(
            r1,
            [json!("a0"), json!("a1"), json!("b2")],
            "{}",
            store.name()
        );
        assert_eq!(reader.events("r2").unwrap().len(), 2, "{}", store.name());
        assert!(reader.runs().unwrap().damage.is_empty());
    }
}

#[test]
fn a_released_lease_is_free_at_once_and_tokens_never_repeat() {
    for store in Store::each() {
        let mut a = store.open();
        a.create_run(&run_info("r1")).unwrap();
        let first = a.claim("r1", "node-a", MINUTE).unwrap();
        a.release("r1").unwrap();
        assert_eq!(a.lease("r1"), None);
        let mut b = store.open();
        let second = b.claim("r1", "node-b", MINUTE).unwrap();
        assert!(second > first, "{}", store.name());
        assert!(matches!(
            a.claim("r1", "node-a", MINUTE),
            Err(JournalError::Leased { .. })
        ));
        // The same owner claiming again (a restarted node) fences off its
        // own older handle.
        let mut b2 = store.open();
        let third = b2.claim("r1", "node-b", MINUTE).unwrap();
        assert!(third > second);
        b.append("r1", "x", json!("stale"), None).unwrap();
        lost(b.sync_run("r1"), "node-b");
        // A finished run releases its lease.
        b2.append("r1", "run-end", json!({ "status": "ok" }), None)
            .unwrap();
        b2.finish_run("r1", femtoclaw_journal::RunStatus::Ok, None)
            .unwrap();
        assert_eq!(b2.lease("r1"), None);
        assert!(
            a.claim("r1", "node-a", MINUTE).unwrap() > third,
            "{}",
            store.name()
        );
    }
}

#[test]
fn every_node_sees_which_leases_are_held_and_which_expired() {
    for store in Store::each() {
        let mut a = store.open();
        a.claim("r1", "node-a", MINUTE).unwrap();
        a.claim("r2", "node-a", Duration::from_millis(1)).unwrap();
        a.claim("r3", "node-a", MINUTE).unwrap();
        a.release("r3").unwrap();
        let mut held = a.held();
        held.sort();
        assert_eq!(held, ["r1", "r2"], "{}", store.name());
        std::thread::sleep(Duration::from_millis(20));
        // Another node reads the same: r1 live, r2 expired, r3 released.
        let b = store.open();
        let leases = b.all_leases().unwrap();
        let runs: Vec<(&str, &str, bool)> = leases
            .iter()
            .map(|l| (l.run.as_str(), l.owner.as_str(), l.remaining_ms > 0))
            .collect();
        assert_eq!(
            runs,
            [("r1", "node-a", true), ("r2", "node-a", false)],
            "{}",
            store.name()
        );
    }
}

#[test]
fn records_are_shared_listed_by_prefix_and_removed() {
    for store in Store::each() {
        let mut a = store.open();
        a.put_record("queue/r2", "{\"id\":\"r2\"}").unwrap();
        a.put_record("queue/r1", "{\"id\":\"r1\"}").unwrap();
        a.put_record("queuex", "not under queue/").unwrap();
        a.put_record("queue/r1", "{\"id\":\"r1\",\"v\":2}").unwrap();
        let mut b = store.open();
        assert_eq!(
            b.records_under("queue/").unwrap(),
            [
                ("queue/r1".to_owned(), "{\"id\":\"r1\",\"v\":2}".to_owned()),
                ("queue/r2".to_owned(), "{\"id\":\"r2\"}".to_owned()),
            ],
            "{}",
            store.name()
        );
        b.remove_record("queue/r1").unwrap();
        b.remove_record("queue/none").unwrap();
        let left: Vec<String> = a
            .records_under("queue")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left, ["queue/r2", "queuex"], "{}", store.name());
    }
}

#[test]
fn a_stored_component_is_durable_at_once_and_read_by_every_handle() {
    for store in Store::each() {
        let mut a = store.open();
        a.store_component("abc", b"bundle bytes").unwrap();
        // No commit after it: a crash now keeps it.
        std::mem::forget(a);
        let b = store.open();
        assert_eq!(
            b.component("abc").unwrap().as_deref(),
            Some(&b"bundle bytes"[..]),
            "{}",
            store.name()
        );
    }
}
