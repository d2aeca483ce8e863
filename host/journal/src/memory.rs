//! Agents' durable memory: stored by the backend, changed in the same
//! transaction as the event that records each change. Reads see this
//! handle's buffered changes on top of what is committed.

use std::collections::BTreeSet;

use crate::backend::entry_size;
use crate::event::MemoryEffect;
use crate::{Journal, Result};

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
        match self.snapshot()?.memory(scope, key)? {
            Some(v) => String::from_utf8(v)
                .map(Some)
                .map_err(|_| self.corrupt("a memory value is not UTF-8")),
            None => Ok(None),
        }
    }

    /// The keys of an agent's durable memory that start with `prefix`, sorted.
    pub fn memory_list(&self, scope: &str, prefix: &str) -> Result<Vec<String>> {
        let mut keys = BTreeSet::new();
        for key in self.snapshot()?.memory_keys(scope, prefix)? {
            keys.insert(
                String::from_utf8(key).map_err(|_| self.corrupt("a memory key is not UTF-8"))?,
            );
        }
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
        let committed = self.snapshot()?.counter("memory-bytes")?.unwrap_or(0);
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
