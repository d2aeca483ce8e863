//! ed25519 keys as PKCS#8 (secret) and SPKI (public) PEM files: the format
//! OpenSSL and most tooling read (`openssl pkey -in NAME.key -pubout`), so
//! keys can be made, inspected and stored with standard tools.

use std::path::Path;

use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
    spki::der::pem::LineEnding,
};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::{BundleError, Result};

/// A public key that may verify bundles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub(crate) VerifyingKey);

/// A signing key.
pub struct KeyPair(SigningKey);

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({})", self.public().fingerprint())
    }
}

fn key_error(path: &Path, reason: impl Into<String>) -> BundleError {
    BundleError::Key {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

impl KeyPair {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<KeyPair> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(std::io::Error::from)?;
        Ok(KeyPair(SigningKey::from_bytes(&seed)))
    }

    /// Writes `NAME.key` (PKCS#8 PEM, mode 0600, never overwritten) and
    /// `NAME.pub` (SPKI PEM).
    pub fn write(&self, base: &Path) -> Result<()> {
        use std::io::Write as _;
        let secret = base.with_extension("key");
        let public = base.with_extension("pub");
        let pem = self.pkcs8_v1_pem()?;
        if let Some(dir) = base.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| key_error(dir, e.to_string()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options
            .open(&secret)
            .map_err(|e| key_error(&secret, e.to_string()))?;
        f.write_all(pem.as_bytes())
            .map_err(|e| key_error(&secret, e.to_string()))?;
        std::fs::write(&public, self.public().to_pem()?)
            .map_err(|e| key_error(&public, e.to_string()))?;
        Ok(())
    }

    /// PKCS#8 v1 (RFC 8410) without the public key, the encoding OpenSSL
    /// writes for ed25519 (and reads back, back to OpenSSL 1.1.1, which
    /// refuses v2).
    fn pkcs8_v1_pem(&self) -> Result<zeroize::Zeroizing<String>> {
        let bytes = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        bytes
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| BundleError::Key {
                path: String::new(),
                reason: e.to_string(),
            })
    }

    /// Reads a PKCS#8 PEM secret key.
    pub fn read(path: &Path) -> Result<KeyPair> {
        let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e.to_string()))?;
        SigningKey::from_pkcs8_pem(&text)
            .map(KeyPair)
            .map_err(|e| key_error(path, format!("not an ed25519 PKCS#8 PEM key: {e}")))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl PublicKey {
    /// Reads an SPKI PEM public key.
    pub fn read(path: &Path) -> Result<PublicKey> {
        let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e.to_string()))?;
        VerifyingKey::from_public_key_pem(&text)
            .map(PublicKey)
            .map_err(|e| key_error(path, format!("not an ed25519 SPKI PEM key: {e}")))
    }

    /// Reads every key of a list (a policy's `[trust] keys`); the first
    /// that cannot be read is the error.
    pub fn read_all<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PublicKey>> {
        paths.iter().map(|p| PublicKey::read(p.as_ref())).collect()
    }

    /// SPKI PEM text.
    pub fn to_pem(&self) -> Result<String> {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| BundleError::Key {
                path: String::new(),
                reason: e.to_string(),
            })
    }

    /// The raw 32-byte key, hex: how signatures name their key.
    pub fn hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// A short name for messages: the first 16 hex digits of the key's sha256.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }

    pub(crate) fn from_hex(text: &str) -> Option<PublicKey> {
        let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(PublicKey)
    }
}
