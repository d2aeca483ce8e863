//! Bundle errors: each names what failed.

/// Result of bundle operations.
pub type Result<T, E = BundleError> = std::result::Result<T, E>;

/// Why a bundle, a key or a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The file is not a well-formed bundle (magic, lengths, trailing data).
    #[error("malformed bundle: {0}")]
    Malformed(String),
    /// The manifest is not valid (not canonical JSON, a bad field).
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// A component's bytes do not match the manifest.
    #[error("component `{name}`: {reason}")]
    Component {
        /// The component's name in the manifest.
        name: String,
        /// What does not match.
        reason: String,
    },
    /// A component is precompiled native code, which a bundle never carries.
    #[error(
        "component `{0}` is precompiled code (a .cwasm); bundles carry only WebAssembly components"
    )]
    Precompiled(String),
    /// No signature at all, where one is required.
    #[error("the bundle is not signed")]
    Unsigned,
    /// Signatures exist but none is by a trusted key.
    #[error("no signature is by a trusted key (signed by: {0})")]
    UntrustedKey(String),
    /// A signature by a trusted key does not verify.
    #[error(
        "the signature by key {key} does not verify: what it signs (the manifest, or the component) or the signature was changed"
    )]
    BadSignature {
        /// The key's fingerprint.
        key: String,
    },
    /// A detached signature file (`FILE.sig`) is not well-formed.
    #[error("invalid signature file: {0}")]
    SignatureFile(String),
    /// A detached signature was made for other bytes than the file's.
    #[error(
        "it signs other bytes (sha256 {signed}) than the component's (sha256 {actual}): the component changed after it was signed"
    )]
    SignedOther {
        /// The sha256 the signature file names.
        signed: String,
        /// The component's sha256.
        actual: String,
    },
    /// A key file is not an ed25519 key in the expected format.
    #[error("key `{path}`: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
