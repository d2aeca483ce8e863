//! Journal errors.

use std::path::PathBuf;

/// Result of journal operations.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;

/// Why the journal could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The database file is damaged; nothing was started on it.
    #[error("journal `{path}` is corrupt: {detail}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What redb found.
        detail: String,
    },
    /// Another process holds the journal in a way this one cannot share.
    #[error("journal `{path}` is in use by another fc-host process")]
    Busy {
        /// The database file.
        path: PathBuf,
    },
    /// An I/O or storage error.
    #[error("journal `{path}`: {detail}")]
    Storage {
        /// The database file.
        path: PathBuf,
        /// The error.
        detail: String,
    },
    /// A commit failed earlier; this handle accepts no more writes.
    #[error("journal `{path}` is unusable after a failed commit ({detail}); reopen it")]
    Poisoned {
        /// The database file.
        path: PathBuf,
        /// The commit error.
        detail: String,
    },
    /// No run has this id.
    #[error("no run `{0}` in the journal")]
    UnknownRun(String),
    /// A stored event does not match the chain: it was changed after it was
    /// written.
    #[error(
        "run `{run}`: event {seq} fails the hash chain ({detail}): the journal was tampered with"
    )]
    Tampered {
        /// The run.
        run: String,
        /// The first event that fails.
        seq: u64,
        /// What does not match.
        detail: String,
    },
    /// A run's events do not add up to what was committed for it (events
    /// lost to damage, or a finished run without its end): it is never shown
    /// as a shorter run.
    #[error("run `{run}` is damaged: {detail}")]
    Damaged {
        /// The run.
        run: String,
        /// What is missing or inconsistent.
        detail: String,
    },
    /// Another owner holds the run's lease and it has not expired: this
    /// owner may not execute the run.
    #[error(
        "run `{run}` is leased to `{owner}` for {remaining_ms} ms more; another node is executing it"
    )]
    Leased {
        /// The run.
        run: String,
        /// Who holds the lease.
        owner: String,
        /// Until it expires, unless renewed.
        remaining_ms: u64,
    },
    /// This handle's lease on the run was taken over (it expired and another
    /// owner claimed it): nothing more of the run is written through it.
    #[error(
        "run `{run}`: this node's lease was taken over by `{owner}`; it stops executing the run"
    )]
    LeaseLost {
        /// The run.
        run: String,
        /// Who holds the lease now (empty if it was released).
        owner: String,
    },
}
