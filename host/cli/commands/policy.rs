//! `fc-host policy check FILE`.

use std::path::PathBuf;

use femtoclaw_policy::Policy;

use crate::exit;

/// Policy tools.
#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Parse and validate a policy without running anything (the same parser
    /// `run` uses).
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

impl PolicyCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        match self {
            PolicyCommand::Check { file } => {
                let policy = Policy::load(&file)?;
                println!(
                    "policy `{}` is valid: {} capabilit{} granted",
                    file.display(),
                    policy.capabilities.len(),
                    if policy.capabilities.len() == 1 {
                        "y"
                    } else {
                        "ies"
                    }
                );
                Ok(exit::OK)
            }
        }
    }
}
