//! `fc-host bundle push|pull` and `fc-host run oci://…`: bundles through OCI
//! registries. The registry is only a carrier: what it serves is checked
//! against its digests here, and against the policy's trust by `admit`, as
//! a bundle file is.

use std::path::Path;

use femtoclaw_bundle::{Bundle, PublicKey};
use femtoclaw_oci::{Credentials, OciError, Reference, Registry, Store};
use serde_json::json;

use crate::commands::bundle::{read_bundle, refused};
use crate::console::{notice, outln};
use crate::exit;

/// Whether a command-line argument names a bundle in a registry.
pub fn is_reference(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| s.starts_with("oci://"))
}

fn registry(reference: &Reference) -> anyhow::Result<Registry> {
    let credentials = Credentials::for_registry(&reference.registry)?;
    tracing::debug!(registry = %reference.registry, credentials = credentials.source(), "registry credentials");
    Ok(Registry::new(reference, credentials))
}

/// Runs a registry operation to its end on a small runtime.
fn block<T>(f: impl Future<Output = Result<T, OciError>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(f);
    runtime.shutdown_background();
    Ok(result?)
}

/// `fc-host bundle push FILE oci://HOST/REPO:TAG`: prints the pinned
/// reference (`oci://HOST/REPO@sha256:…`) on stdout.
pub fn push(file: &Path, target: &str) -> anyhow::Result<u8> {
    let reference = Reference::parse(target)?;
    let bundle = read_bundle(file)?;
    // A parsed bundle is canonical: its bytes are the file's (the push test
    // pulls them back and compares with the file).
    let bytes = bundle.to_bytes();
    let (name, version) = (&bundle.manifest.name, bundle.manifest.version.to_string());
    let pushed = block(registry(&reference)?.push(&reference, &bytes, name, &version))?;
    let pinned = pushed
        .reference
        .pinned()
        .expect("invariant: a push yields a digest");
    notice(
        &format!(
            "pushed {name} {version} ({} bytes) to {reference}",
            pushed.size
        ),
        &[("reference", json!(pinned))],
    );
    outln!("{pinned}");
    Ok(exit::OK)
}

/// `fc-host bundle pull oci://… -o FILE [--trust KEY…]`.
pub fn pull(source: &str, out: &Path, trust: &[std::path::PathBuf]) -> anyhow::Result<u8> {
    let reference = Reference::parse(source)?;
    let pulled = block(registry(&reference)?.pull(&reference))?;
    let pinned = pulled
        .reference
        .pinned()
        .expect("invariant: a pull yields a digest");
    let bundle = Bundle::parse(&pulled.bundle).map_err(|e| refused(&pinned, e))?;
    if !trust.is_empty() {
        let keys = PublicKey::read_all(trust)?;
        bundle.verify(&keys).map_err(|e| refused(&pinned, e))?;
    }
    // Written aside and renamed: FILE is the whole bundle or untouched.
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut staged = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut staged, &pulled.bundle)?;
    staged.persist(out).map_err(|e| e.error)?;
    outln!(
        "pulled {} {} from {pinned} to {}",
        bundle.manifest.name,
        bundle.manifest.version,
        out.display()
    );
    Ok(exit::OK)
}

/// The bundle a run names by `oci://` reference: kept bytes for a digest
/// pulled before, else pulled (a tag resolved to its digest now, once) and
/// kept. Returns the pinned reference to journal, and the parsed bundle
/// (its signatures are checked by `admit`).
pub fn fetch(source: &str, state: &Path) -> anyhow::Result<(String, Bundle)> {
    let reference = Reference::parse(source)?;
    let store = Store::new(state);
    let pulled = match store.get(&reference) {
        Some(kept) => kept,
        None => {
            let pulled = block(registry(&reference)?.pull(&reference))?;
            store.keep(&pulled)?;
            pulled
        }
    };
    let pinned = pulled
        .reference
        .pinned()
        .expect("invariant: a pull yields a digest");
    if reference.digest.is_none() {
        notice(
            &format!("{reference} is {pinned}"),
            &[("reference", json!(pinned))],
        );
    }
    let bundle = Bundle::parse(&pulled.bundle).map_err(|e| refused(&pinned, e))?;
    Ok((pinned, bundle))
}
