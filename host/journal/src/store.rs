//! Opening a journal, and writing to it: the chain's heads, the buffered
//! events and the commits that make them durable, on any [`Backend`].

use std::collections::HashMap;
use std::path::Path;

use redb::StorageBackend;
use serde_json::Value;

use crate::backend::redb::{FILE_NAME, Redb};
use crate::backend::{Backend, Batch, RunWrite, Snapshot};
use crate::contain::contain;
use crate::event::{Event, GENESIS, Head, MemoryEffect, RunInfo, RunStatus};
use crate::{JournalError, Result};

/// Events buffered before they are committed anyway (two per tool call).
/// Each commit also writes redb's allocator state (multi-writer mode); fewer
/// commits measured ~1.5 µs less per call on a fresh journal
/// (docs/performance.md). Memory stays bounded by `MAX_PENDING_BYTES`.
const MAX_PENDING: usize = 4096;
/// Bytes of buffered events before they are committed anyway.
const MAX_PENDING_BYTES: usize = 8 << 20;

/// An open journal.
pub struct Journal {
    pub(crate) backend: Box<dyn Backend>,
    poisoned: Option<String>,
    /// Head of each run appended to through this handle, pending events
    /// included.
    pub(crate) heads: HashMap<String, Head>,
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
    /// Run → the lease token this handle holds for it (see [`Journal::claim`]).
    pub(crate) leases: HashMap<String, u64>,
    /// Run → the owner that took its lease over: nothing more of these runs
    /// is written through this handle.
    pub(crate) lost: HashMap<String, String>,
}

/// What a commit did.
struct Committed {
    /// Whether the run it was to create was created.
    created: bool,
    /// The first run left out because its lease was taken over.
    lost: Option<String>,
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
        f.debug_struct("Journal")
            .field("path", &self.path())
            .finish()
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
        Ok(Journal::new(Box::new(Redb::open(dir.join(FILE_NAME))?)))
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
        match Redb::open_read_only(path)? {
            Some(store) => Ok(Some(Journal::new(Box::new(store)))),
            // The last writer was killed and none is running: a reader may
            // not repair the file, so it is opened as a writer would, which
            // recovers it to its last commit (nothing else is written).
            None => Journal::open(dir).map(Some),
        }
    }

    /// Opens a journal on any redb storage backend, for this process alone
    /// (tests simulate power loss with one).
    pub fn open_with_backend(backend: impl StorageBackend, label: &str) -> Result<Journal> {
        Ok(Journal::new(Box::new(Redb::with_backend(backend, label)?)))
    }

    /// Opens (creating if needed) the journal kept in schema `schema` of the
    /// PostgreSQL database at `url` (`postgresql://USER:PASSWORD@HOST/DB`):
    /// any number of nodes may open the same one (docs/fleet.md).
    #[cfg(feature = "postgres")]
    pub fn open_postgres(url: &str, schema: &str) -> Result<Journal> {
        let store = crate::backend::postgres::Postgres::open(url, schema)?;
        Ok(Journal::new(Box::new(store)))
    }

    pub(crate) fn new(backend: Box<dyn Backend>) -> Journal {
        Journal {
            backend,
            poisoned: None,
            heads: HashMap::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            pending_memory: 0,
            pending_components: Vec::new(),
            commits: 0,
            leases: HashMap::new(),
            lost: HashMap::new(),
        }
    }

    /// Durable commits made through this handle (each is one fsync, or two
    /// with two-phase commit): with a [`crate::SharedJournal`], one commit
    /// covers every run that appended since the last.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// The database file, or for a database server its URL without the
    /// password: what errors name.
    pub fn path(&self) -> &Path {
        self.backend.label()
    }

    /// Bytes the journal takes in its store (committed data only).
    pub fn stored_bytes(&self) -> Result<u64> {
        self.backend.size()
    }

    /// Records a new run, durably: a run exists in the journal before
    /// anything of it leaves the process.
    pub fn create_run(&mut self, info: &RunInfo) -> Result<()> {
        let record = serde_json::to_string(info).expect("invariant: RunInfo serializes");
        let head = Head {
            events: 0,
            hash: GENESIS.to_owned(),
            bytes: 0,
        };
        let head_text = serde_json::to_string(&head).expect("invariant: Head serializes");
        let committed = self.commit_with(Some(RunWrite::Create {
            id: &info.id,
            record: &record,
            head: &head_text,
        }))?;
        if !committed.created {
            return Err(JournalError::Storage {
                path: self.path().to_owned(),
                detail: format!("a run `{}` already exists", info.id),
            });
        }
        self.heads.insert(info.id.clone(), head);
        Ok(())
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

    /// Keeps bytes by their sha256 now, durably (a server's stored bundles:
    /// every node reading the journal can run them).
    pub fn store_component(&mut self, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.keep_component(sha256, bytes)?;
        if !self.pending_components.is_empty() {
            self.commit_with(None)?;
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
        let mut info = self.run(id)?;
        info.status = status;
        info.outcome = outcome;
        let record = serde_json::to_string(&info).expect("invariant: RunInfo serializes");
        // The run's end and every event before it, in one durable commit.
        self.commit_with(Some(RunWrite::Update {
            id,
            record: &record,
        }))?;
        self.check_lost(id)?;
        // A finished run needs no owner any more.
        self.release(id)
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
        self.check_lost(run)?;
        if !self.heads.contains_key(run) {
            let stored = self.stored_head(run)?;
            self.heads.insert(run.to_owned(), stored);
        }
        let head = &self.heads[run];
        let seq = head.events;
        let (event, text) = Event::sealed(seq, kind, data, &head.hash);
        if let Some(effect) = &effect {
            self.pending_memory += self.memory_delta(effect)?;
        }
        let head = self
            .heads
            .get_mut(run)
            .expect("invariant: the run's head was loaded above");
        head.events = seq + 1;
        head.hash.clone_from(&event.hash);
        head.bytes += text.len() as u64;
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
            self.check_poisoned()?;
        } else {
            self.commit_with(None)?;
        }
        self.check_lost(run)
    }

    /// Makes everything appended so far durable (one commit). When a run's
    /// lease was taken over, everything else is committed and the error
    /// names that run.
    pub fn sync(&mut self) -> Result<()> {
        if self.pending.is_empty() && self.pending_components.is_empty() {
            return Ok(());
        }
        match self.commit_with(None)?.lost {
            Some(run) => self.check_lost(&run),
            None => Ok(()),
        }
    }

    /// Where a run's chain ends as committed: its [`Head`], or for a run
    /// written by an older fc-host, its last event.
    fn stored_head(&self, run: &str) -> Result<Head> {
        let snapshot = self.snapshot()?;
        if let Some(head) = crate::read::head(self, &*snapshot, run)? {
            return Ok(head);
        }
        let mut head = Head {
            events: 0,
            hash: GENESIS.to_owned(),
            bytes: 0,
        };
        for (_, text) in snapshot.events(run, 0, usize::MAX)? {
            let event: Event = self.decode(&text)?;
            head = Head {
                events: event.seq + 1,
                hash: event.hash,
                bytes: head.bytes + text.len() as u64,
            };
        }
        Ok(head)
    }

    /// One durable transaction: every buffered event, memory change and
    /// component, the heads of the runs they belong to, and `run`, fenced by
    /// the leases this handle holds. A run whose lease was taken over is
    /// left out (its buffered events are dropped: the run's new owner has
    /// its own) and the rest committed; the failed attempt wrote nothing.
    fn commit_with(&mut self, mut run: Option<RunWrite<'_>>) -> Result<Committed> {
        let mut first_lost = None;
        loop {
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
            let fences: Vec<(String, u64)> = self
                .leases
                .iter()
                .filter(|(r, _)| {
                    heads.iter().any(|(h, _)| h == *r) || run.as_ref().is_some_and(|w| w.id() == *r)
                })
                .map(|(r, t)| (r.clone(), *t))
                .collect();
            self.pending_bytes = 0;
            self.pending_memory = 0;
            let batch = Batch {
                events: &pending,
                heads: &heads,
                components: &components,
                run,
                fences: &fences,
            };
            let lost = match self.write(|backend| backend.commit(&batch)) {
                Err(JournalError::LeaseLost { run: lost, owner })
                    if fences.iter().any(|(r, _)| *r == lost) =>
                {
                    self.heads.remove(&lost);
                    self.leases.remove(&lost);
                    self.lost.insert(lost.clone(), owner);
                    first_lost.get_or_insert_with(|| lost.clone());
                    lost
                }
                result => {
                    return result.map(|created| Committed {
                        created,
                        lost: first_lost,
                    });
                }
            };
            run = batch.run.filter(|w| w.id() != lost);
            self.pending = pending.into_iter().filter(|p| p.run != lost).collect();
            self.pending_bytes = self.pending.iter().map(|p| p.text.len()).sum();
            self.pending_components = components;
            if self.pending.is_empty() && self.pending_components.is_empty() && run.is_none() {
                return Ok(Committed {
                    created: false,
                    lost: first_lost,
                });
            }
        }
    }

    /// Fails when the run's lease was taken over from this handle.
    pub(crate) fn check_lost(&self, run: &str) -> Result<()> {
        match self.lost.get(run) {
            Some(owner) => Err(JournalError::LeaseLost {
                run: run.to_owned(),
                owner: owner.clone(),
            }),
            None => Ok(()),
        }
    }

    /// One durable write through the backend. A failed commit poisons the
    /// handle: the write is not retried (after a failed fsync the page cache
    /// cannot be trusted, and a database's answer may have been lost on the
    /// way), and every later write fails until the journal is reopened.
    pub(crate) fn write<T>(&mut self, f: impl FnOnce(&mut dyn Backend) -> Result<T>) -> Result<T> {
        self.check_poisoned()?;
        self.commits += 1;
        let path = self.path().to_owned();
        let result = contain(&path, || f(&mut *self.backend));
        if let Err(e) = &result
            && !matches!(
                e,
                JournalError::Leased { .. } | JournalError::LeaseLost { .. }
            )
        {
            // A lease refused is a transaction rolled back, not a failure.
            self.poisoned = Some(match e {
                JournalError::Poisoned { detail, .. } | JournalError::Corrupt { detail, .. } => {
                    detail.clone()
                }
                e => e.to_string(),
            });
        }
        result
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(detail) => Err(JournalError::Poisoned {
                path: self.path().to_owned(),
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }

    /// A consistent view of what is committed.
    pub(crate) fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        self.backend.read()
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| self.corrupt(&format!("undecodable record: {e}")))
    }

    pub(crate) fn corrupt(&self, detail: &str) -> JournalError {
        JournalError::Corrupt {
            path: self.path().to_owned(),
            detail: detail.to_owned(),
        }
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
