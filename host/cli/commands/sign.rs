//! `fc-host sign FILE.wasm --key KEY`: a detached signature (`FILE.wasm.sig`)
//! for a component named on a command line, and the check `run` makes of it
//! under a policy that requires signatures.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use femtoclaw_bundle::{Detached, KeyPair, MAX_SIGNATURE_FILE, PublicKey, signature_path};
use femtoclaw_policy::Policy;
use femtoclaw_runtime::{ComponentRef, MAX_COMPONENT_BYTES, RunError};

use super::bundle::Refused;
use crate::console::outln;
use crate::exit;

/// Sign a component file: writes (or adds a signer to) `FILE.sig` beside it.
/// `fc-host run FILE` accepts the component under `[trust]
/// require-signature` when a key of `[trust] keys` signed exactly its bytes.
#[derive(clap::Args)]
pub struct SignCommand {
    /// The component file (`.wasm`).
    file: PathBuf,
    /// The signing key (`NAME.key` from `fc-host keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

impl SignCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let key = KeyPair::read(&self.key)?;
        let bytes = read_capped(&self.file, MAX_COMPONENT_BYTES, "component")?;
        if !bytes.starts_with(b"\0asm") {
            return Err(RunError::Config(format!(
                "`{}` is not a WebAssembly component (it lacks the `\\0asm` header)",
                self.file.display()
            ))
            .into());
        }
        let sig = signature_path(&self.file);
        // A second signer adds to a signature of the same bytes; one of
        // other bytes (the component was rebuilt) is replaced.
        let existing = match std::fs::read_to_string(&sig) {
            Ok(text) => Detached::parse(&text).ok(),
            Err(_) => None,
        };
        let detached = Detached::sign(&bytes, &key, existing);
        std::fs::write(&sig, detached.to_text())
            .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", sig.display()))?;
        outln!(
            "wrote {} (key {}; {} signature{})",
            sig.display(),
            key.public().fingerprint(),
            detached.signatures.len(),
            if detached.signatures.len() == 1 {
                ""
            } else {
                "s"
            }
        );
        Ok(exit::OK)
    }
}

/// The component file `path` as `run` starts it. Without `[trust]
/// require-signature` it is the file. With it, the file's bytes are read
/// once, its detached signature must verify against `[trust] keys`, and the
/// run gets those very bytes (a file swapped after the check is never
/// compiled).
pub fn admit_file(path: &Path, policy: &Policy) -> anyhow::Result<ComponentRef> {
    if !policy.trust.require_signature {
        return Ok(ComponentRef::File(path.to_owned()));
    }
    let sig = signature_path(path);
    let refused = |message: String| -> anyhow::Error {
        Refused {
            what: "component",
            path: path.display().to_string(),
            message,
            code: exit::SIGNATURE,
        }
        .into()
    };
    let text = match std::fs::metadata(&sig) {
        Ok(_) => {
            let bytes = read_capped(&sig, MAX_SIGNATURE_FILE, "signature file")?;
            String::from_utf8(bytes).map_err(|_| {
                refused(format!(
                    "its signature `{}` is not UTF-8 text",
                    sig.display()
                ))
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refused(format!(
                "the policy `{}` requires signed components (`[trust] require-signature`) and `{}` does not exist: sign it with `fc-host sign {} --key KEY` (a key from `fc-host keygen`, its `.pub` listed in `[trust] keys`), or run a signed bundle",
                policy.path.display(),
                sig.display(),
                path.display()
            )));
        }
        Err(e) => anyhow::bail!("cannot read `{}`: {e}", sig.display()),
    };
    let keys = PublicKey::read_all(&policy.trust.keys)?;
    let bytes = read_capped(path, MAX_COMPONENT_BYTES, "component")?;
    let signer = Detached::parse(&text)
        .and_then(|d| d.verify(&bytes, &keys))
        .map_err(|e| refused(format!("signature `{}`: {e}", sig.display())))?;
    tracing::info!(target: "femtoclaw::trust", component = %path.display(), key = %signer.fingerprint(), rule = "trust.require-signature", "component admitted: its detached signature verified");
    Ok(ComponentRef::Bundled {
        label: path.display().to_string(),
        bytes: Arc::new(bytes),
    })
}

/// Reads a file of at most `cap` bytes (a larger one is refused unread);
/// `what` names it in errors.
fn read_capped(path: &Path, cap: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let unreadable = |e: std::io::Error| {
        anyhow::Error::new(RunError::Config(format!(
            "cannot read {what} `{}`: {}",
            path.display(),
            femtoclaw_runtime::text::io_error(&e)
        )))
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > cap {
        return Err(RunError::Config(format!(
            "{what} `{}` is larger than {cap} bytes",
            path.display()
        ))
        .into());
    }
    Ok(bytes)
}
