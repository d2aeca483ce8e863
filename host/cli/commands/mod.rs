//! One file per subcommand.

pub mod bundle;
mod call;
mod compile;
mod compliance;
mod doctor;
mod journal;
mod mcp;
mod oci;
mod policy;
mod policy_diff;
pub mod run;
mod serve;
mod shell;
mod sign;

pub use bundle::{BundleCommand, KeygenCommand};
pub use call::{CallCommand, ToolsCommand};
pub use compile::CompileCommand;
pub use compliance::ComplianceCommand;
pub use doctor::DoctorCommand;
pub use journal::{AuditCommand, InspectCommand, ReplayCommand, ResumeCommand, RunsCommand};
pub use mcp::McpCommand;
pub use policy::PolicyCommand;
pub use run::RunCommand;
pub use serve::ServeCommand;
pub use shell::{CompletionsCommand, ManCommand, WitCommand};
pub use sign::SignCommand;

/// fc-host's subcommands.
#[derive(clap::Subcommand)]
// Each subcommand's arguments are defined only when it is the one parsed.
#[command(defer = true)]
pub enum Command {
    /// Run an agent under a policy; prints its final answer on stdout.
    Run(RunCommand),
    /// List the journaled runs.
    Runs(RunsCommand),
    /// Print a run's timeline.
    Inspect(InspectCommand),
    /// Print a run's decisions and the policy rule behind each.
    Audit(AuditCommand),
    /// Re-run a journaled run from its journal, checking every step.
    Replay(ReplayCommand),
    /// Continue a killed run from where its journal ends.
    Resume(ResumeCommand),
    /// Write an ed25519 signing key pair.
    Keygen(KeygenCommand),
    /// Sign a component file: writes FILE.sig beside it.
    Sign(SignCommand),
    /// Pack, sign, verify, inspect, push and pull signed component bundles.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Compile components ahead of time into the compile cache.
    Compile(CompileCommand),
    /// Check or explain a policy file.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Serve many tenants' runs over HTTP from one process.
    Serve(ServeCommand),
    /// Serve the policy's granted tools to an MCP client over stdio.
    Mcp(McpCommand),
    /// List a capability component's tools and their schemas.
    Tools(ToolsCommand),
    /// Call one tool of a capability through the gate, as an agent would.
    Call(CallCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsCommand),
    /// Write fc-host's man pages into a directory.
    Man(ManCommand),
    /// Write the WIT package guests build against into a directory.
    Wit(WitCommand),
    /// Check the state, the cache, a policy, its components and its brain.
    Doctor(DoctorCommand),
    /// Check a policy and its components: determinism, hostile calls, grants, performance.
    Compliance(ComplianceCommand),
}

impl Command {
    /// Runs the command; returns the process exit code.
    pub fn execute(self) -> anyhow::Result<u8> {
        match self {
            Command::Run(c) => c.execute(),
            Command::Runs(c) => c.execute(),
            Command::Inspect(c) => c.execute(),
            Command::Audit(c) => c.execute(),
            Command::Tools(c) => c.execute(),
            Command::Wit(c) => c.execute(),
            Command::Doctor(c) => c.execute(),
            Command::Call(c) => c.execute(),
            Command::Replay(c) => c.execute(),
            Command::Resume(c) => c.execute(),
            Command::Compile(c) => c.execute(),
            Command::Keygen(c) => c.execute(),
            Command::Sign(c) => c.execute(),
            Command::Bundle(c) => c.execute(),
            Command::Policy(c) => c.execute(),
            Command::Serve(c) => c.execute(),
            Command::Mcp(c) => c.execute(),
            Command::Completions(c) => c.execute(),
            Command::Man(c) => c.execute(),
            Command::Compliance(c) => c.execute(),
        }
    }
}
