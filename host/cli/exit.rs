//! Exit codes, documented in `--help` and README.md.

use femtoclaw_runtime::RunError;

/// The agent finished and its answer is on stdout.
pub const OK: u8 = 0;
/// The agent finished with its own error (printed on stderr).
pub const AGENT_ERROR: u8 = 1;
/// Bad command line, policy, brain script or configuration.
pub const USAGE: u8 = 2;
/// A budget or limit stopped the run (steps, tool calls, fuel, time, memory).
pub const LIMIT: u8 = 3;
/// A guest trapped where the run could not go on.
pub const TRAP: u8 = 4;
/// A component was refused: not a component, or not of its world.
pub const COMPONENT: u8 = 5;
/// A replay did not match its journal.
pub const DIVERGENCE: u8 = 6;
/// The journal is corrupt, tampered with, busy, or has no such run.
pub const JOURNAL: u8 = 7;
/// A resumed run met a `write` call of unknown outcome, and the policy says fail.
pub const UNCERTAIN: u8 = 8;
/// A bundle is malformed or tampered with, or carries precompiled code.
pub const BUNDLE: u8 = 9;
/// A bundle has no signature by a trusted key where one is required, or a
/// trusted key's signature does not verify.
pub const SIGNATURE: u8 = 10;
/// A bundle is older than one already run from the same signer.
pub const DOWNGRADE: u8 = 11;
/// The model stopped without a complete answer (cut off at its token limit,
/// filtered or refused), and the agent did not recover.
pub const INCOMPLETE: u8 = 12;
/// The run was cancelled (`fc-host serve`'s cancel; a replay of such a run).
pub const CANCELLED: u8 = 13;
/// The policy refused a tool call and says `on-refusal = "stop"`.
pub const REFUSED: u8 = 14;
/// An OCI registry could not be reached, refused the credentials, or has no
/// such repository, tag or digest.
pub const REGISTRY: u8 = 15;
/// A failure of fc-host itself.
pub const INTERNAL: u8 = 70;

pub const HELP: &str = "Exit codes: 0 success, 1 the agent's own error, 2 usage, policy or \
configuration error, 3 a budget or limit stopped the run, 4 a guest trapped, 5 a component \
was refused, 6 a replay diverged from its journal, 7 journal error (corrupt, tampered, busy, \
unknown run, damaged state), 8 a resumed write of unknown outcome under `on-uncertain = \"fail\"` \
(the run stays resumable), 9 bundle malformed or tampered, 10 bundle signature missing, untrusted \
or invalid, 11 bundle downgrade, 12 the model stopped without a complete answer (token limit, \
content filter or refusal), 13 the run was cancelled, 14 the policy refused a tool call under `on-refusal = \"stop\"`, \
15 an OCI registry unreachable, refusing the credentials, or without the reference, 70 internal error.";

/// The exit code for an error that ended a command.
pub fn for_error(e: &anyhow::Error) -> u8 {
    if let Some(r) = e.downcast_ref::<crate::commands::bundle::Refused>() {
        return r.code;
    }
    if let Some(e) = e.downcast_ref::<femtoclaw_oci::OciError>() {
        use femtoclaw_oci::OciError;
        return match e {
            OciError::Registry { .. } => REGISTRY,
            OciError::Tampered { .. } => BUNDLE,
            OciError::Store { .. } => JOURNAL,
            _ => USAGE,
        };
    }
    if e.downcast_ref::<femtoclaw_bundle::BundleError>().is_some()
        || e.downcast_ref::<femtoclaw_serve::ConfigError>().is_some()
    {
        return USAGE;
    }
    match e.downcast_ref::<RunError>() {
        Some(RunError::Policy(_) | RunError::Config(_)) => USAGE,
        Some(RunError::Component { .. }) => COMPONENT,
        Some(RunError::Limit(_)) => LIMIT,
        Some(RunError::Trap { .. }) => TRAP,
        Some(RunError::Divergence { .. }) => DIVERGENCE,
        Some(RunError::Journal(_)) => JOURNAL,
        Some(RunError::Uncertain(_)) => UNCERTAIN,
        Some(RunError::Cancelled(_)) => CANCELLED,
        Some(RunError::Refused(_)) => REFUSED,
        Some(_) => INTERNAL,
        None if e.downcast_ref::<femtoclaw_policy::PolicyError>().is_some() => USAGE,
        // A file the command line named could not be read or written.
        None if e.chain().any(|c| c.is::<std::io::Error>()) => USAGE,
        None => INTERNAL,
    }
}
