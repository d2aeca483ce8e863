//! Why a registry operation failed; each error names the reference.

/// Result of registry operations.
pub type Result<T, E = OciError> = std::result::Result<T, E>;

/// Why a push, a pull or a cached bundle was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciError {
    /// The reference is not `oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX]`.
    #[error(
        "`{reference}` is not an OCI reference: {reason} (write oci://HOST[:PORT]/REPOSITORY:TAG or oci://HOST[:PORT]/REPOSITORY@sha256:DIGEST)"
    )]
    Reference {
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry could not be reached, refused the credentials, or has
    /// no such repository, tag or digest.
    #[error("registry `{registry}`: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What the registry or the connection said.
        message: String,
    },
    /// The registry served something that is not what was asked for: bytes
    /// that do not match their digest, a manifest of another kind, a blob
    /// over the size cap. Nothing of it is kept or run.
    #[error("`{reference}` was refused: {reason}")]
    Tampered {
        /// The reference pulled.
        reference: String,
        /// What did not match.
        reason: String,
    },
    /// The credentials could not be read (a damaged Docker config, a
    /// credential helper that failed).
    #[error("registry credentials: {0}")]
    Credentials(String),
    /// The local store of pulled bundles could not be read or written.
    #[error("bundle store `{path}`: {message}")]
    Store {
        /// The file or directory.
        path: String,
        /// What failed.
        message: String,
    },
}
