//! `fc-host serve` with its tenants' journals in PostgreSQL (`[journal]`):
//! runs are journaled in each tenant's schema and none in the state
//! directory, a server killed with -9 is resumed by the next one from the
//! database with no write repeated, and a bad `[journal]` is refused.
//! Several nodes on one database: `fleet.rs`.

use femtoclaw_journal::{Journal, RunStatus};

use super::*;

/// The database `.ci/postgres` makes; `FC_TEST_POSTGRES` names another.
const DEFAULT_URL: &str = "postgresql://femtoclaw:femtoclaw@127.0.0.1:5432/femtoclaw_test";

/// The tests here share the tenants' schemas: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the database for one test (held until the guard drops, after the
/// test's servers): the tenants' schemas dropped, its URL.
pub(super) fn database() -> (std::sync::MutexGuard<'static, ()>, String) {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let url = std::env::var("FC_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.into());
    // The schemas are named after the tenants: start from none.
    let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap_or_else(|e| {
        panic!("this test needs PostgreSQL at {url}: {e}; start it with `.ci/postgres`")
    });
    admin
        .batch_execute(
            "DROP SCHEMA IF EXISTS t_acme CASCADE; DROP SCHEMA IF EXISTS t_globex CASCADE",
        )
        .unwrap();
    (serial, url)
}

#[test]
fn tenants_journal_in_postgresql_and_a_killed_server_resumes_from_it() {
    const RUNS: usize = 20;
    let (_serial, url) = database();
    let mut setup = Setup::new();
    setup.tables = "[journal]\npostgres-url-env = \"FC_TEST_JOURNAL_URL\"\n".into();
    setup.env.push(("FC_TEST_JOURNAL_URL".into(), url.clone()));
    setup.quotas[0] = "concurrent-runs = 20\nqueued-runs = 64\nruns-per-minute = 1000".into();
    let served = setup.start();
    let run = served.run_and_wait(GLOBEX, &task("What is in /data?"));
    assert_eq!(run["answer"], "read figures.txt", "{run:#}");
    let (served, ids) = kill_9_amid_writing_runs(served, RUNS, 5, 3);
    // Read back through the API, from the database.
    let (status, audit) = served.get(&format!("/v1/runs/{}/audit", ids[0]), Some(ACME));
    assert_eq!(status, 200, "{audit:#}");
    // The journals are in the tenants' schemas, not in the state directory.
    assert!(
        !served
            .state
            .join("tenants/acme")
            .join(femtoclaw_journal::FILE_NAME)
            .exists()
    );
    let acme = Journal::open_postgres(&url, "t_acme")
        .unwrap()
        .runs()
        .unwrap();
    assert!(acme.damage.is_empty(), "{:?}", acme.damage);
    assert_eq!(acme.runs.len(), RUNS);
    assert!(acme.runs.iter().all(|r| r.status == RunStatus::Ok));
    let globex = Journal::open_postgres(&url, "t_globex")
        .unwrap()
        .runs()
        .unwrap();
    assert_eq!(globex.runs.len(), 1, "each tenant in its own schema");
}

#[test]
fn a_journal_url_variable_that_is_not_set_is_named() {
    let setup = Setup {
        tables: "[journal]\npostgres-url-env = \"FC_TEST_UNSET_JOURNAL_URL\"\n".into(),
        ..Setup::new()
    };
    let config = setup.write();
    let out = fc_host()
        .args(["serve", "--check", "--config"])
        .arg(&config)
        .env_remove("FC_TEST_UNSET_JOURNAL_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("journal.postgres-url-env")
            && stderr.contains("`FC_TEST_UNSET_JOURNAL_URL` is not set"),
        "{stderr}"
    );
}
