//! Detached signatures: `FILE.sig` beside a component file, for a component
//! named on a command line (`fc-host run agent.wasm`) under a policy that
//! requires signatures. A bundle signs a manifest with versions and grants
//! (and so gets rollback protection); a detached signature signs one
//! component's bytes and nothing else.
//!
//! ```text
//! {"format": "femtoclaw-signature-v1", "sha256": HEX, "signatures": [{"key": HEX, "signature": HEX}]}
//! ```
//!
//! Each signature is ed25519 over `"femtoclaw-component-v1\n" || sha256(bytes)`
//! (the 32 raw bytes), with its own domain, so no bundle signature can pass
//! for a component's or the other way round.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::format::{Signature, add_signature, verify_signatures};
use crate::keys::{KeyPair, PublicKey};
use crate::{BundleError, Result};

const FORMAT: &str = "femtoclaw-signature-v1";
const DOMAIN: &[u8] = b"femtoclaw-component-v1\n";
/// Signature files larger than this are refused unread.
pub const MAX_SIGNATURE_FILE: u64 = 64 << 10;
const MAX_SIGNATURES: usize = 64;

/// The signatures of one component file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detached {
    format: String,
    /// The sha256 of the signed bytes, hex.
    pub sha256: String,
    /// The signatures over them.
    pub signatures: Vec<Signature>,
}

/// Where the signature of `file` is kept: `FILE.sig` beside it.
pub fn signature_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

fn message(sha256: &[u8]) -> Vec<u8> {
    [DOMAIN, sha256].concat()
}

impl Detached {
    /// Signs `bytes` with `key`, keeping the signatures of `existing` when
    /// they are for the same bytes (a second signer adds to the file).
    pub fn sign(bytes: &[u8], key: &KeyPair, existing: Option<Detached>) -> Detached {
        let digest = Sha256::digest(bytes);
        let sha256 = hex::encode(digest);
        let mut signatures = existing
            .filter(|d| d.sha256 == sha256)
            .map(|d| d.signatures)
            .unwrap_or_default();
        add_signature(&mut signatures, key, &message(&digest));
        Detached {
            format: FORMAT.into(),
            sha256,
            signatures,
        }
    }

    /// Parses a signature file's text.
    pub fn parse(text: &str) -> Result<Detached> {
        let bad = |m: String| BundleError::SignatureFile(m);
        let d: Detached = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if d.format != FORMAT {
            return Err(bad(format!("format `{}`, expected `{FORMAT}`", d.format)));
        }
        if d.sha256.len() != 64 || hex::decode(&d.sha256).is_err() {
            return Err(bad("`sha256` is not 64 hex digits".into()));
        }
        if d.signatures.is_empty() {
            return Err(bad("it lists no signature".into()));
        }
        if d.signatures.len() > MAX_SIGNATURES {
            return Err(bad(format!("more than {MAX_SIGNATURES} signatures")));
        }
        Ok(d)
    }

    /// The file's text: pretty JSON, ending in a newline.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("invariant: plain data");
        text.push('\n');
        text
    }

    /// Checks that these signatures are for `bytes` and that a key in
    /// `trusted` made one; returns that key.
    pub fn verify(&self, bytes: &[u8], trusted: &[PublicKey]) -> Result<PublicKey> {
        let digest = Sha256::digest(bytes);
        let actual = hex::encode(digest);
        if actual != self.sha256 {
            return Err(BundleError::SignedOther {
                signed: self.sha256.clone(),
                actual,
            });
        }
        verify_signatures(&self.signatures, &message(&digest), trusted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> KeyPair {
        KeyPair::generate().unwrap()
    }

    #[test]
    fn a_signature_verifies_for_its_bytes_and_its_key_only() {
        let (k, other) = (key(), key());
        let d = Detached::sign(b"\0asm component", &k, None);
        let parsed = Detached::parse(&d.to_text()).unwrap();
        assert_eq!(parsed, d);
        assert_eq!(
            parsed.verify(b"\0asm component", &[k.public()]).unwrap(),
            k.public()
        );
        assert!(matches!(
            parsed.verify(b"\0asm changed", &[k.public()]),
            Err(BundleError::SignedOther { .. })
        ));
        assert!(matches!(
            parsed.verify(b"\0asm component", &[other.public()]),
            Err(BundleError::UntrustedKey(_))
        ));
    }

    #[test]
    fn a_second_signer_adds_and_other_bytes_start_afresh() {
        let (a, b) = (key(), key());
        let first = Detached::sign(b"one", &a, None);
        let both = Detached::sign(b"one", &b, Some(first.clone()));
        assert_eq!(both.signatures.len(), 2);
        assert!(both.verify(b"one", &[a.public()]).is_ok());
        assert!(both.verify(b"one", &[b.public()]).is_ok());
        let fresh = Detached::sign(b"two", &b, Some(first));
        assert_eq!(fresh.signatures.len(), 1);
    }

    #[test]
    fn a_tampered_signature_or_a_bundle_signature_does_not_verify() {
        let k = key();
        let mut d = Detached::sign(b"bytes", &k, None);
        let mut sig = hex::decode(&d.signatures[0].signature).unwrap();
        sig[0] ^= 1;
        d.signatures[0].signature = hex::encode(sig);
        assert!(matches!(
            d.verify(b"bytes", &[k.public()]),
            Err(BundleError::BadSignature { .. })
        ));
        // The same key's signature over the digest without this domain
        // (as another format might sign it) is refused.
        let digest = Sha256::digest(b"bytes");
        let mut plain = Detached::sign(b"bytes", &k, None);
        plain.signatures[0].signature = hex::encode(k.sign(&digest));
        assert!(plain.verify(b"bytes", &[k.public()]).is_err());
    }

    #[test]
    fn malformed_files_are_refused_with_the_reason() {
        for (text, why) in [
            ("not json", "expected"),
            (
                r#"{"format":"other","sha256":"","signatures":[]}"#,
                "format `other`",
            ),
            (
                &format!(r#"{{"format":"{FORMAT}","sha256":"xyz","signatures":[]}}"#),
                "64 hex",
            ),
            (
                &format!(
                    r#"{{"format":"{FORMAT}","sha256":"{}","signatures":[]}}"#,
                    "0".repeat(64)
                ),
                "no signature",
            ),
            (
                &format!(
                    r#"{{"format":"{FORMAT}","sha256":"{}","signatures":[],"extra":1}}"#,
                    "0".repeat(64)
                ),
                "unknown field",
            ),
        ] {
            let e = Detached::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn the_signature_lives_beside_the_file() {
        assert_eq!(
            signature_path(Path::new("dir/agent.wasm")),
            Path::new("dir/agent.wasm.sig")
        );
    }
}
