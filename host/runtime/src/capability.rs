//! Capability instances: each in its own store, with a WASI context the gate
//! builds from the policy's grants and nothing else.

use femtoclaw_policy::{CapabilityGrant, ComponentSource, MountMode};
use wasmtime::Store;
use wasmtime::component::Linker;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::bindings::capability::exports::femtoclaw::runtime::tool_provider::Invocation;
use crate::bindings::capability::{Capability, CapabilityPre};
use crate::bindings::{ToolError, ToolSpec};
use crate::guest::{Budget, Failure, GuestState, guarded};
use crate::{Builtin, ComponentRef, RunError, Runtime};

type CapStore = Store<GuestState<()>>;

/// One granted capability, instantiated lazily again after a failure.
pub(crate) struct CapabilityInstance {
    /// Name in the policy (the tools' prefix).
    pub name: String,
    /// sha256 of its component.
    pub hash: String,
    grant: CapabilityGrant,
    pre: CapabilityPre<GuestState<()>>,
    live: Option<(CapStore, Capability)>,
}

impl CapabilityInstance {
    /// Compiles, links and instantiates a capability, and asks it for its
    /// tools.
    pub(crate) async fn start(
        rt: &Runtime,
        name: &str,
        grant: &CapabilityGrant,
    ) -> Result<(Self, Vec<ToolSpec>), RunError> {
        let source = match &grant.component {
            ComponentSource::Builtin(b) => {
                ComponentRef::Builtin(Builtin::capability(b).ok_or_else(|| {
                    RunError::Config(format!("unknown built-in capability `{b}`"))
                })?)
            }
            ComponentSource::File(path) => ComponentRef::File(path.clone()),
        };
        let loaded = rt.load(&source)?;
        let mut linker = Linker::new(&rt.engine);
        let link = |e: wasmtime::Error| RunError::Internal(format!("linking capabilities: {e:#}"));
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        Capability::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(link)?;
        let reject = |e: wasmtime::Error| RunError::Component {
            component: loaded.label.clone(),
            message: format!("does not fit the `capability` world: {e:#}"),
        };
        let pre = linker.instantiate_pre(&loaded.component).map_err(reject)?;
        let pre = CapabilityPre::new(pre).map_err(reject)?;
        let mut cap = CapabilityInstance {
            name: name.to_owned(),
            hash: loaded.hash,
            grant: grant.clone(),
            pre,
            live: None,
        };
        let component = format!("capability {name}");
        let specs = cap
            .with_instance(async |store, bindings| {
                bindings
                    .femtoclaw_runtime_tool_provider()
                    .call_describe(store)
                    .await
            })
            .await
            .map_err(|f| RunError::Trap {
                component,
                message: crate::brain::failure_text(&f),
            })?;
        Ok((cap, specs))
    }

    /// Runs one validated call.
    pub(crate) async fn invoke(
        &mut self,
        call: Invocation,
    ) -> Result<Result<String, ToolError>, Failure> {
        self.with_instance(async |store, bindings| {
            bindings
                .femtoclaw_runtime_tool_provider()
                .call_invoke(store, &call)
                .await
        })
        .await
    }

    /// Calls into the live instance (instantiating one if needed) under the
    /// capability budget. A failed call leaves the instance in an unknown
    /// state, so it is dropped and the next call gets a fresh one.
    async fn with_instance<R>(
        &mut self,
        call: impl AsyncFnOnce(&mut CapStore, &Capability) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        if self.live.is_none() {
            let wasi = wasi_for(&self.grant)
                .map_err(|e| Failure::Trap(format!("preparing grants: {e:#}")))?;
            let mut store = GuestState::store(
                self.pre.engine(),
                format!("capability {}", self.name),
                wasi,
                Budget::CAPABILITY,
                (),
            );
            let pre = self.pre.clone();
            let bindings = guarded(&mut store, Budget::CAPABILITY, async |s| {
                pre.instantiate_async(s).await
            })
            .await?;
            self.live = Some((store, bindings));
        }
        let (store, bindings) = self.live.as_mut().expect("invariant: instantiated above");
        let bindings = &*bindings;
        let result = guarded(store, Budget::CAPABILITY, async |s| call(s, bindings).await).await;
        if result.is_err() {
            self.live = None;
        }
        result
    }
}

/// The capability's whole view of the world: its mounts, nothing else. No
/// environment, no arguments, no network, no name lookups, stdin closed.
fn wasi_for(grant: &CapabilityGrant) -> wasmtime::Result<WasiCtx> {
    let mut wasi = WasiCtxBuilder::new();
    for mount in &grant.mounts {
        let perms = match mount.mode {
            MountMode::ReadOnly => FsPerms::ReadOnly,
            MountMode::ReadWrite => FsPerms::ReadWrite,
        };
        wasi.preopened_dir(&mount.host, &mount.guest, perms)?;
    }
    wasi.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    Ok(wasi.build())
}
