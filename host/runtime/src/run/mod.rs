//! Runs: a new run ([`live`]), the replay or resumption of a journaled one
//! ([`replay`]), and what all three share: preparing the agent and driving
//! it to its end ([`execute`]). They differ in where the agent's inputs come
//! from.

mod execute;
mod live;
mod replay;
mod session;

pub use session::{Session, SessionPlan, Shown};

use std::path::PathBuf;
use std::sync::Arc;

use femtoclaw_bundle::Bundle;
use femtoclaw_policy::{OnUncertain, Policy, ProviderBrain};

use femtoclaw_journal::SharedJournal;

use crate::guest::{Cancel, Controls, FuelMeter, MemoryPool};
use crate::record::EventHook;
use crate::{Builtin, ComponentRef};

/// Which brain a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrainChoice {
    /// The built-in scripted brain replaying this JSON file.
    Scripted(PathBuf),
    /// The built-in scripted brain running these turns (the JSON text a
    /// script file holds). The journal keeps them with the run, so any
    /// node reading the journal can resume it (a server's request scripts).
    Script(String),
    /// The built-in provider brain (OpenAI or Anthropic over HTTP).
    Provider(ProviderBrain),
    /// A component of the `brain` world (with the policy's provider
    /// settings and network grant, if it names a provider).
    Component(PathBuf),
}

impl BrainChoice {
    /// Whether it is the built-in scripted brain (which has no provider).
    pub fn is_scripted(&self) -> bool {
        matches!(self, BrainChoice::Scripted(_) | BrainChoice::Script(_))
    }
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
    /// Where the bundle came from (`oci://HOST/REPO@sha256:…`, or its file),
    /// journaled with the bundle's own sha256 so that the run can be traced
    /// to exactly the bytes it ran.
    pub bundle_source: Option<String>,
    /// What the run shares with its process.
    pub hooks: Hooks,
}

/// What a run shares with the process that runs it, beyond its plan: a
/// server gives each run its tenant's journal, memory pool and fuel meter,
/// a handle to cancel it, and watches its events.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Cancels the run when cancelled.
    pub cancel: Cancel,
    /// The memory pool every store of the run draws from.
    pub memory_pool: Option<MemoryPool>,
    /// Counts the fuel every store of the run burns.
    pub fuel: Option<FuelMeter>,
    /// The journal handle the run appends to, shared with other runs of the
    /// same state directory (instead of one opened for the run).
    pub journal: Option<SharedJournal>,
    /// Told of each event the run appends.
    pub on_event: Option<EventHook>,
    /// Whose compiled code the run's components are: components other than
    /// the built-ins are compiled and cached under this scope (a server's
    /// tenant), so that no tenant can tell by timing what another ran.
    pub compile_scope: Option<String>,
    /// Answers the run's approval requests (`approve`, rules with `action
    /// = "approve"`); without one, every request is denied.
    pub approver: Option<Arc<dyn crate::approval::Approver>>,
    /// Capabilities' outgoing requests are judged by the network gate but
    /// never sent: one the gate lets through fails with an error saying so
    /// (`fc-host compliance`'s probes, which must reach nothing).
    pub decide_only: bool,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("cancel", &self.cancel)
            .field("memory_pool", &self.memory_pool)
            .field("fuel", &self.fuel)
            .field("journal", &self.journal)
            .field("on_event", &self.on_event.is_some())
            .field("compile_scope", &self.compile_scope)
            .field("approver", &self.approver.is_some())
            .field("decide_only", &self.decide_only)
            .finish()
    }
}

impl Hooks {
    pub(crate) fn controls(&self) -> Controls {
        Controls {
            cancel: self.cancel.clone(),
            pool: self.memory_pool.clone(),
            fuel: self.fuel.clone(),
            scope: self.compile_scope.as_deref().map(Arc::from),
            approver: self.approver.clone(),
            decide_only: self.decide_only,
        }
    }
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
            bundle_source: None,
            hooks: Hooks::default(),
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
    /// The bundle the run started from, when it ran one; it must be the
    /// same bytes (checked against the sha256 the run journaled).
    pub bundle: Option<Arc<Bundle>>,
    /// What the resumed run shares with its process.
    pub hooks: Hooks,
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

/// A fresh run id: a UUIDv7 (RFC 9562), its start time in milliseconds and
/// 74 random bits, so ids sort by time and never collide across processes
/// and machines.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
