//! The policy file exactly as written. Every struct denies unknown fields;
//! `flatten` is never used because it silently disables that check.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawPolicy {
    pub version: Spanned<i64>,
    #[serde(default)]
    pub on_refusal: Option<Spanned<String>>,
    #[serde(default)]
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub brain: Option<RawBrain>,
    #[serde(default)]
    pub capabilities: BTreeMap<Spanned<String>, RawCapability>,
    #[serde(default)]
    pub journal: Option<RawJournal>,
    #[serde(default)]
    pub trust: Option<RawTrust>,
    #[serde(default)]
    pub memory: Option<RawMemory>,
    #[serde(default)]
    pub approve: Vec<Spanned<String>>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

/// One `[[rules]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRule {
    pub name: Spanned<String>,
    pub tool: Spanned<String>,
    pub action: Spanned<String>,
    #[serde(default)]
    pub when: BTreeMap<Spanned<String>, Spanned<RawTest>>,
}

/// The tests of one condition (each given is applied).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTest {
    pub path: Option<String>,
    pub url: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub one_of: Option<Vec<toml::Value>>,
}

/// `rates` and `tool-rates.TOOL` of a capability.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRates {
    pub calls_per_minute: Option<Spanned<i64>>,
    pub calls_per_day: Option<Spanned<i64>>,
    pub read_per_run: Option<Spanned<RawSize>>,
    pub written_per_run: Option<Spanned<RawSize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMemory {
    pub max_value: Option<Spanned<RawSize>>,
    pub max_keys: Option<Spanned<i64>>,
    pub max_written: Option<Spanned<RawSize>>,
    pub max_stored: Option<Spanned<RawSize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTrust {
    #[serde(default)]
    pub keys: Vec<Spanned<String>>,
    pub require_signature: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawJournal {
    pub on_uncertain: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawLimits {
    pub max_steps: Option<Spanned<i64>>,
    pub max_tool_calls: Option<Spanned<i64>>,
    pub run_timeout: Option<Spanned<String>>,
    pub max_tool_output: Option<Spanned<RawSize>>,
    pub max_log_lines: Option<Spanned<i64>>,
    pub memory: Option<Spanned<RawSize>>,
    pub fuel: Option<Spanned<i64>>,
    pub call_timeout: Option<Spanned<String>>,
    pub max_tokens: Option<Spanned<i64>>,
    pub max_journal: Option<Spanned<RawSize>>,
    pub approval_timeout: Option<Spanned<String>>,
}

/// Per-component overrides of the run's component limits.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawComponentLimits {
    pub memory: Option<Spanned<RawSize>>,
    pub fuel: Option<Spanned<i64>>,
    pub call_timeout: Option<Spanned<String>>,
}

/// A size: bytes as an integer, or a string with a unit (`"64MiB"`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSize {
    Bytes(i64),
    Text(String),
}

/// Where a secret's value comes from.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawSecret {
    pub env: Option<String>,
    pub file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawBrain {
    pub kind: Spanned<String>,
    pub script: Option<Spanned<String>>,
    pub base_url: Option<Spanned<String>>,
    pub model: Option<Spanned<String>>,
    pub temperature: Option<Spanned<f64>>,
    pub max_tokens: Option<Spanned<i64>>,
    pub api_key_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCapability {
    pub component: Option<Spanned<String>>,
    pub mcp: Option<Spanned<String>>,
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    pub unsandboxed: Option<Spanned<bool>>,
    pub cwd: Option<Spanned<String>>,
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, Spanned<RawHeader>>,
    pub bearer: Option<Spanned<RawSecret>>,
    pub tools: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub mounts: Vec<Spanned<RawMount>>,
    #[serde(default)]
    pub net: Vec<Spanned<String>>,
    #[serde(default)]
    pub env: Vec<Spanned<String>>,
    #[serde(default)]
    pub secrets: BTreeMap<Spanned<String>, Spanned<RawSecret>>,
    #[serde(default)]
    pub max_calls: BTreeMap<Spanned<String>, Spanned<i64>>,
    pub limits: Option<RawComponentLimits>,
    pub rates: Option<RawRates>,
    #[serde(default)]
    pub tool_rates: BTreeMap<Spanned<String>, RawRates>,
}

/// A header for an HTTP MCP server: a value, or a secret's source.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum RawHeader {
    Value(String),
    Secret(RawSecret),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMount {
    pub guest: Spanned<String>,
    pub host: Spanned<String>,
    pub mode: Spanned<String>,
}
