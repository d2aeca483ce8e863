//! FemtoClaw bundles: one file holding an application's components and a
//! manifest that binds every byte of them, signed with ed25519.
//!
//! ```text
//! "FCBUNDLE" 0x00 0x01                 magic and format version (10 bytes)
//! u32 BE length, manifest              canonical JSON (RFC 8785)
//! for each component of the manifest:  u64 BE length, bytes (a wasm component)
//! u32 BE count, then per signature:    u32 BE length, JSON {"key": SPKI-DER hex, "signature": hex}
//! ```
//!
//! A signature is ed25519 over `"femtoclaw-bundle-v1\n" || manifest`; the
//! manifest names each component's sha256 and size, its tool specs and the
//! grants it asks for, so a signature covers every byte that influences
//! behaviour. Verification ([`Bundle::verify`]) is strict: exact lengths, no
//! trailing bytes, a canonical manifest, hashes, no precompiled code, and
//! `verify_strict` signatures from trusted keys. It runs before anything is
//! compiled. A single component file can instead carry a detached
//! signature ([`Detached`], `FILE.sig`).

#![deny(missing_docs)]

mod detached;
mod error;
mod format;
mod keys;
mod manifest;

pub use detached::{Detached, MAX_SIGNATURE_FILE, signature_path};
pub use error::{BundleError, Result};
pub use format::{Bundle, Signature};
pub use keys::{KeyPair, PublicKey};
pub use manifest::{Component, Grants, Manifest, Role, Version, canonical_json};
