//! The validated policy: every field already parsed and checked.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use crate::rules::{Action, Condition, PathGlob, Rates, Rule, Test, Verdict};

/// Names accepted after `builtin:` in a capability's `component`.
pub const BUILTIN_CAPABILITIES: &[&str] = &["fs", "http"];

/// A validated policy. The default grants nothing: no capabilities, no brain,
/// and the limits of [`Limits::default`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// The file it was read from (empty for a policy built in code).
    pub path: PathBuf,
    /// The file's text, as parsed (journaled with each run, so that a run
    /// can be resumed under exactly the policy it started with).
    #[serde(skip)]
    pub text: String,
    /// Run budgets and component limits.
    pub limits: Limits,
    /// The brain, if the policy names one (`--brain` can supply or replace it).
    pub brain: Option<BrainSpec>,
    /// Capabilities by name, the prefix of their tools' addresses.
    pub capabilities: BTreeMap<String, CapabilityGrant>,
    /// What a resumed run does with a `write` call whose outcome is unknown
    /// (`[journal] on-uncertain`, default `fail`).
    pub on_uncertain: OnUncertain,
    /// What a refused tool call does to the run (`on-refusal`, default
    /// `inform`).
    pub on_refusal: OnRefusal,
    /// Which signing keys are trusted for bundles (`[trust]`).
    pub trust: Trust,
    /// Quotas of the agent's durable memory (`[memory]`).
    pub memory: MemoryLimits,
    /// Tools (`<capability>.<tool>`) whose every allowed call waits for a
    /// person's approval (`approve`).
    pub approve: Vec<String>,
    /// Rules on the validated arguments of granted tools (`[[rules]]`), in
    /// file order: see [`Policy::judge`].
    pub rules: Vec<Rule>,
}

/// `[memory]`: what an agent may keep in its durable memory. A write over a
/// quota is refused with a typed error the agent can read; the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MemoryLimits {
    /// Bytes of one value (`max-value`, default 64 KiB; keys are at most
    /// 256 bytes).
    pub max_value: u64,
    /// Keys one agent may hold (`max-keys`, default 1000).
    pub max_keys: u32,
    /// Bytes (keys and values) one run may write (`max-written`, default
    /// 1 MiB): each write is journaled, so this also bounds the journal.
    pub max_written: u64,
    /// Bytes (keys and values) of all agents' memory in the state directory
    /// (`max-stored`, default 16 MiB).
    pub max_stored: u64,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            max_value: 64 << 10,
            max_keys: 1000,
            max_written: 1 << 20,
            max_stored: 16 << 20,
        }
    }
}

/// `[trust]`: the keys whose bundle signatures are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Trust {
    /// Public key files (SPKI PEM), absolute.
    pub keys: Vec<PathBuf>,
    /// Whether every component not built into fc-host must come from a
    /// bundle signed by one of `keys` (default false).
    pub require_signature: bool,
}

/// What to do with a `write` tool call that was started but whose result
/// was never journaled (the process died in between).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnUncertain {
    /// Stop the resumed run and say so: a person decides.
    #[default]
    Fail,
    /// Run the call again with the same idempotency key.
    Retry,
    /// Do not run it again: the agent gets a `failed` error saying that the
    /// call's outcome is unknown.
    Skip,
}

impl OnUncertain {
    /// The policy's spelling: `fail`, `retry` or `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUncertain::Fail => "fail",
            OnUncertain::Retry => "retry",
            OnUncertain::Skip => "skip",
        }
    }

    /// Parses the policy's spelling.
    pub fn parse(text: &str) -> Option<OnUncertain> {
        match text {
            "fail" => Some(OnUncertain::Fail),
            "retry" => Some(OnUncertain::Retry),
            "skip" => Some(OnUncertain::Skip),
            _ => None,
        }
    }
}

/// What a tool call the policy refuses does to the run (`on-refusal`).
/// Either way the refusal, its rule and its detail are journaled and
/// audited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnRefusal {
    /// The agent gets the refusal as a typed error and the run goes on.
    #[default]
    Inform,
    /// The run ends there, as a policy violation (exit 14).
    Stop,
}

impl OnRefusal {
    /// The policy's spelling: `inform` or `stop`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnRefusal::Inform => "inform",
            OnRefusal::Stop => "stop",
        }
    }
}

/// Run budgets and the default limits of every component. A budget that
/// runs out stops the run (or the call) with the limit outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Limits {
    /// Brain turns per run (`max-steps`, default 16).
    pub max_steps: u32,
    /// Tool calls per run, refused ones included (`max-tool-calls`, default 32).
    pub max_tool_calls: u32,
    /// Wall time of the whole run (`run-timeout`, default 600 s).
    #[serde(with = "secs")]
    pub run_timeout: Duration,
    /// Bytes of one tool result (`max-tool-output`, default 1 MiB).
    pub max_tool_output: u64,
    /// Log lines one component may emit per run (`max-log-lines`, default 1000).
    pub max_log_lines: u32,
    /// Model tokens (input + output, as the provider reports them) per run
    /// (`max-tokens`, default: no cap).
    pub max_tokens: Option<u64>,
    /// Bytes of one run's journal events (`max-journal`, default 64 MiB):
    /// a run that writes more is stopped, so no guest can fill the disk
    /// through the journal.
    pub max_journal: u64,
    /// How long a call waits for a person's approval before it is denied
    /// (`approval-timeout`, default 300 s).
    #[serde(with = "secs")]
    pub approval_timeout: Duration,
    /// Limits of each component unless its own `[capabilities.NAME.limits]`
    /// narrows them.
    pub component: ComponentLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 16,
            max_tool_calls: 32,
            run_timeout: Duration::from_secs(600),
            max_tool_output: 1 << 20,
            max_log_lines: 1000,
            max_tokens: None,
            max_journal: 64 << 20,
            approval_timeout: Duration::from_secs(300),
            component: ComponentLimits::default(),
        }
    }
}

/// What one component may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ComponentLimits {
    /// Linear memory in bytes, all memories together (`memory`, default 256 MiB).
    pub memory: u64,
    /// Fuel (about one unit per wasm instruction) per call (`fuel`,
    /// default 2·10⁹).
    pub fuel: u64,
    /// Wall time per call (`call-timeout`, default 30 s).
    #[serde(with = "secs")]
    pub call_timeout: Duration,
}

impl Default for ComponentLimits {
    fn default() -> Self {
        ComponentLimits {
            memory: 256 << 20,
            fuel: 2_000_000_000,
            call_timeout: Duration::from_secs(30),
        }
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }
}

/// Which brain proposes the agent's next turns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum BrainSpec {
    /// Replays the turns of a JSON script file in order.
    Scripted {
        /// The script file (absolute).
        script: PathBuf,
    },
    /// A model behind an HTTP API: OpenAI's Chat Completions (spoken by
    /// OpenAI, Ollama, llama.cpp, vLLM, LM Studio …) or Anthropic's Messages.
    Provider(ProviderBrain),
}

/// The HTTP API a provider brain speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// `POST {base-url}/chat/completions`, `Authorization: Bearer KEY`.
    Openai,
    /// `POST {base-url}/messages`, `x-api-key: KEY`, `anthropic-version`.
    Anthropic,
}

/// A provider brain's settings.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProviderBrain {
    /// Which API.
    pub protocol: Protocol,
    /// The API's base URL (`http://127.0.0.1:11434/v1`); the brain may reach
    /// this origin and nothing else.
    pub base_url: String,
    /// The model name sent with every request.
    pub model: String,
    /// Sampling temperature, if set.
    pub temperature: Option<f64>,
    /// Output tokens per request (required by Anthropic's API; default 1024).
    pub max_tokens: u32,
    /// The host variable holding the API key (`None`: keyless local server).
    /// The key is added to requests by the host; the brain never sees it.
    pub api_key_env: Option<String>,
    /// Whether `OPENAI_API_KEY` is used when `api_key_env` is `None` (an
    /// OpenAI brain from a policy; never `--brain local`).
    #[serde(default)]
    pub api_key_fallback: bool,
}

impl Eq for ProviderBrain {}

/// Where a component's code comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentSource {
    /// A component embedded in `fc-host` (`builtin:NAME`).
    Builtin(String),
    /// A `.wasm` component file (absolute).
    File(PathBuf),
    /// A component of the bundle being run (`bundle:NAME`).
    Bundle(String),
    /// Not a component: an MCP server whose tools the host calls through
    /// the gate (`mcp = URL`, or `command = [...]` with `unsandboxed`).
    Mcp(McpServer),
}

/// An MCP server that serves a capability's tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "transport")]
pub enum McpServer {
    /// Streamable HTTP at `url` (`mcp = URL`). The host connects to the
    /// URL's origin and nothing else, adding `headers` to every request.
    Http {
        /// The endpoint, as written.
        url: String,
        /// Its origin, the one destination; a private or loopback address
        /// only if the URL names it literally (or `localhost`), as in `net`.
        origin: NetPattern,
        /// Headers the host adds, by lowercase name; no component and no
        /// model sees them.
        headers: BTreeMap<String, HeaderSource>,
    },
    /// A host process speaking MCP on its stdin and stdout (`command`,
    /// with `unsandboxed = true`): it runs outside the WebAssembly sandbox,
    /// with a cleared environment plus the named `env` and `secrets`, in
    /// `cwd`.
    Stdio {
        /// The program (absolute, or found on the host's `PATH`) and its
        /// arguments.
        command: Vec<String>,
        /// Its working directory (absolute).
        cwd: PathBuf,
    },
}

/// Where the value of a header sent to an HTTP MCP server comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeaderSource {
    /// Written in the policy (not a secret).
    Value(String),
    /// A secret (redacted from everything a run shows).
    Secret(SecretSource),
    /// `Bearer ` and a secret (`bearer = { env = "VAR" }`, the
    /// `authorization` header).
    Bearer(SecretSource),
}

/// Everything one capability is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CapabilityGrant {
    /// Its code.
    pub component: ComponentSource,
    /// Exactly the tools the agent may call, without the capability prefix.
    pub tools: Vec<String>,
    /// Host directories it sees, by guest path.
    pub mounts: Vec<Mount>,
    /// Outgoing HTTP(S) destinations it may reach.
    pub net: Vec<NetPattern>,
    /// Names of host environment variables passed to it.
    pub env: Vec<String>,
    /// Secrets injected into its environment, by variable name.
    pub secrets: BTreeMap<String, SecretSource>,
    /// Per-tool call quotas per run.
    pub max_calls: BTreeMap<String, u32>,
    /// Rates over all its tools' calls together (`rates`).
    pub rates: Rates,
    /// Rates of single tools (`tool-rates.TOOL`).
    pub tool_rates: BTreeMap<String, Rates>,
    /// Its limits (the run's component limits, narrowed by its own table).
    pub limits: ComponentLimits,
}

impl CapabilityGrant {
    /// Whether its code runs outside the WebAssembly sandbox (a stdio MCP
    /// server: a host process).
    pub fn unsandboxed(&self) -> bool {
        matches!(
            self.component,
            ComponentSource::Mcp(McpServer::Stdio { .. })
        )
    }
}

/// Where a secret's value comes from. The value itself never appears in a
/// policy, a log or a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretSource {
    /// A host environment variable.
    Env(String),
    /// A file (absolute path); its content with trailing newlines removed.
    File(PathBuf),
}

/// One allowed outgoing destination: `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetPattern {
    /// `http` or `https`.
    pub scheme: String,
    /// The host this pattern names.
    pub host: HostPattern,
    /// The port (the scheme's default when the pattern names none).
    pub port: u16,
}

/// The host part of a [`NetPattern`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostPattern {
    /// A DNS name, lowercase (`api.github.com`).
    Name(String),
    /// Any subdomain of a name (`*.example.com` matches `a.example.com`,
    /// not `example.com`).
    Subdomains(String),
    /// An IP address, written literally in the pattern. Only a literal (or
    /// the name `localhost`) grants a private, loopback or link-local address.
    Ip(IpAddr),
}

impl NetPattern {
    /// Parses `scheme://host[:port]` as a policy's `net` entry.
    pub fn parse(text: &str) -> Result<NetPattern, String> {
        crate::units::net_pattern(text)
    }
}

impl std::fmt::Display for NetPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = match &self.host {
            HostPattern::Name(n) => n.clone(),
            HostPattern::Subdomains(n) => format!("*.{n}"),
            HostPattern::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            HostPattern::Ip(ip) => ip.to_string(),
        };
        write!(f, "{}://{host}:{}", self.scheme, self.port)
    }
}

/// A host directory made visible to a capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Absolute, normalised guest path (`/data`).
    pub guest: String,
    /// Canonical host directory.
    pub host: PathBuf,
    /// Read-only or read-write.
    pub mode: MountMode,
}

/// Access mode of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountMode {
    /// Files and directories can be read, never changed.
    ReadOnly,
    /// Files and directories can be read, created, changed and removed.
    ReadWrite,
}

impl MountMode {
    /// The policy's spelling: `ro` or `rw`.
    pub fn as_str(self) -> &'static str {
        match self {
            MountMode::ReadOnly => "ro",
            MountMode::ReadWrite => "rw",
        }
    }
}

impl Policy {
    /// Reads and validates a policy file, or the preset an argument names
    /// exactly (`Strict`, `Standard`, `Dev`: [`crate::PRESETS`]; a file
    /// of that name is `./Strict`).
    pub fn load(path: impl AsRef<Path>) -> crate::Result<Policy> {
        let path = path.as_ref();
        if let Some(preset) = crate::Preset::named(path) {
            let at = preset.path().map_err(|source| crate::PolicyError::Read {
                path: path.to_owned(),
                source,
            })?;
            return crate::parse::parse(&at, preset.text, crate::parse::Files::Check);
        }
        let text =
            std::fs::read_to_string(path).map_err(|source| match crate::Preset::like(path) {
                Some(p) if source.kind() == std::io::ErrorKind::NotFound => {
                    crate::PolicyError::Misspelled {
                        path: path.to_owned(),
                        preset: p.name,
                        names: crate::presets::names(),
                    }
                }
                _ => crate::PolicyError::Read {
                    path: path.to_owned(),
                    source,
                },
            })?;
        crate::parse::parse(path, &text, crate::parse::Files::Check)
    }

    /// Validates policy text as if it were a file `policy.toml` in the
    /// working directory (its relative paths resolve against it).
    ///
    /// ```
    /// let policy = femtoclaw_policy::Policy::from_toml(
    ///     "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"list_dir\"]\nmounts = [{ host = \".\", guest = \"/work\", mode = \"ro\" }]\n",
    /// )?;
    /// assert_eq!(policy.capabilities["fs"].tools, ["list_dir"]);
    /// # Ok::<(), femtoclaw_policy::PolicyError>(())
    /// ```
    pub fn from_toml(text: &str) -> crate::Result<Policy> {
        let here = std::env::current_dir().map_err(|source| crate::PolicyError::Read {
            path: "policy.toml".into(),
            source,
        })?;
        Policy::parse(here.join("policy.toml"), text)
    }

    /// Validates policy text as if it had been read from `path` (relative
    /// paths inside resolve against `path`'s directory).
    pub fn parse(path: impl AsRef<Path>, text: &str) -> crate::Result<Policy> {
        crate::parse::parse(path.as_ref(), text, crate::parse::Files::Check)
    }

    /// Validates a policy journaled with a run, without looking at the file
    /// system: the files and directories it names need not exist (a replay
    /// runs no capability, and may run on another machine). Paths are kept
    /// as resolved against `path`'s directory, not canonicalised.
    pub fn parse_recorded(path: impl AsRef<Path>, text: &str) -> crate::Result<Policy> {
        crate::parse::parse(path.as_ref(), text, crate::parse::Files::Ignore)
    }
}

impl ProviderBrain {
    /// A provider brain from settings given outside a policy (`--brain
    /// local`); the base URL is checked like the policy's `base-url`.
    pub fn new(
        protocol: Protocol,
        base_url: &str,
        model: &str,
        api_key_env: Option<String>,
    ) -> Result<ProviderBrain, String> {
        crate::parse::base_url_origin(base_url)
            .map_err(|e| format!("base URL `{base_url}`: {e}"))?;
        Ok(ProviderBrain {
            protocol,
            base_url: base_url.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            temperature: None,
            max_tokens: 1024,
            api_key_env,
            api_key_fallback: false,
        })
    }

    /// The one origin (`scheme://host[:port]`) this brain may reach.
    pub fn origin(&self) -> NetPattern {
        crate::parse::base_url_origin(&self.base_url).expect("invariant: checked when parsed")
    }
}
