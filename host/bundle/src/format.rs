//! Reading, writing, signing and verifying the bundle file.

use sha2::{Digest, Sha256};

use crate::keys::{KeyPair, PublicKey};
use crate::manifest::Manifest;
use crate::{BundleError, Result};

const MAGIC: &[u8; 10] = b"FCBUNDLE\x00\x01";
const DOMAIN: &[u8] = b"femtoclaw-bundle-v1\n";
const MAX_MANIFEST: usize = 4 << 20;
const MAX_SIGNATURES: usize = 64;

/// One signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signer's raw public key, hex.
    pub key: String,
    /// The ed25519 signature, hex.
    pub signature: String,
}

/// A parsed bundle. Parsing checks the structure and every component
/// against the manifest; [`Bundle::verify`] checks the signatures.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The manifest.
    pub manifest: Manifest,
    manifest_bytes: Vec<u8>,
    /// Component bytes, in manifest order.
    pub components: Vec<Vec<u8>>,
    /// Signatures attached.
    pub signatures: Vec<Signature>,
}

fn malformed(m: impl Into<String>) -> BundleError {
    BundleError::Malformed(m.into())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| malformed(format!("truncated in {what}")))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self, what: &str) -> Result<usize> {
        Ok(
            u32::from_be_bytes(self.take(4, what)?.try_into().expect("invariant: 4 bytes"))
                as usize,
        )
    }
    fn u64(&mut self, what: &str) -> Result<usize> {
        usize::try_from(u64::from_be_bytes(
            self.take(8, what)?.try_into().expect("invariant: 8 bytes"),
        ))
        .map_err(|_| malformed(format!("{what}: length too large")))
    }
}

impl Bundle {
    /// Makes an unsigned bundle of a manifest and its components (given in
    /// manifest order); the manifest's hashes and sizes are filled in.
    pub fn pack(mut manifest: Manifest, components: Vec<Vec<u8>>) -> Result<Bundle> {
        if manifest.components.len() != components.len() {
            return Err(BundleError::Manifest("one file per component".into()));
        }
        for (c, bytes) in manifest.components.iter_mut().zip(&components) {
            check_component(&c.name, bytes)?;
            c.sha256 = hex::encode(Sha256::digest(bytes));
            c.size = bytes.len() as u64;
        }
        manifest.check()?;
        let manifest_bytes = manifest.canonical()?;
        Ok(Bundle {
            manifest,
            manifest_bytes,
            components,
            signatures: Vec::new(),
        })
    }

    /// Parses a bundle file, checking its structure and components.
    pub fn parse(bytes: &[u8]) -> Result<Bundle> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len(), "the header")? != MAGIC {
            return Err(malformed(
                "not a FemtoClaw bundle (bad magic or format version)",
            ));
        }
        let len = r.u32("the manifest length")?;
        if len > MAX_MANIFEST {
            return Err(malformed("the manifest is too large"));
        }
        let manifest_bytes = r.take(len, "the manifest")?.to_vec();
        let manifest = Manifest::from_canonical(&manifest_bytes)?;
        let mut components = Vec::new();
        for c in &manifest.components {
            let len = r.u64(&format!("component `{}`", c.name))?;
            let data = r.take(len, &format!("component `{}`", c.name))?;
            if len as u64 != c.size {
                return Err(BundleError::Component {
                    name: c.name.clone(),
                    reason: format!("{len} bytes, the manifest says {}", c.size),
                });
            }
            if hex::encode(Sha256::digest(data)) != c.sha256 {
                return Err(BundleError::Component {
                    name: c.name.clone(),
                    reason: "its sha256 does not match the manifest".into(),
                });
            }
            check_component(&c.name, data)?;
            components.push(data.to_vec());
        }
        let count = r.u32("the signature count")?;
        if count > MAX_SIGNATURES {
            return Err(malformed("too many signatures"));
        }
        let mut signatures = Vec::new();
        for i in 0..count {
            let len = r.u32(&format!("signature {i}"))?;
            let text = r.take(len, &format!("signature {i}"))?;
            let sig: Signature = serde_json::from_slice(text)
                .map_err(|e| malformed(format!("signature {i}: {e}")))?;
            // One encoding only (lowercase hex, compact JSON): no byte of a
            // signed file can change without verification noticing.
            let lower_hex = |h: &str, len: usize| {
                h.len() == len
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            };
            if !lower_hex(&sig.key, 64)
                || !lower_hex(&sig.signature, 128)
                || serde_json_canonicalizer::to_vec(&sig).ok().as_deref() != Some(text)
            {
                return Err(malformed(format!("signature {i} is not in canonical form")));
            }
            signatures.push(sig);
        }
        if r.at != bytes.len() {
            return Err(malformed(format!(
                "{} bytes of trailing data",
                bytes.len() - r.at
            )));
        }
        Ok(Bundle {
            manifest,
            manifest_bytes,
            components,
            signatures,
        })
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(self.manifest_bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.manifest_bytes);
        for c in &self.components {
            out.extend_from_slice(&(c.len() as u64).to_be_bytes());
            out.extend_from_slice(c);
        }
        out.extend_from_slice(&(self.signatures.len() as u32).to_be_bytes());
        for s in &self.signatures {
            let text =
                serde_json_canonicalizer::to_vec(s).expect("invariant: a signature serializes");
            out.extend_from_slice(&(text.len() as u32).to_be_bytes());
            out.extend_from_slice(&text);
        }
        out
    }

    fn message(&self) -> Vec<u8> {
        [DOMAIN, &self.manifest_bytes].concat()
    }

    /// Adds a signature by `key` (replacing an earlier one by the same key).
    pub fn sign(&mut self, key: &KeyPair) {
        let message = self.message();
        add_signature(&mut self.signatures, key, &message);
    }

    /// Checks that a key in `trusted` signed this bundle; returns it. Every
    /// signature by a trusted key must verify (`verify_strict`).
    pub fn verify(&self, trusted: &[PublicKey]) -> Result<PublicKey> {
        if self.signatures.is_empty() {
            return Err(BundleError::Unsigned);
        }
        verify_signatures(&self.signatures, &self.message(), trusted)
    }

    /// The bytes of the component called `name`.
    pub fn component_bytes(&self, name: &str) -> Option<&[u8]> {
        let i = self
            .manifest
            .components
            .iter()
            .position(|c| c.name == name)?;
        Some(&self.components[i])
    }
}

/// A component must be a WebAssembly component: never precompiled code.
fn check_component(name: &str, bytes: &[u8]) -> Result<()> {
    if bytes.starts_with(b"\x7fELF")
        || bytes.starts_with(b"\xcf\xfa\xed\xfe")
        || bytes.starts_with(b"MZ")
    {
        return Err(BundleError::Precompiled(name.to_owned()));
    }
    if !bytes.starts_with(b"\0asm") || bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
        return Err(BundleError::Component {
            name: name.to_owned(),
            reason: "not a WebAssembly component".into(),
        });
    }
    Ok(())
}

/// Adds a signature by `key` over `message` to `signatures`, replacing an
/// earlier one by the same key.
pub(crate) fn add_signature(signatures: &mut Vec<Signature>, key: &KeyPair, message: &[u8]) {
    let public = key.public().hex();
    signatures.retain(|s| s.key != public);
    signatures.push(Signature {
        key: public,
        signature: hex::encode(key.sign(message)),
    });
}

/// The trusted key that signed `message` among `signatures`. Every
/// signature by a trusted key must verify (`verify_strict`); signatures by
/// other keys are not looked at.
pub(crate) fn verify_signatures(
    signatures: &[Signature],
    message: &[u8],
    trusted: &[PublicKey],
) -> Result<PublicKey> {
    let mut good = None;
    for s in signatures {
        let Some(key) = PublicKey::from_hex(&s.key) else {
            continue;
        };
        if !trusted.contains(&key) {
            continue;
        }
        let sig = hex::decode(&s.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| ed25519_dalek::Signature::from_bytes(&b));
        match sig {
            Some(sig) if key.0.verify_strict(message, &sig).is_ok() => good = good.or(Some(key)),
            _ => {
                return Err(BundleError::BadSignature {
                    key: key.fingerprint(),
                });
            }
        }
    }
    good.ok_or_else(|| {
        let signers: Vec<String> = signatures
            .iter()
            .map(|s| PublicKey::from_hex(&s.key).map_or("invalid key".into(), |k| k.fingerprint()))
            .collect();
        BundleError::UntrustedKey(signers.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Component, FORMAT, Grants, Role, Version};

    fn sample() -> Bundle {
        let component = b"\0asm\x0d\x00\x01\x00rest of a component".to_vec();
        let manifest = Manifest {
            format: FORMAT.into(),
            name: "demo".into(),
            version: Version(1, 0, 0),
            components: vec![Component {
                name: "agent".into(),
                role: Role::Agent,
                world: "femtoclaw:runtime/agent".into(),
                sha256: String::new(),
                size: 0,
                tools: vec![],
                grants: Grants::default(),
            }],
        };
        Bundle::pack(manifest, vec![component]).unwrap()
    }

    #[test]
    fn every_byte_is_bound() {
        let key = KeyPair::generate().unwrap();
        let mut bundle = sample();
        bundle.sign(&key);
        let bytes = bundle.to_bytes();
        let trusted = [key.public()];
        assert!(Bundle::parse(&bytes).unwrap().verify(&trusted).is_ok());
        for i in 0..bytes.len() {
            for bit in [0x01, 0x20, 0x80] {
                let mut flipped = bytes.clone();
                flipped[i] ^= bit;
                let ok = Bundle::parse(&flipped)
                    .and_then(|b| b.verify(&trusted))
                    .is_ok();
                assert!(!ok, "flipping bits {bit:#x} of byte {i} went unnoticed");
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Bundle::parse(&longer),
            Err(BundleError::Malformed(_))
        ));
    }

    #[test]
    fn untrusted_unsigned_and_precompiled_are_refused() {
        let key = KeyPair::generate().unwrap();
        let other = KeyPair::generate().unwrap();
        let mut bundle = sample();
        assert!(matches!(
            bundle.verify(&[key.public()]),
            Err(BundleError::Unsigned)
        ));
        bundle.sign(&other);
        assert!(matches!(
            bundle.verify(&[key.public()]),
            Err(BundleError::UntrustedKey(_))
        ));
        let cwasm = b"\x7fELF\x02\x01\x01 precompiled".to_vec();
        let mut m = sample().manifest;
        m.components[0].name = "x".into();
        assert!(matches!(
            Bundle::pack(m, vec![cwasm]),
            Err(BundleError::Precompiled(_))
        ));
    }
}
