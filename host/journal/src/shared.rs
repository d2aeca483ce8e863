//! One journal handle for many runs of one process (a tenant's runs in
//! `fc-host serve`): their events are buffered together, so a commit one run
//! needs makes every other run's appended events durable too, and a run
//! whose events are already committed commits nothing. That is group
//! commit: one fsync covers many runs, and none is skipped.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::Journal;

/// A [`Journal`] shared by the runs of one process. The lock is held for
/// one journal call at a time, never across an await.
#[derive(Debug, Clone)]
pub struct SharedJournal(Arc<Mutex<Journal>>);

impl SharedJournal {
    /// Shares an open journal.
    pub fn new(journal: Journal) -> SharedJournal {
        SharedJournal(Arc::new(Mutex::new(journal)))
    }

    /// The journal, for one call. A panic inside a journal call is turned
    /// into an error where it happens (`contain`), and a failed commit
    /// poisons the journal itself: the lock's own poisoning adds nothing.
    pub fn lock(&self) -> MutexGuard<'_, Journal> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
