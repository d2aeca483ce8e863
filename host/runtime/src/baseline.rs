//! A bare wasmtime baseline on this runtime's engine: a capability
//! component run with nothing of FemtoClaw's between caller and component
//! (no gate, schema, journal, budget or grant; a WASI context with nothing
//! in it and the network refused), for `fc-host compliance` to report
//! FemtoClaw's own figures beside, measured in the same process.

use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::agent::femtoclaw::runtime::{log, types};
use crate::bindings::capability::{Capability, CapabilityPre, exports};
use crate::net::NetGate;
use crate::{ComponentRef, RunError, Runtime};

struct Bare {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    net: NetGate,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Bare {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.net,
        }
    }
}

impl log::Host for Bare {
    fn log(&mut self, _: log::Level, _: String) -> wasmtime::Result<()> {
        Ok(())
    }
}

impl types::Host for Bare {}

impl Runtime {
    /// `n` calls of `tool` with `arguments` on one bare instance of the
    /// capability `component`: the time of each.
    pub async fn bare_calls(
        &self,
        component: &ComponentRef,
        tool: &str,
        arguments: &str,
        n: usize,
    ) -> Result<Vec<Duration>, RunError> {
        let pre = self.bare_pre(component)?;
        let mut store = self.bare_store();
        let bindings = pre.instantiate_async(&mut store).await.map_err(internal)?;
        let call = invocation(tool, arguments);
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            bare_call(&bindings, &mut store, &call).await?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    }

    /// `n` times: a fresh store, a bare instance of the capability
    /// `component` and one call of `tool`; the time of each.
    pub async fn bare_instantiate_and_call(
        &self,
        component: &ComponentRef,
        tool: &str,
        arguments: &str,
        n: usize,
    ) -> Result<Vec<Duration>, RunError> {
        let pre = self.bare_pre(component)?;
        let call = invocation(tool, arguments);
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            let mut store = self.bare_store();
            let bindings = pre.instantiate_async(&mut store).await.map_err(internal)?;
            bare_call(&bindings, &mut store, &call).await?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    }

    fn bare_pre(&self, component: &ComponentRef) -> Result<CapabilityPre<Bare>, RunError> {
        let loaded = self.load(component, None)?;
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(internal)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(internal)?;
        Capability::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(internal)?;
        let pre = linker
            .instantiate_pre(&loaded.component)
            .map_err(internal)?;
        CapabilityPre::new(pre).map_err(internal)
    }

    /// A store with every unit of fuel and no deadline: the engine meters
    /// both, and the baseline must not be stopped by either.
    fn bare_store(&self) -> Store<Bare> {
        let mut store = Store::new(
            &self.engine,
            Bare {
                wasi: WasiCtx::builder().build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
                net: NetGate::none("baseline"),
            },
        );
        store
            .set_fuel(u64::MAX)
            .expect("invariant: fuel is enabled on the engine");
        store.set_epoch_deadline(u64::MAX / 2);
        store
    }
}

fn invocation(
    tool: &str,
    arguments: &str,
) -> exports::femtoclaw::runtime::tool_provider::Invocation {
    exports::femtoclaw::runtime::tool_provider::Invocation {
        tool: tool.to_owned(),
        arguments: arguments.to_owned(),
        idempotency_key: "baseline".into(),
    }
}

async fn bare_call(
    bindings: &Capability,
    store: &mut Store<Bare>,
    call: &exports::femtoclaw::runtime::tool_provider::Invocation,
) -> Result<(), RunError> {
    bindings
        .femtoclaw_runtime_tool_provider()
        .call_invoke(store, call)
        .await
        .map_err(internal)?
        .map_err(|e| RunError::Internal(format!("the baseline call failed: {e:?}")))?;
    Ok(())
}

fn internal(e: wasmtime::Error) -> RunError {
    RunError::Internal(format!("the bare baseline: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Builtin;

    #[tokio::test(flavor = "current_thread")]
    async fn the_probe_runs_bare_on_the_runtimes_engine() {
        let rt = Runtime::new().unwrap();
        let probe = ComponentRef::Builtin(Builtin::Probe);
        let calls = rt
            .bare_calls(&probe, "output", r#"{"bytes":3}"#, 3)
            .await
            .unwrap();
        assert_eq!(calls.len(), 3);
        let fresh = rt
            .bare_instantiate_and_call(&probe, "output", r#"{"bytes":0}"#, 2)
            .await
            .unwrap();
        assert_eq!(fresh.len(), 2);
        // A call the component fails is an error, not a sample.
        let err = rt.bare_calls(&probe, "nope", "{}", 1).await.unwrap_err();
        assert!(
            err.to_string().contains("the baseline call failed"),
            "{err}"
        );
    }
}
