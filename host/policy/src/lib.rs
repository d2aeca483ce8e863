//! FemtoClaw policy files.
//!
//! A policy is one TOML file that names everything the components of a run
//! may touch. It is parsed once into a typed [`Policy`]: unknown keys, bad
//! values and unsafe or conflicting grants are errors that name the file, the
//! line and the key. Nothing is granted by default.
//!
//! ```toml
//! version = 1
//! [limits]
//! max-steps = 16
//! [brain]
//! kind = "scripted"
//! script = "brain.json"
//! [capabilities.fs]
//! component = "builtin:fs"
//! tools = ["read_file", "list_dir"]
//! mounts = [{ guest = "/data", host = "data", mode = "ro" }]
//! ```

#![deny(missing_docs)]

mod error;
mod model;
mod narrow;
mod parse;
mod parse_rules;
mod presets;
mod raw;
mod rules;
pub mod units;

pub use error::{PolicyError, Result};
pub use model::{
    Action, BUILTIN_CAPABILITIES, BrainSpec, CapabilityGrant, ComponentLimits, ComponentSource,
    Condition, HeaderSource, HostPattern, Limits, McpServer, MemoryLimits, Mount, MountMode,
    NetPattern, OnRefusal, OnUncertain, PathGlob, Policy, Protocol, ProviderBrain, Rates, Rule,
    SecretSource, Test, Verdict,
};
pub use narrow::Widening;
pub use presets::{PRESETS, Preset, names as preset_names};
