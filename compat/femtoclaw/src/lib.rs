//! The `femtoclaw` 1.x interface (`Agent`, `Config`, `Message`, `Role`) on
//! the FemtoClaw runtime. Code written against that crate builds against
//! this one; each `run` is then a run of FemtoClaw's built-in agent under a
//! deny-by-default policy (the preset `Strict` unless [`Config::policy`]
//! names another), its tool calls gated, schema-checked and run in
//! sandboxed capabilities, and `execute_tool` is a direct call on the same
//! path.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! use femtoclaw::{Agent, Config};
//! let agent = Agent::new(Config::default())?;
//! // The default brain is offline and deterministic.
//! assert_eq!(agent.run("hello").await?, "ACK: hello");
//! assert_eq!(agent.history().await.len(), 2);
//! agent.reset().await;
//! assert!(agent.history().await.is_empty());
//! // Nothing is granted that the policy does not name.
//! assert!(agent.execute_tool("shell", serde_json::json!({ "cmd": "ls" })).await.is_err());
//! # Ok(()) }
//! ```
//!
//! What differs from the crate it stands in for: tools are FemtoClaw's
//! capabilities (`fs.read_file`, `fs.list_dir`, … as the policy grants
//! them), not `shell`/`web.get`/`process`, which run host programs; a
//! provider's key is read from `FEMTO_OPENAI_API_KEY` by the runtime, never
//! taken from the program's memory.

#![deny(missing_docs)]

mod agent;
mod config;

pub use agent::{Agent, Message, Role};
pub use config::{BrainConfig, Config};
