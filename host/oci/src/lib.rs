//! FemtoClaw bundles as OCI artifacts: the same registries, credentials and
//! digests people already use for container images carry signed bundles.
//!
//! A bundle travels as an OCI image manifest of its own kind:
//!
//! ```text
//! manifest  application/vnd.oci.image.manifest.v1+json, artifactType BUNDLE
//!   config  application/vnd.femtoclaw.bundle.config.v1+json  {"format","name","version"}
//!   layer   application/vnd.femtoclaw.bundle.v1               the .fcb file, byte for byte
//!   annotations org.opencontainers.image.title / .version
//! ```
//!
//! The manifest is built deterministically, so pushing the same bundle gives
//! the same digest. A pull checks, before anything is kept: the manifest's
//! digest (the one asked for, or the one its tag resolved to), its media
//! types, one layer of ours under the size cap, and the layer's bytes
//! against its digest. The bundle's signatures are then checked by the
//! caller under the policy's trust, as for a file. Pulled bundles are kept
//! by manifest digest ([`Store`]), so a run journals the digest and replay
//! and resume use exactly the same bytes.

#![deny(missing_docs)]

mod auth;
mod error;
mod reference;
mod registry;
mod store;

pub use auth::Credentials;
pub use error::{OciError, Result};
pub use reference::Reference;
pub use registry::{BUNDLE_MEDIA_TYPE, CONFIG_MEDIA_TYPE, MAX_BUNDLE, Pulled, Pushed, Registry};
pub use store::Store;
