//! Loading components: built-ins embedded in the binary or `.wasm` files.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::{RunError, Runtime};

/// Components embedded in `fc-host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// The default tool-using agent (`builtin:agent`).
    Agent,
    /// The scripted brain (`builtin:scripted`).
    ScriptedBrain,
    /// The provider brain, OpenAI or Anthropic over HTTP (`builtin:provider`).
    ProviderBrain,
    /// The `fs` capability (`builtin:fs`).
    Fs,
    /// The `http` capability (`builtin:http`).
    Http,
    /// `fc-host compliance`'s probe, which attacks the grant it is given
    /// (`builtin:compliance-probe`; a policy file cannot name it).
    Probe,
}

impl Builtin {
    /// Every built-in component.
    pub const ALL: [Builtin; 4] = [
        Builtin::Agent,
        Builtin::ScriptedBrain,
        Builtin::Fs,
        Builtin::Http,
    ];

    /// The component's bytes.
    pub fn bytes(self) -> &'static [u8] {
        use crate::artifacts::*;
        match self {
            Builtin::Agent => AGENT_DEFAULT_BYTES,
            Builtin::ScriptedBrain => BRAIN_SCRIPTED_BYTES,
            Builtin::ProviderBrain => BRAIN_PROVIDER_BYTES,
            Builtin::Fs => CAP_FS_BYTES,
            Builtin::Http => CAP_HTTP_BYTES,
            Builtin::Probe => CAP_PROBE_BYTES,
        }
    }

    /// sha256 of [`Builtin::bytes`], hex (computed when `fc-host` was built).
    pub fn sha256(self) -> &'static str {
        use crate::artifacts::*;
        match self {
            Builtin::Agent => AGENT_DEFAULT_SHA256,
            Builtin::ScriptedBrain => BRAIN_SCRIPTED_SHA256,
            Builtin::ProviderBrain => BRAIN_PROVIDER_SHA256,
            Builtin::Fs => CAP_FS_SHA256,
            Builtin::Http => CAP_HTTP_SHA256,
            Builtin::Probe => CAP_PROBE_SHA256,
        }
    }

    /// `builtin:NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Agent => "builtin:agent",
            Builtin::ScriptedBrain => "builtin:scripted",
            Builtin::ProviderBrain => "builtin:provider",
            Builtin::Fs => "builtin:fs",
            Builtin::Http => "builtin:http",
            Builtin::Probe => "builtin:compliance-probe",
        }
    }

    /// The built-in capability called `name` in `builtin:NAME`.
    pub fn capability(name: &str) -> Option<Builtin> {
        match name {
            "fs" => Some(Builtin::Fs),
            "http" => Some(Builtin::Http),
            // Only in policies `fc-host compliance` makes: the policy
            // parser accepts `fs` and `http` alone.
            "compliance-probe" => Some(Builtin::Probe),
            _ => None,
        }
    }
}

/// Where a component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentRef {
    /// Embedded in the binary.
    Builtin(Builtin),
    /// A component file.
    File(PathBuf),
    /// A component of a verified bundle.
    Bundled {
        /// `bundle:NAME@VERSION/COMPONENT`, for messages.
        label: String,
        /// Its bytes.
        bytes: Arc<Vec<u8>>,
    },
}

impl std::fmt::Display for ComponentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentRef::Builtin(b) => f.write_str(b.name()),
            ComponentRef::File(p) => write!(f, "{}", p.display()),
            ComponentRef::Bundled { label, .. } => f.write_str(label),
        }
    }
}

/// Component files larger than this are refused before parsing.
pub const MAX_COMPONENT_BYTES: u64 = 128 << 20;

/// A compiled component and what identifies it.
pub(crate) struct Loaded {
    pub component: Component,
    /// `builtin:fs` or the file path.
    pub label: String,
    /// sha256 of the component's bytes, hex.
    pub hash: String,
    /// What it is compiled and cached under: its hash, and its scope unless
    /// built in.
    pub key: String,
    /// The bytes that were hashed (a run keeps its agent's in the journal).
    pub bytes: Bytes,
}

/// A component's bytes: in `fc-host`'s image, or read into memory.
#[derive(Clone)]
pub(crate) enum Bytes {
    Static(&'static [u8]),
    Shared(Arc<Vec<u8>>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Static(b) => b,
            Bytes::Shared(b) => b,
        }
    }
}

impl Runtime {
    /// Compiles a component ahead of time into the compile cache (see
    /// [`Runtime::with_cache`]); returns its sha256.
    pub fn precompile(&self, source: &ComponentRef) -> Result<String, RunError> {
        self.load(source, None).map(|loaded| loaded.hash)
    }

    /// Reads and compiles a component; one not built in is compiled and
    /// cached under `scope` when one is given (a server's tenant).
    pub(crate) fn load(
        &self,
        source: &ComponentRef,
        scope: Option<&str>,
    ) -> Result<Loaded, RunError> {
        let label = source.to_string();
        let reject = |message: String| RunError::Component {
            component: label.clone(),
            message,
        };
        // A file that cannot be read is the command line's mistake (exit 2),
        // not the component's.
        let unreadable = |e: std::io::Error| {
            RunError::Config(format!(
                "cannot read component `{label}`: {}",
                crate::text::io_error(&e)
            ))
        };
        let source_bytes = match source {
            ComponentRef::Builtin(b) => Bytes::Static(b.bytes()),
            ComponentRef::Bundled { bytes, .. } => Bytes::Shared(bytes.clone()),
            ComponentRef::File(path) => {
                let meta = std::fs::metadata(path).map_err(unreadable)?;
                if meta.len() > MAX_COMPONENT_BYTES {
                    return Err(reject(format!(
                        "{} bytes exceed the cap of {MAX_COMPONENT_BYTES}",
                        meta.len()
                    )));
                }
                Bytes::Shared(Arc::new(std::fs::read(path).map_err(unreadable)?))
            }
        };
        let bytes: &[u8] = &source_bytes;
        // The built-ins were checked when fc-host was built; not even their
        // first page is read unless they must be compiled.
        let builtin = matches!(source, ComponentRef::Builtin(_));
        if !builtin && !bytes.starts_with(b"\0asm") {
            return Err(reject(
                "not a WebAssembly file (it lacks the `\\0asm` header)".into(),
            ));
        }
        if !builtin && is_core_module(bytes) {
            return Err(reject("this is a core WebAssembly module, not a component (build for `wasm32-wasip2` or run `wasm-tools component new`)".into()));
        }
        let hash = match source {
            ComponentRef::Builtin(b) => b.sha256().to_owned(),
            _ => hex::encode(Sha256::digest(bytes)),
        };
        // Where it is cached: by its hash, and its scope unless built in.
        let key = match (source, scope) {
            (ComponentRef::Builtin(_), _) | (_, None) => hash.clone(),
            (_, Some(scope)) => format!("{scope}-{hash}"),
        };
        let key_for_loaded = key.clone();
        let cached = {
            let mut compiled = self
                .compiled
                .lock()
                .expect("invariant: no panic while holding the lock");
            match (compiled.get(&key), source) {
                (Some(component), _) => Some(component.clone()),
                // A built-in runs in place from fc-host's text, which the
                // engine can register only once: it is loaded under the
                // lock, so that concurrent runs never load it twice.
                (None, ComponentRef::Builtin(b)) => {
                    let loaded = crate::precompiled::load(&self.engine, *b);
                    if let Some(component) = &loaded {
                        tracing::debug!(target: "femtoclaw::cache", component = %label, %hash, "component run in place, precompiled into fc-host");
                        compiled.insert(key.clone(), component.clone());
                    }
                    loaded
                }
                (None, _) => None,
            }
        };
        let component = match cached {
            Some(component) => component,
            None => {
                let cached = self
                    .cache
                    .as_ref()
                    .and_then(|cache| cache.get(&self.engine, &key));
                let component = match cached {
                    Some(component) => {
                        tracing::debug!(target: "femtoclaw::cache", component = %label, %hash, "component loaded from the compile cache");
                        Ok(component)
                    }
                    None => {
                        // An interpreter-sized component takes seconds: say
                        // so before, and how long after.
                        let mib = format!("{:.1}", bytes.len() as f64 / f64::from(1 << 20));
                        tracing::info!(target: "femtoclaw::cache", component = %label, %hash, mib = %mib, "compiling a component, once: later runs load it from the compile cache");
                        let started = std::time::Instant::now();
                        let compiled = match &self.cache {
                            Some(cache) => cache.compile(&self.engine, &key, bytes),
                            None => Component::new(&self.engine, bytes),
                        };
                        if compiled.is_ok() {
                            let seconds = format!("{:.1}", started.elapsed().as_secs_f64());
                            tracing::info!(target: "femtoclaw::cache", component = %label, %hash, seconds = %seconds, "component compiled");
                        }
                        compiled
                    }
                };
                let component = component
                    .map_err(|e| reject(format!("not a valid WebAssembly component: {e:#}")))?;
                let mut compiled = self
                    .compiled
                    .lock()
                    .expect("invariant: no panic while holding the lock");
                compiled.insert(key, component.clone());
                component
            }
        };
        Ok(Loaded {
            component,
            label,
            hash,
            key: key_for_loaded,
            bytes: source_bytes.clone(),
        })
    }
}

/// A core module starts with the wasm magic and version 1; a component has
/// the same magic with a different version/layer field.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_components_with_the_hashes_computed_at_build_time() {
        for b in Builtin::ALL.into_iter().chain([Builtin::ProviderBrain]) {
            assert_eq!(b.sha256(), hex::encode(Sha256::digest(b.bytes())), "{b:?}");
            // `load` skips these checks for built-ins.
            assert!(
                b.bytes().starts_with(b"\0asm") && !is_core_module(b.bytes()),
                "{b:?}"
            );
        }
    }
}
