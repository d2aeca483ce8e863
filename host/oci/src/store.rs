//! Pulled bundles kept by manifest digest, in the state directory: a run
//! journals `oci://…@DIGEST`, and replay and resume read the same bytes
//! from here without the registry. An entry is checked against its digests
//! every time it is read, so a damaged one is never used.

use std::path::{Path, PathBuf};

use crate::error::{OciError, Result};
use crate::reference::{Reference, valid_digest};
use crate::registry::{Pulled, bundle_layer, digest_of};

/// The bundles pulled into one state directory (`STATE/oci/`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store under `state` (created when the first bundle is kept).
    pub fn new(state: &Path) -> Store {
        Store {
            root: state.join("oci"),
        }
    }

    fn entry(&self, digest: &str) -> PathBuf {
        self.root.join(digest.replace(':', "-"))
    }

    /// Keeps a pulled bundle under its manifest digest.
    pub fn keep(&self, pulled: &Pulled) -> Result<()> {
        let digest = pulled
            .reference
            .digest
            .as_deref()
            .expect("invariant: a pulled reference carries its digest");
        let failed = |path: &Path, e: std::io::Error| OciError::Store {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(&self.root).map_err(|e| failed(&self.root, e))?;
        // Written aside and renamed into place: an entry is whole or absent.
        let staging = tempfile::Builder::new()
            .prefix(".pulling-")
            .tempdir_in(&self.root)
            .map_err(|e| failed(&self.root, e))?;
        for (name, bytes) in [
            ("manifest.json", &pulled.manifest),
            ("bundle.fcb", &pulled.bundle),
        ] {
            let path = staging.path().join(name);
            std::fs::write(&path, bytes).map_err(|e| failed(&path, e))?;
        }
        let entry = self.entry(digest);
        match std::fs::rename(staging.path(), &entry) {
            Ok(()) => {
                let _ = staging.keep();
                Ok(())
            }
            // Another pull kept the same digest first: same bytes.
            Err(_) if entry.is_dir() => Ok(()),
            Err(e) => Err(failed(&entry, e)),
        }
    }

    /// The bundle kept for `reference`'s digest, checked again against the
    /// manifest digest and the layer digest; `None` when there is none or
    /// the entry is damaged (it is then removed, with a warning, and pulled
    /// again).
    pub fn get(&self, reference: &Reference) -> Option<Pulled> {
        let digest = reference.digest.as_deref().filter(|d| valid_digest(d))?;
        let entry = self.entry(digest);
        let manifest = std::fs::read(entry.join("manifest.json")).ok()?;
        let bundle = std::fs::read(entry.join("bundle.fcb"));
        let whole = digest_of(&manifest) == digest
            && bundle.as_ref().is_ok_and(|bundle| {
                bundle_layer(&manifest).is_ok_and(|layer| {
                    layer.size == bundle.len() as u64 && layer.digest == digest_of(bundle)
                })
            });
        if !whole {
            tracing::warn!(entry = %entry.display(), "a kept bundle does not match its digest: removed, it will be pulled again");
            let _ = std::fs::remove_dir_all(&entry);
            return None;
        }
        Some(Pulled {
            reference: reference.clone(),
            manifest,
            bundle: bundle.ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{BUNDLE_MEDIA_TYPE, CONFIG_MEDIA_TYPE};

    fn pulled(bundle: &[u8]) -> Pulled {
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": digest_of(b"{}"), "size": 2 },
            "layers": [{ "mediaType": BUNDLE_MEDIA_TYPE, "digest": digest_of(bundle), "size": bundle.len() }],
        }))
        .unwrap();
        let reference = Reference::parse("oci://127.0.0.1:5000/a:v1")
            .unwrap()
            .at(&digest_of(&manifest));
        Pulled {
            reference,
            manifest,
            bundle: bundle.to_vec(),
        }
    }

    #[test]
    fn keeps_and_rechecks_by_digest() {
        let state = tempfile::tempdir().unwrap();
        let store = Store::new(state.path());
        let p = pulled(b"FCBUNDLE bytes");
        assert!(store.get(&p.reference).is_none());
        store.keep(&p).unwrap();
        store.keep(&p).unwrap();
        assert_eq!(store.get(&p.reference).unwrap().bundle, p.bundle);

        // A flipped byte: the entry is dropped, never used.
        let file = store
            .entry(p.reference.digest.as_deref().unwrap())
            .join("bundle.fcb");
        std::fs::write(&file, b"FCBUNDLE bytez").unwrap();
        assert!(store.get(&p.reference).is_none());
        assert!(!file.exists());
    }
}
