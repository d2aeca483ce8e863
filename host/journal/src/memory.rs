//! Agents' durable memory: stored in the `memory` table, changed in the same
//! transaction as the event that records each change. Reads see this
//! handle's buffered changes on top of what is committed.

use std::collections::BTreeSet;

use redb::{ReadableTable, WriteTransaction};

use crate::contain::contain;
use crate::event::MemoryEffect;
use crate::store::{MEMORY, Pending, add_counter};
use crate::{Journal, Result};

/// Bytes an entry takes in the store's accounting: its key and value.
fn entry_size(key: &str, value: &str) -> i64 {
    (key.len() + value.len()) as i64
}

/// Writes buffered events and applies their memory changes, keeping the
/// `memory-bytes` counter exact.
pub(crate) fn write_pending(
    txn: &WriteTransaction,
    pending: &[Pending],
) -> Result<(), redb::Error> {
    if pending.is_empty() {
        return Ok(());
    }
    let mut events = txn.open_table(crate::store::EVENTS)?;
    let mut memory = txn.open_table(MEMORY)?;
    let mut delta = 0i64;
    for p in pending {
        events.insert((p.run.as_bytes(), p.seq), p.text.as_bytes())?;
        let Some(effect) = &p.effect else { continue };
        let (scope, key) = effect.slot();
        let slot = (scope.as_bytes(), key.as_bytes());
        let old = memory.get(slot)?.map(|v| v.value().len() as i64);
        if let Some(old) = old {
            delta -= key.len() as i64 + old;
        }
        match effect {
            MemoryEffect::Set { value, .. } => {
                memory.insert(slot, value.as_bytes())?;
                delta += entry_size(key, value);
            }
            MemoryEffect::Delete { .. } => {
                memory.remove(slot)?;
            }
        }
    }
    drop(memory);
    drop(events);
    if delta != 0 {
        add_counter(txn, b"memory-bytes", delta)?;
    }
    Ok(())
}

impl Journal {
    /// A value of an agent's durable memory.
    pub fn memory_get(&self, scope: &str, key: &str) -> Result<Option<String>> {
        for p in self.pending.iter().rev() {
            match &p.effect {
                Some(MemoryEffect::Set {
                    scope: s,
                    key: k,
                    value,
                }) if s == scope && k == key => {
                    return Ok(Some(value.clone()));
                }
                Some(MemoryEffect::Delete { scope: s, key: k }) if s == scope && k == key => {
                    return Ok(None);
                }
                _ => {}
            }
        }
        let path = self.path.clone();
        contain(&path, || {
            let txn = self.begin_read()?;
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
        let mut keys = contain(&path, || {
            let txn = self.begin_read()?;
            let table = txn.open_table(MEMORY).map_err(|e| self.storage(e))?;
            let mut keys = BTreeSet::new();
            for entry in table
                .range((scope.as_bytes(), prefix.as_bytes())..)
                .map_err(|e| self.storage(e))?
            {
                let (key, _) = entry.map_err(|e| self.storage(e))?;
                let (s, k) = key.value();
                if s != scope.as_bytes() || !k.starts_with(prefix.as_bytes()) {
                    break;
                }
                keys.insert(
                    String::from_utf8(k.to_vec())
                        .map_err(|_| self.corrupt("a memory key is not UTF-8"))?,
                );
            }
            Ok(keys)
        })?;
        for p in &self.pending {
            match &p.effect {
                Some(MemoryEffect::Set { scope: s, key, .. })
                    if s == scope && key.starts_with(prefix) =>
                {
                    keys.insert(key.clone());
                }
                Some(MemoryEffect::Delete { scope: s, key }) if s == scope => {
                    keys.remove(key);
                }
                _ => {}
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// Bytes of memory (keys and values) stored in the whole journal, this
    /// handle's buffered changes included.
    pub fn memory_bytes(&self) -> Result<u64> {
        let path = self.path.clone();
        let committed = contain(&path, || {
            let txn = self.begin_read()?;
            Ok(self.counter(&txn, b"memory-bytes")?.unwrap_or(0))
        })?;
        Ok((committed as i64 + self.pending_memory).max(0) as u64)
    }

    /// How much an effect changes the stored bytes, given what this handle
    /// sees now.
    pub(crate) fn memory_delta(&self, effect: &MemoryEffect) -> Result<i64> {
        let (scope, key) = effect.slot();
        let old = self
            .memory_get(scope, key)?
            .map_or(0, |v| entry_size(key, &v));
        Ok(match effect {
            MemoryEffect::Set { value, .. } => entry_size(key, value) - old,
            MemoryEffect::Delete { .. } => -old,
        })
    }
}
