//! The brain instance: a component of the `brain` world in its own store.
//! What it returns is only a candidate; the gate judges every tool call.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use femtoclaw_policy::{Limits, Protocol, ProviderBrain};
use serde_json::value::RawValue;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::WasiCtx;

use crate::bindings::brain::exports::femtoclaw::runtime::model::Request;
use crate::bindings::brain::femtoclaw::runtime::brain_config;
use crate::bindings::brain::{Brain, BrainPre};
use crate::bindings::{BrainError, Completion};
use crate::capability::Shared;
use crate::guest::{Budget, Failure, GuestState, MAX_RANDOM_SIZE, Setup, guarded};
use crate::net::{Injected, NetGate};
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
    /// Starts the brain. A provider brain (built-in, or a component given
    /// with a provider policy) may reach its provider's origin only, and
    /// the host adds `key` to its requests there.
    pub(crate) async fn start(
        rt: &Runtime,
        choice: &BrainChoice,
        provider: Option<&ProviderBrain>,
        key: Option<String>,
        limits: &Limits,
        shared: Shared,
        start_turn: usize,
    ) -> Result<Self, RunError> {
        let mut settings = BTreeMap::new();
        let source = match choice {
            BrainChoice::Scripted(_) | BrainChoice::Script(_) => {
                let script = match choice {
                    BrainChoice::Script(text) => check_script(text.clone(), "the run's script")?,
                    BrainChoice::Scripted(path) => load_script(path)?,
                    _ => unreachable!("matched above"),
                };
                settings.insert("script".to_owned(), script);
                // A resumed run continues the script where its journal ended.
                settings.insert("start-turn".to_owned(), start_turn.to_string());
                ComponentRef::Builtin(Builtin::ScriptedBrain)
            }
            BrainChoice::Provider(_) => ComponentRef::Builtin(Builtin::ProviderBrain),
            BrainChoice::Component(path) => ComponentRef::File(path.clone()),
        };
        let mut net = NetGate::none("brain");
        net.max_body = limits.max_tool_output;
        if let Some(p) = provider.filter(|_| !choice.is_scripted()) {
            let protocol = match p.protocol {
                Protocol::Openai => "openai",
                Protocol::Anthropic => "anthropic",
            };
            settings.insert("protocol".to_owned(), protocol.to_owned());
            settings.insert("base-url".to_owned(), p.base_url.clone());
            settings.insert("model".to_owned(), p.model.clone());
            settings.insert("max-tokens".to_owned(), p.max_tokens.to_string());
            if let Some(t) = p.temperature {
                settings.insert("temperature".to_owned(), t.to_string());
            }
            net.patterns = std::sync::Arc::new(vec![p.origin()]);
            if let Some(key) = key {
                let (name, value) = match p.protocol {
                    Protocol::Openai => ("authorization", format!("Bearer {key}")),
                    Protocol::Anthropic => ("x-api-key", key),
                };
                let mut value = http::HeaderValue::try_from(value).map_err(|_| {
                    RunError::Config(
                        "`brain.api-key-env`: the key is not a valid header value".into(),
                    )
                })?;
                value.set_sensitive(true);
                net.inject = Some(std::sync::Arc::new(Injected {
                    origin: p.origin(),
                    name: http::HeaderName::from_static(name),
                    value,
                }));
            }
        }
        let loaded = rt.load(&source, shared.controls.scope.as_deref())?;
        let pre = rt.linked("brain", &loaded.key, || {
            let mut linker = Linker::new(&rt.engine);
            let link = |e: wasmtime::Error| RunError::Internal(format!("linking the brain: {e:#}"));
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
            wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link)?;
            Brain::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(link)?;
            let reject = |e: wasmtime::Error| RunError::Component {
                component: loaded.label.clone(),
                message: format!("does not fit the `brain` world: {e:#}"),
            };
            BrainPre::new(linker.instantiate_pre(&loaded.component).map_err(reject)?)
                .map_err(reject)
        })?;
        let budget = Budget::from(limits.component);
        // No files, no environment, no sockets: a provider brain's one way
        // out is HTTP to its provider, through the NetGate.
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .max_random_size(MAX_RANDOM_SIZE);
        let setup = Setup {
            name: "brain".into(),
            wasi,
            budget,
            max_log_lines: limits.max_log_lines,
            net,
            redact: shared.redact,
            controls: shared.controls,
        };
        let mut store = GuestState::store(&rt.engine, setup, BrainHost { settings });
        let bindings = guarded(&mut store, budget, async |s| pre.instantiate_async(s).await)
            .await
            .map_err(|f| f.starting("brain"))?;
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

/// Reads a brain script and checks its shape, so that a typo is reported
/// with the file and turn before the agent starts.
fn load_script(path: &Path) -> Result<String, RunError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        RunError::Config(format!(
            "brain script `{}`: cannot read: {e}",
            path.display()
        ))
    })?;
    check_script(text, &format!("brain script `{}`", path.display()))
}

/// A script's text, once checked to be turns the scripted brain runs;
/// errors start with `what`. Only the turns' shape is read (the arguments
/// stay raw text): a script can hold thousands of calls.
fn check_script(text: String, what: &str) -> Result<String, RunError> {
    let bad = |m: String| RunError::Config(format!("{what}: {m}"));
    let whole: &RawValue =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let turns: Vec<&RawValue> = serde_json::from_str(whole.get())
        .map_err(|_| bad("must be a JSON array of turns".into()))?;
    for (i, turn) in turns.iter().enumerate() {
        let n = i + 1;
        let obj: BTreeMap<Cow<str>, &RawValue> = serde_json::from_str(turn.get())
            .map_err(|_| bad(format!("turn {n} is not an object")))?;
        if let Some(key) = obj
            .keys()
            .find(|k| !["content", "tool_calls", "finish"].contains(&k.as_ref()))
        {
            return Err(bad(format!(
                "turn {n}: unknown key `{key}` (expected `content`, `tool_calls`, `finish`)"
            )));
        }
        let finish = obj
            .get("finish")
            .map(|f| serde_json::from_str::<Cow<str>>(f.get()));
        if !matches!(
            finish.as_ref().map(|f| f.as_deref()),
            None | Some(Ok("complete" | "length" | "content-filter" | "refusal"))
        ) {
            return Err(bad(format!(
                "turn {n}: `finish` must be `complete`, `length`, `content-filter` or `refusal`"
            )));
        }
        if obj
            .get("content")
            .is_some_and(|c| c.get() != "null" && !c.get().starts_with('"'))
        {
            return Err(bad(format!("turn {n}: `content` must be a string or null")));
        }
        let calls: Vec<&RawValue> = match obj.get("tool_calls") {
            Some(calls) => serde_json::from_str(calls.get())
                .map_err(|_| bad(format!("turn {n}: `tool_calls` must be an array")))?,
            None => Vec::new(),
        };
        for call in calls {
            if serde_json::from_str::<ScriptCall>(call.get()).is_err() {
                return Err(bad(format!(
                    "turn {n}: each tool call needs a string `name` and optional `arguments`"
                )));
            }
        }
    }
    Ok(text)
}

/// A scripted tool call's shape.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read only to be checked
struct ScriptCall<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    arguments: Option<serde::de::IgnoredAny>,
}

/// The provider's API key, read from the host variable the policy names
/// (`OPENAI_API_KEY` is the fallback for an OpenAI-compatible brain).
pub(crate) fn provider_key(p: &ProviderBrain) -> Result<Option<String>, RunError> {
    match &p.api_key_env {
        Some(var) => std::env::var(var).map(Some).map_err(|_| {
            RunError::Config(format!(
                "`brain.api-key-env`: the host variable `{var}` is not set"
            ))
        }),
        None if p.api_key_fallback => Ok(std::env::var("OPENAI_API_KEY").ok()),
        None if p.protocol == Protocol::Anthropic => Err(RunError::Config(
            "an anthropic brain needs `api-key-env`".into(),
        )),
        None => Ok(None),
    }
}

/// Fails early, naming the endpoint, when the provider cannot be reached.
pub(crate) async fn probe(p: &ProviderBrain) -> Result<(), RunError> {
    let origin = p.origin();
    let host = match &origin.host {
        femtoclaw_policy::HostPattern::Name(n) | femtoclaw_policy::HostPattern::Subdomains(n) => {
            n.clone()
        }
        femtoclaw_policy::HostPattern::Ip(ip) => ip.to_string(),
    };
    // Nothing listening on this machine: most likely a local model server
    // that was never started.
    let local = match &origin.host {
        femtoclaw_policy::HostPattern::Ip(ip) => ip.is_loopback(),
        femtoclaw_policy::HostPattern::Name(n) => n == "localhost",
        femtoclaw_policy::HostPattern::Subdomains(_) => false,
    };
    let hint = if local {
        format!(
            "; start the local model server first (Ollama: `ollama serve`, then `ollama pull {}`; llama.cpp: `llama-server -m MODEL.gguf --port {}`)",
            p.model, origin.port
        )
    } else {
        String::new()
    };
    let unreachable = |why: String| {
        RunError::Config(format!(
            "brain endpoint `{}` is unreachable: {why}{hint}",
            p.base_url
        ))
    };
    let connect = tokio::net::TcpStream::connect((host.as_str(), origin.port));
    match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable("no answer within 5 s".into())),
    }
}

impl Runtime {
    /// Checks what a provider brain needs before a run would find out: its
    /// key (named by the policy) is set, and its endpoint answers a
    /// connection. The error says what to do (`fc-host doctor`).
    pub async fn check_brain(&self, p: &ProviderBrain) -> Result<(), RunError> {
        provider_key(p)?;
        probe(p).await
    }
}

#[cfg(test)]
mod tests {
    use super::check_script;

    fn error(script: &str) -> String {
        match check_script(script.to_owned(), "s") {
            Err(crate::RunError::Config(m)) => m,
            other => panic!("{script}: expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn a_scripts_shape_is_checked_turn_by_turn_and_its_text_kept() {
        let good = r#"[{"content":null,"tool_calls":[{"name":"fs.read_file","arguments":{"path":"/a"}},{"name":"x\u0041"}]},{"content":"done","finish":"complete"},{}]"#;
        assert_eq!(check_script(good.to_owned(), "s").unwrap(), good);
        for (script, message) in [
            ("[", "s: not JSON"),
            ("{}", "s: must be a JSON array of turns"),
            ("[1]", "s: turn 1 is not an object"),
            (r#"[{}, {"tools": []}]"#, "s: turn 2: unknown key `tools`"),
            (r#"[{"finish": "stop"}]"#, "s: turn 1: `finish` must be"),
            (r#"[{"finish": 1}]"#, "s: turn 1: `finish` must be"),
            (
                r#"[{"content": 1}]"#,
                "s: turn 1: `content` must be a string or null",
            ),
            (
                r#"[{"tool_calls": {}}]"#,
                "s: turn 1: `tool_calls` must be an array",
            ),
            (
                r#"[{"tool_calls": [{"name": 1}]}]"#,
                "s: turn 1: each tool call needs",
            ),
            (
                r#"[{"tool_calls": [{"arguments": {}}]}]"#,
                "s: turn 1: each tool call needs",
            ),
            (
                r#"[{"tool_calls": [{"name": "a", "why": 1}]}]"#,
                "s: turn 1: each tool call needs",
            ),
        ] {
            let got = error(script);
            assert!(got.starts_with(message), "{script}: {got}");
        }
    }
}
