//! Why a run could not finish normally. The CLI maps each variant to an exit
//! code (see `fc-host --help` and README.md).

use femtoclaw_policy::PolicyError;

/// A run that did not produce the agent's own result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The policy file was refused.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The run is misconfigured (no brain, a bad script, a granted tool that
    /// the component does not provide).
    #[error("{0}")]
    Config(String),
    /// A component is not a valid component or does not implement its world.
    #[error("component `{component}` rejected: {message}")]
    Component {
        /// Which component (`builtin:fs`, a file path).
        component: String,
        /// What is wrong with it.
        message: String,
    },
    /// A run budget or the agent's own limits stopped the run.
    #[error("run stopped: {0}")]
    Limit(String),
    /// A guest trapped where the run cannot go on (the agent itself, or a
    /// capability or brain while starting).
    #[error("{component} trapped: {message}")]
    Trap {
        /// Which component.
        component: String,
        /// The trap.
        message: String,
    },
    /// A replay did not match its journal.
    #[error("replay diverged at event {event}: expected {expected}, but the agent made {actual}")]
    Divergence {
        /// The first event that does not match.
        event: u64,
        /// What the journal holds there.
        expected: String,
        /// What happened instead.
        actual: String,
    },
    /// The journal could not be read or written (corrupt, tampered, busy,
    /// unknown run, failed commit).
    #[error("journal: {0}")]
    Journal(String),
    /// A resumed run found a `write` call whose outcome is unknown, and the
    /// policy's `on-uncertain` says to fail rather than retry.
    #[error("{0}")]
    Uncertain(String),
    /// The run was cancelled before it ended.
    #[error("{0}")]
    Cancelled(String),
    /// The policy refused a tool call and says `on-refusal = "stop"`.
    #[error("{0}")]
    Refused(String),
    /// A host failure that is not the guest's doing.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StopReason {
    /// What the journal's `stop` event records of it: its text, and for a
    /// trap the component, so that a replay ends the same way.
    pub(crate) fn record(&self) -> serde_json::Value {
        match self {
            StopReason::ComponentTrap { component, .. } => {
                serde_json::json!({ "reason": self.to_string(), "trap": component })
            }
            StopReason::Recorded { trap: Some(c), .. } => {
                serde_json::json!({ "reason": self.to_string(), "trap": c })
            }
            StopReason::Cancelled
            | StopReason::Recorded {
                cancelled: true, ..
            } => {
                serde_json::json!({ "reason": self.to_string(), "cancelled": true })
            }
            StopReason::BrainConfig(_) | StopReason::Recorded { config: true, .. } => {
                serde_json::json!({ "reason": self.to_string(), "config": true })
            }
            StopReason::Refused(_) | StopReason::Recorded { refused: true, .. } => {
                serde_json::json!({ "reason": self.to_string(), "refused": true })
            }
            _ => serde_json::json!({ "reason": self.to_string() }),
        }
    }

    /// A stop read back from its `stop` event.
    pub(crate) fn recorded(data: &serde_json::Value) -> StopReason {
        StopReason::Recorded {
            reason: data["reason"].as_str().unwrap_or("stopped").to_owned(),
            trap: data["trap"].as_str().map(str::to_owned),
            cancelled: data["cancelled"] == true,
            config: data["config"] == true,
            refused: data["refused"] == true,
        }
    }
}

/// Why a host call ended the run (raised as an error through the agent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StopReason {
    /// More brain turns than `limits.max-steps`.
    #[error("step budget exhausted (`limits.max-steps` = {0})")]
    MaxSteps(u32),
    /// More tool calls than `limits.max-tool-calls`.
    #[error("tool-call budget exhausted (`limits.max-tool-calls` = {0})")]
    MaxToolCalls(u32),
    /// More model tokens than `limits.max-tokens`.
    #[error("token budget exhausted (`limits.max-tokens` = {0})")]
    MaxTokens(u64),
    /// More bytes of journal events than `limits.max-journal`.
    #[error("journal quota exhausted: the run's events exceed `limits.max-journal` ({0} bytes)")]
    MaxJournal(u64),
    /// A component the run cannot go on without (the brain) hit one of its
    /// limits.
    #[error("the {component} stopped: {limit}")]
    ComponentLimit {
        /// Which component.
        component: String,
        /// Which limit, with its value.
        limit: String,
    },
    /// A component the run cannot go on without (the brain) trapped.
    #[error("{component} trapped: {message}")]
    ComponentTrap {
        /// Which component.
        component: String,
        /// The trap.
        message: String,
    },
    /// The policy refused a tool call and says `on-refusal = "stop"`: the
    /// text names the tool, the rule and why.
    #[error("{0}")]
    Refused(String),
    /// The brain reported its configuration wrong (a model the provider
    /// does not serve, a refused key): the text says what to set.
    #[error("{0}")]
    BrainConfig(String),
    /// A stop read back from the journal (in a replay): `reason` is its
    /// text, `trap` whether it was a trap rather than a limit.
    #[error("{reason}")]
    Recorded {
        /// The recorded text.
        reason: String,
        /// For a trap: the component that trapped.
        trap: Option<String>,
        /// Whether it was a cancellation.
        cancelled: bool,
        /// Whether it was the brain's configuration.
        config: bool,
        /// Whether it was a refusal under `on-refusal = "stop"`.
        refused: bool,
    },
    /// The agent did not do what the journal recorded.
    #[error("replay diverged at event {event}")]
    Divergence {
        /// The event.
        event: u64,
        /// What was recorded.
        expected: String,
        /// What happened.
        actual: String,
    },
    /// The journal failed.
    #[error("journal: {0}")]
    Journal(String),
    /// A write's outcome is unknown and the policy says fail.
    #[error("{0}")]
    Uncertain(String),
    /// The run was cancelled (`fc-host serve`'s cancel).
    #[error("the run was cancelled")]
    Cancelled,
}

impl From<StopReason> for RunError {
    fn from(reason: StopReason) -> RunError {
        match reason {
            StopReason::Divergence {
                event,
                expected,
                actual,
            } => RunError::Divergence {
                event,
                expected,
                actual,
            },
            StopReason::Journal(m) => RunError::Journal(m),
            StopReason::Uncertain(m) => RunError::Uncertain(m),
            StopReason::ComponentTrap { component, message } => {
                RunError::Trap { component, message }
            }
            StopReason::Cancelled => RunError::Cancelled(StopReason::Cancelled.to_string()),
            StopReason::BrainConfig(m)
            | StopReason::Recorded {
                reason: m,
                config: true,
                ..
            } => RunError::Config(m),
            StopReason::Refused(m)
            | StopReason::Recorded {
                reason: m,
                refused: true,
                ..
            } => RunError::Refused(m),
            StopReason::Recorded {
                reason,
                cancelled: true,
                ..
            } => RunError::Cancelled(reason),
            StopReason::Recorded {
                reason,
                trap: Some(component),
                ..
            } => RunError::Trap {
                message: reason
                    .strip_prefix(&format!("{component} trapped: "))
                    .unwrap_or(&reason)
                    .to_owned(),
                component,
            },
            limit => RunError::Limit(limit.to_string()),
        }
    }
}
