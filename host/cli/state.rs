//! Where the journal lives: `--state DIR`, else `FC_STATE_DIR`, else the
//! platform's data directory (see [`femtoclaw_runtime::dirs`]).

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
        Ok(femtoclaw_runtime::dirs::state_dir(self.state.as_deref())?)
    }

    /// Where compiled components are cached (see
    /// [`femtoclaw_runtime::dirs::cache_dir`]).
    pub fn cache_dir(&self) -> anyhow::Result<PathBuf> {
        Ok(femtoclaw_runtime::dirs::cache_dir(self.state.as_deref())?)
    }
}
