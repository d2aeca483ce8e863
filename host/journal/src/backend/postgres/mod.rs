//! The PostgreSQL backend: the journal of many nodes in one database
//! (docs/fleet.md). Each journal is one schema (a server's tenant, or a test),
//! holding the same tables as the redb file. A commit is one transaction,
//! durable when PostgreSQL says so (`synchronous_commit` as the server sets
//! it); a snapshot is a `REPEATABLE READ` read-only transaction.
//!
//! Nothing here retries: a failed or unanswered commit poisons the journal
//! handle ([`crate::Journal`]), whose next opening reads what was committed.

mod read;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::config::Host;
use postgres::{Client, Config, NoTls, Statement, Transaction};

use super::{Backend, Batch, Records, RunWrite, Snapshot, entry_size};
use crate::event::MemoryEffect;
use crate::{JournalError, Result};
use read::Read;

/// A connection attempt's limit when the URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS runs (id text COLLATE "C" PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    run text COLLATE "C" NOT NULL, seq bigint NOT NULL, event bytea NOT NULL,
    PRIMARY KEY (run, seq));
CREATE TABLE IF NOT EXISTS heads (run text COLLATE "C" PRIMARY KEY, head bytea NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key text COLLATE "C" PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS memory (
    scope text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, value bytea NOT NULL,
    PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS components (sha256 text COLLATE "C" PRIMARY KEY, bytes bytea NOT NULL);
CREATE TABLE IF NOT EXISTS records (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    run text COLLATE "C" PRIMARY KEY, owner text NOT NULL, token bigint NOT NULL,
    expires timestamptz NOT NULL);
INSERT INTO meta VALUES ('runs', 0), ('memory-bytes', 0) ON CONFLICT DO NOTHING;
"#;

/// A journal in a PostgreSQL schema.
pub(crate) struct Postgres {
    /// Always `Some` until dropped (see `Drop`).
    client: Mutex<Option<Client>>,
    label: PathBuf,
    pub(super) hot: Hot,
}

/// The statements every commit runs, prepared once per connection (a
/// statement given as text costs a round trip to prepare each time).
pub(super) struct Hot {
    /// A batch's events: runs, seqs, texts as arrays.
    append: Statement,
    /// A batch's heads: runs, heads as arrays.
    heads: Statement,
    /// A lease's token and owner, share-locked until the commit.
    fence: Statement,
    /// What reading a run back needs: its record, its head, its events.
    pub(super) run: Statement,
    pub(super) head: Statement,
    pub(super) events: Statement,
}

impl Hot {
    fn prepare(client: &mut Client) -> Result<Hot, postgres::Error> {
        Ok(Hot {
            append: client.prepare(
                "INSERT INTO events SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])",
            )?,
            heads: client.prepare(
                "INSERT INTO heads SELECT * FROM unnest($1::text[], $2::bytea[])
                 ON CONFLICT (run) DO UPDATE SET head = EXCLUDED.head",
            )?,
            fence: client.prepare("SELECT token, owner FROM leases WHERE run = $1 FOR SHARE")?,
            run: client.prepare("SELECT record FROM runs WHERE id = $1")?,
            head: client.prepare("SELECT head FROM heads WHERE run = $1")?,
            events: client.prepare(
                "SELECT seq, event FROM events WHERE run = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
            )?,
        })
    }
}

impl Postgres {
    /// Connects to `url` (a libpq URL or `key=value` string) and opens the
    /// journal in `schema`, creating it and its tables if needed.
    pub(crate) fn open(url: &str, schema: &str) -> Result<Postgres> {
        let mut config = Config::from_str(url).map_err(|e| JournalError::Storage {
            path: PathBuf::from("postgresql"),
            detail: format!("the database URL is not valid ({e}); expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE"),
        })?;
        let label = PathBuf::from(format!("{}#{schema}", describe(&config)));
        let storage = |detail: String| JournalError::Storage {
            path: label.clone(),
            detail,
        };
        if !valid_schema(schema) {
            return Err(storage(format!(
                "`{schema}` is not a usable schema name (1 to 63 of a-z, 0-9 and _, not starting with a digit)"
            )));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (client, hot) = blocking(|| Postgres::connect(&config, schema, &storage))?;
        Ok(Postgres {
            client: Mutex::new(Some(client)),
            label,
            hot,
        })
    }

    /// Connects, creates the journal's schema and tables if needed, and
    /// prepares the statements every commit runs.
    fn connect(
        config: &Config,
        schema: &str,
        storage: &(dyn Fn(String) -> JournalError + Sync),
    ) -> Result<(Client, Hot)> {
        let mut client = config
            .connect(NoTls)
            .map_err(|e| storage(format!("cannot connect: {}", detail(&e))))?;
        // Two nodes creating one schema at once would race on the catalog:
        // the first takes the lock, the second finds the tables made.
        let create = format!(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext('femtoclaw-journal/' || '{schema}'));
             CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path TO \"{schema}\";
             {SCHEMA} COMMIT; SET search_path TO \"{schema}\";"
        );
        client.batch_execute(&create).map_err(|e| {
            storage(format!(
                "cannot create the journal's tables: {}",
                detail(&e)
            ))
        })?;
        let hot = Hot::prepare(&mut client).map_err(|e| {
            storage(format!(
                "cannot prepare the journal's statements: {}",
                detail(&e)
            ))
        })?;
        Ok((client, hot))
    }

    /// One transaction, committed unless `f` refuses.
    fn transaction<T: Send>(
        &mut self,
        f: impl FnOnce(&mut Transaction<'_>, &Hot) -> Result<Result<T, JournalError>, postgres::Error>
        + Send,
    ) -> Result<T> {
        let label = self.label.clone();
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        let client = client.as_mut().expect("invariant: connected until dropped");
        let hot = &self.hot;
        let result = blocking(|| {
            let mut tx = client.transaction()?;
            let outcome = f(&mut tx, hot)?;
            match outcome {
                Ok(_) => tx.commit()?,
                Err(_) => tx.rollback()?,
            }
            Ok(outcome)
        });
        result.map_err(|e: postgres::Error| fail(&label, &e))?
    }

    fn client(&self) -> MutexGuard<'_, Option<Client>> {
        // A panic while the lock was held left a connection in an unknown
        // state; the next statement on it fails and reports.
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_error(&self, e: &postgres::Error) -> JournalError {
        JournalError::Storage {
            path: self.label.clone(),
            detail: detail(e),
        }
    }
}

impl Backend for Postgres {
    fn label(&self) -> &Path {
        &self.label
    }

    fn size(&self) -> Result<u64> {
        let mut client = self.client();
        let client = client.as_mut().expect("invariant: connected until dropped");
        let row = blocking(|| {
            client.query_one(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                &[],
            )
        })
        .map_err(|e| self.read_error(&e))?;
        let bytes: i64 = row.try_get(0).map_err(|e| self.read_error(&e))?;
        Ok(bytes.max(0) as u64)
    }

    fn read(&self) -> Result<Box<dyn Snapshot + '_>> {
        let mut client = self.client();
        let connection = client.as_mut().expect("invariant: connected until dropped");
        blocking(|| connection.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            .map_err(|e| self.read_error(&e))?;
        Ok(Box::new(Read {
            client: std::cell::RefCell::new(client),
            store: self,
        }))
    }

    fn commit(&mut self, batch: &Batch<'_, '_>) -> Result<bool> {
        self.transaction(|tx, hot| {
            // A fence holds until the commit: a claim waits for it.
            for (run, token) in batch.fences {
                let row = tx.query_opt(&hot.fence, &[run])?;
                let current: Option<(i64, String)> = row
                    .map(|r| Ok::<_, postgres::Error>((r.try_get(0)?, r.try_get(1)?)))
                    .transpose()?;
                if current.as_ref().map(|c| c.0) != Some(*token as i64) {
                    return Ok(Err(JournalError::LeaseLost {
                        run: run.clone(),
                        owner: current.map(|c| c.1).unwrap_or_default(),
                    }));
                }
            }
            write_events(tx, &hot.append, batch)?;
            let runs: Vec<&str> = batch.heads.iter().map(|(r, _)| r.as_str()).collect();
            let heads: Vec<&[u8]> = batch.heads.iter().map(|(_, h)| h.as_bytes()).collect();
            if !runs.is_empty() {
                tx.execute(&hot.heads, &[&runs, &heads])?;
            }
            for (hash, bytes) in batch.components {
                tx.execute(
                    "INSERT INTO components VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[hash, bytes],
                )?;
            }
            let mut created = true;
            match &batch.run {
                None => {}
                Some(RunWrite::Update { id, record }) => {
                    tx.execute(
                        "UPDATE runs SET record = $2 WHERE id = $1",
                        &[id, &record.as_bytes()],
                    )?;
                }
                Some(RunWrite::Create { id, record, head }) => {
                    let n = tx.execute(
                        "INSERT INTO runs VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[id, &record.as_bytes()],
                    )?;
                    created = n == 1;
                    if created {
                        tx.execute(
                            &hot.heads,
                            &[&[*id].as_slice(), &[head.as_bytes()].as_slice()],
                        )?;
                        add_counter(tx, "runs", 1)?;
                    }
                }
            }
            Ok(Ok(created))
        })
    }

    fn claim(&mut self, run: &str, owner: &str, ttl: Duration) -> Result<u64> {
        let ttl = ttl.as_millis() as f64;
        self.transaction(|tx, _| {
            // Taken when free, expired, or already this owner's; the row is
            // kept on release so that tokens only grow.
            let taken = tx.query_opt(
                "INSERT INTO leases AS l
                 VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond')
                 ON CONFLICT (run) DO UPDATE
                 SET owner = EXCLUDED.owner, token = l.token + 1, expires = EXCLUDED.expires
                 WHERE l.owner = EXCLUDED.owner OR l.expires <= clock_timestamp()
                 RETURNING token",
                &[&run, &owner, &ttl],
            )?;
            if let Some(row) = taken {
                return Ok(Ok(row.try_get::<_, i64>(0)? as u64));
            }
            let held = tx.query_one(
                "SELECT owner, greatest(0, extract(epoch FROM expires - clock_timestamp()) * 1000)::bigint
                 FROM leases WHERE run = $1",
                &[&run],
            )?;
            Ok(Err(JournalError::Leased {
                run: run.to_owned(),
                owner: held.try_get(0)?,
                remaining_ms: held.try_get::<_, i64>(1)?.max(0) as u64,
            }))
        })
    }

    fn renew(&mut self, run: &str, token: u64, ttl: Duration) -> Result<()> {
        let ttl = ttl.as_millis() as f64;
        self.transaction(|tx, _| {
            let renewed = tx.execute(
                "UPDATE leases SET expires = clock_timestamp() + $3 * interval '1 millisecond'
                 WHERE run = $1 AND token = $2",
                &[&run, &(token as i64), &ttl],
            )?;
            if renewed == 1 {
                return Ok(Ok(()));
            }
            let owner = tx.query_opt("SELECT owner FROM leases WHERE run = $1", &[&run])?;
            Ok(Err(JournalError::LeaseLost {
                run: run.to_owned(),
                owner: owner.map(|r| r.try_get(0)).transpose()?.unwrap_or_default(),
            }))
        })
    }

    fn release(&mut self, run: &str, token: u64) -> Result<()> {
        self.transaction(|tx, _| {
            tx.execute(
                "UPDATE leases SET owner = '', expires = '-infinity' WHERE run = $1 AND token = $2",
                &[&run, &(token as i64)],
            )?;
            Ok(Ok(()))
        })
    }

    fn update_records(&mut self, f: &mut dyn FnMut(&mut dyn Records) -> Result<()>) -> Result<()> {
        let label = self.label.clone();
        let client = self.client.get_mut().unwrap_or_else(|p| p.into_inner());
        let client = client.as_mut().expect("invariant: connected until dropped");
        // `f` runs here; each statement runs where the driver may block.
        let mut tx = blocking(|| {
            let mut tx = client.transaction()?;
            // Records are read and raised by every node: one writer at a time.
            tx.batch_execute("LOCK TABLE records IN SHARE ROW EXCLUSIVE MODE")?;
            Ok(tx)
        })
        .map_err(|e: postgres::Error| fail(&label, &e))?;
        let outcome = f(&mut RecordTable {
            tx: &mut tx,
            label: &label,
        });
        blocking(|| match outcome {
            Ok(()) => tx.commit(),
            Err(_) => tx.rollback(),
        })
        .map_err(|e| fail(&label, &e))?;
        outcome
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The driver's own runtime may not be dropped on an async thread.
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        blocking(move || drop(client));
    }
}

/// Runs a call of the synchronous driver. The driver drives its connection
/// with a tokio runtime of its own, which may not start (nor be dropped) on
/// a thread that is running one already: a server's worker, an embedding's
/// async task. There the call runs on a scoped thread of its own, while the
/// caller waits, as it would for the call itself.
pub(super) fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A failed write: the data it met breaks the schema's own rules (a row
/// changed by hand), or the transaction's outcome is not known.
fn fail(label: &Path, e: &postgres::Error) -> JournalError {
    let detail = detail(e);
    match e.code() {
        Some(c) if c.code().starts_with("22") => JournalError::Corrupt {
            path: label.to_owned(),
            detail,
        },
        _ => JournalError::Poisoned {
            path: label.to_owned(),
            detail,
        },
    }
}

/// Writes appended events and applies their memory changes, keeping the
/// `memory-bytes` counter exact: each scope's entries are changed by one
/// writer at a time.
fn write_events(
    tx: &mut Transaction<'_>,
    insert: &Statement,
    batch: &Batch<'_, '_>,
) -> Result<(), postgres::Error> {
    if batch.events.is_empty() {
        return Ok(());
    }
    // All of the batch's events in one statement: one round trip.
    let runs: Vec<&str> = batch.events.iter().map(|p| p.run.as_str()).collect();
    let seqs: Vec<i64> = batch
        .events
        .iter()
        .map(|p| i64::try_from(p.seq).unwrap_or(i64::MAX))
        .collect();
    let texts: Vec<&[u8]> = batch.events.iter().map(|p| p.text.as_bytes()).collect();
    tx.execute(insert, &[&runs, &seqs, &texts])?;
    let mut delta = 0i64;
    for p in batch.events {
        let Some(effect) = &p.effect else { continue };
        let (scope, key) = effect.slot();
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('femtoclaw-memory/' || $1))",
            &[&scope],
        )?;
        let old = tx.query_opt(
            "SELECT octet_length(value) FROM memory WHERE scope = $1 AND key = $2",
            &[&scope, &key],
        )?;
        if let Some(row) = old {
            delta -= key.len() as i64 + i64::from(row.try_get::<_, i32>(0)?);
        }
        match effect {
            MemoryEffect::Set { value, .. } => {
                tx.execute(
                    "INSERT INTO memory VALUES ($1, $2, $3)
                     ON CONFLICT (scope, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&scope, &key, &value.as_bytes()],
                )?;
                delta += entry_size(key, value);
            }
            MemoryEffect::Delete { .. } => {
                tx.execute(
                    "DELETE FROM memory WHERE scope = $1 AND key = $2",
                    &[&scope, &key],
                )?;
            }
        }
    }
    if delta != 0 {
        add_counter(tx, "memory-bytes", delta)?;
    }
    Ok(())
}

fn add_counter(tx: &mut Transaction<'_>, key: &str, delta: i64) -> Result<(), postgres::Error> {
    tx.execute(
        "UPDATE meta SET value = greatest(value + $2, 0) WHERE key = $1",
        &[&key, &delta],
    )?;
    Ok(())
}

struct RecordTable<'t, 'c> {
    tx: &'t mut Transaction<'c>,
    label: &'t Path,
}

impl Records for RecordTable<'_, '_> {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        let tx = &mut *self.tx;
        let row = blocking(|| tx.query_opt("SELECT value FROM records WHERE key = $1", &[&key]))
            .map_err(|e| fail(self.label, &e))?;
        row.map(|r| r.try_get(0))
            .transpose()
            .map_err(|e| fail(self.label, &e))
    }

    fn put(&mut self, key: &str, value: &str) -> Result<()> {
        let tx = &mut *self.tx;
        blocking(|| {
            tx.execute(
                "INSERT INTO records VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value.as_bytes()],
            )
        })
        .map(drop)
        .map_err(|e| fail(self.label, &e))
    }

    fn remove(&mut self, key: &str) -> Result<()> {
        let tx = &mut *self.tx;
        blocking(|| tx.execute("DELETE FROM records WHERE key = $1", &[&key]))
            .map(drop)
            .map_err(|e| fail(self.label, &e))
    }

    fn remove_prefix_except(&mut self, prefix: &str, keep: &str) -> Result<()> {
        let tx = &mut *self.tx;
        blocking(|| {
            tx.execute(
                "DELETE FROM records WHERE starts_with(key, $1) AND NOT starts_with(key, $2)",
                &[&prefix, &keep],
            )
        })
        .map(drop)
        .map_err(|e| fail(self.label, &e))
    }
}

/// Schema names are put in SQL text: only plain lower-case identifiers.
fn valid_schema(schema: &str) -> bool {
    (1..=63).contains(&schema.len())
        && !schema.starts_with(|c: char| c.is_ascii_digit())
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The database a configuration names, without its password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("postgresql://{user}@{host}:{port}/{db}")
}

/// An error's message with its cause (a refused connection, the server's
/// own message).
fn detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}
