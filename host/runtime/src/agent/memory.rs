//! `memory`: the agent's durable key-value store, in the journal's database,
//! within the policy's `[memory]` quotas. Every call is journaled with its
//! answer (a refusal included), so a replay answers exactly as the run did.

use femtoclaw_journal::MemoryEffect;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{AgentHost, HostResult, halt};
use crate::StopReason;
use crate::bindings::agent::femtoclaw::runtime::memory::{self, MemoryError};
use crate::guest::GuestState;
use crate::record::Next;

/// Memory keys above this size are refused.
const MAX_MEMORY_KEY: usize = 256;

impl AgentHost {
    /// One memory operation: replayed from the journal, or done live and
    /// journaled (with its change to the store in the same transaction).
    fn memory_op(
        &mut self,
        kind: &str,
        request: Value,
        live: impl FnOnce(&mut Self) -> Result<(Value, Option<MemoryEffect>), StopReason>,
    ) -> HostResult<Value> {
        let actual = || format!("{kind} {request}");
        match self
            .recorder
            .next(kind, |d| same_request(&d["request"], &request), actual)
        {
            Err(reason) => halt(reason),
            Ok(Next::Replay(event)) => Ok(event.data["response"].clone()),
            Ok(Next::Live) => {
                let (response, effect) = live(self).or_else(halt)?;
                self.recorder
                    .record(
                        kind,
                        json!({ "request": request, "response": response }),
                        effect,
                    )
                    .or_else(halt)?;
                Ok(response)
            }
        }
    }

    fn memory_read<T>(
        &mut self,
        read: impl FnOnce(&femtoclaw_journal::Journal, &str) -> femtoclaw_journal::Result<T>,
    ) -> Result<Option<T>, StopReason> {
        let scope = self.memory_scope.clone();
        self.recorder
            .with_journal(|journal| read(journal, &scope))
            .transpose()
            .map_err(|e| StopReason::Journal(e.to_string()))
    }

    /// Whether a write of `key` = `value` fits the quotas, with the journal
    /// as it is now; the refusal if not.
    fn memory_quota(&mut self, key: &str, value: &str) -> Result<Option<MemoryError>, StopReason> {
        let limits = self.policy.memory;
        let size = (key.len() + value.len()) as u64;
        if self.memory_written + size > limits.max_written {
            return Ok(Some(MemoryError::QuotaExceeded(format!(
                "this run has written {} bytes to memory; `memory.max-written` allows {} per run",
                self.memory_written, limits.max_written
            ))));
        }
        let scope = self.memory_scope.clone();
        let checked = self
            .recorder
            .with_journal(|journal| memory_room(journal, &scope, key, size, limits));
        checked.unwrap_or(Ok(Some(unavailable())))
    }
}

/// Whether the journal has room for a write of `size` bytes to `key` under
/// the memory quotas; the refusal if not.
fn memory_room(
    journal: &femtoclaw_journal::Journal,
    scope: &str,
    key: &str,
    size: u64,
    limits: femtoclaw_policy::MemoryLimits,
) -> Result<Option<MemoryError>, StopReason> {
    let journal_error = |e: femtoclaw_journal::JournalError| StopReason::Journal(e.to_string());
    let old = journal.memory_get(scope, key).map_err(journal_error)?;
    if old.is_none() {
        let keys = journal.memory_list(scope, "").map_err(journal_error)?.len();
        if keys >= limits.max_keys as usize {
            return Ok(Some(MemoryError::QuotaExceeded(format!(
                "this agent holds {keys} keys; `memory.max-keys` allows {}",
                limits.max_keys
            ))));
        }
    }
    let stored = journal.memory_bytes().map_err(journal_error)?;
    let freed = old.map_or(0, |v| (key.len() + v.len()) as u64);
    if stored.saturating_sub(freed) + size > limits.max_stored {
        return Ok(Some(MemoryError::QuotaExceeded(format!(
            "the state directory holds {stored} bytes of memory; `memory.max-stored` allows {}",
            limits.max_stored
        ))));
    }
    Ok(None)
}

/// A `memory-set` is journaled with its value's sha256, not the value (the
/// memory table holds it): a flood of refused writes costs the journal a
/// few bytes each. A journal written before kept the value itself.
fn set_request(key: &str, value: &str) -> Value {
    json!({ "key": key, "value_sha256": hex::encode(Sha256::digest(value)), "bytes": value.len() })
}

fn same_request(recorded: &Value, request: &Value) -> bool {
    match (recorded.get("value"), request.get("value_sha256")) {
        (Some(Value::String(value)), Some(hash)) => {
            recorded["key"] == request["key"] && *hash == json!(hex::encode(Sha256::digest(value)))
        }
        _ => recorded == request,
    }
}

fn unavailable() -> MemoryError {
    MemoryError::Unavailable("no state directory: memory is unavailable".into())
}

/// A `memory-set` answer as journaled (an older journal recorded `null` for
/// success and a string for a refusal).
fn set_response(value: &Value) -> Result<Result<(), MemoryError>, serde_json::Error> {
    match value {
        Value::Null => Ok(Ok(())),
        Value::String(m) => Ok(Err(MemoryError::Unavailable(m.clone()))),
        other => serde_json::from_value(other.clone()),
    }
}

impl memory::Host for GuestState<AgentHost> {
    fn get(&mut self, key: String) -> HostResult<Option<String>> {
        let response = self.data.memory_op("memory-get", json!(key), |host| {
            let value = host
                .memory_read(|j, scope| j.memory_get(scope, &key))?
                .flatten();
            Ok((json!(value), None))
        })?;
        Ok(response.as_str().map(str::to_owned))
    }

    fn set(&mut self, key: String, value: String) -> HostResult<Result<(), MemoryError>> {
        let max_value = self.data.policy.memory.max_value;
        if key.len() > MAX_MEMORY_KEY {
            return Ok(Err(MemoryError::TooLarge(format!(
                "memory keys are at most {MAX_MEMORY_KEY} bytes; this one has {}",
                key.len()
            ))));
        }
        if value.len() as u64 > max_value {
            return Ok(Err(MemoryError::TooLarge(format!(
                "memory values are at most {max_value} bytes (`memory.max-value`); this one has {}",
                value.len()
            ))));
        }
        let size = (key.len() + value.len()) as u64;
        let scope = self.data.memory_scope.clone();
        let request = set_request(&key, &value);
        let response = self.data.memory_op("memory-set", request, |host| {
            if let Some(refused) = host.memory_quota(&key, &value)? {
                let answer: Result<(), MemoryError> = Err(refused);
                return Ok((json!(answer), None));
            }
            let answer: Result<(), MemoryError> = Ok(());
            Ok((json!(answer), Some(MemoryEffect::Set { scope, key, value })))
        })?;
        let answer = set_response(&response)
            .or_else(|e| halt(StopReason::Journal(format!("a `memory-set` answer: {e}"))))?;
        if answer.is_ok() {
            // Replayed writes count too: a resumed run goes on from them.
            self.data.memory_written += size;
        }
        Ok(answer)
    }

    fn delete(&mut self, key: String) -> HostResult<bool> {
        let scope = self.data.memory_scope.clone();
        let response = self.data.memory_op("memory-delete", json!(key), |host| {
            let existed = host
                .memory_read(|j, scope| j.memory_get(scope, &key))?
                .flatten()
                .is_some();
            let effect = existed.then_some(MemoryEffect::Delete { scope, key });
            Ok((json!(existed), effect))
        })?;
        Ok(response == true)
    }

    fn keys(&mut self, prefix: String) -> HostResult<Vec<String>> {
        let max = self.data.policy.memory.max_keys as usize;
        let response = self.data.memory_op("memory-keys", json!(prefix), |host| {
            let mut keys = host
                .memory_read(|j, scope| j.memory_list(scope, &prefix))?
                .unwrap_or_default();
            keys.truncate(max);
            Ok((json!(keys), None))
        })?;
        Ok(serde_json::from_value(response).unwrap_or_default())
    }
}
