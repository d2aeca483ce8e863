//! Run ownership across nodes: a run is executed by the node holding its
//! lease. A lease is claimed for a time and renewed while the run goes on;
//! every commit that writes a leased run checks, in its own transaction,
//! that this handle's token still holds the lease. When a node dies its
//! leases expire, another node claims the run (with a higher token) and
//! resumes it from the journal, and whatever the dead node might still try
//! to write is refused (docs/fleet.md).

use std::time::Duration;

use crate::{Journal, Result};

/// A run's lease as the store holds it (not released).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The run (or another name a node leases).
    pub run: String,
    /// The node holding it.
    pub owner: String,
    /// Milliseconds until it expires unless renewed, by the store's clock;
    /// 0 once expired: its node is presumed dead and another may claim it.
    pub remaining_ms: u64,
}

impl Journal {
    /// Claims the lease of `run` for `owner` (a node's name) for `ttl`, by
    /// the store's clock: `Err(Leased)` while another owner's lease has not
    /// expired. From now on every commit that writes the run is fenced by
    /// the new token; this handle's view of the run is read afresh from the
    /// store.
    pub fn claim(&mut self, run: &str, owner: &str, ttl: Duration) -> Result<u64> {
        let token = self.write(|backend| backend.claim(run, owner, ttl))?;
        // The store's head may be ahead of this handle's: the run was
        // executed elsewhere meanwhile.
        self.heads.remove(run);
        self.lost.remove(run);
        self.leases.insert(run.to_owned(), token);
        Ok(token)
    }

    /// Extends this handle's lease of `run` to `ttl` from now;
    /// `Err(LeaseLost)` when another owner took it over (the handle then
    /// writes nothing more of the run).
    pub fn renew(&mut self, run: &str, ttl: Duration) -> Result<()> {
        self.check_lost(run)?;
        let Some(&token) = self.leases.get(run) else {
            return Ok(());
        };
        match self.write(|backend| backend.renew(run, token, ttl)) {
            Err(crate::JournalError::LeaseLost { run, owner }) => {
                self.leases.remove(&run);
                self.lost.insert(run.clone(), owner.clone());
                Err(crate::JournalError::LeaseLost { run, owner })
            }
            other => other,
        }
    }

    /// Gives up this handle's lease of `run`, if it holds one, so that
    /// another node may claim it at once (a finished run releases its own).
    pub fn release(&mut self, run: &str) -> Result<()> {
        match self.leases.remove(run) {
            Some(token) => self.write(|backend| backend.release(run, token)),
            None => Ok(()),
        }
    }

    /// The token of this handle's lease of `run`, if it holds one.
    pub fn lease(&self, run: &str) -> Option<u64> {
        self.leases.get(run).copied()
    }

    /// The runs this handle holds leases of (what its node renews).
    pub fn held(&self) -> Vec<String> {
        self.leases.keys().cloned().collect()
    }

    /// Every lease the store holds that was not released, by any node,
    /// expired ones included.
    pub fn all_leases(&self) -> Result<Vec<Lease>> {
        self.snapshot()?.leases()
    }
}
