//! `fc-host`: run AI agents under a deny-by-default policy.
//!
//! A thin dispatcher over `femtoclaw-runtime`: one clap subcommand per file
//! in `commands/`. stdout carries only results (the agent's final answer,
//! listings); logs, notices and errors go to stderr (`console`).

use std::process::ExitCode;

use clap::Parser;

mod approve;
mod commands;
mod console;
mod exit;
mod logging;
mod otlp;
mod state;

use commands::Command;

/// fc-host: the FemtoClaw runtime. The model proposes; fc-host decides.
#[derive(Parser)]
#[command(name = "fc-host", version, about, after_help = exit::HELP)]
struct Cli {
    /// Log filter for stderr (`error`, `warn`, `info`, `debug`, `trace`, or a
    /// `RUST_LOG`-style directive). Defaults to `RUST_LOG`, else `info`.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Pretty)]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

/// The whole command-line definition, for what is generated from it
/// (completions, man pages).
fn cli() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `compliance` makes hundreds of runs and probes that are refused on
    // purpose: their lines would bury its report, so it logs only errors
    // unless told otherwise.
    let quiet = matches!(cli.command, Command::Compliance(_))
        && std::env::var_os("RUST_LOG").is_none()
        && cli.log_level.is_none();
    let level = if quiet {
        Some("error")
    } else {
        cli.log_level.as_deref()
    };
    let telemetry = match logging::init(level, cli.log_format) {
        Ok(t) => t,
        Err(e) => {
            console::error(&e, exit::USAGE);
            return ExitCode::from(exit::USAGE);
        }
    };
    let code = match cli.command.execute() {
        Ok(code) => code,
        Err(e) => {
            let code = exit::for_error(&e);
            console::error(&e, code);
            code
        }
    };
    telemetry.finish();
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
