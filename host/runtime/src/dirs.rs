//! Where FemtoClaw keeps its state, for the CLI and embedding programs
//! alike: the journal in `FC_STATE_DIR`, else the platform's data directory
//! (`$XDG_DATA_HOME/femtoclaw`, or `~/.local/share/femtoclaw`, on Linux);
//! compiled components in `FC_CACHE_DIR`, else the named state directory's
//! `cache/`, else the platform's cache directory.

use std::path::{Path, PathBuf};

use crate::RunError;

/// The state directory: `named` (`--state`, `Config::state_dir`), else
/// `FC_STATE_DIR`, else the platform's data directory.
pub fn state_dir(named: Option<&Path>) -> Result<PathBuf, RunError> {
    if let Some(dir) = named {
        return Ok(dir.to_owned());
    }
    if let Some(dir) = env_dir("FC_STATE_DIR") {
        return Ok(dir);
    }
    match project() {
        Some(dirs) => Ok(dirs.data_dir().to_owned()),
        None => Err(RunError::Config(
            "no state directory (no home directory to put one in): set FC_STATE_DIR, or name one (`--state DIR`, `Config::state_dir`)".into(),
        )),
    }
}

/// Where compiled components are cached: `FC_CACHE_DIR`; else, when a
/// state directory is named (`named`, `FC_STATE_DIR`), its `cache/`, so
/// that it holds all a deployment keeps; else the platform's cache
/// directory (`$XDG_CACHE_HOME/femtoclaw`, or `~/.cache/femtoclaw`).
pub fn cache_dir(named: Option<&Path>) -> Result<PathBuf, RunError> {
    if let Some(dir) = env_dir("FC_CACHE_DIR") {
        return Ok(dir);
    }
    let named_somewhere = named.is_some() || env_dir("FC_STATE_DIR").is_some();
    match project() {
        Some(dirs) if !named_somewhere => Ok(dirs.cache_dir().to_owned()),
        _ => Ok(state_dir(named)?.join("cache")),
    }
}

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// The platform's directories for `femtoclaw` (none without a home).
fn project() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "femtoclaw")
}
