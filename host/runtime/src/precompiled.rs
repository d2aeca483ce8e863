//! Built-in components precompiled by `build.rs` and linked into
//! `fc-host`'s text: a run maps nothing, reads nothing and checks nothing to
//! load them, and only the pages it executes or reads become resident.
//!
//! `build.rs` compiles each built-in with the engine configuration of
//! [`crate::engine_config`] for the machine that builds `fc-host`, and the
//! generated `artifacts` module places each artifact, page-aligned, in a
//! `.text.fc_precompiled` section, which the link merges into the read-only,
//! executable text. wasmtime runs it in place (`Component::deserialize_raw`):
//! its code needs no copy and no `mprotect`, and the [`InPlace`] code memory
//! tells wasmtime so. An artifact wasmtime refuses (`fc-host` copied to a CPU
//! without the features it was compiled for, say) is skipped: the component
//! is then compiled into the compile cache like any other.

use std::ptr::NonNull;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::Builtin;

/// The precompiled artifact of a built-in (empty when `build.rs` could not
/// make one: cross-compiled, or another architecture).
pub(crate) fn artifact(builtin: Builtin) -> &'static [u8] {
    use crate::artifacts::*;
    match builtin {
        Builtin::Agent => &AGENT_DEFAULT_PRECOMPILED.0,
        Builtin::ScriptedBrain => &BRAIN_SCRIPTED_PRECOMPILED.0,
        Builtin::ProviderBrain => &BRAIN_PROVIDER_PRECOMPILED.0,
        Builtin::Fs => &CAP_FS_PRECOMPILED.0,
        Builtin::Http => &CAP_HTTP_PRECOMPILED.0,
        Builtin::Probe => &CAP_PROBE_PRECOMPILED.0,
    }
}

/// The built-in, run in place from `fc-host`'s text, if its artifact exists
/// and fits this engine and CPU.
pub(crate) fn load(engine: &Engine, builtin: Builtin) -> Option<Component> {
    let artifact = artifact(builtin);
    if artifact.is_empty() || !claim(engine) {
        return None;
    }
    // SAFETY: the artifact was made by `Engine::precompile_component` of this
    // very wasmtime (one version in Cargo.lock; wasmtime checks the version,
    // the configuration and the CPU features, and refuses a mismatch with an
    // error), and it is immutable: it lives in the executable's read-only text
    // for the whole process.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize_raw(engine, NonNull::from(artifact)) };
    match component {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::debug!(target: "femtoclaw::cache", component = builtin.name(), error = %format!("{e:#}"), "precompiled built-in not usable here: compiling it");
            None
        }
    }
}

/// Whether `engine` may run the artifacts in place: code at one address can
/// be registered by one engine at a time, so the first engine of the
/// process to load one keeps them while it lives; another engine alive
/// beside it compiles the built-ins like any component.
fn claim(engine: &Engine) -> bool {
    static OWNER: std::sync::Mutex<Option<wasmtime::EngineWeak>> = std::sync::Mutex::new(None);
    let mut owner = OWNER.lock().unwrap_or_else(|p| p.into_inner());
    match owner.as_ref().and_then(wasmtime::EngineWeak::upgrade) {
        Some(current) => Engine::same(&current, engine),
        None => {
            *owner = Some(engine.weak());
            true
        }
    }
}

/// Whether `ptr` lies in a precompiled artifact.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn is_in_place(ptr: *const u8) -> bool {
    Builtin::ALL
        .into_iter()
        .chain([Builtin::ProviderBrain])
        .any(|b| artifact(b).as_ptr_range().contains(&ptr))
}

/// Code memory that knows the precompiled artifacts are already executable.
/// Code wasmtime compiled or mapped itself (the compile cache, a fresh
/// compile) is made read-and-execute here exactly as wasmtime would on this
/// architecture (where no instruction-cache maintenance is needed).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) struct InPlace;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
impl wasmtime::CustomCodeMemory for InPlace {
    fn required_alignment(&self) -> usize {
        rustix::param::page_size()
    }

    fn publish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        use rustix::mm::MprotectFlags;
        protect(ptr, len, MprotectFlags::READ | MprotectFlags::EXEC)
    }

    fn unpublish_executable(&self, ptr: *const u8, len: usize) -> wasmtime::Result<()> {
        use rustix::mm::MprotectFlags;
        protect(ptr, len, MprotectFlags::READ | MprotectFlags::WRITE)
    }
}

/// Sets the protection of a code image wasmtime owns (read-only when this
/// is called, or no longer running); a precompiled artifact stays as the
/// loader mapped it.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn protect(ptr: *const u8, len: usize, flags: rustix::mm::MprotectFlags) -> wasmtime::Result<()> {
    if is_in_place(ptr) {
        return Ok(());
    }
    // SAFETY: wasmtime hands over the page-aligned text of a code image it
    // mapped itself, with nothing running from it while it changes.
    #[allow(unsafe_code)]
    unsafe { rustix::mm::mprotect(ptr.cast_mut().cast(), len, flags) }
        .map_err(|e| wasmtime::format_err!("changing the protection of code: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runtime;

    #[test]
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn every_builtin_runs_in_place_from_the_text() {
        let runtime = Runtime::new().unwrap();
        for b in Builtin::ALL.into_iter().chain([Builtin::ProviderBrain]) {
            let artifact = artifact(b);
            // build.rs and the tests run on the same machine: each artifact
            // exists, is page-aligned, and fits the runtime's engine (a
            // configuration that drifted from build.rs's fails here).
            assert!(!artifact.is_empty(), "{b:?}");
            assert_eq!(artifact.as_ptr() as usize % 4096, 0, "{b:?}");
            assert!(is_in_place(artifact.as_ptr()) && is_in_place(&artifact[artifact.len() - 1]));
            let component = load(runtime.engine(), b).unwrap_or_else(|| panic!("{b:?} refused"));
            assert!(
                component.component_type().exports(runtime.engine()).count() > 0,
                "{b:?}"
            );
        }
        assert!(!is_in_place(b"elsewhere".as_ptr()));
    }

    #[test]
    fn an_engine_the_artifacts_do_not_fit_refuses_them() {
        // wasmtime's default configuration (no fuel, no epochs) is not the one
        // build.rs compiled for: the built-in must go to the cache instead.
        let engine = Engine::default();
        for b in Builtin::ALL {
            assert!(load(&engine, b).is_none(), "{b:?}");
        }
    }
}
