//! Runs: a new run ([`live`]), the replay or resumption of a journaled one
//! ([`replay`]), and what all three share: preparing the agent and driving
//! it to its end ([`execute`]). They differ in where the agent's inputs come
//! from.

mod execute;
mod live;
mod replay;

use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::Arc;

use femtoclaw_bundle::Bundle;
use femtoclaw_policy::{OnUncertain, Policy, ProviderBrain};

use crate::guest::{Cancel, MemoryPool};
use crate::{Builtin, ComponentRef};

/// Which brain a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrainChoice {
    /// The built-in scripted brain replaying this JSON file.
    Scripted(PathBuf),
    /// The built-in provider brain (OpenAI or Anthropic over HTTP).
    Provider(ProviderBrain),
    /// A component of the `brain` world (with the policy's provider
    /// settings and network grant, if it names a provider).
    Component(PathBuf),
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The operator's policy.
    pub policy: Policy,
    /// The agent component (the built-in default agent unless replaced).
    pub agent: ComponentRef,
    /// The brain; when `None`, the policy's `[brain]`.
    pub brain: Option<BrainChoice>,
    /// The task handed to the agent.
    pub task: String,
    /// The state directory whose journal records the run (none: not
    /// journaled, and the agent has no durable memory).
    pub state: Option<PathBuf>,
    /// The run's id (a fresh one when `None`).
    pub run_id: Option<String>,
    /// A verified bundle whose components the policy names `bundle:NAME`
    /// (and whose agent runs unless `agent` names another).
    pub bundle: Option<Arc<Bundle>>,
    /// Cancels the run when cancelled.
    pub cancel: Cancel,
    /// The memory pool every store of the run draws from (a tenant's).
    pub memory_pool: Option<MemoryPool>,
}

impl RunPlan {
    /// The built-in agent on `task`, with the policy's brain, not journaled.
    pub fn new(policy: Policy, task: impl Into<String>) -> RunPlan {
        RunPlan {
            policy,
            agent: ComponentRef::Builtin(Builtin::Agent),
            brain: None,
            task: task.into(),
            state: None,
            run_id: None,
            bundle: None,
            cancel: Cancel::new(),
            memory_pool: None,
        }
    }
}

/// How a killed run is resumed.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// What to do with a `write` call of unknown outcome, overriding the
    /// journaled policy's `[journal] on-uncertain` (the operator's choice,
    /// journaled as a decision).
    pub on_uncertain: Option<OnUncertain>,
    /// Cancels the resumed run when cancelled.
    pub cancel: Cancel,
    /// The memory pool every store of the run draws from.
    pub memory_pool: Option<MemoryPool>,
}

/// Counters of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Brain turns.
    pub steps: u32,
    /// Tool calls the agent made (allowed or refused).
    pub tool_calls: u32,
    /// Tool calls refused by the gate or the validator.
    pub refused: u32,
    /// Model tokens read, as the provider reported them.
    pub input_tokens: u64,
    /// Model tokens written, as the provider reported them.
    pub output_tokens: u64,
}

/// How an agent ended without an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The agent's own failure.
    #[error("the agent failed: {0}")]
    Failed(String),
    /// The model stopped without a complete answer (cut off at its token
    /// limit, filtered or refused) and the agent did not recover.
    #[error("no complete answer: {0}")]
    Incomplete(String),
}

/// A run that reached its end.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run's id.
    pub run_id: String,
    /// The agent's final answer, or why it has none.
    pub answer: Result<String, AgentError>,
    /// What the run did.
    pub stats: RunStats,
}

/// A fresh run id: start time and randomness, sortable by time.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let random = RandomState::new().hash_one(std::process::id()) as u16;
    format!("{:x}-{random:04x}", now.as_millis())
}
