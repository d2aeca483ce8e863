//! Reading a redb journal: one read transaction per snapshot.

use std::path::Path;

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableError};

use super::{COMPONENTS, EVENTS, HEADS, LEASES, MEMORY, META, RECORDS, RUNS, now_ms, storage};
use crate::backend::LeaseRecord;
use crate::backend::Snapshot;
use crate::contain::contain;
use crate::{JournalError, Result};

pub(super) struct Read<'a> {
    pub(super) txn: ReadTransaction,
    pub(super) path: &'a Path,
}

impl Read<'_> {
    /// Runs a read inside [`contain`], mapping redb's errors.
    fn with<T>(&self, f: impl FnOnce() -> Result<T, redb::Error>) -> Result<T> {
        contain(self.path, || f().map_err(|e| storage(self.path, e)))
    }

    /// A table an older journal may not have: `None` when absent.
    fn optional<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        table: TableDefinition<K, V>,
    ) -> Result<Option<redb::ReadOnlyTable<K, V>>, redb::Error> {
        match self.txn.open_table(table) {
            Ok(t) => Ok(Some(t)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn get(&self, table: TableDefinition<&[u8], &[u8]>, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|| match self.optional(table)? {
            None => Ok(None),
            Some(t) => Ok(t.get(key.as_bytes())?.map(|v| v.value().to_vec())),
        })
    }
}

impl Snapshot for Read<'_> {
    fn run(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.get(RUNS, id)
    }

    fn runs(&self) -> Result<Vec<Vec<u8>>> {
        self.with(|| {
            let mut runs = Vec::new();
            for entry in self.txn.open_table(RUNS)?.iter()? {
                runs.push(entry?.1.value().to_vec());
            }
            Ok(runs)
        })
    }

    fn head(&self, run: &str) -> Result<Option<Vec<u8>>> {
        self.get(HEADS, run)
    }

    fn head_ids(&self) -> Result<Option<Vec<String>>> {
        self.with(|| {
            let Some(heads) = self.optional(HEADS)? else {
                return Ok(None);
            };
            let mut ids = Vec::new();
            for entry in heads.iter()? {
                ids.push(String::from_utf8_lossy(entry?.0.value()).into_owned());
            }
            Ok(Some(ids))
        })
    }

    fn events(&self, run: &str, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.with(|| {
            let table = self.txn.open_table(EVENTS)?;
            let range = (run.as_bytes(), from)..=(run.as_bytes(), u64::MAX);
            let mut events = Vec::new();
            for entry in table.range(range)?.take(max) {
                let (key, text) = entry?;
                events.push((key.value().1, text.value().to_vec()));
            }
            Ok(events)
        })
    }

    fn last_event(&self, run: &str) -> Result<Option<Vec<u8>>> {
        self.with(|| {
            let table = self.txn.open_table(EVENTS)?;
            let range = (run.as_bytes(), 0)..=(run.as_bytes(), u64::MAX);
            match table.range(range)?.next_back() {
                None => Ok(None),
                Some(entry) => Ok(Some(entry?.1.value().to_vec())),
            }
        })
    }

    fn counter(&self, key: &str) -> Result<Option<u64>> {
        let Some(bytes) = self.get(META, key)? else {
            return Ok(None);
        };
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| JournalError::Corrupt {
                path: self.path.to_owned(),
                detail: "a journal counter is not a number".into(),
            })
    }

    fn memory(&self, scope: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|| {
            let table = self.txn.open_table(MEMORY)?;
            Ok(table
                .get((scope.as_bytes(), key.as_bytes()))?
                .map(|v| v.value().to_vec()))
        })
    }

    fn memory_keys(&self, scope: &str, prefix: &str) -> Result<Vec<Vec<u8>>> {
        self.with(|| {
            let table = self.txn.open_table(MEMORY)?;
            let mut keys = Vec::new();
            for entry in table.range((scope.as_bytes(), prefix.as_bytes())..)? {
                let (key, _) = entry?;
                let (s, k) = key.value();
                if s != scope.as_bytes() || !k.starts_with(prefix.as_bytes()) {
                    break;
                }
                keys.push(k.to_vec());
            }
            Ok(keys)
        })
    }

    fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.get(COMPONENTS, sha256)
    }

    fn has_component(&self, sha256: &str) -> Result<bool> {
        self.with(|| match self.optional(COMPONENTS)? {
            None => Ok(false),
            Some(t) => Ok(t.get(sha256.as_bytes())?.is_some()),
        })
    }

    fn records_under(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.with(|| {
            let Some(table) = self.optional(RECORDS)? else {
                return Ok(Vec::new());
            };
            let mut records = Vec::new();
            for entry in table.range(prefix.as_bytes()..)? {
                let (key, value) = entry?;
                if !key.value().starts_with(prefix.as_bytes()) {
                    break;
                }
                let key = String::from_utf8_lossy(key.value()).into_owned();
                records.push((key, value.value().to_vec()));
            }
            Ok(records)
        })
    }

    fn leases(&self) -> Result<Vec<crate::Lease>> {
        let now = now_ms();
        let stored = self.with(|| {
            let Some(table) = self.optional(LEASES)? else {
                return Ok(Vec::new());
            };
            let mut stored = Vec::new();
            for entry in table.iter()? {
                let (run, value) = entry?;
                let run = String::from_utf8_lossy(run.value()).into_owned();
                stored.push((run, value.value().to_vec()));
            }
            Ok(stored)
        })?;
        let mut leases = Vec::new();
        for (run, bytes) in stored {
            let lease: LeaseRecord =
                serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
                    path: self.path.to_owned(),
                    detail: format!("the lease of run `{run}` is undecodable: {e}"),
                })?;
            if !lease.owner.is_empty() {
                leases.push(crate::Lease {
                    run,
                    owner: lease.owner,
                    remaining_ms: lease.expires_ms.saturating_sub(now),
                });
            }
        }
        Ok(leases)
    }
}
