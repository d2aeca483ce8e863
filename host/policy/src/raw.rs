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
    pub limits: Option<RawLimits>,
    #[serde(default)]
    pub brain: Option<RawBrain>,
    #[serde(default)]
    pub capabilities: BTreeMap<Spanned<String>, RawCapability>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawLimits {
    pub max_steps: Option<Spanned<i64>>,
    pub max_tool_calls: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawBrain {
    pub kind: Spanned<String>,
    pub script: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawCapability {
    pub component: Spanned<String>,
    pub tools: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub mounts: Vec<Spanned<RawMount>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMount {
    pub guest: Spanned<String>,
    pub host: Spanned<String>,
    pub mode: Spanned<String>,
}
