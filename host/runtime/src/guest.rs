//! What every component's store holds, and the guard around every call into
//! a guest: fuel, a wall-time deadline, memory limits, and the translation of
//! a failure into a limit stop or a trap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use femtoclaw_policy::ComponentLimits;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::agent::femtoclaw::runtime::{log, types};
use crate::net::NetGate;
use crate::output::Captured;
use crate::redact::Redactor;
use crate::{RunError, StopReason};

/// Budgets for one store, from the policy (docs/policy.md lists defaults).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Linear memory, bytes, over all memories of the component.
    pub memory: usize,
    /// Fuel (roughly wasm instructions) per call into the guest.
    pub fuel: u64,
    /// Wall time per call into the guest.
    pub wall: Duration,
}

impl From<ComponentLimits> for Budget {
    fn from(l: ComponentLimits) -> Budget {
        let memory = usize::try_from(l.memory).unwrap_or(usize::MAX);
        Budget {
            memory,
            fuel: l.fuel,
            wall: l.call_timeout,
        }
    }
}

/// Everything a component's store is built from.
pub(crate) struct Setup {
    /// Who this is in logs: `agent`, `brain`, `capability fs`.
    pub name: String,
    /// Its WASI view, built from its grants (stdout and stderr are added
    /// here: they are captured into the log).
    pub wasi: WasiCtxBuilder,
    /// Its limits.
    pub budget: Budget,
    /// Log lines it may emit.
    pub max_log_lines: u32,
    /// Its network grant (no patterns: no network).
    pub net: NetGate,
    /// The run's secret values, removed from everything it says.
    pub redact: Redactor,
    /// The run's cancellation and memory pool.
    pub controls: Controls,
}

/// Core instances, tables and memories one component may create. Small
/// components need a handful; the caps stop instantiation bombs.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Bytes of one log line kept; the rest is cut.
const MAX_LOG_LINE: usize = 4096;

// WASI host-allocation limits, set explicitly (never the defaults) so that a
// guest cannot make the host allocate without bound:
/// Handles in a component's resource table (files, streams, pollables, fields).
const MAX_RESOURCES: usize = 4096;
/// Bytes a guest may pass to the host in one import call.
const HOSTCALL_FUEL: usize = 8 << 20;
/// Bytes of one `get-random-bytes` call.
pub(crate) const MAX_RANDOM_SIZE: u64 = 1 << 20;
/// Bytes of all HTTP fields (headers) of one request or response.
const MAX_HTTP_FIELDS_SIZE: usize = 64 << 10;

/// A handle that cancels a run: every store of the run stops at its next
/// epoch tick (or host call) with a journaled `cancelled` stop.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A handle no one has cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Cancels the run (idempotent).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Linear memory shared by every store it is given to (a tenant's runs in
/// `fc-host serve`): a store may grow only while the pool has room, so one
/// tenant's components cannot take the memory another's need.
#[derive(Debug, Clone)]
pub struct MemoryPool(Arc<Pool>);

#[derive(Debug)]
struct Pool {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: u64) -> MemoryPool {
        MemoryPool(Arc::new(Pool {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            used: AtomicUsize::new(0),
        }))
    }

    /// Bytes held by live stores now.
    pub fn used(&self) -> u64 {
        self.0.used.load(Ordering::Relaxed) as u64
    }

    /// The pool's size in bytes.
    pub fn limit(&self) -> u64 {
        self.0.limit as u64
    }

    fn reserve(&self, bytes: usize) -> bool {
        self.0
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|n| *n <= self.0.limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        self.0.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Fuel burnt by every store it is given to (a tenant's runs in `fc-host
/// serve`, for its fuel-per-minute quota).
#[derive(Debug, Clone, Default)]
pub struct FuelMeter(Arc<AtomicU64>);

impl FuelMeter {
    /// A meter at zero.
    pub fn new() -> FuelMeter {
        FuelMeter::default()
    }

    /// Fuel burnt so far.
    pub fn used(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, fuel: u64) {
        self.0.fetch_add(fuel, Ordering::Relaxed);
    }
}

/// What every store of one run shares.
#[derive(Clone, Default)]
pub(crate) struct Controls {
    pub cancel: Cancel,
    pub pool: Option<MemoryPool>,
    pub fuel: Option<FuelMeter>,
    /// Whose compiled code this run's components are (see `Hooks`).
    pub scope: Option<Arc<str>>,
    /// Who answers the run's approval requests.
    pub approver: Option<Arc<dyn crate::approval::Approver>>,
    /// Outgoing requests are judged, never sent (see `Hooks`).
    pub decide_only: bool,
}

impl std::fmt::Debug for Controls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controls")
            .field("cancel", &self.cancel)
            .field("pool", &self.pool)
            .field("fuel", &self.fuel)
            .field("scope", &self.scope)
            .field("approver", &self.approver.is_some())
            .field("decide_only", &self.decide_only)
            .finish()
    }
}

/// The data of a component's store.
pub(crate) struct GuestState<D> {
    /// Who this is in logs: `agent`, `brain`, `capability fs`.
    pub name: String,
    /// When the current call's wall time is up (set by [`arm`]).
    deadline: Instant,
    cancel: Cancel,
    fuel: Option<FuelMeter>,
    wasi: WasiCtx,
    output: Captured,
    http: WasiHttpCtx,
    net: NetGate,
    table: ResourceTable,
    limiter: Limiter,
    log_lines: u32,
    max_log_lines: u32,
    log_dropped: u32,
    /// Secret values to keep out of every output.
    pub redact: Redactor,
    /// Per-world host state.
    pub data: D,
}

impl<D: Send> GuestState<D> {
    /// A store for one component instance, with its limits applied.
    pub(crate) fn store(engine: &Engine, mut setup: Setup, data: D) -> Store<Self> {
        let output = Captured::default();
        setup.wasi.stdout(output.clone()).stderr(output.clone());
        let limiter = Limiter {
            memory: setup.budget.memory,
            hit: None,
            pool: setup.controls.pool.clone(),
            held: 0,
        };
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_HTTP_FIELDS_SIZE);
        let state = GuestState {
            name: setup.name,
            deadline: Instant::now() + setup.budget.wall,
            cancel: setup.controls.cancel.clone(),
            fuel: setup.controls.fuel.clone(),
            wasi: setup.wasi.build(),
            output,
            http,
            net: setup.net,
            table,
            limiter,
            log_lines: 0,
            max_log_lines: setup.max_log_lines,
            log_dropped: 0,
            redact: setup.redact,
            data,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        // At every epoch tick: a cancelled run stops, a call past its wall
        // time traps, and any other call yields to the executor, so that a
        // guest that computes without end shares the thread with the rest
        // (other runs of a server, the timers of this one).
        store.epoch_deadline_callback(|store| {
            let state = store.data();
            if state.cancel.is_cancelled() {
                return Err(wasmtime::Error::new(StopReason::Cancelled));
            }
            if Instant::now() >= state.deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }
}

impl<D: Send> WasiView for GuestState<D> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl<D: Send> WasiHttpView for GuestState<D> {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.net,
        }
    }
}

impl<D: Send> types::Host for GuestState<D> {}

impl<D> GuestState<D> {
    /// Logs what the guest wrote to stdout or stderr since the last call,
    /// a line per event, under the same caps as `log` calls.
    pub(crate) fn drain_output(&mut self) {
        for line in self.output.take_lines() {
            self.emit(log::Level::Info, &line, "output");
        }
    }
}

impl<D: Send> log::Host for GuestState<D> {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.emit(level, &message, "log");
        Ok(())
    }
}

impl<D> GuestState<D> {
    /// One guest line into the log: attributed to its component, secrets
    /// removed, control characters escaped, length and count capped.
    fn emit(&mut self, level: log::Level, message: &str, source: &'static str) {
        if self.log_lines >= self.max_log_lines {
            self.log_dropped += 1;
            return;
        }
        self.log_lines += 1;
        let message = crate::text::escape_capped(&self.redact.apply(message), MAX_LOG_LINE);
        let component = self.name.as_str();
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "femtoclaw::guest", component, source, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "femtoclaw::guest", component, source, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "femtoclaw::guest", component, source, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "femtoclaw::guest", component, source, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "femtoclaw::guest", component, source, "{message}")
            }
        }
    }
}

impl<D> Drop for GuestState<D> {
    fn drop(&mut self) {
        let dropped = self.log_dropped;
        let dropped_bytes = self.output.dropped();
        if dropped > 0 || dropped_bytes > 0 {
            tracing::warn!(target: "femtoclaw::guest", component = %self.name, dropped, dropped_bytes, "guest output dropped over the cap");
        }
    }
}

/// Memory and table limits; remembers which one was hit so that a guest that
/// aborts after a failed `memory.grow` is reported as a limit stop.
struct Limiter {
    memory: usize,
    hit: Option<String>,
    /// The pool this store's memory comes from, and what it holds of it.
    pool: Option<MemoryPool>,
    held: usize,
}

impl Drop for Limiter {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.release(self.held);
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.hit = Some(format!("memory limit of {} MiB", self.memory >> 20));
            return Ok(false);
        }
        if let Some(pool) = &self.pool {
            let more = desired.saturating_sub(current);
            if !pool.reserve(more) {
                self.hit = Some(format!(
                    "share of its tenant's memory pool ({} MiB, all in use)",
                    pool.limit() >> 20
                ));
                return Ok(false);
            }
            self.held += more;
        }
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = Some(format!("table limit of {MAX_TABLE_ELEMENTS} elements"));
            return Ok(false);
        }
        Ok(true)
    }
    fn instances(&self) -> usize {
        MAX_INSTANCES
    }
    fn tables(&self) -> usize {
        MAX_TABLES
    }
    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// How a call into a guest failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A budget stopped it (fuel, wall time, memory).
    Limit(String),
    /// The guest trapped or was refused by the engine.
    Trap(String),
    /// A host call ended the run because a run budget ran out.
    Stop(StopReason),
}

impl Failure {
    /// What a failure while a component starts means for the run: a stop
    /// (a cancellation, a run budget) stays that stop; anything else is the
    /// component's trap.
    pub(crate) fn starting(self, component: impl Into<String>) -> RunError {
        match self {
            Failure::Stop(reason) => reason.into(),
            Failure::Limit(m) => RunError::Trap {
                component: component.into(),
                message: format!("limit: {m}"),
            },
            Failure::Trap(message) => RunError::Trap {
                component: component.into(),
                message,
            },
        }
    }
}

/// Arms a store for one call: fresh fuel, a fresh deadline, no limit hit.
pub(crate) fn arm<D>(store: &mut Store<GuestState<D>>, budget: Budget) {
    store.data_mut().limiter.hit = None;
    store.data_mut().deadline = Instant::now() + budget.wall;
    store
        .set_fuel(budget.fuel)
        .expect("invariant: fuel is enabled on the engine");
    // The callback (see `store`) runs at the next tick.
    store.set_epoch_deadline(1);
}

/// Runs a guest call under its budget and sorts out how it failed.
pub(crate) async fn guarded<D, R>(
    store: &mut Store<GuestState<D>>,
    budget: Budget,
    call: impl AsyncFnOnce(&mut Store<GuestState<D>>) -> wasmtime::Result<R>,
) -> Result<R, Failure> {
    arm(store, budget);
    let result = tokio::time::timeout(budget.wall, call(store)).await;
    store.data_mut().drain_output();
    if let Some(meter) = &store.data().fuel {
        meter.add(budget.fuel.saturating_sub(store.get_fuel().unwrap_or(0)));
    }
    match result {
        Err(_) => Err(Failure::Limit(format!(
            "wall-time limit of {:?}",
            budget.wall
        ))),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(classify(error, store.data().limiter.hit.clone(), budget)),
    }
}

fn classify(error: wasmtime::Error, limit_hit: Option<String>, budget: Budget) -> Failure {
    if let Some(reason) = error.downcast_ref::<StopReason>() {
        return Failure::Stop(reason.clone());
    }
    let trap = error.downcast_ref::<Trap>().copied();
    match trap {
        Some(Trap::OutOfFuel) => {
            Failure::Limit(format!("fuel budget of {} exhausted", budget.fuel))
        }
        Some(Trap::Interrupt) => Failure::Limit(format!("wall-time limit of {:?}", budget.wall)),
        // A guest that aborts after a refused `memory.grow` hit the limit.
        _ if limit_hit.is_some() => Failure::Limit(limit_hit.unwrap_or_default()),
        Some(Trap::StackOverflow) => {
            Failure::Trap("stack overflow (wasm call stack exhausted)".into())
        }
        Some(trap) => Failure::Trap(format!("wasm trap: {trap}")),
        // wasmtime's error for a host call that passes more than the
        // store's hostcall fuel is not public: its text is what tells it.
        None if error
            .chain()
            .any(|e| e.to_string().contains("fuel allocated for hostcalls")) =>
        {
            Failure::Limit(format!(
                "host-call limit of {} MiB passed in one call",
                HOSTCALL_FUEL >> 20
            ))
        }
        // Not a trap: an error raised by the host or the engine; its root
        // cause is the useful part.
        None => Failure::Trap(error.root_cause().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runtime;
    use wasmtime::component::{Component, Linker};

    fn setup(budget: Budget, controls: &Controls) -> Setup {
        Setup {
            name: "bomb".into(),
            wasi: WasiCtx::builder(),
            budget,
            max_log_lines: 1,
            net: NetGate::none("bomb"),
            redact: Redactor::default(),
            controls: controls.clone(),
        }
    }

    const BUDGET: Budget = Budget {
        memory: 16 << 20,
        fuel: 10_000_000,
        wall: Duration::from_secs(5),
    };

    async fn instantiate(rt: &Runtime, wat: &str) -> Result<(), Failure> {
        instantiate_with(rt, wat, BUDGET, &Controls::default())
            .await
            .map(drop)
    }

    /// Instantiates `wat` in a fresh store; the store, to keep it alive.
    async fn instantiate_with(
        rt: &Runtime,
        wat: &str,
        budget: Budget,
        controls: &Controls,
    ) -> Result<Store<GuestState<()>>, Failure> {
        let component = Component::new(&rt.engine, wat).unwrap();
        let linker = Linker::new(&rt.engine);
        let mut store = GuestState::store(&rt.engine, setup(budget, controls), ());
        guarded(&mut store, budget, async |s| {
            linker.instantiate_async(s, &component).await.map(|_| ())
        })
        .await?;
        Ok(store)
    }

    /// A core module whose start function never returns.
    const SPIN: &str = "(component (core module $m (func $s (loop br 0)) (start $s)) (core instance (instantiate $m)))";

    #[tokio::test(flavor = "current_thread")]
    async fn a_spinning_guest_yields_and_stops_when_cancelled() {
        let rt = Runtime::new().unwrap();
        let controls = Controls::default();
        let unlimited = Budget {
            fuel: u64::MAX,
            wall: Duration::from_secs(600),
            ..BUDGET
        };
        let cancel = controls.cancel.clone();
        // The guest spins on this thread; it yields at every epoch tick, so
        // this timer runs and cancels it.
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            cancel.cancel();
        });
        let err = instantiate_with(&rt, SPIN, unlimited, &controls)
            .await
            .err()
            .unwrap();
        assert_eq!(err, Failure::Stop(StopReason::Cancelled));
        canceller.await.unwrap();
        // A component cancelled while it starts ends the run cancelled, not
        // as the component's trap (a race `fc-host serve`'s cancel can hit).
        assert!(matches!(
            err.starting("capability h"),
            RunError::Cancelled(_)
        ));
        // Without a cancel, the wall time ends it, as a limit.
        let short = Budget {
            wall: Duration::from_millis(50),
            ..unlimited
        };
        let err = instantiate_with(&rt, SPIN, short, &Controls::default())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, Failure::Limit(m) if m.contains("wall-time")));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stores_of_one_pool_share_its_memory() {
        let rt = Runtime::new().unwrap();
        let controls = Controls {
            pool: Some(MemoryPool::new(20 << 20)),
            ..Controls::default()
        };
        let twelve = "(component (core module $m (memory 192)) (core instance (instantiate $m)))";
        let first = instantiate_with(&rt, twelve, BUDGET, &controls)
            .await
            .unwrap();
        assert_eq!(controls.pool.as_ref().unwrap().used(), 12 << 20);
        let err = instantiate_with(&rt, twelve, BUDGET, &controls)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, Failure::Limit(m) if m.contains("memory pool (20 MiB")),
            "{err:?}"
        );
        // What a store held returns to the pool when it goes.
        drop(first);
        assert_eq!(controls.pool.as_ref().unwrap().used(), 0);
        let second = instantiate_with(&rt, twelve, BUDGET, &controls)
            .await
            .unwrap();
        drop(second);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn table_memory_and_instance_bombs_are_refused() {
        let rt = Runtime::new().unwrap();
        let table =
            "(component (core module $m (table 2000000 funcref)) (core instance (instantiate $m)))";
        let err = instantiate(&rt, table).await.unwrap_err();
        assert_eq!(
            err,
            Failure::Limit(format!("table limit of {MAX_TABLE_ELEMENTS} elements"))
        );

        let memory = "(component (core module $m (memory 1024)) (core instance (instantiate $m)))";
        let err = instantiate(&rt, memory).await.unwrap_err();
        assert_eq!(err, Failure::Limit("memory limit of 16 MiB".into()));

        let many: String = (0..MAX_INSTANCES + 1)
            .map(|_| "(core instance (instantiate $m))")
            .collect();
        let err = instantiate(&rt, &format!("(component (core module $m) {many})"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Failure::Trap(m) if m.contains("instance")),
            "{err:?}"
        );

        // Within the limits the same shapes instantiate.
        instantiate(&rt, "(component (core module $m (table 10 funcref) (memory 1)) (core instance (instantiate $m)))").await.unwrap();
    }
}
