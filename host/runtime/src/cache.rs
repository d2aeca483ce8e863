//! The compile cache: components are compiled with Cranelift once and kept
//! as precompiled artifacts, keyed by the sha256 of the component and the
//! engine's fingerprint (wasmtime version, configuration, CPU features).
//!
//! Precompiled code is native code: it must never come from anyone but this
//! host. Each artifact is stored with a MAC (keyed BLAKE3) under a secret key that
//! the cache creates for itself (mode 0600, in a 0700 directory); an entry
//! whose MAC does not verify is deleted and the component compiled again.
//! A `.cwasm` that someone dropped into the directory is never loaded.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

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
    /// The directory it keeps artifacts (and its key) in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens (creating if needed) a cache directory for `engine`.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> std::io::Result<Cache> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        let key_path = dir.join("key");
        let key = match std::fs::read(&key_path) {
            Ok(k) if k.len() == 32 => k,
            _ => {
                let mut k = [0u8; 32];
                getrandom::fill(&mut k)?;
                let tmp = dir.join(format!("key.{}", std::process::id()));
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options.open(&tmp)?;
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
        let mut h = StableHasher(blake3::Hasher::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        h.0.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.0.update(b"entry format 2: keyed BLAKE3");
        let fingerprint = hex::encode(&h.0.finalize().as_bytes()[..8]);
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
        let file = std::fs::File::open(&path).ok()?;
        let snapshot = match self.snapshot(hash, file) {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => {
                tracing::warn!(target: "femtoclaw::cache", path = %path.display(), "cache entry failed its integrity check: removed, compiling again");
                let _ = std::fs::remove_file(&path);
                return None;
            }
            Err(e) => {
                tracing::warn!(target: "femtoclaw::cache", path = %path.display(), error = %e, "cache entry unreadable: compiling again");
                return None;
            }
        };
        // SAFETY: `Component::deserialize*` runs native code from its input.
        // These bytes were produced by `Engine::precompile_component` in this
        // cache (the MAC under the cache's private key proves it), they can
        // no longer change (see `snapshot`), and wasmtime itself refuses
        // artifacts of another engine configuration.
        #[allow(unsafe_code)]
        let component = unsafe {
            match snapshot {
                #[cfg(target_os = "linux")]
                Snapshot::Sealed(file) => {
                    use std::os::fd::AsRawFd as _;
                    // wasmtime maps components from paths only; this one
                    // opens the same sealed inode.
                    Component::deserialize_file(
                        engine,
                        format!("/proc/self/fd/{}", file.as_raw_fd()),
                    )
                }
                Snapshot::Memory(bytes) => Component::deserialize(engine, bytes),
            }
        };
        match component {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(target: "femtoclaw::cache", path = %path.display(), error = %e, "cache entry unusable: removed");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Copies an entry's artifact out of `file` into memory that nobody can
    /// change any more, checking its MAC on the way; `None` if the MAC does
    /// not verify.
    ///
    /// The copy is what makes the check worth anything: wasmtime maps its
    /// input lazily, so a check of the cache file itself would be a
    /// time-of-check/time-of-use race with whoever can write the file. On
    /// Linux the copy is a sealed memfd (no write, grow or shrink, ever),
    /// which wasmtime maps like a file: only the pages a run touches become
    /// resident, and data segments are mapped, not copied, into instances.
    fn snapshot(&self, hash: &str, mut file: std::fs::File) -> std::io::Result<Option<Snapshot>> {
        use std::io::Read as _;
        let mut mac = [0u8; MAC_LEN];
        match file.read_exact(&mut mac) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut sink = Snapshot::new();
        let mut hasher = self.hasher(hash);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            sink.write_all(&buf[..n])?;
        }
        let sink = sink.seal()?;
        let valid = constant_time_eq(&mac, hasher.finalize().as_bytes());
        Ok(valid.then_some(sink))
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
            f.write_all(self.hasher(hash).update(&artifact).finalize().as_bytes())?;
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

    /// The MAC of an entry: BLAKE3 keyed with the cache's key, over the
    /// component's sha256 and then the artifact (BLAKE3 is a MAC when keyed,
    /// and hashes ~4.7× faster than SHA-256 here, on every load).
    fn hasher(&self, hash: &str) -> blake3::Hasher {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(hash.as_bytes());
        hasher
    }
}

/// An entry's artifact, copied out of the cache and sealed.
enum Snapshot {
    /// A memfd with every seal set.
    #[cfg(target_os = "linux")]
    Sealed(std::fs::File),
    /// Where memfds are missing or refused: a private copy in memory.
    Memory(Vec<u8>),
}

impl Snapshot {
    fn new() -> Snapshot {
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{MemfdFlags, memfd_create};
            // wasmtime opens the memfd again through /proc (see `get`).
            let proc_fd = std::path::Path::new("/proc/self/fd").is_dir();
            if proc_fd
                && let Ok(fd) = memfd_create(
                    "fc-cache-entry",
                    MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
                )
            {
                return Snapshot::Sealed(std::fs::File::from(fd));
            }
        }
        Snapshot::Memory(Vec::new())
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Snapshot::Sealed(file) => file.write_all(bytes),
            Snapshot::Memory(v) => {
                v.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn seal(self) -> std::io::Result<Snapshot> {
        #[cfg(target_os = "linux")]
        if let Snapshot::Sealed(file) = &self {
            use rustix::fs::{SealFlags, fcntl_add_seals};
            fcntl_add_seals(
                file,
                SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
            )?;
        }
        Ok(self)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Feeds `Hash` output into BLAKE3, for a fingerprint that is stable across
/// processes (std's hashers are not meant to be).
struct StableHasher(blake3::Hasher);

impl Hasher for StableHasher {
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

    fn cache(key: &[u8]) -> Cache {
        let mut k = [0u8; 32];
        k[..key.len()].copy_from_slice(key);
        Cache {
            dir: PathBuf::new(),
            key: k,
            fingerprint: String::new(),
        }
    }

    fn entry(cache: &Cache, hash: &str, artifact: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(cache.hasher(hash).update(artifact).finalize().as_bytes())
            .unwrap();
        f.write_all(artifact).unwrap();
        std::io::Seek::rewind(&mut f).unwrap();
        f
    }

    fn contents(snapshot: Snapshot) -> Vec<u8> {
        match snapshot {
            #[cfg(target_os = "linux")]
            Snapshot::Sealed(mut f) => {
                let mut v = Vec::new();
                std::io::Seek::rewind(&mut f).unwrap();
                std::io::Read::read_to_end(&mut f, &mut v).unwrap();
                v
            }
            Snapshot::Memory(v) => v,
        }
    }

    #[test]
    fn mac_is_keyed_blake3_over_hash_then_artifact() {
        // Checked against an independent implementation:
        // python3 -c "import blake3; print(blake3.blake3(b'what do ya want for
        // nothing?', key=b'Jefe' + bytes(28)).hexdigest())"  (pip: blake3)
        let mac = cache(b"Jefe")
            .hasher("what do ya want ")
            .update(b"for nothing?")
            .finalize();
        assert_eq!(
            mac.to_hex().as_str(),
            "4457cfc7b59fee27bc9fbba5de80e7e897555dcfd9e68754bd70f37a34c032e1"
        );
    }

    #[test]
    fn snapshots_hold_verified_bytes_only() {
        let c = cache(b"k");
        let artifact: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let good = c.snapshot("h", entry(&c, "h", &artifact)).unwrap().unwrap();
        assert_eq!(contents(good), artifact);
        // Another key, another component hash, a flipped byte, a truncated
        // or empty entry: refused.
        assert!(
            c.snapshot("h", entry(&cache(b"other"), "h", &artifact))
                .unwrap()
                .is_none()
        );
        assert!(
            c.snapshot("g", entry(&c, "h", &artifact))
                .unwrap()
                .is_none()
        );
        let flipped = entry(&c, "h", &artifact);
        let at = 32 + 123_456;
        std::os::unix::fs::FileExt::write_all_at(&flipped, &[artifact[123_456] ^ 1], at).unwrap();
        assert!(c.snapshot("h", flipped).unwrap().is_none());
        let truncated = entry(&c, "h", &artifact);
        truncated.set_len(100_000).unwrap();
        assert!(c.snapshot("h", truncated).unwrap().is_none());
        assert!(
            c.snapshot("h", tempfile::tempfile().unwrap())
                .unwrap()
                .is_none()
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_snapshot_cannot_change_after_its_check() {
        let c = cache(b"k");
        let artifact = vec![7u8; 100_000];
        let file = entry(&c, "h", &artifact);
        let original = file.try_clone().unwrap();
        let Snapshot::Sealed(mut sealed) = c.snapshot("h", file).unwrap().unwrap() else {
            panic!("memfd snapshots are available on Linux");
        };
        // Whoever can write the cache file changes it after the check: the
        // snapshot is a copy, and the copy itself refuses writes and resizes.
        std::os::unix::fs::FileExt::write_all_at(&original, &[0u8; 1000], 32).unwrap();
        assert!(sealed.write_all(b"x").is_err());
        assert!(std::os::unix::fs::FileExt::write_all_at(&sealed, b"x", 0).is_err());
        assert!(sealed.set_len(10).is_err());
        assert_eq!(contents(Snapshot::Sealed(sealed)), artifact);
    }
}
