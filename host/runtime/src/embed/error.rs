//! The embedding API's one error type. Each variant is one of `fc-host`'s
//! exit codes ([`Error::exit_code`]), so a program built on the API can end
//! the way the CLI does, and its message is a sentence a user can act on.

use femtoclaw_bundle::BundleError;
use femtoclaw_policy::PolicyError;

use crate::{AdmitError, AgentError, RunError};

/// Why an embedded agent did not give an answer. Its `Debug` is its
/// sentence too: `fn main() -> Result<(), Error>` prints `Error: ` and the
/// sentence (and exits with 1; for the exact code, `std::process::exit`
/// with [`Error::exit_code`]).
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The agent ended with its own error (exit code 1).
    #[error("{0}")]
    Agent(String),
    /// A tool called directly ([`crate::Agent::call_tool`]) failed or was
    /// refused; the message names the rule that refused it (exit code 1).
    #[error("{0}")]
    Tool(String),
    /// A bad policy, brain, task or setting (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// A budget or limit stopped the run (exit code 3).
    #[error("{0}")]
    Limit(String),
    /// A guest trapped where the run could not go on (exit code 4).
    #[error("{0}")]
    Trap(String),
    /// A component was refused: not a component, not of its world, or
    /// unsigned where the policy requires signatures (exit code 5).
    #[error("{0}")]
    Component(String),
    /// A replay did not match its journal (exit code 6).
    #[error("{0}")]
    Divergence(String),
    /// The journal is corrupt, tampered with, busy, or has no such run
    /// (exit code 7).
    #[error("{0}")]
    Journal(String),
    /// A resumed run met a `write` call of unknown outcome and the policy
    /// says fail; the run stays resumable (exit code 8).
    #[error("{0}")]
    Uncertain(String),
    /// A bundle is malformed or tampered with (exit code 9).
    #[error("{0}")]
    Bundle(String),
    /// A signature is missing, untrusted or invalid (exit code 10).
    #[error("{0}")]
    Signature(String),
    /// A bundle is older than one already run from its signer (exit code 11).
    #[error("{0}")]
    Downgrade(String),
    /// The model stopped without a complete answer (exit code 12).
    #[error("{0}")]
    Incomplete(String),
    /// The run was cancelled (exit code 13).
    #[error("{0}")]
    Cancelled(String),
    /// The policy refused a tool call under `on-refusal = "stop"` (exit
    /// code 14).
    #[error("{0}")]
    Refused(String),
    /// An OCI registry failed (exit code 15).
    #[error("{0}")]
    Registry(String),
    /// `SIGINT` or `SIGTERM` stopped a managed run; everything it did up to
    /// its last commit point is in the journal, and the next
    /// [`crate::Agent::run_managed`] resumes it (exit code 130, the shells'
    /// code for an interrupted program).
    #[error("{0}")]
    Interrupted(String),
    /// A failure of FemtoClaw itself (exit code 70).
    #[error("{0}")]
    Internal(String),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    /// The exit code `fc-host` ends with for this error.
    pub const fn exit_code(&self) -> u8 {
        match self {
            Error::Agent(_) | Error::Tool(_) => 1,
            Error::Usage(_) => 2,
            Error::Limit(_) => 3,
            Error::Trap(_) => 4,
            Error::Component(_) => 5,
            Error::Divergence(_) => 6,
            Error::Journal(_) => 7,
            Error::Uncertain(_) => 8,
            Error::Bundle(_) => 9,
            Error::Signature(_) => 10,
            Error::Downgrade(_) => 11,
            Error::Incomplete(_) => 12,
            Error::Cancelled(_) => 13,
            Error::Refused(_) => 14,
            Error::Registry(_) => 15,
            Error::Interrupted(_) => 130,
            Error::Internal(_) => 70,
        }
    }

    /// The exit code for a run's error, as `fc-host` reports it.
    pub fn exit_code_of(error: &RunError) -> u8 {
        variant(error)(String::new()).exit_code()
    }
}

/// The variant a run's error becomes.
fn variant(error: &RunError) -> fn(String) -> Error {
    match error {
        RunError::Policy(_) | RunError::Config(_) => Error::Usage,
        RunError::Component { .. } => Error::Component,
        RunError::Limit(_) => Error::Limit,
        RunError::Trap { .. } => Error::Trap,
        RunError::Divergence { .. } => Error::Divergence,
        RunError::Journal(_) => Error::Journal,
        RunError::Uncertain(_) => Error::Uncertain,
        RunError::Cancelled(_) => Error::Cancelled,
        RunError::Refused(_) => Error::Refused,
        RunError::Internal(_) => Error::Internal,
    }
}

impl From<RunError> for Error {
    fn from(error: RunError) -> Error {
        variant(&error)(error.to_string())
    }
}

impl From<PolicyError> for Error {
    fn from(error: PolicyError) -> Error {
        Error::Usage(error.to_string())
    }
}

impl From<AgentError> for Error {
    fn from(error: AgentError) -> Error {
        match error {
            AgentError::Failed(_) => Error::Agent(error.to_string()),
            AgentError::Incomplete(_) => Error::Incomplete(error.to_string()),
        }
    }
}

impl From<BundleError> for Error {
    fn from(error: BundleError) -> Error {
        match error {
            BundleError::Unsigned
            | BundleError::UntrustedKey(_)
            | BundleError::BadSignature { .. } => Error::Signature(error.to_string()),
            _ => Error::Bundle(error.to_string()),
        }
    }
}

impl From<AdmitError> for Error {
    fn from(error: AdmitError) -> Error {
        match error {
            AdmitError::Bundle(e) => e.into(),
            AdmitError::Journal(m) => Error::Journal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_error_keeps_its_sentence_and_gets_the_clis_exit_code() {
        let e = Error::from(RunError::Limit("step budget exhausted".into()));
        assert_eq!(e.to_string(), "run stopped: step budget exhausted");
        assert_eq!(e.exit_code(), 3);
        let config = RunError::Config("no brain".into());
        assert_eq!(Error::exit_code_of(&config), 2);
        let e = Error::from(AgentError::Incomplete("cut off".into()));
        assert_eq!(
            (e.exit_code(), e.to_string().as_str()),
            (12, "no complete answer: cut off")
        );
        assert_eq!(Error::from(BundleError::Unsigned).exit_code(), 10);
    }
}
