//! The stores the shared suite runs on: a redb file in a fresh directory,
//! and a fresh schema of a real PostgreSQL server on loopback.
//!
//! The PostgreSQL tests need the server `.ci/postgres` starts (Debian's
//! `postgresql-15`); `FC_TEST_POSTGRES` names another one. They fail, never
//! skip, when it is not there.

use std::sync::atomic::{AtomicU32, Ordering};

use femtoclaw_journal::{FILE_NAME, Journal};

/// The database `.ci/postgres` makes.
const DEFAULT_URL: &str = "postgresql://femtoclaw:femtoclaw@127.0.0.1:5432/femtoclaw_test";

const EVENTS: redb::TableDefinition<(&[u8], u64), &[u8]> = redb::TableDefinition::new("events");

/// One empty journal store.
pub(crate) enum Store {
    Redb(tempfile::TempDir),
    Postgres { url: String, schema: String },
}

/// The PostgreSQL server's URL, checked to be on loopback.
pub(crate) fn postgres_url() -> String {
    let url = std::env::var("FC_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let host = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split([':', '/']).next())
        .unwrap_or("");
    assert!(
        host == "127.0.0.1" || host == "localhost" || host == "[::1]",
        "FC_TEST_POSTGRES must name a server on loopback, not `{host}`"
    );
    url
}

impl Store {
    /// A fresh store of each backend.
    pub(crate) fn each() -> [Store; 2] {
        [Store::redb(), Store::postgres()]
    }

    pub(crate) fn redb() -> Store {
        Store::Redb(tempfile::tempdir().unwrap())
    }

    /// A fresh schema, unique to this test process and call.
    pub(crate) fn postgres() -> Store {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "fc_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = postgres_url();
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL journal tests need a server at {url}: {e}\n\
                 start one with `.ci/postgres` (or set FC_TEST_POSTGRES to another on loopback)"
            )
        });
        admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .unwrap();
        Store::Postgres { url, schema }
    }

    /// The state directory of a redb store.
    pub(crate) fn dir(&self) -> &std::path::Path {
        match self {
            Store::Redb(dir) => dir.path(),
            Store::Postgres { .. } => panic!("not a redb store"),
        }
    }

    /// Which backend, for assertion messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Store::Redb(_) => "redb",
            Store::Postgres { .. } => "postgres",
        }
    }

    /// A new handle, as a new process (or another node) would open it.
    pub(crate) fn open(&self) -> Journal {
        match self {
            Store::Redb(dir) => Journal::open(dir.path()).unwrap(),
            Store::Postgres { url, schema } => Journal::open_postgres(url, schema).unwrap(),
        }
    }

    /// Replaces a stored event's bytes, as damage or an attacker would.
    pub(crate) fn set_event(&self, run: &str, seq: u64, bytes: &[u8]) {
        match self {
            Store::Redb(dir) => {
                let db = redb::Database::open(dir.path().join(FILE_NAME)).unwrap();
                let txn = db.begin_write().unwrap();
                txn.open_table(EVENTS)
                    .unwrap()
                    .insert((run.as_bytes(), seq), bytes)
                    .unwrap();
                txn.commit().unwrap();
            }
            Store::Postgres { .. } => {
                let n = self.sql(
                    "UPDATE events SET event = $3 WHERE run = $1 AND seq = $2",
                    &[&run, &(seq as i64), &bytes],
                );
                assert_eq!(n, 1, "no event {seq} of `{run}` to change");
            }
        }
    }

    /// Removes stored events, as damage would.
    pub(crate) fn remove_events(&self, run: &str, seqs: std::ops::Range<u64>) {
        match self {
            Store::Redb(dir) => {
                let db = redb::Database::open(dir.path().join(FILE_NAME)).unwrap();
                let txn = db.begin_write().unwrap();
                let mut table = txn.open_table(EVENTS).unwrap();
                for seq in seqs {
                    table.remove((run.as_bytes(), seq)).unwrap();
                }
                drop(table);
                txn.commit().unwrap();
            }
            Store::Postgres { .. } => {
                self.sql(
                    "DELETE FROM events WHERE run = $1 AND seq >= $2 AND seq < $3",
                    &[&run, &(seqs.start as i64), &(seqs.end as i64)],
                );
            }
        }
    }

    /// Runs one statement in the store's schema (PostgreSQL only).
    pub(crate) fn sql(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> u64 {
        let Store::Postgres { url, schema } = self else {
            panic!("not a PostgreSQL store")
        };
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .unwrap();
        client.execute(sql, params).unwrap()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Store::Postgres { url, schema } = self
            && let Ok(mut admin) = postgres::Client::connect(url, postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    }
}
