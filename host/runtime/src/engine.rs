//! The wasmtime engine, configured once for untrusted code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::engine_config;

use crate::RunError;
use crate::cache::Cache;
use crate::metrics::Metrics;

/// How often the epoch advances; wall-time deadlines are counted in ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A component linked for one world (an `AgentPre`, `BrainPre` or
/// `CapabilityPre`), kept type-erased in one map.
type Linked = Box<dyn std::any::Any + Send + Sync>;

/// The host: one engine shared by every component of every run, and the
/// ticker that drives wall-time deadlines.
pub struct Runtime {
    pub(crate) engine: Engine,
    ticker_stop: Arc<AtomicBool>,
    /// Components compiled by this runtime, by sha256 of their bytes.
    pub(crate) compiled: Mutex<HashMap<String, Component>>,
    /// Precompiled components on disk, if enabled.
    pub(crate) cache: Option<Cache>,
    /// Each component linked for its world, ready to instantiate, by world
    /// and compile key: a warm runtime links a component once, not per run
    /// (a linker adds ~150 WASI functions before `instantiate_pre`).
    pres: Mutex<HashMap<(&'static str, String), Linked>>,
    /// What this runtime's runs decided and spent.
    pub(crate) metrics: Arc<Metrics>,
    /// What reaches the MCP servers policies name, if anything does.
    pub(crate) connector: Option<Arc<dyn crate::remote::Connector>>,
}

impl Runtime {
    /// Creates the engine with FemtoClaw's hardened configuration (see
    /// [`engine_config::config`]); built-in components precompiled by
    /// `build.rs` run in place from `fc-host`'s own text.
    pub fn new() -> Result<Runtime, RunError> {
        #[allow(unused_mut, reason = "only some targets publish code themselves")]
        let mut config = engine_config::config();
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        config.with_custom_code_memory(Some(Arc::new(crate::precompiled::InPlace)));
        let engine = Engine::new(&config)
            .map_err(|e| RunError::Internal(format!("creating the engine: {e:#}")))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), ticker_stop.clone());
        Ok(Runtime {
            engine,
            ticker_stop,
            compiled: Mutex::default(),
            cache: None,
            pres: Mutex::default(),
            metrics: Arc::default(),
            connector: None,
        })
    }

    /// The component of compile key `key` linked for `world`: made by `link`
    /// the first time, then cloned.
    pub(crate) fn linked<P: Clone + Send + Sync + 'static>(
        &self,
        world: &'static str,
        key: &str,
        link: impl FnOnce() -> Result<P, RunError>,
    ) -> Result<P, RunError> {
        let lock = || {
            self.pres
                .lock()
                .expect("invariant: no panic while holding the lock")
        };
        if let Some(pre) = lock()
            .get(&(world, key.to_owned()))
            .and_then(|p| p.downcast_ref::<P>())
        {
            return Ok(pre.clone());
        }
        let pre = link()?;
        lock().insert((world, key.to_owned()), Box::new(pre.clone()));
        Ok(pre)
    }

    /// The engine, configured as above (for benchmarks that compare a raw
    /// call into a component with the same call through a run).
    #[doc(hidden)]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The metrics of every run of this runtime so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Keeps compiled components in `dir` (created, mode 0700), so that each
    /// component is compiled once, not on every run.
    pub fn with_cache(mut self, dir: &std::path::Path) -> Result<Runtime, RunError> {
        let cache = Cache::open(dir, &self.engine)
            .map_err(|e| RunError::Config(format!("compile cache `{}`: {e}", dir.display())))?;
        self.cache = Some(cache);
        Ok(self)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Advances the engine's epoch every tick until the runtime is dropped.
fn spawn_ticker(engine: Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("fc-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("invariant: the OS can start one thread");
}

#[cfg(test)]
mod send_check {
    /// A server runs many runs on a multi-threaded executor: the futures of
    /// a run, a replay and a resume must be `Send`, and the runtime shared.
    #[allow(dead_code, clippy::diverging_sub_expression)]
    fn futures_are_send(rt: &crate::Runtime, plan: crate::RunPlan) {
        fn send<T: Send>(_: T) {}
        fn sync<T: Send + Sync>(_: &T) {}
        sync(rt);
        send(rt.run(plan));
        send(rt.replay(std::path::Path::new(""), "", None));
        send(rt.resume(std::path::Path::new(""), "", Default::default()));
    }
}
