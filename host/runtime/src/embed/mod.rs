//! The embedding API: a program that runs agents under FemtoClaw's policy,
//! as the product page shows it.
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
//! [`Config`] holds the settings (presets [`Config::industrial`] and
//! [`Config::default`]); [`Agent`] runs under the policy it enforces
//! ([`Agent::run`], [`Agent::run_async`], [`Agent::run_managed`],
//! [`Agent::call_tool`]); every failure is an [`Error`] whose variant is
//! one of `fc-host`'s exit codes. `fc-host` itself is built on the same
//! runtime: a run here is journaled, gated and audited exactly as
//! `fc-host run` does it, and `fc-host runs`, `audit`, `replay` and
//! `resume` work on it.

mod agent;
mod config;
mod error;
mod managed;

pub use agent::{Agent, Answer, PolicyChoice};
pub use config::{Config, TaskSource};
pub use error::Error;
pub use managed::shutdown_signal;
