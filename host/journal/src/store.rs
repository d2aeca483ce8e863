//! The redb database behind the journal: opening it, and writing to it.
//!
//! Every process opens the file in redb's multi-writer mode: runs in other
//! processes append to the same state directory, and readers (`fc-host
//! runs`, `inspect`, `audit`) open it read-only beside them, never waiting
//! for a writer's lock. That mode commits durably only, so events are
//! buffered here and written at the commit points (docs/journal.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageBackend, TableDefinition, TableError, WriteTransaction,
};
use serde_json::Value;

use crate::contain::contain;
use crate::event::{Event, GENESIS, Head, MemoryEffect, RunInfo, RunStatus};
use crate::{JournalError, Result};

/// The journal's file name inside the state directory.
pub const FILE_NAME: &str = "journal.redb";

// Keys and values are bytes, decoded (and checked) here: a damaged page
// must become an error, and redb's own `&str` decoding would panic on it.
pub(crate) const RUNS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("runs");
pub(crate) const EVENTS: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("events");
pub(crate) const MEMORY: TableDefinition<(&[u8], &[u8]), &[u8]> = TableDefinition::new("memory");
/// Run id → [`Head`] as of the run's last commit.
pub(crate) const HEADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("heads");
/// Counters kept transactionally: `runs`, `memory-bytes`.
pub(crate) const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");
/// sha256 → bytes of every agent component a run used (replay needs them).
pub(crate) const COMPONENTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("components");
/// Monotonic records (the highest bundle version run from each signer).
pub(crate) const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// The prefix of daily counts in `records` (`daily/DAY/SCOPE`).
const DAILY: &str = "daily/";

/// Page cache of one handle. redb's default (1 GiB) let a journal-heavy run
/// grow the host by hundreds of MiB.
const CACHE_BYTES: usize = 16 << 20;
/// Events buffered before they are committed anyway.
const MAX_PENDING: usize = 512;
/// Bytes of buffered events before they are committed anyway.
const MAX_PENDING_BYTES: usize = 8 << 20;

pub(crate) enum Db {
    Write(Database),
    Read(ReadOnlyDatabase),
}

impl Db {
    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, redb::TransactionError> {
        match self {
            Db::Write(db) => db.begin_read(),
            Db::Read(db) => db.begin_read(),
        }
    }
}

/// An open journal.
pub struct Journal {
    pub(crate) db: Db,
    pub(crate) path: PathBuf,
    poisoned: Option<String>,
    /// Head of each run appended to through this handle, pending events
    /// included.
    heads: HashMap<String, Head>,
    /// Appended events not yet committed. Nothing is lost by buffering
    /// them: no effect has left the sandbox since the last commit point.
    pub(crate) pending: Vec<Pending>,
    pending_bytes: usize,
    /// Change of the stored memory bytes by the pending effects.
    pub(crate) pending_memory: i64,
    /// Components to store with the next commit.
    pending_components: Vec<(String, Vec<u8>)>,
    /// Durable commits made through this handle.
    commits: u64,
}

/// An appended event waiting for the next transaction.
pub(crate) struct Pending {
    pub run: String,
    pub seq: u64,
    pub text: String,
    pub effect: Option<MemoryEffect>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    /// Opens (creating if needed) the journal of a state directory for
    /// writing. Other processes may have it open too. A file left by a crash
    /// is recovered by redb; a damaged one is refused.
    pub fn open(dir: &Path) -> Result<Journal> {
        create_private_dir(dir).map_err(|e| JournalError::Storage {
            path: dir.to_owned(),
            detail: e.to_string(),
        })?;
        let path = dir.join(FILE_NAME);
        contain(&path.clone(), || {
            let db = Database::builder()
                .set_concurrency_mode(ConcurrencyMode::MultiWriter)
                .set_cache_size(CACHE_BYTES)
                .create(&path)
                .map_err(|e| db_error(&path, e))?;
            Journal::init(Db::Write(db), path)
        })
    }

    /// Opens the journal of a state directory for reading only, beside any
    /// writers; `None` when the directory has no journal (nothing is created).
    pub fn open_read_only(dir: &Path) -> Result<Option<Journal>> {
        let path = dir.join(FILE_NAME);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(JournalError::Storage {
                    path,
                    detail: e.to_string(),
                });
            }
            Ok(_) => {}
        }
        let opened = contain(&path.clone(), || {
            Ok(Database::builder()
                .set_concurrency_mode(ConcurrencyMode::MultiWriter)
                .set_cache_size(CACHE_BYTES)
                .open_read_only(&path))
        })?;
        match opened {
            Ok(db) => Ok(Some(Journal::new(Db::Read(db), path))),
            // The last writer was killed and none is running: a reader may
            // not repair the file, so it is opened as a writer would, which
            // recovers it to its last commit (nothing else is written).
            Err(redb::DatabaseError::RepairAborted) => Journal::open(dir).map(Some),
            Err(e) => Err(db_error(&path, e)),
        }
    }

    /// Opens a journal on any redb storage backend, for this process alone
    /// (tests simulate power loss with one).
    pub fn open_with_backend(backend: impl StorageBackend, label: &str) -> Result<Journal> {
        let path = PathBuf::from(label);
        contain(&path.clone(), || {
            let db = Database::builder()
                .create_with_backend(backend)
                .map_err(|e| db_error(&path, e))?;
            Journal::init(Db::Write(db), path)
        })
    }

    fn new(db: Db, path: PathBuf) -> Journal {
        Journal {
            db,
            path,
            poisoned: None,
            heads: HashMap::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            pending_memory: 0,
            pending_components: Vec::new(),
            commits: 0,
        }
    }

    fn init(db: Db, path: PathBuf) -> Result<Journal> {
        let mut journal = Journal::new(db, path);
        // Create the tables and counters once (a journal written by an older
        // fc-host gets its counters computed here); an up-to-date journal
        // opens without a commit.
        let ready = {
            let txn = journal.begin_read()?;
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
            journal.write(|txn| {
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
                Ok(())
            })?;
        }
        Ok(journal)
    }

    /// Durable commits made through this handle (each is one fsync, or two
    /// with two-phase commit): with a [`crate::SharedJournal`], one commit
    /// covers every run that appended since the last.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a new run, durably: a run exists in the journal before
    /// anything of it leaves the process.
    pub fn create_run(&mut self, info: &RunInfo) -> Result<()> {
        let path = self.path.clone();
        contain(&path, || {
            let text = serde_json::to_string(info).expect("invariant: RunInfo serializes");
            let head = Head {
                events: 0,
                hash: GENESIS.to_owned(),
                bytes: 0,
            };
            let head_text = serde_json::to_string(&head).expect("invariant: Head serializes");
            let id = info.id.clone();
            let mut exists = false;
            self.commit_with(|txn| {
                let mut runs = txn.open_table(RUNS)?;
                if runs.get(id.as_bytes())?.is_some() {
                    exists = true;
                    return Ok(());
                }
                runs.insert(id.as_bytes(), text.as_bytes())?;
                drop(runs);
                txn.open_table(HEADS)?
                    .insert(id.as_bytes(), head_text.as_bytes())?;
                add_counter(txn, b"runs", 1)
            })?;
            if exists {
                return Err(JournalError::Storage {
                    path: self.path.clone(),
                    detail: format!("a run `{id}` already exists"),
                });
            }
            self.heads.insert(info.id.clone(), head);
            Ok(())
        })
    }

    /// Keeps a component's bytes (by its sha256) with the next commit,
    /// unless the journal has them already.
    pub fn keep_component(&mut self, sha256: &str, bytes: &[u8]) -> Result<()> {
        if !self.has_component(sha256)? && !self.pending_components.iter().any(|(h, _)| h == sha256)
        {
            self.pending_components
                .push((sha256.to_owned(), bytes.to_vec()));
        }
        Ok(())
    }

    /// Marks a run finished, durably (and everything appended before it).
    pub fn finish_run(
        &mut self,
        id: &str,
        status: RunStatus,
        outcome: Option<String>,
    ) -> Result<()> {
        let path = self.path.clone();
        contain(&path, || {
            let mut info = self.run(id)?;
            info.status = status;
            info.outcome = outcome;
            let text = serde_json::to_string(&info).expect("invariant: RunInfo serializes");
            // The run's end and every event before it, in one durable commit.
            self.commit_with(|txn| {
                txn.open_table(RUNS)?
                    .insert(id.as_bytes(), text.as_bytes())?;
                Ok(())
            })
        })
    }

    /// Appends an event to a run (buffered until the next commit point, see
    /// [`Journal::sync`]), applying a memory change in the same transaction.
    pub fn append(
        &mut self,
        run: &str,
        kind: &str,
        data: Value,
        effect: Option<MemoryEffect>,
    ) -> Result<Event> {
        self.check_poisoned()?;
        let path = self.path.clone();
        contain(&path, || {
            let head = match self.heads.get(run) {
                Some(head) => head.clone(),
                None => self.stored_head(run)?,
            };
            let seq = head.events;
            let event = Event::new(seq, kind, data, &head.hash);
            let text = serde_json::to_string(&event).expect("invariant: Event serializes");
            if let Some(effect) = &effect {
                self.pending_memory += self.memory_delta(effect)?;
            }
            let head = Head {
                events: seq + 1,
                hash: event.hash.clone(),
                bytes: head.bytes + text.len() as u64,
            };
            self.heads.insert(run.to_owned(), head);
            self.pending_bytes += text.len();
            self.pending.push(Pending {
                run: run.to_owned(),
                seq,
                text,
                effect,
            });
            if self.pending.len() >= MAX_PENDING || self.pending_bytes >= MAX_PENDING_BYTES {
                self.sync()?;
            }
            Ok(event)
        })
    }

    /// Bytes of a run's events appended so far (for the per-run journal
    /// quota); 0 for a run this handle has not appended to.
    pub fn run_bytes(&self, run: &str) -> u64 {
        self.heads.get(run).map_or(0, |head| head.bytes)
    }

    /// Makes everything appended to `run` so far durable: nothing to do if a
    /// commit made for another run of this handle already covered it (runs
    /// sharing a handle share their commits); otherwise one commit, which
    /// covers every other run's appended events too.
    pub fn sync_run(&mut self, run: &str) -> Result<()> {
        if self.pending.iter().all(|p| p.run != run) && self.pending_components.is_empty() {
            return self.check_poisoned();
        }
        self.sync()
    }

    /// Makes everything appended so far durable (one commit).
    pub fn sync(&mut self) -> Result<()> {
        if self.pending.is_empty() && self.pending_components.is_empty() {
            return Ok(());
        }
        self.commit_with(|_| Ok(()))
    }

    /// Where a run's chain ends as committed: its [`Head`], or for a run
    /// written by an older fc-host, its last event.
    fn stored_head(&self, run: &str) -> Result<Head> {
        let txn = self.begin_read()?;
        if let Some(head) = crate::read::head(self, &txn, run)? {
            return Ok(head);
        }
        let table = txn.open_table(EVENTS).map_err(|e| self.storage(e))?;
        let range = (run.as_bytes(), 0)..=(run.as_bytes(), u64::MAX);
        let mut head = Head {
            events: 0,
            hash: GENESIS.to_owned(),
            bytes: 0,
        };
        for entry in table.range(range).map_err(|e| self.storage(e))? {
            let (_, text) = entry.map_err(|e| self.storage(e))?;
            let event: Event = self.decode(text.value())?;
            head = Head {
                events: event.seq + 1,
                hash: event.hash,
                bytes: head.bytes + text.value().len() as u64,
            };
        }
        Ok(head)
    }

    /// One durable transaction: every buffered event, memory change and
    /// component, the heads of the runs they belong to, and `f`.
    fn commit_with(
        &mut self,
        f: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let components = std::mem::take(&mut self.pending_components);
        let mut heads: Vec<(String, String)> = Vec::new();
        for p in &pending {
            if !heads.iter().any(|(r, _)| *r == p.run) {
                let head = &self.heads[&p.run];
                heads.push((
                    p.run.clone(),
                    serde_json::to_string(head).expect("invariant: Head serializes"),
                ));
            }
        }
        self.pending_bytes = 0;
        self.pending_memory = 0;
        self.write(|txn| {
            crate::memory::write_pending(txn, &pending)?;
            {
                let mut table = txn.open_table(HEADS)?;
                for (run, head) in &heads {
                    table.insert(run.as_bytes(), head.as_bytes())?;
                }
                let mut table = txn.open_table(COMPONENTS)?;
                for (hash, bytes) in &components {
                    table.insert(hash.as_bytes(), bytes.as_slice())?;
                }
            }
            f(txn)
        })
    }

    /// A monotonic record: stores `value` under `key` unless the stored value
    /// is not lower (`greater(new, old)` says whether `new` is higher), in
    /// one durable transaction. Returns the value stored before.
    pub fn raise_record(
        &mut self,
        key: &str,
        value: &str,
        greater: impl Fn(&str, &str) -> bool,
    ) -> Result<Option<String>> {
        let path = self.path.clone();
        contain(&path, || {
            let mut previous = None;
            let mut undecodable = false;
            self.write(|txn| {
                let mut table = txn.open_table(RECORDS)?;
                let old = table
                    .get(key.as_bytes())?
                    .map(|v| String::from_utf8(v.value().to_vec()));
                match old {
                    Some(Err(_)) => undecodable = true,
                    Some(Ok(old)) => {
                        if greater(value, &old) {
                            table.insert(key.as_bytes(), value.as_bytes())?;
                        }
                        previous = Some(old);
                    }
                    None => {
                        table.insert(key.as_bytes(), value.as_bytes())?;
                    }
                }
                Ok(())
            })?;
            if undecodable {
                return Err(self.corrupt(&format!("the record `{key}` is not UTF-8")));
            }
            Ok(previous)
        })
    }

    /// Counts one more use of each of `scopes` (a name, and the most uses
    /// it may have) on UTC day `day` (days since the Unix epoch, of a
    /// journaled time), all or none, in one durable transaction: every run
    /// of this state directory (a server's tenant) shares the counts.
    /// Returns the index of the first scope that had no use left (nothing
    /// was counted), or `None` once all were counted. Counts of earlier days
    /// are dropped.
    pub fn take_daily(&mut self, day: u64, scopes: &[(String, u64)]) -> Result<Option<usize>> {
        let path = self.path.clone();
        contain(&path, || {
            let mut full = None;
            let mut undecodable = None;
            self.write(|txn| {
                let mut table = txn.open_table(RECORDS)?;
                let today = format!("{DAILY}{day}/");
                table.retain(|k, _| {
                    !k.starts_with(DAILY.as_bytes()) || k.starts_with(today.as_bytes())
                })?;
                let mut counts = Vec::with_capacity(scopes.len());
                for (i, (scope, limit)) in scopes.iter().enumerate() {
                    let key = format!("{today}{scope}");
                    let used = match table.get(key.as_bytes())? {
                        None => 0,
                        Some(v) => match std::str::from_utf8(v.value())
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                        {
                            Some(n) => n,
                            None => {
                                undecodable = Some(key.clone());
                                return Ok(());
                            }
                        },
                    };
                    if used >= *limit {
                        full = Some(i);
                        return Ok(());
                    }
                    counts.push((key, used + 1));
                }
                for (key, count) in counts {
                    table.insert(key.as_bytes(), count.to_string().as_bytes())?;
                }
                Ok(())
            })?;
            if let Some(key) = undecodable {
                return Err(self.corrupt(&format!("the daily count `{key}` is not a number")));
            }
            Ok(full)
        })
    }

    /// One durable write transaction. A failed commit poisons the handle:
    /// the write is not retried (after a failed fsync the page cache cannot
    /// be trusted), and every later write fails until the journal is
    /// reopened.
    fn write(
        &mut self,
        f: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<()> {
        self.check_poisoned()?;
        let Db::Write(db) = &self.db else {
            return Err(JournalError::Storage {
                path: self.path.clone(),
                detail: "opened read-only".into(),
            });
        };
        let path = self.path.clone();
        let attempt = || -> Result<(), redb::Error> {
            let mut txn = db.begin_write()?;
            // Journal data is guest-influenced: two-phase commit keeps a
            // crafted crash from making a torn commit look valid.
            txn.set_two_phase_commit(true);
            f(&txn)?;
            txn.commit()?;
            Ok(())
        };
        self.commits += 1;
        let result = match contain(&path, || Ok(attempt())) {
            Ok(r) => r,
            Err(e) => {
                self.poisoned = Some(e.to_string());
                return Err(e);
            }
        };
        result.map_err(|e| {
            let detail = e.to_string();
            self.poisoned = Some(detail.clone());
            match e {
                redb::Error::Corrupted(d) => JournalError::Corrupt {
                    path: self.path.clone(),
                    detail: d,
                },
                _ => JournalError::Poisoned {
                    path: self.path.clone(),
                    detail,
                },
            }
        })
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(detail) => Err(JournalError::Poisoned {
                path: self.path.clone(),
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn begin_read(&self) -> Result<ReadTransaction> {
        self.db.begin_read().map_err(|e| self.storage(e))
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| self.corrupt(&format!("undecodable record: {e}")))
    }

    pub(crate) fn corrupt(&self, detail: &str) -> JournalError {
        JournalError::Corrupt {
            path: self.path.clone(),
            detail: detail.to_owned(),
        }
    }

    pub(crate) fn storage(&self, e: impl Into<redb::Error>) -> JournalError {
        match e.into() {
            redb::Error::Corrupted(detail) => JournalError::Corrupt {
                path: self.path.clone(),
                detail,
            },
            other => JournalError::Storage {
                path: self.path.clone(),
                detail: other.to_string(),
            },
        }
    }
}

/// Opens a table that an older journal may not have: `None` when absent.
pub(crate) fn optional<K: redb::Key + 'static, V: redb::Value + 'static>(
    journal: &Journal,
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<Option<redb::ReadOnlyTable<K, V>>> {
    match txn.open_table(table) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(journal.storage(e)),
    }
}

/// Adds `delta` to a counter of the `meta` table.
pub(crate) fn add_counter(
    txn: &WriteTransaction,
    key: &[u8],
    delta: i64,
) -> Result<(), redb::Error> {
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

/// The state directory holds agents' memory and tool results: owner only.
/// (On Windows the directory inherits its parent's ACL, the user's profile.)
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
