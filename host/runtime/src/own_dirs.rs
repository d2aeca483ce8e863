//! A capability's read-write mount must not reach fc-host's own state.
//!
//! The compile cache holds native code that fc-host loads and runs, kept
//! behind a MAC whose key lives in the cache itself: a capability that can
//! write there (and read the key) could plant code the host would execute.
//! The state directory holds the journal, the record every replay, audit
//! and resume trusts: a capability that can write there could destroy it.
//! So a read-write mount whose host directory contains either one, or lies
//! inside the cache, is refused before anything starts. A read-only mount
//! is allowed (running `fc-host run --policy Strict` in a home directory
//! mounts the cache and the journal read-only); `fc-host compliance`
//! reports that exposure too.

use std::path::{Path, PathBuf};

use femtoclaw_policy::{MountMode, Policy};

use crate::{RunError, Runtime};

impl Runtime {
    /// Refuses a policy whose read-write mounts reach the compile cache or
    /// the state directory `state` (see the module's documentation).
    pub(crate) fn guard_own_dirs(
        &self,
        policy: &Policy,
        state: Option<&Path>,
    ) -> Result<(), RunError> {
        let cache = self.cache.as_ref().map(|c| c.dir());
        refuse_writable(policy, state, cache)
    }
}

/// The host directories fc-host keeps for itself that `mount` reaches, as
/// `(what, directory)`: any it contains (or is), and the cache if it lies
/// inside it.
pub fn reached(
    mount: &Path,
    state: Option<&Path>,
    cache: Option<&Path>,
) -> Vec<(&'static str, PathBuf)> {
    let mut found = Vec::new();
    if let Some(state) = state.map(canonical)
        && state.starts_with(mount)
    {
        found.push(("the state directory (the journal of every run)", state));
    }
    if let Some(cache) = cache.map(canonical)
        && (cache.starts_with(mount) || mount.starts_with(&cache))
    {
        found.push(("the compile cache (native code fc-host loads)", cache));
    }
    found
}

fn refuse_writable(
    policy: &Policy,
    state: Option<&Path>,
    cache: Option<&Path>,
) -> Result<(), RunError> {
    for (name, grant) in &policy.capabilities {
        for mount in grant
            .mounts
            .iter()
            .filter(|m| m.mode == MountMode::ReadWrite)
        {
            if let Some((what, dir)) = reached(&mount.host, state, cache).into_iter().next() {
                return Err(RunError::Config(format!(
                    "`capabilities.{name}.mounts` in `{}`: `{}` is read-write and its host directory `{}` reaches {what} `{}`: the capability could rewrite it. Mount a directory outside it, or mount it read-only",
                    policy.path.display(),
                    mount.guest,
                    mount.host.display(),
                    dir.display()
                )));
            }
        }
    }
    Ok(())
}

/// `dir` as mounts name theirs (canonical); a directory not made yet is
/// its nearest existing ancestor, canonical, with the rest appended.
fn canonical(dir: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = dir;
    loop {
        if let Ok(found) = std::fs::canonicalize(at) {
            return rest.iter().rev().fold(found, |path, part| path.join(part));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                at = parent;
            }
            _ => return dir.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mount: &Path, mode: &str) -> Policy {
        let text = format!(
            "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"list_dir\"]\nmounts = [{{ host = {:?}, guest = \"/data\", mode = \"{mode}\" }}]\n",
            mount.display().to_string()
        );
        Policy::parse(mount.join("policy.toml"), &text).unwrap()
    }

    #[test]
    fn a_writable_mount_reaching_the_journal_or_the_cache_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (state, elsewhere) = (root.path().join("state"), root.path().join("work"));
        let cache = state.join("cache");
        for dir in [&cache, &elsewhere] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let writable =
            |mount: &Path| refuse_writable(&policy(mount, "rw"), Some(&state), Some(&cache));
        // Containing the state directory (and so the cache in it).
        let e = writable(root.path()).unwrap_err().to_string();
        assert!(
            e.contains("capabilities.fs.mounts")
                && e.contains("/data")
                && e.contains("state directory"),
            "{e}"
        );
        // The cache itself, and a directory inside it.
        std::fs::create_dir_all(cache.join("artifacts")).unwrap();
        for mount in [cache.clone(), cache.join("artifacts")] {
            let e = writable(&mount).unwrap_err().to_string();
            assert!(e.contains("compile cache"), "{e}");
        }
        // Beside them, or read-only: allowed.
        writable(&elsewhere).unwrap();
        refuse_writable(&policy(root.path(), "ro"), Some(&state), Some(&cache)).unwrap();
        // A state directory's neighbour with a longer name is not inside it.
        let neighbour = root.path().join("state-2");
        std::fs::create_dir_all(&neighbour).unwrap();
        writable(&neighbour).unwrap();
        // A state directory not made yet is still recognised.
        let later = root.path().join("later/state");
        let e = refuse_writable(&policy(root.path(), "rw"), Some(&later), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("later/state"), "{e}");
    }
}
