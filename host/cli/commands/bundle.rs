//! `fc-host keygen`, `fc-host bundle pack|sign|verify|inspect`, and the
//! checks `run` makes before a bundle's first byte is compiled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use femtoclaw_bundle::{
    Bundle, BundleError, Component, Grants, KeyPair, Manifest, PublicKey, Role, Version,
};
use femtoclaw_journal::Journal;
use femtoclaw_policy::Policy;
use femtoclaw_runtime::{AdmitError, Builtin, ComponentRef, RunError};
use serde::Deserialize;

use crate::console::{out_json, outln};
use crate::exit;
use crate::state::StateArgs;

/// A bundle (or a signed component) refused before anything ran; `code`
/// is its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{what} `{path}`: {message}")]
pub struct Refused {
    /// `bundle`, or `component` for a component file and its signature.
    pub what: &'static str,
    pub path: String,
    pub message: String,
    pub code: u8,
}

/// `source` is the bundle's file or `oci://` reference.
pub fn refused(source: impl std::fmt::Display, e: BundleError) -> anyhow::Error {
    let code = match e {
        BundleError::Unsigned | BundleError::UntrustedKey(_) | BundleError::BadSignature { .. } => {
            exit::SIGNATURE
        }
        _ => exit::BUNDLE,
    };
    Refused {
        what: "bundle",
        path: source.to_string(),
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
        outln!(
            "wrote {} and {} (key {})",
            self.out.with_extension("key").display(),
            self.out.with_extension("pub").display(),
            key.public().fingerprint()
        );
        Ok(exit::OK)
    }
}

/// Bundles: pack, sign, verify, inspect, and push to or pull from an OCI
/// registry.
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
    /// Push a bundle to an OCI registry; prints `oci://HOST/REPO@sha256:…`,
    /// the reference that pulls exactly these bytes.
    Push {
        /// The bundle file.
        file: PathBuf,
        /// Where: `oci://HOST[:PORT]/REPOSITORY:TAG` (plain HTTP only for
        /// a registry on a loopback address).
        reference: String,
    },
    /// Pull a bundle from an OCI registry, checked against its digests.
    Pull {
        /// `oci://HOST[:PORT]/REPOSITORY:TAG` or `…@sha256:DIGEST`.
        reference: String,
        /// The bundle file to write.
        #[arg(short, long)]
        out: PathBuf,
        /// Also require a signature by one of these keys (SPKI PEM) before
        /// writing the file.
        #[arg(long)]
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
    let unreadable = |e: std::io::Error| {
        RunError::Config(format!(
            "cannot read bundle `{}`: {}",
            path.display(),
            femtoclaw_runtime::text::io_error(&e)
        ))
    };
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_BUNDLE {
        return Err(refused(
            path.display(),
            BundleError::Malformed(format!("{size} bytes exceed the cap of {MAX_BUNDLE}")),
        ));
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    Bundle::parse(&bytes).map_err(|e| refused(path.display(), e))
}

impl BundleCommand {
    pub fn execute(self) -> anyhow::Result<u8> {
        match self {
            BundleCommand::Pack { manifest, out } => pack(&manifest, &out),
            BundleCommand::Push { file, reference } => super::oci::push(&file, &reference),
            BundleCommand::Pull {
                reference,
                out,
                trust,
            } => super::oci::pull(&reference, &out, &trust),
            BundleCommand::Sign { file, key } => {
                let mut bundle = read_bundle(&file)?;
                let key = KeyPair::read(&key)?;
                bundle.sign(&key);
                std::fs::write(&file, bundle.to_bytes())?;
                outln!(
                    "signed {} with key {}",
                    file.display(),
                    key.public().fingerprint()
                );
                Ok(exit::OK)
            }
            BundleCommand::Verify { file, trust } => {
                let bundle = read_bundle(&file)?;
                let keys = PublicKey::read_all(&trust)?;
                let key = bundle
                    .verify(&keys)
                    .map_err(|e| refused(file.display(), e))?;
                outln!(
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
                    out_json(
                        &serde_json::json!({ "manifest": bundle.manifest, "signatures": signers }),
                    );
                } else {
                    let m = &bundle.manifest;
                    outln!(
                        "{} {} ({} signature{})",
                        m.name,
                        m.version,
                        signers.len(),
                        if signers.len() == 1 { "" } else { "s" }
                    );
                    for c in &m.components {
                        outln!(
                            "  {:<10} {:<12} {} bytes, sha256 {}",
                            role_name(c.role),
                            c.name,
                            c.size,
                            c.sha256
                        );
                        for t in &c.tools {
                            outln!(
                                "      tool {}: {}",
                                t["name"].as_str().unwrap_or("?"),
                                t["description"].as_str().unwrap_or("")
                            );
                        }
                        let g = &c.grants;
                        if c.role == Role::Capability {
                            let list = |items: Vec<String>| {
                                if items.is_empty() {
                                    "none".to_owned()
                                } else {
                                    items.join(", ")
                                }
                            };
                            let mounts =
                                g.mounts.iter().map(|(p, m)| format!("{p} ({m})")).collect();
                            outln!(
                                "      asks: tools {}; mounts {}; net {}; env {}",
                                list(g.tools.clone()),
                                list(mounts),
                                list(g.net.clone()),
                                list(g.env.clone())
                            );
                        }
                    }
                }
                Ok(exit::OK)
            }
        }
    }
}

/// A role as bundles and their worlds spell it.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Agent => "agent",
        Role::Brain => "brain",
        Role::Capability => "capability",
    }
}

fn pack(manifest_path: &Path, out: &Path) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(manifest_path).map_err(|e| {
        RunError::Config(format!(
            "cannot read bundle manifest `{}`: {}",
            manifest_path.display(),
            femtoclaw_runtime::text::io_error(&e)
        ))
    })?;
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
                    RunError::Config(format!(
                        "cannot read component `{}`: {}",
                        path.display(),
                        femtoclaw_runtime::text::io_error(&e)
                    ))
                })?;
                (ComponentRef::File(path), bytes)
            }
        };
        let tools = match c.role {
            Role::Capability => tokio.block_on(runtime.describe(&source))?,
            _ => Vec::new(),
        };
        let world = format!("femtoclaw:runtime/{}", role_name(c.role));
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
    let bundle = Bundle::pack(manifest, files).map_err(|e| refused(out.display(), e))?;
    std::fs::write(out, bundle.to_bytes())?;
    outln!(
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
/// `source` is a bundle file or an `oci://` reference; returns the bundle
/// and where it came from (for a registry, pinned to its digest).
pub fn admit(
    source: &Path,
    policy: &Policy,
    state: &StateArgs,
    allow_downgrade: bool,
) -> anyhow::Result<(String, Bundle)> {
    let (source, bundle) = if super::oci::is_reference(source) {
        super::oci::fetch(&source.to_string_lossy(), &state.dir()?)?
    } else {
        (source.display().to_string(), read_bundle(source)?)
    };
    let source = source.as_str();
    let mut journal = Journal::open(&state.dir()?).map_err(|e| RunError::Journal(e.to_string()))?;
    import_legacy_record(&mut journal, &state.dir()?)?;
    let admission =
        femtoclaw_runtime::admit_bundle(&bundle, policy, &mut journal).map_err(|e| match e {
            AdmitError::Bundle(e) => refused(source, e),
            AdmitError::Journal(m) => anyhow::Error::new(RunError::Journal(m)),
        })?;
    let version = bundle.manifest.version;
    if let Some(highest) = admission.previous
        && version < highest
        && !allow_downgrade
    {
        return Err(Refused {
            what: "bundle",
            path: source.to_owned(),
            message: format!("version {version} is older than {highest}, already run from this signer (rollback); pass --allow-downgrade to run it anyway"),
            code: exit::DOWNGRADE,
        }
        .into());
    }
    Ok((source.to_owned(), bundle))
}

/// The rollback record of an fc-host that kept it in `STATE/bundles.json`
/// is moved into the journal once. A file that cannot be read fails closed:
/// rollback protection would silently be lost otherwise.
fn import_legacy_record(journal: &mut Journal, state: &Path) -> anyhow::Result<()> {
    let file = state.join("bundles.json");
    let text = match std::fs::read(&file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other,
    };
    let damaged = |why: String| {
        anyhow::Error::new(RunError::Journal(format!(
            "the rollback record `{}` cannot be read ({why}): signed bundles do not run until it is repaired. Restore it from a backup, or delete it to forget the versions it recorded (bundles of any version are then accepted once)",
            file.display()
        )))
    };
    let text = text.map_err(|e| damaged(femtoclaw_runtime::text::io_error(&e)))?;
    let seen: BTreeMap<String, Version> =
        serde_json::from_slice(&text).map_err(|e| damaged(e.to_string()))?;
    for (key, version) in seen {
        femtoclaw_runtime::raise_bundle_version(journal, &format!("bundle {key}"), version)
            .map_err(|e| anyhow::Error::new(RunError::Journal(e.to_string())))?;
    }
    let imported = file.with_extension("json.imported");
    std::fs::rename(&file, &imported).map_err(|e| {
        RunError::Config(format!(
            "cannot move `{}` aside after importing it: {}",
            file.display(),
            femtoclaw_runtime::text::io_error(&e)
        ))
    })?;
    Ok(())
}
