//! The brain instance: a component of the `brain` world in its own store.
//! What it returns is only a candidate; the gate judges every tool call.

use std::collections::BTreeMap;
use std::path::Path;

use femtoclaw_policy::Limits;
use serde_json::Value;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::WasiCtx;

use crate::bindings::brain::exports::femtoclaw::runtime::model::Request;
use crate::bindings::brain::femtoclaw::runtime::brain_config;
use crate::bindings::brain::{Brain, BrainPre};
use crate::bindings::{BrainError, Completion};
use crate::guest::{Budget, Failure, GuestState, MAX_RANDOM_SIZE, Setup, guarded};
use crate::net::NetGate;
use crate::redact::Redactor;
use crate::{BrainChoice, Builtin, ComponentRef, RunError, Runtime};

/// Settings the brain can read through `brain-config`.
pub(crate) struct BrainHost {
    settings: BTreeMap<String, String>,
}

impl brain_config::Host for GuestState<BrainHost> {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.data.settings.get(&key).cloned())
    }
}

/// A running brain. After a trap it stays failed: its state is gone.
pub(crate) struct BrainInstance {
    store: Store<GuestState<BrainHost>>,
    bindings: Brain,
    failed: Option<Failure>,
    /// sha256 of its component.
    pub hash: String,
    budget: Budget,
}

impl BrainInstance {
    pub(crate) async fn start(
        rt: &Runtime,
        choice: &BrainChoice,
        limits: &Limits,
        redact: Redactor,
        start_turn: usize,
    ) -> Result<Self, RunError> {
        let (source, settings) = match choice {
            BrainChoice::Scripted(path) => {
                let script = load_script(path)?;
                // A resumed run continues the script where its journal ended.
                let settings = BTreeMap::from([
                    ("script".to_owned(), script),
                    ("start-turn".to_owned(), start_turn.to_string()),
                ]);
                (ComponentRef::Builtin(Builtin::ScriptedBrain), settings)
            }
            BrainChoice::Component(path) => (ComponentRef::File(path.clone()), BTreeMap::new()),
        };
        let loaded = rt.load(&source)?;
        let mut linker = Linker::new(&rt.engine);
        let link = |e: wasmtime::Error| RunError::Internal(format!("linking the brain: {e:#}"));
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link)?;
        Brain::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(link)?;
        let reject = |e: wasmtime::Error| RunError::Component {
            component: loaded.label.clone(),
            message: format!("does not fit the `brain` world: {e:#}"),
        };
        let pre = BrainPre::new(linker.instantiate_pre(&loaded.component).map_err(reject)?)
            .map_err(reject)?;
        let budget = Budget::from(limits.component);
        // The brain's WASI view is empty, like the agent's; a provider brain
        // gets its network grant in the NetGate.
        let setup = Setup {
            name: "brain".into(),
            wasi: WasiCtx::builder()
                .allow_tcp(false)
                .allow_udp(false)
                .max_random_size(MAX_RANDOM_SIZE)
                .build(),
            budget,
            max_log_lines: limits.max_log_lines,
            net: NetGate {
                component: "brain".into(),
                patterns: Default::default(),
                max_body: limits.max_tool_output,
            },
            redact,
        };
        let mut store = GuestState::store(&rt.engine, setup, BrainHost { settings });
        let bindings = guarded(&mut store, budget, async |s| pre.instantiate_async(s).await)
            .await
            .map_err(|f| RunError::Trap {
                component: "brain".into(),
                message: failure_text(&f),
            })?;
        Ok(BrainInstance {
            store,
            bindings,
            failed: None,
            hash: loaded.hash,
            budget,
        })
    }

    pub(crate) async fn complete(
        &mut self,
        request: Request,
    ) -> Result<Result<Completion, BrainError>, Failure> {
        if let Some(f) = &self.failed {
            return Err(f.clone());
        }
        let bindings = &self.bindings;
        let result = guarded(&mut self.store, self.budget, async |s| {
            bindings
                .femtoclaw_runtime_model()
                .call_complete(s, &request)
                .await
        })
        .await;
        if let Err(f) = &result {
            self.failed = Some(f.clone());
        }
        result
    }
}

pub(crate) fn failure_text(f: &Failure) -> String {
    match f {
        Failure::Limit(m) => format!("limit: {m}"),
        Failure::Trap(m) => m.clone(),
        Failure::Stop(r) => r.to_string(),
    }
}

/// Reads a brain script and checks its shape, so that a typo is reported
/// with the file and turn before the agent starts.
fn load_script(path: &Path) -> Result<String, RunError> {
    let bad = |m: String| RunError::Config(format!("brain script `{}`: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let turns = value
        .as_array()
        .ok_or_else(|| bad("must be a JSON array of turns".into()))?;
    for (i, turn) in turns.iter().enumerate() {
        let n = i + 1;
        let obj = turn
            .as_object()
            .ok_or_else(|| bad(format!("turn {n} is not an object")))?;
        if let Some(key) = obj.keys().find(|k| *k != "content" && *k != "tool_calls") {
            return Err(bad(format!(
                "turn {n}: unknown key `{key}` (expected `content`, `tool_calls`)"
            )));
        }
        if !matches!(
            obj.get("content"),
            None | Some(Value::Null | Value::String(_))
        ) {
            return Err(bad(format!("turn {n}: `content` must be a string or null")));
        }
        for call in obj
            .get("tool_calls")
            .map_or(Ok(&Vec::new()), |c| c.as_array().ok_or(()))
            .map_err(|_| bad(format!("turn {n}: `tool_calls` must be an array")))?
        {
            let ok = call.as_object().is_some_and(|c| {
                c.get("name").is_some_and(Value::is_string)
                    && c.keys().all(|k| k == "name" || k == "arguments")
            });
            if !ok {
                return Err(bad(format!(
                    "turn {n}: each tool call needs a string `name` and optional `arguments`"
                )));
            }
        }
    }
    Ok(text)
}
