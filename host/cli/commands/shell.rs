//! `fc-host completions SHELL` and `fc-host man DIR`: what a shell and
//! `man` need, generated from the same clap definition that parses the
//! arguments, so they cannot drift from it.

use std::path::PathBuf;

use anyhow::Context as _;

/// Print a completion script for a shell on stdout. For bash:
/// `fc-host completions bash > ~/.local/share/bash-completion/completions/fc-host`.
#[derive(clap::Args)]
pub struct CompletionsCommand {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

impl CompletionsCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let mut command = crate::cli();
        let mut out = Vec::new();
        clap_complete::generate(self.shell, &mut command, "fc-host", &mut out);
        let mut script = String::from_utf8(out).expect("invariant: clap writes UTF-8 scripts");
        if self.shell == clap_complete::Shell::Bash {
            // clap_complete 4.6 spells a hyphenated program's subcommand
            // states two ways (clap-rs/clap#6421), so no subcommand's flags
            // would complete; its case arms are spelled as its loop spells
            // them. A no-op once clap_complete is fixed; the CLI tests
            // complete a subcommand's flag in bash.
            script = script.replace("fc__subcmd__host", "fc__host");
        }
        crate::console::write_stdout(&script);
        Ok(crate::exit::OK)
    }
}

/// Write man pages into a directory: `fc-host.1` and one page per
/// subcommand (`fc-host-run.1`, …). Read one with `man -l DIR/fc-host.1`.
#[derive(clap::Args)]
pub struct ManCommand {
    /// The directory to write the pages into (created if missing).
    dir: PathBuf,
}

impl ManCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        std::fs::create_dir_all(&self.dir).with_context(|| {
            format!("{}: the directory could not be created", self.dir.display())
        })?;
        clap_mangen::generate_to(crate::cli(), &self.dir).with_context(|| {
            format!("{}: the man pages could not be written", self.dir.display())
        })?;
        Ok(crate::exit::OK)
    }
}

/// Write the WIT package (`femtoclaw:runtime`) guests build against into a
/// directory, so a capability builds from an empty folder: `fc-host wit wit`,
/// then point the bindings generator at `wit/` with world `capability`.
#[derive(clap::Args)]
pub struct WitCommand {
    /// The directory to write the `.wit` files into (created if missing).
    dir: PathBuf,
}

impl WitCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        std::fs::create_dir_all(&self.dir).with_context(|| {
            format!("{}: the directory could not be created", self.dir.display())
        })?;
        for (name, text) in femtoclaw_runtime::WIT {
            let path = self.dir.join(name);
            std::fs::write(&path, text)
                .with_context(|| format!("{}: could not be written", path.display()))?;
        }
        crate::console::notice(
            &format!(
                "wrote the femtoclaw:runtime WIT package ({} files) to {}",
                femtoclaw_runtime::WIT.len(),
                self.dir.display()
            ),
            &[],
        );
        Ok(crate::exit::OK)
    }
}
