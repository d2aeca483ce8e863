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
    /// A host failure that is not the guest's doing.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A run budget that ran out; raised from a host call to end the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StopReason {
    /// More brain turns than `limits.max-steps`.
    #[error("step budget exhausted (`limits.max-steps` = {0})")]
    MaxSteps(u32),
    /// More tool calls than `limits.max-tool-calls`.
    #[error("tool-call budget exhausted (`limits.max-tool-calls` = {0})")]
    MaxToolCalls(u32),
}
