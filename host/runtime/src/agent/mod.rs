//! The agent's host: its `tools`, `inference` and `memory` imports. Every
//! tool call passes the gate and the validator before a capability runs it;
//! every input the agent receives is journaled (or, when replaying, taken
//! from the journal); budgets that run out end the run with a
//! [`StopReason`].

mod admit;
mod inference;
mod memory;
mod outcome;
mod rates;
mod tools;

use std::collections::BTreeMap;
use std::sync::Arc;

use femtoclaw_policy::{OnUncertain, Policy};

use crate::RunStats;
use crate::StopReason;
use crate::approval::Approver;
use crate::bindings::ToolSpec;
use crate::brain::BrainInstance;
use crate::gate::Gate;
use crate::metrics::Metrics;
use crate::record::Recorder;

/// The components a live run calls (absent in a pure replay).
pub(crate) struct Live {
    pub gate: Gate,
    pub capabilities: BTreeMap<String, crate::remote::Provider>,
    /// The brain (none in a session: its client proposes the calls).
    pub brain: Option<BrainInstance>,
}

/// What a resumed run does with a `write` call of unknown outcome, and who
/// decided it: the policy, or the operator at resume time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Uncertain {
    pub choice: OnUncertain,
    pub by_operator: bool,
}

impl Uncertain {
    /// The operator's choice if there is one, else the policy's.
    pub(crate) fn new(policy: &Policy, operator: Option<OnUncertain>) -> Uncertain {
        Uncertain {
            choice: operator.unwrap_or(policy.on_uncertain),
            by_operator: operator.is_some(),
        }
    }
}

/// What the agent's imports act on.
pub(crate) struct AgentHost {
    pub policy: Policy,
    /// The tools the agent may call (granted, or as recorded).
    pub specs: Vec<ToolSpec>,
    pub live: Option<Live>,
    pub recorder: Recorder,
    /// Whose durable memory this agent uses (its component's sha256).
    pub memory_scope: String,
    /// Bytes this run has written to memory (`memory.max-written`).
    pub memory_written: u64,
    pub on_uncertain: Uncertain,
    /// Cancels the run at its next request.
    pub cancel: crate::guest::Cancel,
    pub stats: RunStats,
    /// Calls per tool address so far, for `max-calls` quotas.
    pub calls_per_tool: BTreeMap<String, u32>,
    /// The rule that refused the last tool call (empty: it ran).
    pub refused_by: String,
    /// Calls and bytes so far, for the policy's rates.
    pub rates: rates::RateBook,
    /// Who answers approval requests (none: every request is denied).
    pub approver: Option<Arc<dyn Approver>>,
    pub metrics: Arc<Metrics>,
    /// The run's span, and the current step's (a brain turn and the tool
    /// calls it proposed): spans nest run → step → inference / tool call.
    pub run_span: tracing::Span,
    pub step_span: tracing::Span,
}

pub(crate) type HostResult<T> = wasmtime::Result<T>;

pub(crate) fn halt<T>(reason: StopReason) -> HostResult<T> {
    Err(wasmtime::Error::new(reason))
}

/// What an agent host is made of (a run's, or a session's).
pub(crate) struct HostParts {
    pub policy: Policy,
    pub specs: Vec<ToolSpec>,
    /// The gate and capabilities; none in a replay.
    pub live: Option<Live>,
    pub recorder: Recorder,
    /// Whose durable memory the run sees.
    pub memory_scope: String,
    pub on_uncertain: Uncertain,
    pub cancel: crate::guest::Cancel,
    pub approver: Option<Arc<dyn Approver>>,
    pub metrics: Arc<Metrics>,
    pub run_span: tracing::Span,
}

impl AgentHost {
    /// The host of a run that has made no call yet.
    pub(crate) fn new(parts: HostParts) -> AgentHost {
        let HostParts {
            policy,
            specs,
            live,
            recorder,
            memory_scope,
            on_uncertain,
            cancel,
            approver,
            metrics,
            run_span,
        } = parts;
        AgentHost {
            policy,
            specs,
            live,
            recorder,
            memory_scope,
            memory_written: 0,
            on_uncertain,
            cancel,
            stats: RunStats::default(),
            calls_per_tool: BTreeMap::new(),
            refused_by: String::new(),
            rates: rates::RateBook::default(),
            approver,
            metrics,
            step_span: run_span.clone(),
            run_span,
        }
    }

    /// The stop to halt with if the run was cancelled.
    pub(crate) fn cancelled(&mut self) -> Option<StopReason> {
        self.cancel
            .is_cancelled()
            .then(|| self.recorder.stop(StopReason::Cancelled))
    }

    /// Records a stop and returns it.
    pub(crate) fn stop(&mut self, reason: StopReason, component: &str) -> StopReason {
        self.metrics
            .limit_stops
            .get_or_create(&crate::metrics::Component {
                component: component.to_owned(),
            })
            .inc();
        self.recorder.stop(reason)
    }
}
