//! FemtoClaw runtime: the wasmtime host that stands between a model and the
//! world.
//!
//! A run wires three kinds of components, each in its own store: the agent
//! (empty WASI view; acts only through `tools` and thinks only through
//! `inference`), the brain (proposes the next turn) and the capabilities
//! (the only code that touches files or services, with exactly the handles
//! the policy grants). Every tool call goes through the [`gate`] and the
//! protocol validator before a capability runs it.
//!
//! A program embeds it through [`Agent`] and [`Config`] (see [`embed`]):
//!
//! ```no_run
//! use femtoclaw_runtime::prelude::*;
//! fn main() -> Result<(), Error> {
//!     let agent = Agent::new(Config::industrial());
//!     agent.enforce_policy(Policy::Strict);
//!     agent.run_managed()
//! }
//! ```
//!
//! Beneath it, [`Runtime`] runs one [`RunPlan`] (what `fc-host run` and
//! `fc-host serve` use):
//!
//! ```no_run
//! # async fn demo() -> Result<(), femtoclaw_runtime::RunError> {
//! use femtoclaw_runtime::prelude::*;
//! let policy = Policy::load("examples/hello/policy.toml")?;
//! let runtime = Runtime::new()?;
//! let outcome = runtime.run(RunPlan::new(policy, "list the files")).await?;
//! match outcome.answer {
//!     Ok(answer) => println!("{answer}"),
//!     Err(error) => eprintln!("{error}"),
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod agent;
pub mod approval;
mod baseline;
mod bindings;
mod brain;
mod brain_spec;
mod bundled;
mod cache;
mod capability;
mod components;
pub mod dirs;
pub mod embed;
mod engine;
mod engine_config;
mod error;
mod fsguard;
pub mod gate;
mod guest;
pub mod logs;
mod metrics;
mod net;
mod output;
pub mod own_dirs;
mod precompiled;
mod record;
mod redact;
pub mod remote;
mod run;
pub mod text;
mod virt;

pub use bindings::{EffectClass, ToolError, ToolSpec};
pub use brain_spec::{choose_brain, local_brain_url, parse_brain};
pub use bundled::{
    Admission, AdmitError, admit as admit_bundle, check_grants as check_bundle_grants,
    raise_version as raise_bundle_version, signer as bundle_signer,
};
pub use capability::CheckedCapability;
pub use components::{Builtin, ComponentRef, MAX_COMPONENT_BYTES};
pub use embed::{Agent, Answer, Config, Error, PolicyChoice, TaskSource};
pub use engine::Runtime;
pub use error::{RunError, StopReason};
pub use guest::{Cancel, FuelMeter, MemoryPool};
pub use metrics::Metrics;
pub use record::EventHook;
pub use redact::Redactor;
pub use run::{
    AgentError, BrainChoice, Hooks, Resume, RunOutcome, RunPlan, RunStats, Session, SessionPlan,
    Shown, new_run_id,
};
pub(crate) use virt::{VirtualClock, seeded_rng};

/// The WIT package (`femtoclaw:runtime`) guests build against, as this
/// runtime speaks it: file name and text.
pub const WIT: &[(&str, &str)] = &[
    ("agent.wit", include_str!("../wit/agent.wit")),
    ("brain.wit", include_str!("../wit/brain.wit")),
    ("capability.wit", include_str!("../wit/capability.wit")),
    ("inference.wit", include_str!("../wit/inference.wit")),
    ("log.wit", include_str!("../wit/log.wit")),
    ("memory.wit", include_str!("../wit/memory.wit")),
    ("tools.wit", include_str!("../wit/tools.wit")),
    ("types.wit", include_str!("../wit/types.wit")),
    ("worlds.wit", include_str!("../wit/worlds.wit")),
];

/// Paths of every guest component: the built-ins (`builtins/`) and, in a
/// checkout of the repository, the test programs of `guests/` (for tests
/// and tools).
#[doc(hidden)]
pub mod artifacts {
    // The precompiled built-ins are placed in the text (see precompiled.rs).
    #![allow(unsafe_code)]
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// The names an embedding program needs.
pub mod prelude {
    pub use crate::{
        Agent, AgentError, Answer, BrainChoice, ComponentRef, Config, Error, Resume, RunError,
        RunOutcome, RunPlan, Runtime, TaskSource, approval::Approval, approval::ApprovalRequest,
        approval::Approver, logs::LogFormat,
    };
    pub use femtoclaw_policy::Policy;
}
