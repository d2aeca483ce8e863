//! Named built-in policies: `--policy Strict` (or `Standard`, `Dev`) where
//! a policy file is expected. Each is an ordinary policy text, embedded in
//! the binary and parsed like a file in the working directory: its paths
//! resolve against the directory the command runs in, and a run journals
//! its text, so a replay or a resume uses exactly the preset it started
//! with, whatever a later version ships.

use std::path::{Path, PathBuf};

/// A named policy.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Its name, as `--policy` takes it.
    pub name: &'static str,
    /// What it grants, in one line.
    pub summary: &'static str,
    /// Its policy text.
    pub text: &'static str,
}

/// Every preset, strictest first.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "Strict",
        summary: "read the working directory (read_file, list_dir); nothing else; only built-in or signed components",
        text: include_str!("../presets/strict.toml"),
    },
    Preset {
        name: "Standard",
        summary: "read and write the working directory; no network, no environment",
        text: include_str!("../presets/standard.toml"),
    },
    Preset {
        name: "Dev",
        summary: "Standard with larger budgets (64 steps, 256 tool calls, 30 minutes)",
        text: include_str!("../presets/dev.toml"),
    },
];

/// The presets as the embedding API names them: `Policy::Strict`,
/// `Policy::Standard`, `Policy::Dev` (the names `--policy` takes).
#[allow(non_upper_case_globals)]
impl crate::Policy {
    /// `Strict`: read the working directory (`read_file`, `list_dir`);
    /// nothing else; only built-in or signed components.
    pub const Strict: &'static Preset = &PRESETS[0];
    /// `Standard`: read and write the working directory; no network, no
    /// environment.
    pub const Standard: &'static Preset = &PRESETS[1];
    /// `Dev`: `Standard` with larger budgets (64 steps, 256 tool calls, 30
    /// minutes).
    pub const Dev: &'static Preset = &PRESETS[2];
}

impl Preset {
    /// The preset as a policy, its paths resolved against the working
    /// directory (as `--policy NAME` does).
    ///
    /// ```
    /// use femtoclaw_policy::Policy;
    /// let strict = Policy::Strict.load()?;
    /// assert_eq!(strict.capabilities["fs"].tools, ["read_file", "list_dir"]);
    /// # Ok::<(), femtoclaw_policy::PolicyError>(())
    /// ```
    pub fn load(&self) -> crate::Result<crate::Policy> {
        crate::Policy::load(self.name)
    }

    /// The preset an argument names: exactly a preset's name, with no
    /// directory or extension (`./Strict` is a file).
    pub fn named(arg: &Path) -> Option<&'static Preset> {
        let name = arg.to_str()?;
        PRESETS.iter().find(|p| p.name == name)
    }

    /// The path it is parsed and journaled as: its name in the working
    /// directory.
    pub fn path(&self) -> std::io::Result<PathBuf> {
        Ok(std::env::current_dir()?.join(self.name))
    }

    /// The preset whose name differs from `arg` only in case, for a hint.
    pub fn like(arg: &Path) -> Option<&'static Preset> {
        let name = arg.to_str()?;
        PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }
}

/// The names, for messages: `Strict, Standard, Dev`.
pub fn names() -> String {
    PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_only_an_exact_name_is_one() {
        let dir = tempfile::tempdir().unwrap();
        for p in PRESETS {
            let policy = crate::Policy::parse(dir.path().join(p.name), p.text)
                .unwrap_or_else(|e| panic!("{}: {e}", p.name));
            let fs = &policy.capabilities["fs"];
            assert_eq!(
                fs.mounts[0].host,
                dir.path().canonicalize().unwrap(),
                "{}",
                p.name
            );
            assert!(fs.net.is_empty() && fs.env.is_empty() && fs.secrets.is_empty());
        }
        assert!(Preset::named(Path::new("Strict")).is_some());
        for not in ["strict", "./Strict", "Strict.toml", "dir/Strict"] {
            assert!(Preset::named(Path::new(not)).is_none(), "{not}");
        }
        assert_eq!(Preset::like(Path::new("strict")).unwrap().name, "Strict");
        let named = [
            crate::Policy::Strict,
            crate::Policy::Standard,
            crate::Policy::Dev,
        ];
        assert_eq!(named.map(|p| p.name), ["Strict", "Standard", "Dev"]);
    }

    #[test]
    fn strict_grants_least() {
        let dir = tempfile::tempdir().unwrap();
        let strict = crate::Policy::parse(dir.path().join("Strict"), PRESETS[0].text).unwrap();
        assert_eq!(strict.capabilities["fs"].tools, ["read_file", "list_dir"]);
        assert_eq!(
            strict.capabilities["fs"].mounts[0].mode,
            crate::MountMode::ReadOnly
        );
        assert!(strict.trust.require_signature);
    }
}
