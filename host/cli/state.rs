//! Where the journal lives: `--state DIR`, else `FC_STATE_DIR`, else the
//! platform's data directory (`$XDG_DATA_HOME/femtoclaw`, or
//! `~/.local/share/femtoclaw`, on Linux). The compile cache lives in the
//! platform's cache directory, unless a state directory was named.

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
        match project() {
            Some(dirs) => Ok(dirs.data_dir().to_owned()),
            None => anyhow::bail!(femtoclaw_runtime::RunError::Config(
                "no state directory: pass --state DIR or set FC_STATE_DIR".into()
            )),
        }
    }

    /// Where compiled components are cached: `FC_CACHE_DIR`; else, when a
    /// state directory is named (`--state`, `FC_STATE_DIR`), its `cache/`,
    /// so that it holds all a deployment keeps; else the platform's cache
    /// directory (`$XDG_CACHE_HOME/femtoclaw`, or `~/.cache/femtoclaw`).
    pub fn cache_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = std::env::var_os("FC_CACHE_DIR").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        let named =
            self.state.is_some() || std::env::var_os("FC_STATE_DIR").is_some_and(|d| !d.is_empty());
        match project() {
            Some(dirs) if !named => Ok(dirs.cache_dir().to_owned()),
            _ => Ok(self.dir()?.join("cache")),
        }
    }
}

/// The platform's directories for `femtoclaw` (none without a home).
fn project() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "femtoclaw")
}
