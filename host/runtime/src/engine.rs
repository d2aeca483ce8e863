//! The wasmtime engine, configured once for untrusted code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::RunError;
use crate::cache::Cache;
use crate::metrics::Metrics;

/// How often the epoch advances; wall-time deadlines are counted in ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The host: one engine shared by every component of every run, and the
/// ticker that drives wall-time deadlines.
pub struct Runtime {
    pub(crate) engine: Engine,
    ticker_stop: Arc<AtomicBool>,
    /// Components compiled by this runtime, by sha256 of their bytes.
    pub(crate) compiled: Mutex<HashMap<String, Component>>,
    /// Precompiled components on disk, if enabled.
    pub(crate) cache: Option<Cache>,
    /// What this runtime's runs decided and spent.
    pub(crate) metrics: Arc<Metrics>,
}

impl Runtime {
    /// Creates the engine with FemtoClaw's hardened configuration:
    /// - Cranelift only (never Winch for untrusted code);
    /// - async host calls, fuel (deterministic CPU budget) and epoch
    ///   interruption (wall-time deadlines that wasm code cannot avoid);
    /// - proposals that untrusted agents do not need are off: memory64 and
    ///   multi-memory here; threads, shared memory, GC and component-model
    ///   async are not even compiled in (see the `wasmtime` features in
    ///   Cargo.toml);
    /// - NaN canonicalisation and deterministic relaxed SIMD, so that the
    ///   same component and the same inputs give the same execution;
    /// - a 512 KiB wasm stack inside a 2 MiB async stack, leaving room for
    ///   host frames when wasm recurses until it overflows.
    pub fn new() -> Result<Runtime, RunError> {
        let mut config = Config::new();
        config
            .strategy(wasmtime::Strategy::Cranelift)
            .consume_fuel(true)
            .epoch_interruption(true)
            .wasm_component_model(true)
            .wasm_memory64(false)
            .wasm_multi_memory(false)
            .wasm_relaxed_simd(true)
            .relaxed_simd_deterministic(true)
            .cranelift_nan_canonicalization(true)
            // Guest backtraces cost time on every trap and would put guest
            // internals into messages; the trap kind is what users need.
            .wasm_backtrace_max_frames(None)
            .max_wasm_stack(512 << 10)
            .async_stack_size(2 << 20);
        let engine = Engine::new(&config)
            .map_err(|e| RunError::Internal(format!("creating the engine: {e:#}")))?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), ticker_stop.clone());
        Ok(Runtime {
            engine,
            ticker_stop,
            compiled: Mutex::default(),
            cache: None,
            metrics: Arc::default(),
        })
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
