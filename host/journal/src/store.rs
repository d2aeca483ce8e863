//! The redb database behind the journal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition,
    WriteTransaction,
};
use serde_json::Value;

use crate::contain::contain;
use crate::event::{Event, GENESIS, MemoryEffect, RunInfo, RunStatus};
use crate::{JournalError, Result};

/// The journal's file name inside the state directory.
pub const FILE_NAME: &str = "journal.redb";

// Keys and values are bytes, decoded (and checked) here: a damaged page
// must become an error, and redb's own `&str` decoding would panic on it.
const RUNS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("runs");
const EVENTS: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("events");
const MEMORY: TableDefinition<(&[u8], &[u8]), &[u8]> = TableDefinition::new("memory");

/// An open journal. One process holds it at a time.
pub struct Journal {
    db: Database,
    path: PathBuf,
    poisoned: Option<String>,
    /// Last `(seq, hash)` of each run appended to through this handle.
    heads: HashMap<String, (u64, String)>,
    /// Appended events not yet written. Buffering them costs nothing in
    /// durability: a `Durability::None` commit lives in this process's
    /// memory too until the next durable one.
    pending: Vec<Pending>,
}

/// An appended event waiting for the next transaction.
struct Pending {
    run: String,
    seq: u64,
    text: String,
    effect: Option<MemoryEffect>,
}

/// Events buffered before they are written anyway.
const MAX_PENDING: usize = 512;

fn write_pending(txn: &WriteTransaction, pending: &[Pending]) -> Result<(), redb::Error> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut events = txn.open_table(EVENTS)?;
    let mut memory = txn.open_table(MEMORY)?;
    for p in pending {
        events.insert((p.run.as_bytes(), p.seq), p.text.as_bytes())?;
        match &p.effect {
            Some(MemoryEffect::Set { scope, key, value }) => {
                memory.insert((scope.as_bytes(), key.as_bytes()), value.as_bytes())?;
            }
            Some(MemoryEffect::Delete { scope, key }) => {
                memory.remove((scope.as_bytes(), key.as_bytes()))?;
            }
            None => {}
        }
    }
    Ok(())
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    /// Opens (creating if needed) the journal of a state directory. A file
    /// left by a crash is recovered by redb; a damaged one is refused.
    pub fn open(dir: &Path) -> Result<Journal> {
        create_private_dir(dir).map_err(|e| JournalError::Storage {
            path: dir.to_owned(),
            detail: e.to_string(),
        })?;
        let path = dir.join(FILE_NAME);
        contain(&path.clone(), || {
            let db = Database::builder()
                .create(&path)
                .map_err(|e| db_error(&path, e))?;
            Journal::init(db, path)
        })
    }

    /// Opens a journal on any redb storage backend (tests simulate power
    /// loss with one).
    pub fn open_with_backend(backend: impl StorageBackend, label: &str) -> Result<Journal> {
        let path = PathBuf::from(label);
        contain(&path.clone(), || {
            let db = Database::builder()
                .create_with_backend(backend)
                .map_err(|e| db_error(&path, e))?;
            Journal::init(db, path)
        })
    }

    fn init(db: Database, path: PathBuf) -> Result<Journal> {
        let mut journal = Journal {
            db,
            path,
            poisoned: None,
            heads: HashMap::new(),
            pending: Vec::new(),
        };
        // Create the tables once; an existing journal opens without a commit.
        let ready = {
            let txn = journal.db.begin_read().map_err(|e| journal.storage(e))?;
            txn.open_table(RUNS).is_ok()
                && txn.open_table(EVENTS).is_ok()
                && txn.open_table(MEMORY).is_ok()
        };
        if !ready {
            journal.write(Durability::Immediate, |txn| {
                txn.open_table(RUNS)?;
                txn.open_table(EVENTS)?;
                txn.open_table(MEMORY)?;
                Ok(())
            })?;
        }
        Ok(journal)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a new run. Not yet durable: nothing of the run has left the
    /// sandbox, and the next [`Journal::sync`] (before the first effect)
    /// makes it so.
    pub fn create_run(&mut self, info: &RunInfo) -> Result<()> {
        let path = self.path.clone();
        contain(&path, || {
            let text = serde_json::to_string(info).expect("invariant: RunInfo serializes");
            self.write(Durability::None, |txn| {
                txn.open_table(RUNS)?
                    .insert(info.id.as_bytes(), text.as_bytes())?;
                Ok(())
            })?;
            self.heads
                .insert(info.id.clone(), (u64::MAX, GENESIS.to_owned()));
            Ok(())
        })
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
            let pending = std::mem::take(&mut self.pending);
            self.write(Durability::Immediate, |txn| {
                write_pending(txn, &pending)?;
                txn.open_table(RUNS)?
                    .insert(id.as_bytes(), text.as_bytes())?;
                Ok(())
            })
        })
    }

    /// Appends an event to a run (not yet durable: see [`Journal::sync`]),
    /// applying a memory change in the same transaction.
    pub fn append(
        &mut self,
        run: &str,
        kind: &str,
        data: Value,
        effect: Option<MemoryEffect>,
    ) -> Result<Event> {
        if let Some(detail) = &self.poisoned {
            return Err(JournalError::Poisoned {
                path: self.path.clone(),
                detail: detail.clone(),
            });
        }
        let path = self.path.clone();
        contain(&path, || {
            let (last, prev) = match self.heads.get(run) {
                Some(head) => head.clone(),
                None => self.head(run)?,
            };
            let seq = last.wrapping_add(1);
            let event = Event::new(seq, kind, data, &prev);
            let text = serde_json::to_string(&event).expect("invariant: Event serializes");
            self.pending.push(Pending {
                run: run.to_owned(),
                seq,
                text,
                effect,
            });
            self.heads.insert(run.to_owned(), (seq, event.hash.clone()));
            if self.pending.len() >= MAX_PENDING {
                self.flush()?;
            }
            Ok(event)
        })
    }

    /// Writes the buffered events (and their memory changes) in one
    /// transaction, without fsync. Reads through this handle see only
    /// flushed events: call it before reading memory that was just written.
    pub fn flush(&mut self) -> Result<()> {
        self.commit(Durability::None)
    }

    /// One transaction with every buffered event.
    fn commit(&mut self, durability: Durability) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() && matches!(durability, Durability::None) {
            return Ok(());
        }
        self.write(durability, |txn| write_pending(txn, &pending))
    }

    /// Makes everything appended so far durable (one fsync).
    pub fn sync(&mut self) -> Result<()> {
        self.commit(Durability::Immediate)
    }

    /// A run's record and its events, in order.
    pub fn load(&self, id: &str) -> Result<(RunInfo, Vec<Event>)> {
        Ok((self.run(id)?, self.events(id)?))
    }

    /// A run's record.
    pub fn run(&self, id: &str) -> Result<RunInfo> {
        let path = self.path.clone();
        contain(&path, || {
            let txn = self.db.begin_read().map_err(|e| self.storage(e))?;
            let table = txn.open_table(RUNS).map_err(|e| self.storage(e))?;
            let text = table
                .get(id.as_bytes())
                .map_err(|e| self.storage(e))?
                .ok_or_else(|| JournalError::UnknownRun(id.to_owned()))?;
            self.decode(text.value())
        })
    }

    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        let path = self.path.clone();
        contain(&path, || {
            let txn = self.db.begin_read().map_err(|e| self.storage(e))?;
            let table = txn.open_table(RUNS).map_err(|e| self.storage(e))?;
            let mut runs = Vec::new();
            for entry in table.iter().map_err(|e| self.storage(e))? {
                let (_, text) = entry.map_err(|e| self.storage(e))?;
                runs.push(self.decode::<RunInfo>(text.value())?);
            }
            runs.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
            Ok(runs)
        })
    }

    /// A run's events in order, after checking the hash chain.
    pub fn events(&self, run: &str) -> Result<Vec<Event>> {
        let path = self.path.clone();
        contain(&path, || {
            self.run(run)?;
            let txn = self.db.begin_read().map_err(|e| self.storage(e))?;
            let table = txn.open_table(EVENTS).map_err(|e| self.storage(e))?;
            let mut events = Vec::new();
            let mut prev = GENESIS.to_owned();
            let range = (run.as_bytes(), 0)..=(run.as_bytes(), u64::MAX);
            for entry in table.range(range).map_err(|e| self.storage(e))? {
                let (key, text) = entry.map_err(|e| self.storage(e))?;
                let seq = key.value().1;
                let tampered = |detail: &str| JournalError::Tampered {
                    run: run.to_owned(),
                    seq,
                    detail: detail.to_owned(),
                };
                let event: Event = serde_json::from_slice(text.value())
                    .map_err(|_| tampered("not a valid event"))?;
                if event.seq != seq || seq != events.len() as u64 {
                    return Err(tampered("out of sequence"));
                }
                if event.prev != prev {
                    return Err(tampered("its link to the previous event is wrong"));
                }
                if Event::digest(event.seq, &event.kind, &event.data, &event.prev) != event.hash {
                    return Err(tampered("its content does not match its hash"));
                }
                prev = event.hash.clone();
                events.push(event);
            }
            Ok(events)
        })
    }

    /// A value of an agent's durable memory.
    pub fn memory_get(&self, scope: &str, key: &str) -> Result<Option<String>> {
        let path = self.path.clone();
        contain(&path, || {
            let txn = self.db.begin_read().map_err(|e| self.storage(e))?;
            let table = txn.open_table(MEMORY).map_err(|e| self.storage(e))?;
            match table
                .get((scope.as_bytes(), key.as_bytes()))
                .map_err(|e| self.storage(e))?
            {
                Some(v) => String::from_utf8(v.value().to_vec())
                    .map(Some)
                    .map_err(|_| self.corrupt("a memory value is not UTF-8")),
                None => Ok(None),
            }
        })
    }

    /// The keys of an agent's durable memory that start with `prefix`, sorted.
    pub fn memory_list(&self, scope: &str, prefix: &str) -> Result<Vec<String>> {
        let path = self.path.clone();
        contain(&path, || {
            let txn = self.db.begin_read().map_err(|e| self.storage(e))?;
            let table = txn.open_table(MEMORY).map_err(|e| self.storage(e))?;
            let mut keys = Vec::new();
            for entry in table
                .range((scope.as_bytes(), prefix.as_bytes())..)
                .map_err(|e| self.storage(e))?
            {
                let (key, _) = entry.map_err(|e| self.storage(e))?;
                let (s, k) = key.value();
                if s != scope.as_bytes() || !k.starts_with(prefix.as_bytes()) {
                    break;
                }
                keys.push(
                    String::from_utf8(k.to_vec())
                        .map_err(|_| self.corrupt("a memory key is not UTF-8"))?,
                );
            }
            Ok(keys)
        })
    }

    /// Last `(seq, hash)` of a run as stored.
    fn head(&self, run: &str) -> Result<(u64, String)> {
        let path = self.path.clone();
        contain(&path, || {
            let txn = self.db.begin_read().map_err(|e| self.storage(e))?;
            let table = txn.open_table(EVENTS).map_err(|e| self.storage(e))?;
            let range = (run.as_bytes(), 0)..=(run.as_bytes(), u64::MAX);
            let last = table.range(range).map_err(|e| self.storage(e))?.next_back();
            match last {
                None => Ok((u64::MAX, GENESIS.to_owned())),
                Some(entry) => {
                    let (_, text) = entry.map_err(|e| self.storage(e))?;
                    let event: Event = self.decode(text.value())?;
                    Ok((event.seq, event.hash))
                }
            }
        })
    }

    /// One write transaction. A failed commit poisons the handle: the
    /// write is not retried (after a failed fsync the page cache cannot be
    /// trusted), and every later write fails until the journal is reopened.
    fn write(
        &mut self,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<()> {
        if let Some(detail) = &self.poisoned {
            return Err(JournalError::Poisoned {
                path: self.path.clone(),
                detail: detail.clone(),
            });
        }
        let path = self.path.clone();
        let attempt = || -> Result<(), redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(durability).map_err(|e| {
                redb::Error::from(redb::StorageError::from(std::io::Error::other(
                    e.to_string(),
                )))
            })?;
            if matches!(durability, Durability::Immediate) {
                // Journal data is guest-influenced: two-phase commit keeps a
                // crafted crash from making a torn commit look valid.
                txn.set_two_phase_commit(true);
            }
            f(&txn)?;
            txn.commit()?;
            Ok(())
        };
        let result = contain(&path, || Ok(attempt()));
        let result = match result {
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

    fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| self.corrupt(&format!("undecodable record: {e}")))
    }

    fn corrupt(&self, detail: &str) -> JournalError {
        JournalError::Corrupt {
            path: self.path.clone(),
            detail: detail.to_owned(),
        }
    }

    fn storage(&self, e: impl Into<redb::Error>) -> JournalError {
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
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
