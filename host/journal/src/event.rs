//! What the journal stores: runs and their events.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Started and not finished: still going, or killed (resumable).
    Running,
    /// The agent returned an answer.
    Ok,
    /// The agent returned its own error.
    AgentError,
    /// The model stopped without a complete answer (cut off at its token
    /// limit, filtered, or refused) and the agent did not recover.
    Incomplete,
    /// A budget or limit stopped it.
    Limit,
    /// It was cancelled (`fc-host serve`'s cancel).
    Cancelled,
    /// A guest trapped.
    Trap,
    /// The policy refused a tool call under `on-refusal = "stop"`.
    Refused,
    /// The host failed (a component refused, a journal error, …).
    Failed,
}

impl RunStatus {
    /// The status as the journal spells it (`agent-error`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::AgentError => "agent-error",
            RunStatus::Incomplete => "incomplete",
            RunStatus::Limit => "limit",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Trap => "trap",
            RunStatus::Refused => "refused",
            RunStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run id.
    pub id: String,
    /// Start time, seconds since the Unix epoch.
    pub started: u64,
    /// Its status.
    pub status: RunStatus,
    /// The agent component (`builtin:agent`, a path, or a bundle's label).
    pub agent: String,
    /// sha256 of the agent component (its bytes are kept in the journal).
    pub agent_hash: String,
    /// sha256 of the policy text.
    pub policy_hash: String,
    /// Everything the runtime needs to replay or resume the run (policy
    /// text and path, task, brain, seeds); opaque to the journal.
    pub plan: Value,
    /// The final answer or error, once finished.
    pub outcome: Option<String>,
}

/// Where a run's chain ends, as of its last commit: how many events it has
/// and the hash of the last one. Written in the same transaction as the
/// events, so a reader can tell a complete run from one that lost events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Number of events.
    pub events: u64,
    /// Hash of the last event (the genesis hash when there is none).
    pub hash: String,
    /// Bytes of its stored events (for the per-run journal quota).
    #[serde(default)]
    pub bytes: u64,
}

/// A change to durable memory, applied in the same transaction as the
/// event that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryEffect {
    /// Store `value` under `key` in `scope`.
    Set {
        /// Whose memory (an agent's component hash).
        scope: String,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Remove `key` from `scope`.
    Delete {
        /// Whose memory.
        scope: String,
        /// The key.
        key: String,
    },
}

impl MemoryEffect {
    /// The scope and key it changes.
    pub(crate) fn slot(&self) -> (&str, &str) {
        match self {
            MemoryEffect::Set { scope, key, .. } | MemoryEffect::Delete { scope, key } => {
                (scope, key)
            }
        }
    }
}

/// One journaled event of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the run, from 0.
    pub seq: u64,
    /// What happened (`inference`, `tool-call`, `tool-result`, …).
    pub kind: String,
    /// Its data.
    pub data: Value,
    /// Hash of the previous event (64 zeros for the first).
    pub prev: String,
    /// This event's hash: sha256 over `prev`, `seq`, `kind` and `data`.
    pub hash: String,
}

/// The `prev` of a run's first event.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Event {
    /// Builds the event that follows `prev`, with its stored text (what
    /// `serde_json::to_string` of the event gives). `data` is encoded once,
    /// for both the hash and the text: an event is appended for every input
    /// of every run, so this is on every tool call's path.
    pub(crate) fn sealed(seq: u64, kind: &str, data: Value, prev: &str) -> (Event, String) {
        let data_text = data.to_string();
        let hash = chain_hash(seq, kind, data_text.as_bytes(), prev);
        let mut text = String::with_capacity(data_text.len() + kind.len() + 200);
        text.push_str("{\"seq\":");
        write!(text, "{seq}").expect("invariant: writing to a String succeeds");
        text.push_str(",\"kind\":");
        push_json_str(&mut text, kind);
        text.push_str(",\"data\":");
        text.push_str(&data_text);
        text.push_str(",\"prev\":");
        push_json_str(&mut text, prev);
        text.push_str(",\"hash\":\"");
        text.push_str(&hash);
        text.push_str("\"}");
        let event = Event {
            seq,
            kind: kind.to_owned(),
            data,
            prev: prev.to_owned(),
            hash,
        };
        (event, text)
    }

    /// `serde_json` maps are sorted, so the encoding of `data` is canonical.
    pub(crate) fn digest(seq: u64, kind: &str, data: &Value, prev: &str) -> String {
        chain_hash(seq, kind, data.to_string().as_bytes(), prev)
    }
}

/// sha256 over `prev`, `seq`, `kind` (length first) and the encoded data,
/// in hex.
fn chain_hash(seq: u64, kind: &str, data: &[u8], prev: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(seq.to_be_bytes());
    h.update((kind.len() as u64).to_be_bytes());
    h.update(kind.as_bytes());
    h.update(data);
    hex::encode(h.finalize())
}

/// Appends `s` as a JSON string, escaped as `serde_json` escapes it.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("invariant: a str serializes"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sealed_events_text_is_its_serde_encoding_and_its_hash_the_digest() {
        let datas = [
            json!(null),
            json!({"b": [1, 2.5, -3], "a": "x\"y\\z\u{1}\u{7f}é\n", "c": {"d": true}}),
            json!("plain"),
            json!(18446744073709551615u64),
        ];
        for (i, data) in datas.into_iter().enumerate() {
            for kind in ["tool-call", "odd \"kind\"\t"] {
                let seq = i as u64 * 1_000_003;
                let (event, text) = Event::sealed(seq, kind, data.clone(), GENESIS);
                assert_eq!(text, serde_json::to_string(&event).unwrap());
                assert_eq!(event.hash, Event::digest(seq, kind, &data, GENESIS));
                let back: Event = serde_json::from_str(&text).unwrap();
                assert_eq!(back, event);
            }
        }
    }
}
