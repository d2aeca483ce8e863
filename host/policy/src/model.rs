//! The validated policy: every field already parsed and checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Names accepted after `builtin:` in a capability's `component`.
pub const BUILTIN_CAPABILITIES: &[&str] = &["fs"];

/// A validated policy. The default grants nothing: no capabilities, no brain,
/// and the limits of [`Limits::default`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The file it was read from (empty for a policy built in code).
    pub path: PathBuf,
    /// Run budgets.
    pub limits: Limits,
    /// The brain, if the policy names one (`--brain` can supply or replace it).
    pub brain: Option<BrainSpec>,
    /// Capabilities by name, the prefix of their tools' addresses.
    pub capabilities: BTreeMap<String, CapabilityGrant>,
}

/// Run budgets. A budget that runs out stops the run with the limit outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Brain turns per run (`max-steps`, default 16).
    pub max_steps: u32,
    /// Tool calls per run, allowed or not (`max-tool-calls`, default 32).
    pub max_tool_calls: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 16,
            max_tool_calls: 32,
        }
    }
}

/// Which brain proposes the agent's next turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrainSpec {
    /// Replays the turns of a JSON script file in order.
    Scripted {
        /// The script file (absolute).
        script: PathBuf,
    },
}

/// Where a component's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A component embedded in `fc-host` (`builtin:NAME`).
    Builtin(String),
    /// A `.wasm` component file (absolute).
    File(PathBuf),
}

/// Everything one capability is granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityGrant {
    /// Its code.
    pub component: ComponentSource,
    /// Exactly the tools the agent may call, without the capability prefix.
    pub tools: Vec<String>,
    /// Host directories it sees, by guest path.
    pub mounts: Vec<Mount>,
}

/// A host directory made visible to a capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute, normalised guest path (`/data`).
    pub guest: String,
    /// Canonical host directory.
    pub host: PathBuf,
    /// Read-only or read-write.
    pub mode: MountMode,
}

/// Access mode of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountMode {
    /// Files and directories can be read, never changed.
    ReadOnly,
    /// Files and directories can be read, created, changed and removed.
    ReadWrite,
}

impl MountMode {
    /// The policy's spelling: `ro` or `rw`.
    pub fn as_str(self) -> &'static str {
        match self {
            MountMode::ReadOnly => "ro",
            MountMode::ReadWrite => "rw",
        }
    }
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: impl AsRef<Path>) -> crate::Result<Policy> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| crate::PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        crate::parse::parse(path, &text)
    }

    /// Validates policy text as if it had been read from `path` (relative
    /// paths inside resolve against `path`'s directory).
    pub fn parse(path: impl AsRef<Path>, text: &str) -> crate::Result<Policy> {
        crate::parse::parse(path.as_ref(), text)
    }
}
