//! The compile cache: components are compiled with Cranelift once and kept
//! as precompiled artifacts, keyed by the sha256 of the component and the
//! engine's fingerprint (wasmtime version, configuration, CPU features).
//!
//! Precompiled code is native code: it must never come from anyone but this
//! host. Each artifact is stored with an HMAC-SHA256 under a secret key that
//! the cache creates for itself (mode 0600, in a 0700 directory); an entry
//! whose MAC does not verify is deleted and the component compiled again.
//! A `.cwasm` that someone dropped into the directory is never loaded.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
    key: [u8; 32],
    fingerprint: String,
}

const MAC_LEN: usize = 32;

impl Cache {
    /// Opens (creating if needed) a cache directory for `engine`.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> std::io::Result<Cache> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let key_path = dir.join("key");
        let key = match std::fs::read(&key_path) {
            Ok(k) if k.len() == 32 => k,
            _ => {
                let mut k = [0u8; 32];
                std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut k)?;
                let tmp = dir.join(format!("key.{}", std::process::id()));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(&k)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &key_path)?;
                // Another process may have won the race: use the key on disk.
                std::fs::read(&key_path)?
            }
        };
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| std::io::Error::other("cache key has the wrong size"))?;
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        h.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        let fingerprint = hex::encode(&h.0.finalize()[..8]);
        Ok(Cache {
            dir: dir.to_owned(),
            key,
            fingerprint,
        })
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.fingerprint))
    }

    /// The cached compilation of the component with this sha256, if there is
    /// a valid one. A damaged or forged entry is removed.
    pub(crate) fn get(&self, engine: &Engine, hash: &str) -> Option<Component> {
        let path = self.path(hash);
        let bytes = std::fs::read(&path).ok()?;
        let valid = bytes.len() > MAC_LEN && {
            let (mac, artifact) = bytes.split_at(MAC_LEN);
            constant_time_eq(mac, &self.mac(hash, artifact))
        };
        if !valid {
            tracing::warn!(target: "femtoclaw::cache", path = %path.display(), "cache entry failed its integrity check: removed, compiling again");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // SAFETY: `Component::deserialize` runs native code from its input.
        // These bytes were produced by `Engine::precompile_component` in this
        // cache (the MAC under the cache's private key proves it), and
        // wasmtime itself refuses artifacts of another engine configuration.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &bytes[MAC_LEN..]) };
        match component {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(target: "femtoclaw::cache", path = %path.display(), error = %e, "cache entry unusable: removed");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Compiles a component and stores the artifact (best effort: a cache
    /// that cannot be written only costs the next run a compile).
    pub(crate) fn compile(
        &self,
        engine: &Engine,
        hash: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<Component> {
        let artifact = engine.precompile_component(wasm)?;
        let path = self.path(hash);
        let tmp = self.dir.join(format!(".{hash}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&self.mac(hash, &artifact))?;
            f.write_all(&artifact)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::warn!(target: "femtoclaw::cache", path = %path.display(), error = %e, "could not write the compile cache");
            let _ = std::fs::remove_file(&tmp);
        }
        // SAFETY: the artifact was produced just above by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &artifact) }?;
        Ok(component)
    }

    /// HMAC-SHA256 (RFC 2104) of the component hash and the artifact.
    fn mac(&self, hash: &str, artifact: &[u8]) -> [u8; 32] {
        let mut inner_key = [0x36u8; 64];
        let mut outer_key = [0x5cu8; 64];
        for (i, b) in self.key.iter().enumerate() {
            inner_key[i] ^= b;
            outer_key[i] ^= b;
        }
        let inner = Sha256::new()
            .chain_update(inner_key)
            .chain_update(hash.as_bytes())
            .chain_update(artifact)
            .finalize();
        Sha256::new()
            .chain_update(outer_key)
            .chain_update(inner)
            .finalize()
            .into()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Feeds `Hash` output into sha256, for a fingerprint that is stable across
/// processes (std's hashers are not meant to be).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_hmac_sha256() {
        // RFC 4231 test case 2 shape: a short key, checked against a value
        // computed independently (python3 -c "import hmac,hashlib;...").
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let cache = Cache {
            dir: PathBuf::new(),
            key,
            fingerprint: String::new(),
        };
        let mac = cache.mac("what do ya want ", b"for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
