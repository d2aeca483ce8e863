//! Capability instances: each in its own store, with a WASI context the gate
//! builds from the policy's grants and nothing else.

use std::sync::Arc;

use std::collections::BTreeMap;

use femtoclaw_policy::{
    CapabilityGrant, ComponentSource, HeaderSource, McpServer, Mount, MountMode, SecretSource,
};
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::bindings::capability::exports::femtoclaw::runtime::tool_provider::Invocation;
use crate::bindings::capability::{Capability, CapabilityPre};
use crate::bindings::{ToolError, ToolSpec};
use crate::gate::Described;
use crate::guest::{Budget, Controls, Failure, GuestState, MAX_RANDOM_SIZE, Setup, guarded};
use crate::net::NetGate;
use crate::redact::{MIN_SECRET_LEN, Redactor};
use crate::{Builtin, ComponentRef, RunError, Runtime};
use femtoclaw_bundle::Bundle;

type CapStore = Store<GuestState<()>>;

/// One granted capability, instantiated again after a failure.
pub(crate) struct CapabilityInstance {
    /// Name in the policy (the tools' prefix).
    pub name: String,
    /// Where its code came from (`builtin:fs`, a path), for messages.
    pub label: String,
    /// sha256 of its component.
    pub hash: String,
    pre: CapabilityPre<GuestState<()>>,
    live: Option<(CapStore, Capability)>,
    mounts: Vec<Mount>,
    /// Granted variables and secrets, resolved once at run start.
    env: Vec<(String, String)>,
    budget: Budget,
    net: NetGate,
    shared: Shared,
    /// Fuel the last call consumed.
    pub fuel_used: u64,
}

/// `(name, value)` pairs of environment variables.
pub(crate) type Vars = Vec<(String, String)>;

/// What every capability of a run gets alike.
#[derive(Clone, Default)]
pub(crate) struct Shared {
    /// Log lines each may emit.
    pub max_log_lines: u32,
    /// Response body cap of its HTTP requests.
    pub max_body: u64,
    /// The run's secrets, removed from everything it says.
    pub redact: Redactor,
    /// The run's cancellation and memory pool.
    pub controls: Controls,
}

impl Shared {
    /// For a capability run outside a run (to describe it): no secrets.
    fn bare() -> Shared {
        Shared {
            max_log_lines: 100,
            max_body: 1 << 20,
            ..Shared::default()
        }
    }
}

/// The values a grant injects, read from the host once: its `env` and
/// `secrets` as variables, or an HTTP MCP server's headers. Returns the
/// `(name, value)` pairs to inject and the secret ones.
pub(crate) fn resolve_env(name: &str, grant: &CapabilityGrant) -> Result<(Vars, Vars), RunError> {
    if let ComponentSource::Mcp(McpServer::Http { headers, .. }) = &grant.component {
        return resolve_headers(name, headers);
    }
    let mut vars = Vec::new();
    for var in &grant.env {
        // A granted variable the host does not set is simply absent.
        if let Ok(value) = std::env::var(var) {
            vars.push((var.clone(), value));
        }
    }
    let mut secrets = Vec::new();
    for (var, source) in &grant.secrets {
        let value = secret(&format!("capabilities.{name}.secrets.{var}"), source)?;
        vars.push((var.clone(), value.clone()));
        secrets.push((var.clone(), value));
    }
    Ok((vars, secrets))
}

/// The headers an HTTP MCP server gets: values as written, secrets read.
fn resolve_headers(
    name: &str,
    headers: &BTreeMap<String, HeaderSource>,
) -> Result<(Vars, Vars), RunError> {
    let mut values = Vec::new();
    let mut secrets = Vec::new();
    for (header, source) in headers {
        let (value, shown) = match source {
            HeaderSource::Value(v) => {
                values.push((header.clone(), v.clone()));
                continue;
            }
            HeaderSource::Secret(s) => {
                let v = secret(&format!("capabilities.{name}.headers.{header}"), s)?;
                (v.clone(), v)
            }
            HeaderSource::Bearer(s) => {
                let v = secret(&format!("capabilities.{name}.bearer"), s)?;
                (format!("Bearer {v}"), v)
            }
        };
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(RunError::Config(format!(
                "`capabilities.{name}.headers.{header}`: the secret's value cannot be sent in a header (it holds a control character)"
            )));
        }
        values.push((header.clone(), value));
        secrets.push((format!("{name}.{header}"), shown));
    }
    Ok((values, secrets))
}

/// A secret's value, read from where the policy says (`key` names it in
/// errors).
fn secret(key: &str, source: &SecretSource) -> Result<String, RunError> {
    let value = match source {
        SecretSource::Env(from) => std::env::var(from).map_err(|_| {
            RunError::Config(format!("`{key}`: the host variable `{from}` is not set"))
        })?,
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map_err(|e| {
                RunError::Config(format!("`{key}`: cannot read `{}`: {e}", path.display()))
            })?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
    };
    if value.len() < MIN_SECRET_LEN {
        return Err(RunError::Config(format!(
            "`{key}`: a secret must be at least {MIN_SECRET_LEN} bytes"
        )));
    }
    Ok(value)
}

impl Runtime {
    /// The tools a capability component describes, asked with no grants
    /// (for pinning them in a bundle).
    pub async fn describe(
        &self,
        source: &ComponentRef,
    ) -> Result<Vec<serde_json::Value>, RunError> {
        let grant = CapabilityGrant {
            component: ComponentSource::File(Default::default()),
            tools: vec![],
            mounts: vec![],
            net: vec![],
            env: vec![],
            secrets: Default::default(),
            max_calls: Default::default(),
            rates: Default::default(),
            tool_rates: Default::default(),
            limits: Default::default(),
        };
        let (cap, specs) = CapabilityInstance::start_source(
            self,
            "describe",
            source.clone(),
            &grant,
            vec![],
            Shared::bare(),
        )
        .await?;
        let checked = crate::gate::described(&cap.label, specs)?;
        Ok(checked
            .iter()
            .map(|t| serde_json::to_value(&t.spec).expect("invariant: specs serialize"))
            .collect())
    }
}

/// What `fc-host policy check --components` found for one capability.
#[derive(Debug, Clone)]
pub struct CheckedCapability {
    /// Its name in the policy.
    pub name: String,
    /// Where its code comes from.
    pub component: String,
    /// The tools it describes.
    pub tools: Vec<String>,
}

impl Runtime {
    /// Loads and describes every capability a policy grants, as a run would
    /// (without its network and its secrets), checks each
    /// description, and that it provides every tool the policy grants. A
    /// bundle's capabilities are left out: they need their bundle; so are
    /// MCP servers: checking a policy reaches nothing.
    pub async fn check_capabilities(
        &self,
        policy: &femtoclaw_policy::Policy,
    ) -> Result<Vec<CheckedCapability>, RunError> {
        let mut checked = Vec::new();
        for (name, grant) in &policy.capabilities {
            let source = match &grant.component {
                ComponentSource::Bundle(_) | ComponentSource::Mcp(_) => continue,
                ComponentSource::Builtin(b) => {
                    ComponentRef::Builtin(Builtin::capability(b).ok_or_else(|| {
                        RunError::Config(format!("unknown built-in capability `{b}`"))
                    })?)
                }
                ComponentSource::File(path) => ComponentRef::File(path.clone()),
            };
            // No network and no secrets: checking a policy reaches nothing.
            let bare = CapabilityGrant {
                net: vec![],
                secrets: Default::default(),
                ..grant.clone()
            };
            let (vars, _) = resolve_env(name, &bare)?;
            let (cap, specs) =
                CapabilityInstance::start_source(self, name, source, &bare, vars, Shared::bare())
                    .await?;
            let tools = crate::gate::described(&cap.label, specs)?;
            let names = tools.iter().map(|t| t.spec.name.clone()).collect();
            crate::gate::Gate::default().register(policy, name, tools)?;
            checked.push(CheckedCapability {
                name: name.clone(),
                component: cap.label,
                tools: names,
            });
        }
        Ok(checked)
    }
}

impl CapabilityInstance {
    /// Compiles, links and instantiates a capability, and asks it for its
    /// tools.
    pub(crate) async fn start(
        rt: &Runtime,
        name: &str,
        grant: &CapabilityGrant,
        env: Vec<(String, String)>,
        shared: Shared,
        bundle: Option<&Bundle>,
    ) -> Result<(Self, Vec<Described>), RunError> {
        let mut pinned = None;
        let source = match &grant.component {
            ComponentSource::Builtin(b) => {
                ComponentRef::Builtin(Builtin::capability(b).ok_or_else(|| {
                    RunError::Config(format!("unknown built-in capability `{b}`"))
                })?)
            }
            ComponentSource::File(path) => ComponentRef::File(path.clone()),
            ComponentSource::Bundle(component) => {
                let (source, tools) = crate::bundled::capability(bundle, name, component, grant)?;
                pinned = Some(tools);
                source
            }
            ComponentSource::Mcp(_) => unreachable!("invariant: MCP servers start as remotes"),
        };
        let (cap, specs) = Self::start_source(rt, name, source, grant, env, shared).await?;
        if let Some(pinned) = pinned {
            crate::bundled::check_pinned(name, &pinned, &specs)?;
        }
        // What a component describes reaches the model, the journal and
        // `inspect`: no secret survives in it, and it must follow the rules.
        let specs = specs
            .into_iter()
            .map(|s| cap.shared.redact.spec(s))
            .collect();
        let tools = crate::gate::described(&cap.label, specs)?;
        Ok((cap, tools))
    }

    async fn start_source(
        rt: &Runtime,
        name: &str,
        source: ComponentRef,
        grant: &CapabilityGrant,
        env: Vec<(String, String)>,
        shared: Shared,
    ) -> Result<(Self, Vec<ToolSpec>), RunError> {
        let loaded = rt.load(&source, shared.controls.scope.as_deref())?;
        let pre = rt.linked("capability", &loaded.key, || {
            let mut linker = Linker::new(&rt.engine);
            let link =
                |e: wasmtime::Error| RunError::Internal(format!("linking capabilities: {e:#}"));
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
            crate::fsguard::guard_open(&mut linker).map_err(link)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link)?;
            Capability::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(link)?;
            let reject = |e: wasmtime::Error| RunError::Component {
                component: loaded.label.clone(),
                message: format!("does not fit the `capability` world: {e:#}"),
            };
            let pre = linker.instantiate_pre(&loaded.component).map_err(reject)?;
            CapabilityPre::new(pre).map_err(reject)
        })?;
        let component = format!("capability {name}");
        let net = NetGate {
            component: component.clone(),
            patterns: Arc::new(grant.net.clone()),
            max_body: shared.max_body,
            inject: None,
            decide_only: shared.controls.decide_only,
        };
        let mut cap = CapabilityInstance {
            name: name.to_owned(),
            label: loaded.label.clone(),
            hash: loaded.hash,
            pre,
            live: None,
            mounts: grant.mounts.clone(),
            env,
            budget: grant.limits.into(),
            net,
            shared,
            fuel_used: 0,
        };
        let specs = cap
            .with_instance(async |store, bindings| {
                bindings
                    .femtoclaw_runtime_tool_provider()
                    .call_describe(store)
                    .await
            })
            .await
            .map_err(|f| f.starting(component))?;
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
    /// capability's budget. A failed call leaves the instance in an unknown
    /// state, so it is dropped and the next call gets a fresh one.
    async fn with_instance<R>(
        &mut self,
        call: impl AsyncFnOnce(&mut CapStore, &Capability) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        if self.live.is_none() {
            let wasi = self
                .wasi()
                .map_err(|e| Failure::Trap(format!("preparing grants: {e:#}")))?;
            let setup = Setup {
                name: format!("capability {}", self.name),
                wasi,
                budget: self.budget,
                max_log_lines: self.shared.max_log_lines,
                net: self.net.clone(),
                redact: self.shared.redact.clone(),
                controls: self.shared.controls.clone(),
            };
            let mut store = GuestState::store(self.pre.engine(), setup, ());
            let pre = self.pre.clone();
            let bindings = guarded(&mut store, self.budget, async |s| {
                pre.instantiate_async(s).await
            })
            .await?;
            self.live = Some((store, bindings));
        }
        let (store, bindings) = self.live.as_mut().expect("invariant: instantiated above");
        let bindings = &*bindings;
        let result = guarded(store, self.budget, async |s| call(s, bindings).await).await;
        self.fuel_used = self
            .budget
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        if result.is_err() {
            self.live = None;
        }
        result
    }

    /// The capability's whole view of the world: its mounts (cap-std
    /// directories; `ro` refuses every mutation), its granted variables and
    /// secrets, and nothing else: no arguments, stdin closed, no sockets, no
    /// name lookups. HTTP goes through the [`NetGate`].
    fn wasi(&self) -> wasmtime::Result<WasiCtxBuilder> {
        let mut wasi = WasiCtxBuilder::new();
        // File operations run on the run's own thread: handing each one to
        // tokio's blocking pool cost two thread switches, ~120 of the
        // ~180 µs of a `read_file` call (docs/performance.md). Set before the
        // preopens, which take the setting when they are added. Special
        // files, which could block that thread, are refused (fsguard.rs).
        wasi.allow_blocking_current_thread(true);
        for mount in &self.mounts {
            let perms = match mount.mode {
                MountMode::ReadOnly => FsPerms::ReadOnly,
                MountMode::ReadWrite => FsPerms::ReadWrite,
            };
            wasi.preopened_dir(&mount.host, &mount.guest, perms)?;
        }
        wasi.envs(&self.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .max_random_size(MAX_RANDOM_SIZE);
        Ok(wasi)
    }
}
