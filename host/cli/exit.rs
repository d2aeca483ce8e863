//! Exit codes, documented in `--help` and README.md: those of
//! [`femtoclaw_runtime::Error`], named here where a command chooses one.

use femtoclaw_runtime::RunError;

/// The agent finished and its answer is on stdout.
pub const OK: u8 = 0;
/// The agent finished with its own error (printed on stderr).
pub const AGENT_ERROR: u8 = 1;
/// Bad command line, policy, brain script or configuration.
pub const USAGE: u8 = 2;
/// A budget or limit stopped the run (steps, tool calls, fuel, time, memory).
pub const LIMIT: u8 = 3;
/// The journal is corrupt, tampered with, busy, or has no such run.
pub const JOURNAL: u8 = 7;
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
/// An OCI registry could not be reached, refused the credentials, or has no
/// such repository, tag or digest.
pub const REGISTRY: u8 = 15;
/// `fc-host compliance`: a check failed (the report says which).
pub const COMPLIANCE: u8 = 16;
/// A failure of fc-host itself.
pub const INTERNAL: u8 = 70;

pub const HELP: &str = "Exit codes: 0 success, 1 the agent's own error, 2 usage, policy or \
configuration error, 3 a budget or limit stopped the run, 4 a guest trapped, 5 a component \
was refused, 6 a replay diverged from its journal, 7 journal error (corrupt, tampered, busy, \
unknown run, damaged state), 8 a resumed write of unknown outcome under `on-uncertain = \"fail\"` \
(the run stays resumable), 9 bundle malformed or tampered, 10 bundle signature missing, untrusted \
or invalid, 11 bundle downgrade, 12 the model stopped without a complete answer (token limit, \
content filter or refusal), 13 the run was cancelled, 14 the policy refused a tool call under `on-refusal = \"stop\"`, \
15 an OCI registry unreachable, refusing the credentials, or without the reference, 16 a \
`fc-host compliance` check failed, 70 internal error.";

/// The exit code for an error that ended a command.
pub fn for_error(e: &anyhow::Error) -> u8 {
    if let Some(e) = e.downcast_ref::<femtoclaw_runtime::Error>() {
        return e.exit_code();
    }
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
        // The embedding API's error carries the codes.
        Some(run) => femtoclaw_runtime::Error::exit_code_of(run),
        None if e.downcast_ref::<femtoclaw_policy::PolicyError>().is_some() => USAGE,
        // A file the command line named could not be read or written.
        None if e.chain().any(|c| c.is::<std::io::Error>()) => USAGE,
        None => INTERNAL,
    }
}

#[cfg(test)]
mod tests {
    use femtoclaw_runtime::Error;

    #[test]
    fn the_codes_are_the_embedding_apis() {
        let s = String::new;
        let pairs = [
            (super::AGENT_ERROR, Error::Agent(s())),
            (super::USAGE, Error::Usage(s())),
            (super::LIMIT, Error::Limit(s())),
            (super::JOURNAL, Error::Journal(s())),
            (super::BUNDLE, Error::Bundle(s())),
            (super::SIGNATURE, Error::Signature(s())),
            (super::DOWNGRADE, Error::Downgrade(s())),
            (super::INCOMPLETE, Error::Incomplete(s())),
            (super::REGISTRY, Error::Registry(s())),
            (super::INTERNAL, Error::Internal(s())),
        ];
        for (code, error) in pairs {
            assert_eq!(code, error.exit_code(), "{error:?}");
        }
    }
}
