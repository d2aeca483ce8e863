//! FemtoClaw journal: every run as a durable, hash-chained, replayable record.
//!
//! One redb database per state directory holds the runs, their events and
//! the agents' durable memory. Events are appended with
//! [`Durability::None`](redb::Durability::None) (cheap: no fsync) and made
//! durable by [`Journal::sync`] at the points where an effect leaves the
//! sandbox: before a `write` tool runs and before a final answer is printed
//! (the output-commit rule). Each event carries the hash of the one before
//! it, so any change to a stored event breaks the chain at that event.
//!
//! A failed commit poisons the handle: no write is retried blindly; the
//! database is reopened (and recovered by redb) by the next process.

#![deny(missing_docs)]

mod contain;
mod error;
mod event;
mod store;

pub use error::{JournalError, Result};
pub use event::{Event, MemoryEffect, RunInfo, RunStatus};
pub use store::{FILE_NAME, Journal};
