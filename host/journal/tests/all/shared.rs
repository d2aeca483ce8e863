//! Runs sharing one handle share its commits: a commit for one run makes
//! the others' appended events durable too, and a run whose events are
//! already durable commits nothing more.

use femtoclaw_journal::{Journal, SharedJournal};
use serde_json::json;

use crate::crash::run_info;

#[test]
fn one_commit_covers_every_run_that_appended_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let shared = SharedJournal::new(Journal::open(dir.path()).unwrap());
    let runs = ["a", "b", "c"];
    for run in runs {
        shared.lock().create_run(&run_info(run)).unwrap();
    }
    let before = shared.lock().commits();
    for run in runs {
        shared
            .lock()
            .append(run, "inference", json!({ "n": 1 }), None)
            .unwrap();
    }
    // The live view shows appended events before any commit.
    assert_eq!(shared.lock().events_from("b", 0, 10).unwrap().len(), 1);
    for run in runs {
        shared.lock().sync_run(run).unwrap();
    }
    assert_eq!(
        shared.lock().commits(),
        before + 1,
        "one commit for three runs"
    );
    // Durable: another handle reads every run's event.
    let reader = Journal::open_read_only(dir.path()).unwrap().unwrap();
    for run in runs {
        assert_eq!(reader.events_from(run, 0, 10).unwrap().len(), 1, "{run}");
    }
    // A run with nothing pending commits nothing; one with events does.
    shared.lock().sync_run("a").unwrap();
    assert_eq!(shared.lock().commits(), before + 1);
    shared
        .lock()
        .append("a", "inference", json!({ "n": 2 }), None)
        .unwrap();
    shared.lock().sync_run("a").unwrap();
    assert_eq!(shared.lock().commits(), before + 2);
    assert_eq!(shared.lock().events_from("a", 1, 10).unwrap()[0].seq, 1);
}
