//! Policy errors: each names the file, and where it can, the line and key.

use std::path::PathBuf;

/// Result of policy operations.
pub type Result<T, E = PolicyError> = std::result::Result<T, E>;

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy `{path}`")]
    Read {
        /// The policy file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No such file, and the argument is a preset's name in another case.
    #[error(
        "there is no policy file `{path}`; the preset is spelled `{preset}` (presets: {names})"
    )]
    Misspelled {
        /// The argument.
        path: PathBuf,
        /// The preset it resembles.
        preset: &'static str,
        /// Every preset's name.
        names: String,
    },
    /// The file is not valid TOML or does not fit the policy's shape (unknown
    /// key, wrong type); the message carries line and column.
    #[error("invalid policy `{path}`: {message}")]
    Syntax {
        /// The policy file.
        path: PathBuf,
        /// What the TOML parser reported, with line and column.
        message: String,
    },
    /// A value is well-formed TOML but not an acceptable grant.
    #[error("invalid policy `{path}` line {line}: `{key}`: {message}")]
    Invalid {
        /// The policy file.
        path: PathBuf,
        /// 1-based line of the offending value.
        line: usize,
        /// Dotted key of the offending value, e.g. `capabilities.fs.mounts`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}
