//! Where the journal lives: `--state DIR`, else `FC_STATE_DIR`, else the
//! user's data directory (`$XDG_DATA_HOME/femtoclaw`, or
//! `~/.local/share/femtoclaw`).

use std::path::PathBuf;

/// The `--state` option, shared by every command that touches the journal.
#[derive(clap::Args, Clone, Debug)]
pub struct StateArgs {
    /// State directory holding the journal (default: `FC_STATE_DIR`, else
    /// `$XDG_DATA_HOME/femtoclaw` or `~/.local/share/femtoclaw`).
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
}

impl StateArgs {
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.state {
            return Ok(dir.clone());
        }
        if let Some(dir) = std::env::var_os("FC_STATE_DIR").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(data).join("femtoclaw"));
        }
        match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            Some(home) => Ok(PathBuf::from(home).join(".local/share/femtoclaw")),
            None => anyhow::bail!(femtoclaw_runtime::RunError::Config(
                "no state directory: pass --state DIR or set FC_STATE_DIR".into()
            )),
        }
    }
}
