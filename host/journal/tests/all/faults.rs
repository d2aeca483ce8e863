//! The PostgreSQL backend when the database fails under it: a connection
//! dropped mid-run, a write refused (disk full), two handles writing one
//! run, and bad connection settings. The handle stops appending (poisoned),
//! says why, and a new handle finds every acknowledged event.

use femtoclaw_journal::{Journal, JournalError};
use serde_json::json;

use crate::crash::run_info;
use crate::stores::{Store, postgres_url};

/// The schema and URL of a PostgreSQL store, with `application_name` set so
/// the test can find the handle's connection.
fn tagged(store: &Store, tag: &str) -> (String, String) {
    let Store::Postgres { url, schema } = store else {
        unreachable!()
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    (format!("{url}{sep}application_name={tag}"), schema.clone())
}

fn poisoned(result: Result<impl std::fmt::Debug, JournalError>) -> String {
    match result {
        Err(e @ JournalError::Poisoned { .. }) => e.to_string(),
        other => panic!("expected a poisoned handle, got {other:?}"),
    }
}

/// Appends three events to a new run `r1` and makes them durable (what the
/// runtime acknowledges), then two more that are only buffered.
fn acknowledged_three(journal: &mut Journal) {
    journal.create_run(&run_info("r1")).unwrap();
    for i in 0..3 {
        journal.append("r1", "x", json!(i), None).unwrap();
    }
    journal.sync_run("r1").unwrap();
    journal.append("r1", "x", json!(3), None).unwrap();
    journal.append("r1", "x", json!(4), None).unwrap();
}

#[test]
fn a_dropped_connection_poisons_the_handle_and_loses_no_acknowledged_event() {
    let store = Store::postgres();
    let tag = format!("fc-fault-{}", std::process::id());
    let (url, schema) = tagged(&store, &tag);
    let mut journal = Journal::open_postgres(&url, &schema).unwrap();
    acknowledged_three(&mut journal);
    // The server ends the connection (an administrator, a failover, a
    // network cut look the same to the client).
    let mut admin = postgres::Client::connect(&postgres_url(), postgres::NoTls).unwrap();
    let ended = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&tag],
        )
        .unwrap();
    assert_eq!(ended.len(), 1, "the handle's one connection");
    let message = poisoned(journal.sync());
    assert!(message.contains(&schema), "names the journal: {message}");
    // Poisoned: nothing more is appended through it.
    poisoned(journal.append("r1", "x", json!(5), None));
    poisoned(journal.sync_run("r1"));
    // A new handle (the next process, or another node) reads what was
    // acknowledged, and goes on from there.
    let mut reopened = store.open();
    assert_eq!(reopened.events("r1").unwrap().len(), 3);
    reopened.append("r1", "x", json!(3), None).unwrap();
    reopened.sync().unwrap();
    assert_eq!(store.open().events("r1").unwrap().len(), 4);
}

#[test]
fn a_connection_dropped_inside_a_commit_leaves_nothing_of_it() {
    let store = Store::postgres();
    let mut journal = store.open();
    acknowledged_three(&mut journal);
    // The connection ends while the commit's transaction is open, after its
    // events were inserted and before COMMIT (a crash of the server process
    // serving it, or of the network, at the worst moment).
    store.sql(
        "CREATE FUNCTION cut() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$",
        &[],
    );
    store.sql(
        "CREATE TRIGGER cut AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION cut()",
        &[],
    );
    poisoned(journal.sync());
    store.sql("DROP TRIGGER cut ON events", &[]);
    let reopened = store.open();
    assert_eq!(
        reopened.events("r1").unwrap().len(),
        3,
        "all of the commit or none"
    );
    assert!(reopened.runs().unwrap().damage.is_empty());
}

#[test]
fn a_refused_write_poisons_the_handle_and_keeps_what_was_committed() {
    let store = Store::postgres();
    let mut journal = store.open();
    acknowledged_three(&mut journal);
    // What a full disk looks like to a client: every insert fails with
    // SQLSTATE 53100.
    store.sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'
            USING ERRCODE = 'disk_full'; END $$",
        &[],
    );
    store.sql(
        "CREATE TRIGGER disk_is_full BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()",
        &[],
    );
    let message = poisoned(journal.sync());
    assert!(message.contains("No space left on device"), "{message}");
    poisoned(journal.append("r1", "x", json!(5), None));
    store.sql("DROP TRIGGER disk_is_full ON events", &[]);
    let mut reopened = store.open();
    let events = reopened.events("r1").unwrap();
    assert_eq!(events.len(), 3, "the failed commit wrote nothing");
    reopened.append("r1", "x", json!(3), None).unwrap();
    reopened.sync().unwrap();
    assert!(store.open().runs().unwrap().damage.is_empty());
}

#[test]
fn two_handles_appending_to_one_run_cannot_both_commit_an_event() {
    let store = Store::postgres();
    let mut first = store.open();
    first.create_run(&run_info("r1")).unwrap();
    first.append("r1", "x", json!("first"), None).unwrap();
    let mut second = store.open();
    second.append("r1", "x", json!("second"), None).unwrap();
    first.sync().unwrap();
    // Both chained their event at position 0; the database keeps one.
    let message = poisoned(second.sync());
    assert!(message.contains("duplicate key"), "{message}");
    let events = store.open().events("r1").unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, json!("first"));
}

#[test]
fn bad_connection_settings_are_named_without_the_password() {
    let store = Store::postgres();
    let Store::Postgres { url, .. } = &store else {
        unreachable!()
    };
    let wrong = url.replace("femtoclaw:femtoclaw@", "femtoclaw:not-the-password@");
    let e = Journal::open_postgres(&wrong, "fc_bad")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot connect") && e.contains("password"),
        "{e}"
    );
    assert!(!e.contains("not-the-password"), "leaks the password: {e}");
    // Nothing listens on port 1 of loopback.
    let e = Journal::open_postgres("postgresql://u:secret@127.0.0.1:1/db", "fc_bad")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("postgresql://u@127.0.0.1:1/db") && !e.contains("secret"),
        "{e}"
    );
    let e = Journal::open_postgres("not a url at all = =", "fc_bad")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not valid"), "{e}");
    let e = Journal::open_postgres(url, "Robert'); DROP TABLE runs;--")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a usable schema name"), "{e}");
}
