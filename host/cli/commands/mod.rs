//! One file per subcommand.

mod policy;
mod run;

pub use policy::PolicyCommand;
pub use run::RunCommand;

/// fc-host's subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Run an agent under a policy; prints its final answer on stdout.
    Run(RunCommand),
    /// Check a policy file.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

impl Command {
    /// Runs the command; returns the process exit code.
    pub fn execute(self) -> anyhow::Result<u8> {
        match self {
            Command::Run(c) => c.execute(),
            Command::Policy(c) => c.execute(),
        }
    }
}
