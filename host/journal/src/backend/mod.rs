//! The journal's storage seam. [`crate::Journal`] keeps everything that makes
//! a journal a journal — the hash chain, the buffered events and their
//! commit points, the memory accounting, poisoning after a failed commit —
//! and a backend stores what it is given: one durable transaction per
//! commit, and consistent snapshots to read from. The embedded redb file is
//! the default; PostgreSQL (feature `postgres`) keeps the journal of many
//! nodes in one database (docs/fleet.md).

use std::path::Path;
use std::time::Duration;

use crate::Result;
use crate::store::Pending;

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod redb;

/// A journal's store.
pub(crate) trait Backend: Send {
    /// What error messages name: the database file, or the database's URL
    /// without its password.
    fn label(&self) -> &Path;

    /// Bytes the journal takes in its store (a tenant's `journal-bytes`
    /// quota): the file's size, or the schema's tables with their indexes.
    fn size(&self) -> Result<u64>;

    /// A consistent view of what is committed.
    fn read(&self) -> Result<Box<dyn Snapshot + '_>>;

    /// Writes `batch` in one durable transaction, all or nothing. `Ok(false)`
    /// when the batch creates a run that exists already (the run's record
    /// and head were left as they were; everything else was written).
    fn commit(&mut self, batch: &Batch<'_, '_>) -> Result<bool>;

    /// Gives `run`'s lease to `owner` until `ttl` from now (by the store's
    /// clock) unless another owner holds one that has not expired:
    /// `Ok(token)`, higher than every token the run's lease had before, or
    /// [`crate::JournalError::Leased`]. The same owner claiming again gets
    /// a new token, which fences off its older handles.
    fn claim(&mut self, run: &str, owner: &str, ttl: Duration) -> Result<u64>;

    /// Extends the lease `token` holds to `ttl` from now, or
    /// [`crate::JournalError::LeaseLost`] when another token holds it.
    fn renew(&mut self, run: &str, token: u64, ttl: Duration) -> Result<()>;

    /// Gives up the lease `token` holds (nothing when it no longer does).
    /// The token count is kept, so no later token repeats an earlier one.
    fn release(&mut self, run: &str, token: u64) -> Result<()>;

    /// Reads and changes the monotonic records in one durable transaction,
    /// serialized against every other writer of the store.
    fn update_records(&mut self, f: &mut dyn FnMut(&mut dyn Records) -> Result<()>) -> Result<()>;
}

/// What one commit writes.
pub(crate) struct Batch<'a, 'r> {
    /// Appended events, with the memory change each applies.
    pub events: &'a [Pending],
    /// Run id → its [`crate::Head`] (JSON) after these events.
    pub heads: &'a [(String, String)],
    /// sha256 → bytes of components to keep.
    pub components: &'a [(String, Vec<u8>)],
    /// A run record to create or replace.
    pub run: Option<RunWrite<'r>>,
    /// Run → the lease token this handle holds for it: the commit writes
    /// nothing, and fails with [`crate::JournalError::LeaseLost`], when any
    /// of them no longer holds its run's lease.
    pub fences: &'a [(String, u64)],
}

/// A run record written by a commit.
pub(crate) enum RunWrite<'a> {
    /// A new run (and its empty head), counted in the `runs` counter.
    Create {
        id: &'a str,
        record: &'a str,
        head: &'a str,
    },
    /// A changed record of an existing run.
    Update { id: &'a str, record: &'a str },
}

impl RunWrite<'_> {
    /// The run written.
    pub fn id(&self) -> &str {
        match self {
            RunWrite::Create { id, .. } | RunWrite::Update { id, .. } => id,
        }
    }
}

/// A run's lease as a store keeps it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct LeaseRecord {
    /// Who holds it; empty once released.
    pub owner: String,
    /// The highest token given for the run.
    pub token: u64,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_ms: u64,
}

/// A consistent read-only view of a store.
pub(crate) trait Snapshot {
    /// A run's record.
    fn run(&self, id: &str) -> Result<Option<Vec<u8>>>;
    /// Every run record, in no particular order.
    fn runs(&self) -> Result<Vec<Vec<u8>>>;
    /// A run's committed head.
    fn head(&self, run: &str) -> Result<Option<Vec<u8>>>;
    /// The runs that have a head; `None` for a store that keeps no heads.
    fn head_ids(&self) -> Result<Option<Vec<String>>>;
    /// Up to `max` of a run's events from `from` on: (sequence key, bytes).
    fn events(&self, run: &str, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>>;
    /// A run's last stored event.
    fn last_event(&self, run: &str) -> Result<Option<Vec<u8>>>;
    /// A counter (`runs`, `memory-bytes`); `None` for a store without it.
    fn counter(&self, key: &str) -> Result<Option<u64>>;
    /// A value of an agent's memory.
    fn memory(&self, scope: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// The keys of a memory scope that start with `prefix`.
    fn memory_keys(&self, scope: &str, prefix: &str) -> Result<Vec<Vec<u8>>>;
    /// A component's bytes.
    fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
    /// Whether the store holds a component.
    fn has_component(&self, sha256: &str) -> Result<bool>;
    /// The records whose keys start with `prefix`, in key order.
    fn records_under(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Every lease held (not released), expired ones included, by the
    /// store's clock.
    fn leases(&self) -> Result<Vec<crate::Lease>>;
}

/// The monotonic records, inside [`Backend::update_records`].
pub(crate) trait Records {
    /// A record's value.
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores a record.
    fn put(&mut self, key: &str, value: &str) -> Result<()>;
    /// Removes a record (nothing when there is none).
    fn remove(&mut self, key: &str) -> Result<()>;
    /// Removes the records under `prefix`, except those under `keep`.
    fn remove_prefix_except(&mut self, prefix: &str, keep: &str) -> Result<()>;
}

/// Bytes an entry of agent memory takes in the store's accounting.
pub(crate) fn entry_size(key: &str, value: &str) -> i64 {
    (key.len() + value.len()) as i64
}
