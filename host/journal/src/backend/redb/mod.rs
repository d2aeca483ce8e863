//! The default backend: one redb file per state directory.
//!
//! Every process opens the file in redb's multi-writer mode: runs in other
//! processes append to the same state directory, and readers (`fc-host
//! runs`, `inspect`, `audit`) open it read-only beside them, never waiting
//! for a writer's lock. That mode commits durably only, which is why the
//! journal buffers events up to its commit points (docs/journal.md).
//!
//! redb trusts the bytes of its own file, so every call into it runs inside
//! [`contain`]: a damaged page becomes an error, never a crash.

mod read;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageBackend, TableDefinition, WriteTransaction,
};

use super::{Backend, Batch, LeaseRecord, Records, RunWrite, Snapshot, entry_size};
use crate::contain::contain;
use crate::event::MemoryEffect;
use crate::{JournalError, Result};
use read::Read;

/// The journal's file name inside the state directory.
pub const FILE_NAME: &str = "journal.redb";

// Keys and values are bytes, decoded (and checked) by the journal: a damaged
// page must become an error, and redb's own `&str` decoding would panic on it.
pub(crate) const RUNS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("runs");
pub(crate) const EVENTS: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("events");
pub(crate) const MEMORY: TableDefinition<(&[u8], &[u8]), &[u8]> = TableDefinition::new("memory");
/// Run id → [`crate::Head`] as of the run's last commit.
pub(crate) const HEADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("heads");
/// Counters kept transactionally: `runs`, `memory-bytes`.
pub(crate) const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");
/// sha256 → bytes of every agent component a run used (replay needs them).
pub(crate) const COMPONENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("components");
/// Monotonic records (the highest bundle version run from each signer).
pub(crate) const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// Run id → its [`LeaseRecord`] (JSON).
pub(crate) const LEASES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("leases");

/// Page cache of one handle. redb's default (1 GiB) let a journal-heavy run
/// grow the host by hundreds of MiB.
const CACHE_BYTES: usize = 16 << 20;

enum Db {
    Write(Database),
    Read(ReadOnlyDatabase),
}

/// A journal in a redb file.
pub(crate) struct Redb {
    db: Db,
    path: PathBuf,
}

impl Redb {
    /// Opens (creating if needed) the file for writing, beside other
    /// processes. A file left by a crash is recovered by redb; a damaged one
    /// is refused.
    pub(crate) fn open(path: PathBuf) -> Result<Redb> {
        contain(&path.clone(), || {
            let db = Database::builder()
                .set_concurrency_mode(ConcurrencyMode::MultiWriter)
                .set_cache_size(CACHE_BYTES)
                .create(&path)
                .map_err(|e| db_error(&path, e))?;
            Redb::init(Db::Write(db), path)
        })
    }

    /// Opens the file for reading only; `Ok(None)` when the last writer was
    /// killed and the file needs the recovery only a writer may make.
    pub(crate) fn open_read_only(path: PathBuf) -> Result<Option<Redb>> {
        let opened = contain(&path.clone(), || {
            Ok(Database::builder()
                .set_concurrency_mode(ConcurrencyMode::MultiWriter)
                .set_cache_size(CACHE_BYTES)
                .open_read_only(&path))
        })?;
        match opened {
            Ok(db) => Ok(Some(Redb {
                db: Db::Read(db),
                path,
            })),
            Err(redb::DatabaseError::RepairAborted) => Ok(None),
            Err(e) => Err(db_error(&path, e)),
        }
    }

    /// Opens a journal on any redb storage backend, for this process alone.
    pub(crate) fn with_backend(backend: impl StorageBackend, label: &str) -> Result<Redb> {
        let path = PathBuf::from(label);
        contain(&path.clone(), || {
            let db = Database::builder()
                .create_with_backend(backend)
                .map_err(|e| db_error(&path, e))?;
            Redb::init(Db::Write(db), path)
        })
    }

    fn init(db: Db, path: PathBuf) -> Result<Redb> {
        let mut store = Redb { db, path };
        // Create the tables and counters once (a journal written by an older
        // fc-host gets its counters computed here); an up-to-date journal
        // opens without a commit.
        let ready = {
            let txn = store.begin_read()?;
            let meta = txn.open_table(META).ok();
            let counted = |k: &[u8]| {
                meta.as_ref()
                    .is_some_and(|m| matches!(m.get(k), Ok(Some(_))))
            };
            counted(b"runs")
                && counted(b"memory-bytes")
                && txn.open_table(HEADS).is_ok()
                && txn.open_table(COMPONENTS).is_ok()
                && txn.open_table(RECORDS).is_ok()
        };
        if !ready {
            store.write(|txn| {
                txn.open_table(EVENTS)?;
                txn.open_table(HEADS)?;
                txn.open_table(COMPONENTS)?;
                txn.open_table(RECORDS)?;
                let runs = txn.open_table(RUNS)?.len()?;
                let mut memory_bytes = 0u64;
                for entry in txn.open_table(MEMORY)?.iter()? {
                    let (k, v) = entry?;
                    memory_bytes += (k.value().1.len() + v.value().len()) as u64;
                }
                let mut meta = txn.open_table(META)?;
                if meta.get(&b"runs"[..])?.is_none() {
                    meta.insert(&b"runs"[..], runs.to_string().as_bytes())?;
                }
                if meta.get(&b"memory-bytes"[..])?.is_none() {
                    meta.insert(&b"memory-bytes"[..], memory_bytes.to_string().as_bytes())?;
                }
                Ok(Ok(()))
            })?;
        }
        Ok(store)
    }

    fn begin_read(&self) -> Result<ReadTransaction> {
        match &self.db {
            Db::Write(db) => db.begin_read(),
            Db::Read(db) => db.begin_read(),
        }
        .map_err(|e| storage(&self.path, e))
    }

    /// One durable write transaction. `f` may refuse (a lease another
    /// owner holds): the transaction is then rolled back and the refusal
    /// returned.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&WriteTransaction) -> Result<Result<T, JournalError>, redb::Error>,
    ) -> Result<T> {
        let Db::Write(db) = &self.db else {
            return Err(JournalError::Storage {
                path: self.path.clone(),
                detail: "opened read-only".into(),
            });
        };
        let attempt = || -> Result<Result<T, JournalError>, redb::Error> {
            let mut txn = db.begin_write()?;
            // Journal data is guest-influenced: two-phase commit keeps a
            // crafted crash from making a torn commit look valid.
            txn.set_two_phase_commit(true);
            let outcome = f(&txn)?;
            match outcome {
                Ok(_) => txn.commit()?,
                Err(_) => txn.abort()?,
            }
            Ok(outcome)
        };
        contain(&self.path, || Ok(attempt()))?.map_err(|e| match e {
            redb::Error::Corrupted(detail) => JournalError::Corrupt {
                path: self.path.clone(),
                detail,
            },
            e => JournalError::Poisoned {
                path: self.path.clone(),
                detail: e.to_string(),
            },
        })?
    }

    /// Reads, changes and stores a run's lease in one transaction.
    fn with_lease<T>(
        &mut self,
        run: &str,
        f: impl FnOnce(Option<LeaseRecord>, u64) -> Result<(Option<LeaseRecord>, T), JournalError>,
    ) -> Result<T> {
        let path = self.path.clone();
        self.write(|txn| {
            let mut table = txn.open_table(LEASES)?;
            let current = match table.get(run.as_bytes())? {
                None => None,
                Some(v) => match serde_json::from_slice(v.value()) {
                    Ok(lease) => Some(lease),
                    Err(e) => {
                        return Ok(Err(JournalError::Corrupt {
                            path,
                            detail: format!("the lease of run `{run}` is undecodable: {e}"),
                        }));
                    }
                },
            };
            let (new, value) = match f(current, now_ms()) {
                Ok(outcome) => outcome,
                Err(refused) => return Ok(Err(refused)),
            };
            if let Some(new) = new {
                let text = serde_json::to_vec(&new).expect("invariant: a lease serializes");
                table.insert(run.as_bytes(), text.as_slice())?;
            }
            Ok(Ok(value))
        })
    }
}

impl Backend for Redb {
    fn label(&self) -> &Path {
        &self.path
    }

    fn size(&self) -> Result<u64> {
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(m.len()),
            // A journal on another storage backend (tests) has no file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(JournalError::Storage {
                path: self.path.clone(),
                detail: e.to_string(),
            }),
        }
    }

    fn read(&self) -> Result<Box<dyn Snapshot + '_>> {
        let txn = contain(&self.path, || self.begin_read())?;
        Ok(Box::new(Read {
            txn,
            path: &self.path,
        }))
    }

    fn commit(&mut self, batch: &Batch<'_, '_>) -> Result<bool> {
        let mut created = true;
        self.write(|txn| {
            if !batch.fences.is_empty() {
                let leases = txn.open_table(LEASES)?;
                for (run, token) in batch.fences {
                    let current = leases
                        .get(run.as_bytes())?
                        .and_then(|v| serde_json::from_slice::<LeaseRecord>(v.value()).ok());
                    if current.as_ref().map(|l| l.token) != Some(*token) {
                        return Ok(Err(JournalError::LeaseLost {
                            run: run.clone(),
                            owner: current.map(|l| l.owner).unwrap_or_default(),
                        }));
                    }
                }
            }
            write_events(txn, batch)?;
            let mut heads = txn.open_table(HEADS)?;
            for (run, head) in batch.heads {
                heads.insert(run.as_bytes(), head.as_bytes())?;
            }
            let mut components = txn.open_table(COMPONENTS)?;
            for (hash, bytes) in batch.components {
                components.insert(hash.as_bytes(), bytes.as_slice())?;
            }
            let mut runs = txn.open_table(RUNS)?;
            match batch.run {
                None => {}
                Some(RunWrite::Update { id, record }) => {
                    runs.insert(id.as_bytes(), record.as_bytes())?;
                }
                Some(RunWrite::Create { id, record, head }) => {
                    if runs.get(id.as_bytes())?.is_some() {
                        created = false;
                    } else {
                        runs.insert(id.as_bytes(), record.as_bytes())?;
                        heads.insert(id.as_bytes(), head.as_bytes())?;
                        drop((runs, heads));
                        add_counter(txn, b"runs", 1)?;
                    }
                }
            }
            Ok(Ok(()))
        })?;
        Ok(created)
    }

    fn claim(&mut self, run: &str, owner: &str, ttl: Duration) -> Result<u64> {
        self.with_lease(run, |current, now| {
            if let Some(held) = &current
                && held.owner != owner
                && held.expires_ms > now
            {
                return Err(JournalError::Leased {
                    run: run.to_owned(),
                    owner: held.owner.clone(),
                    remaining_ms: held.expires_ms - now,
                });
            }
            let token = current.map_or(1, |l| l.token + 1);
            let lease = LeaseRecord {
                owner: owner.to_owned(),
                token,
                expires_ms: now.saturating_add(ttl.as_millis() as u64),
            };
            Ok((Some(lease), token))
        })
    }

    fn renew(&mut self, run: &str, token: u64, ttl: Duration) -> Result<()> {
        self.with_lease(run, |current, now| match current {
            Some(mut lease) if lease.token == token => {
                lease.expires_ms = now.saturating_add(ttl.as_millis() as u64);
                Ok((Some(lease), ()))
            }
            other => Err(JournalError::LeaseLost {
                run: run.to_owned(),
                owner: other.map(|l| l.owner).unwrap_or_default(),
            }),
        })
    }

    fn release(&mut self, run: &str, token: u64) -> Result<()> {
        self.with_lease(run, |current, _| match current {
            Some(mut lease) if lease.token == token => {
                lease.owner.clear();
                lease.expires_ms = 0;
                Ok((Some(lease), ()))
            }
            _ => Ok((None, ())),
        })
    }

    fn update_records(&mut self, f: &mut dyn FnMut(&mut dyn Records) -> Result<()>) -> Result<()> {
        let path = self.path.clone();
        self.write(|txn| {
            let mut table = RecordTable {
                table: txn.open_table(RECORDS)?,
                path: &path,
                failed: None,
            };
            let outcome = f(&mut table);
            match table.failed.take() {
                Some(e) => Err(e),
                None => Ok(outcome),
            }
        })
    }
}

/// Writes appended events and applies their memory changes, keeping the
/// `memory-bytes` counter exact.
fn write_events(txn: &WriteTransaction, batch: &Batch<'_, '_>) -> Result<(), redb::Error> {
    if batch.events.is_empty() {
        return Ok(());
    }
    let mut events = txn.open_table(EVENTS)?;
    let mut memory = txn.open_table(MEMORY)?;
    let mut delta = 0i64;
    for p in batch.events {
        events.insert((p.run.as_bytes(), p.seq), p.text.as_bytes())?;
        let Some(effect) = &p.effect else { continue };
        let (scope, key) = effect.slot();
        let slot = (scope.as_bytes(), key.as_bytes());
        if let Some(old) = memory.get(slot)? {
            delta -= (key.len() + old.value().len()) as i64;
        }
        match effect {
            MemoryEffect::Set { value, .. } => {
                memory.insert(slot, value.as_bytes())?;
                delta += entry_size(key, value);
            }
            MemoryEffect::Delete { .. } => {
                memory.remove(slot)?;
            }
        }
    }
    drop((memory, events));
    if delta != 0 {
        add_counter(txn, b"memory-bytes", delta)?;
    }
    Ok(())
}

/// Adds `delta` to a counter of the `meta` table.
fn add_counter(txn: &WriteTransaction, key: &[u8], delta: i64) -> Result<(), redb::Error> {
    let mut meta = txn.open_table(META)?;
    let current = match meta.get(key)? {
        Some(v) => std::str::from_utf8(v.value())
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| redb::Error::Corrupted("a journal counter is not a number".into()))?,
        None => 0,
    };
    meta.insert(key, (current + delta).max(0).to_string().as_bytes())?;
    Ok(())
}

struct RecordTable<'t> {
    table: redb::Table<'t, &'static [u8], &'static [u8]>,
    path: &'t Path,
    /// A redb error, which aborts the transaction.
    failed: Option<redb::Error>,
}

impl RecordTable<'_> {
    fn fail(&mut self, e: impl Into<redb::Error>) -> JournalError {
        let e = e.into();
        let error = JournalError::Poisoned {
            path: self.path.to_owned(),
            detail: e.to_string(),
        };
        self.failed = Some(e);
        error
    }
}

impl Records for RecordTable<'_> {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        let got = self
            .table
            .get(key.as_bytes())
            .map(|v| v.map(|v| v.value().to_vec()));
        got.map_err(|e| self.fail(e))
    }

    fn put(&mut self, key: &str, value: &str) -> Result<()> {
        let put = self
            .table
            .insert(key.as_bytes(), value.as_bytes())
            .map(drop);
        put.map_err(|e| self.fail(e))
    }

    fn remove(&mut self, key: &str) -> Result<()> {
        let removed = self.table.remove(key.as_bytes()).map(drop);
        removed.map_err(|e| self.fail(e))
    }

    fn remove_prefix_except(&mut self, prefix: &str, keep: &str) -> Result<()> {
        let (prefix, keep) = (prefix.as_bytes(), keep.as_bytes());
        let kept = self
            .table
            .retain(|k, _| !k.starts_with(prefix) || k.starts_with(keep));
        kept.map_err(|e| self.fail(e))
    }
}

/// The machine's clock: a redb journal is one machine's.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn storage(path: &Path, e: impl Into<redb::Error>) -> JournalError {
    match e.into() {
        redb::Error::Corrupted(detail) => JournalError::Corrupt {
            path: path.to_owned(),
            detail,
        },
        other => JournalError::Storage {
            path: path.to_owned(),
            detail: other.to_string(),
        },
    }
}

fn db_error(path: &Path, e: redb::DatabaseError) -> JournalError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => JournalError::Busy {
            path: path.to_owned(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            JournalError::Corrupt {
                path: path.to_owned(),
                detail,
            }
        }
        redb::DatabaseError::UpgradeRequired(v) => JournalError::Corrupt {
            path: path.to_owned(),
            detail: format!("unsupported file format version {v}"),
        },
        other => JournalError::Corrupt {
            path: path.to_owned(),
            detail: other.to_string(),
        },
    }
}
