//! `fc-host keygen`, `fc-host bundle pack|sign|verify|inspect`, and the
//! checks `run` makes before a bundle's first byte is compiled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use femtoclaw_bundle::{
    Bundle, BundleError, Component, Grants, KeyPair, Manifest, PublicKey, Role, Version,
};
use femtoclaw_policy::Policy;
use femtoclaw_runtime::{Builtin, ComponentRef, RunError};
use serde::Deserialize;

use crate::exit;
use crate::state::StateArgs;

/// A bundle refused before anything ran; `code` is its exit code.
#[derive(Debug, thiserror::Error)]
#[error("bundle `{path}`: {message}")]
pub struct Refused {
    pub path: String,
    pub message: String,
    pub code: u8,
}

fn refused(path: &Path, e: BundleError) -> anyhow::Error {
    let code = match e {
        BundleError::Unsigned | BundleError::UntrustedKey(_) | BundleError::BadSignature { .. } => {
            exit::SIGNATURE
        }
        _ => exit::BUNDLE,
    };
    Refused {
        path: path.display().to_string(),
        message: e.to_string(),
        code,
    }
    .into()
}

/// Write an ed25519 key pair: `NAME.key` (PKCS#8 PEM, mode 0600) and
/// `NAME.pub` (SPKI PEM). The secret key is never printed.
#[derive(clap::Args)]
pub struct KeygenCommand {
    /// Base path of the two files (`DIR/NAME`).
    #[arg(long, value_name = "DIR/NAME")]
    out: PathBuf,
}

impl KeygenCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        let key = KeyPair::generate()?;
        key.write(&self.out)?;
        println!(
            "wrote {} and {} (key {})",
            self.out.with_extension("key").display(),
            self.out.with_extension("pub").display(),
            key.public().fingerprint()
        );
        Ok(exit::OK)
    }
}

/// Bundles: pack, sign, verify, inspect.
#[derive(clap::Subcommand)]
// Each subcommand's arguments are defined only when it is the one parsed.
#[command(defer = true)]
pub enum BundleCommand {
    /// Build a bundle from a manifest (TOML); pins each capability's tools.
    Pack {
        /// The manifest, e.g. examples/hello/bundle.toml.
        manifest: PathBuf,
        /// The bundle file to write.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Add a signature.
    Sign {
        /// The bundle file (signed in place).
        file: PathBuf,
        /// The secret key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
    },
    /// Verify; exits 0 only when a trusted signature verifies.
    Verify {
        /// The bundle file.
        file: PathBuf,
        /// Trusted public keys (SPKI PEM).
        #[arg(long, required = true)]
        trust: Vec<PathBuf>,
    },
    /// Show what a bundle holds and asks for.
    Inspect {
        /// The bundle file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The packing manifest as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackManifest {
    name: String,
    version: String,
    components: Vec<PackComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackComponent {
    name: String,
    role: Role,
    /// `builtin:NAME` or a path relative to the manifest.
    file: String,
    #[serde(default)]
    grants: Grants,
}

/// Largest bundle file read.
const MAX_BUNDLE: u64 = 512 << 20;

pub fn read_bundle(path: &Path) -> anyhow::Result<Bundle> {
    let size = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("cannot read bundle `{}`: {e}", path.display()))?
        .len();
    if size > MAX_BUNDLE {
        return Err(refused(
            path,
            BundleError::Malformed(format!("{size} bytes exceed the cap of {MAX_BUNDLE}")),
        ));
    }
    let bytes = std::fs::read(path)?;
    Bundle::parse(&bytes).map_err(|e| refused(path, e))
}

impl BundleCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        match self {
            BundleCommand::Pack { manifest, out } => pack(&manifest, &out),
            BundleCommand::Sign { file, key } => {
                let mut bundle = read_bundle(&file)?;
                let key = KeyPair::read(&key)?;
                bundle.sign(&key);
                std::fs::write(&file, bundle.to_bytes())?;
                println!(
                    "signed {} with key {}",
                    file.display(),
                    key.public().fingerprint()
                );
                Ok(exit::OK)
            }
            BundleCommand::Verify { file, trust } => {
                let bundle = read_bundle(&file)?;
                let keys = trust
                    .iter()
                    .map(|k| PublicKey::read(k))
                    .collect::<Result<Vec<_>, _>>()?;
                let key = bundle.verify(&keys).map_err(|e| refused(&file, e))?;
                println!(
                    "{} {} verified: signed by trusted key {}",
                    bundle.manifest.name,
                    bundle.manifest.version,
                    key.fingerprint()
                );
                Ok(exit::OK)
            }
            BundleCommand::Inspect { file, json } => {
                let bundle = read_bundle(&file)?;
                let signers: Vec<String> =
                    bundle.signatures.iter().map(|s| s.key.clone()).collect();
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({ "manifest": bundle.manifest, "signatures": signers })
                        )?
                    );
                } else {
                    let m = &bundle.manifest;
                    println!(
                        "{} {} ({} signature{})",
                        m.name,
                        m.version,
                        signers.len(),
                        if signers.len() == 1 { "" } else { "s" }
                    );
                    for c in &m.components {
                        println!(
                            "  {:<10} {:<12} {} bytes, sha256 {}",
                            format!("{:?}", c.role).to_lowercase(),
                            c.name,
                            c.size,
                            c.sha256
                        );
                        for t in &c.tools {
                            println!(
                                "      tool {}: {}",
                                t["name"].as_str().unwrap_or("?"),
                                t["description"].as_str().unwrap_or("")
                            );
                        }
                        let g = &c.grants;
                        if c.role == Role::Capability {
                            println!(
                                "      asks: tools {:?}, mounts {:?}, net {:?}, env {:?}",
                                g.tools, g.mounts, g.net, g.env
                            );
                        }
                    }
                }
                Ok(exit::OK)
            }
        }
    }
}

fn pack(manifest_path: &Path, out: &Path) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(manifest_path)
        .map_err(|e| anyhow::anyhow!("cannot read `{}`: {e}", manifest_path.display()))?;
    let raw: PackManifest = toml::from_str(&text).map_err(|e| {
        RunError::Config(format!(
            "invalid bundle manifest `{}`: {e}",
            manifest_path.display()
        ))
    })?;
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let version = Version::parse(&raw.version)
        .map_err(|e| RunError::Config(format!("`{}`: {e}", manifest_path.display())))?;
    let runtime = femtoclaw_runtime::Runtime::new()?;
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut components = Vec::new();
    let mut files = Vec::new();
    for c in raw.components {
        let (source, bytes) = match c.file.strip_prefix("builtin:") {
            Some(name) => {
                let b = Builtin::ALL
                    .into_iter()
                    .find(|b| b.name() == c.file)
                    .ok_or_else(|| RunError::Config(format!("unknown built-in `{name}`")))?;
                (ComponentRef::Builtin(b), b.bytes().to_vec())
            }
            None => {
                let path = dir.join(&c.file);
                let bytes = std::fs::read(&path).map_err(|e| {
                    anyhow::anyhow!("cannot read component `{}`: {e}", path.display())
                })?;
                (ComponentRef::File(path), bytes)
            }
        };
        let tools = match c.role {
            Role::Capability => tokio.block_on(runtime.describe(&source))?,
            _ => Vec::new(),
        };
        let world = format!(
            "femtoclaw:runtime/{}",
            format!("{:?}", c.role).to_lowercase()
        );
        components.push(Component {
            name: c.name,
            role: c.role,
            world,
            sha256: String::new(),
            size: 0,
            tools,
            grants: c.grants,
        });
        files.push(bytes);
    }
    let manifest = Manifest {
        format: "femtoclaw-bundle/1".into(),
        name: raw.name,
        version,
        components,
    };
    let bundle = Bundle::pack(manifest, files).map_err(|e| refused(out, e))?;
    std::fs::write(out, bundle.to_bytes())?;
    println!(
        "wrote {} ({} {}, {} components, unsigned)",
        out.display(),
        bundle.manifest.name,
        bundle.manifest.version,
        bundle.components.len()
    );
    Ok(exit::OK)
}

/// What `run` checks before a bundle's first byte is compiled: signatures
/// under the policy's `[trust]`, and that the version does not go back.
pub fn admit(
    path: &Path,
    policy: &Policy,
    state: &StateArgs,
    allow_downgrade: bool,
) -> anyhow::Result<Bundle> {
    let bundle = read_bundle(path)?;
    let keys = policy
        .trust
        .keys
        .iter()
        .map(|k| PublicKey::read(k))
        .collect::<Result<Vec<_>, _>>()?;
    let signer = match bundle.verify(&keys) {
        Ok(key) => key.fingerprint(),
        Err(e @ BundleError::BadSignature { .. }) => return Err(refused(path, e)),
        Err(e) if policy.trust.require_signature => return Err(refused(path, e)),
        Err(e) => {
            tracing::warn!(bundle = %path.display(), reason = %e, "running a bundle without a trusted signature (the policy does not require one)");
            "unsigned".to_owned()
        }
    };
    let seen_file = state.dir()?.join("bundles.json");
    let mut seen: BTreeMap<String, Version> = std::fs::read(&seen_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let key = format!("{} {signer}", bundle.manifest.name);
    let version = bundle.manifest.version;
    if let Some(highest) = seen.get(&key).copied()
        && version < highest
        && !allow_downgrade
    {
        return Err(Refused {
            path: path.display().to_string(),
            message: format!("version {version} is older than {highest}, already run from this signer (rollback); pass --allow-downgrade to run it anyway"),
            code: exit::DOWNGRADE,
        }
        .into());
    }
    if seen.get(&key).is_none_or(|h| version > *h) {
        seen.insert(key, version);
        std::fs::create_dir_all(
            seen_file
                .parent()
                .expect("invariant: a file in the state directory"),
        )?;
        std::fs::write(&seen_file, serde_json::to_vec_pretty(&seen)?)?;
    }
    Ok(bundle)
}
