//! FemtoClaw journal: every run as a durable, hash-chained, replayable record.
//!
//! One redb database per state directory holds the runs, their events, the
//! agents' durable memory and the agent components runs used. Any number of
//! processes may append to it and read it at once (redb's multi-writer
//! mode). Events are buffered and committed durably where an effect leaves
//! the sandbox: when a run starts, before a `write` tool runs and before a
//! final answer is printed (the output-commit rule). Each event carries the
//! hash of the one before it, and each commit records where every run's
//! chain ends, so any change to a stored event, and any event lost, is
//! found when the run is read.
//!
//! A failed commit poisons the handle: no write is retried blindly; the
//! database is reopened (and recovered by redb) by the next process.

#![deny(missing_docs)]

mod audit;
mod backend;
mod contain;
mod error;
mod event;
mod lease;
mod memory;
mod read;
mod records;
mod shared;
mod store;

pub use audit::decisions;
pub use backend::redb::FILE_NAME;
pub use error::{JournalError, Result};
pub use event::{Event, Head, MemoryEffect, RunInfo, RunStatus};
pub use lease::Lease;
pub use read::Listing;
pub use shared::SharedJournal;
pub use store::Journal;
