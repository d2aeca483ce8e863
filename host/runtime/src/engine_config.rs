//! FemtoClaw's wasmtime configuration, in one place for the runtime and for
//! `build.rs`, which precompiles the built-in components with it: an artifact
//! loads only into an engine configured the same way, and wasmtime checks
//! that when it loads one.

/// The hardened configuration:
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
pub fn config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
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
    config
}
