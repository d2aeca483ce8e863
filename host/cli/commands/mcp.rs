//! `fc-host mcp --policy FILE`: the policy's granted tools as an MCP server
//! over standard input and output (docs/mcp.md).

use std::path::PathBuf;

use femtoclaw_runtime::SessionPlan;
use femtoclaw_runtime::prelude::*;
use serde_json::json;

use crate::commands::run::{block_on, leave, runtime};
use crate::state::StateArgs;

/// Serve the policy's granted tools to an MCP client over stdio.
#[derive(clap::Args)]
pub struct McpCommand {
    /// The policy file (or a preset, `Strict`, `Standard`, `Dev`): its
    /// granted tools are the tools offered.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// A signed bundle (`.fcb` or `oci://…`, verified first) whose `bundle:NAME`
    /// capabilities the policy grants.
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
    /// Run a bundle older than one already run from the same signer.
    #[arg(long)]
    allow_downgrade: bool,
}

impl McpCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let policy = Policy::load(&self.policy)?;
        let bundle = match &self.bundle {
            Some(path) => Some(std::sync::Arc::new(
                crate::commands::bundle::admit(path, &policy, &self.state, self.allow_downgrade)?.1,
            )),
            None => None,
        };
        let plan = SessionPlan {
            policy,
            client: "mcp:stdio".into(),
            state: Some(self.state.dir()?),
            bundle,
            hooks: Default::default(),
        };
        let runtime = runtime(&self.state)?;
        let outcome = block_on(async {
            let session = runtime.open_session(plan).await?;
            let run_id = session.run_id().to_owned();
            // Standard output is the protocol's: the notice goes to stderr.
            crate::console::notice(
                &format!("mcp session {run_id}"),
                &[("run_id", json!(run_id))],
            );
            let gateway = femtoclaw_mcp::Gateway::new(session)
                .map_err(|e| RunError::Config(e.to_string()))?;
            gateway.serve_stdio().await.map_err(|e| match e {
                femtoclaw_mcp::McpServeError::Run(e) => e,
                other => RunError::Config(other.to_string()),
            })
        });
        leave(runtime);
        let outcome = outcome?;
        tracing::info!(target: "femtoclaw::run", run_id = %outcome.run_id, "mcp session closed");
        Ok(crate::exit::OK)
    }
}
