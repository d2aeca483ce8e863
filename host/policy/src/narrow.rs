//! Whether one policy grants no more than another: a tenant's run may bring
//! its own policy to `fc-host serve`, but only one inside the tenant's.

use std::fmt::Debug;

use crate::model::{
    CapabilityGrant, ComponentLimits, HostPattern, Limits, MountMode, NetPattern, OnUncertain,
    Policy,
};

/// A grant of a policy that its ceiling does not allow: the key, and what
/// the ceiling allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` grants more than the tenant's policy: {message}")]
pub struct Widening {
    /// The dotted policy key, e.g. `capabilities.fs.tools`.
    pub key: String,
    /// What is wider, and what the ceiling allows.
    pub message: String,
}

fn wider(key: impl Into<String>, message: impl Into<String>) -> Widening {
    Widening {
        key: key.into(),
        message: message.into(),
    }
}

/// `value` may be at most `ceiling`.
fn at_most<T: PartialOrd + Debug>(key: &str, value: T, ceiling: T) -> Result<(), Widening> {
    if value > ceiling {
        return Err(wider(key, format!("{value:?} is above {ceiling:?}")));
    }
    Ok(())
}

impl Policy {
    /// Checks that this policy grants nothing `ceiling` does not: every
    /// limit at most the ceiling's, every capability the ceiling's own (same
    /// component) with a subset of its tools, mounts inside its mounts and
    /// no more writable, a subset of its network, variables and secrets, and
    /// the same brain (or none, which takes the ceiling's). The error names
    /// the first key that widens.
    pub fn within(&self, ceiling: &Policy) -> Result<(), Widening> {
        limits_within(&self.limits, &ceiling.limits)?;
        if self.brain.is_some() && self.brain != ceiling.brain {
            return Err(wider(
                "brain",
                "a run's policy may name no brain but the tenant's own",
            ));
        }
        for (name, grant) in &self.capabilities {
            let key = format!("capabilities.{name}");
            let Some(allowed) = ceiling.capabilities.get(name) else {
                return Err(wider(key, "the tenant's policy grants no such capability"));
            };
            capability_within(&key, grant, allowed)?;
        }
        if self.on_uncertain != ceiling.on_uncertain && self.on_uncertain != OnUncertain::Fail {
            return Err(wider(
                "journal.on-uncertain",
                format!(
                    "only `fail` or the tenant's `{}`",
                    ceiling.on_uncertain.as_str()
                ),
            ));
        }
        if ceiling.trust.require_signature && !self.trust.require_signature {
            return Err(wider(
                "trust.require-signature",
                "the tenant's policy requires signed components",
            ));
        }
        if let Some(key) = self
            .trust
            .keys
            .iter()
            .find(|k| !ceiling.trust.keys.contains(k))
        {
            return Err(wider(
                "trust.keys",
                format!("`{}` is not a key the tenant trusts", key.display()),
            ));
        }
        let (m, c) = (&self.memory, &ceiling.memory);
        at_most("memory.max-value", m.max_value, c.max_value)?;
        at_most("memory.max-keys", m.max_keys, c.max_keys)?;
        at_most("memory.max-written", m.max_written, c.max_written)?;
        at_most("memory.max-stored", m.max_stored, c.max_stored)
    }
}

fn limits_within(l: &Limits, c: &Limits) -> Result<(), Widening> {
    at_most("limits.max-steps", l.max_steps, c.max_steps)?;
    at_most("limits.max-tool-calls", l.max_tool_calls, c.max_tool_calls)?;
    at_most("limits.run-timeout", l.run_timeout, c.run_timeout)?;
    at_most(
        "limits.max-tool-output",
        l.max_tool_output,
        c.max_tool_output,
    )?;
    at_most("limits.max-log-lines", l.max_log_lines, c.max_log_lines)?;
    at_most("limits.max-journal", l.max_journal, c.max_journal)?;
    if let Some(ceiling) = c.max_tokens {
        match l.max_tokens {
            Some(tokens) => at_most("limits.max-tokens", tokens, ceiling)?,
            None => {
                return Err(wider(
                    "limits.max-tokens",
                    format!("unset; at most {ceiling}"),
                ));
            }
        }
    }
    component_within("limits", &l.component, &c.component)
}

fn component_within(key: &str, l: &ComponentLimits, c: &ComponentLimits) -> Result<(), Widening> {
    at_most(&format!("{key}.memory"), l.memory, c.memory)?;
    at_most(&format!("{key}.fuel"), l.fuel, c.fuel)?;
    at_most(
        &format!("{key}.call-timeout"),
        l.call_timeout,
        c.call_timeout,
    )
}

fn capability_within(
    key: &str,
    grant: &CapabilityGrant,
    allowed: &CapabilityGrant,
) -> Result<(), Widening> {
    if grant.component != allowed.component {
        return Err(wider(
            format!("{key}.component"),
            format!("the tenant's policy runs {:?} here", allowed.component),
        ));
    }
    if let Some(tool) = grant.tools.iter().find(|t| !allowed.tools.contains(t)) {
        return Err(wider(
            format!("{key}.tools"),
            format!("`{tool}` is not one of {:?}", allowed.tools),
        ));
    }
    for mount in &grant.mounts {
        let inside = allowed.mounts.iter().any(|a| {
            mount.host.starts_with(&a.host)
                && (mount.mode == MountMode::ReadOnly || a.mode == MountMode::ReadWrite)
        });
        if !inside {
            return Err(wider(
                format!("{key}.mounts"),
                format!(
                    "`{}` ({}) is not inside a mount of the tenant's policy with that access",
                    mount.guest,
                    mount.mode.as_str()
                ),
            ));
        }
    }
    if let Some(net) = grant
        .net
        .iter()
        .find(|n| !allowed.net.iter().any(|a| covers(a, n)))
    {
        return Err(wider(
            format!("{key}.net"),
            format!("`{net}` is not allowed"),
        ));
    }
    if let Some(var) = grant.env.iter().find(|v| !allowed.env.contains(v)) {
        return Err(wider(
            format!("{key}.env"),
            format!("`{var}` is not passed"),
        ));
    }
    for (var, source) in &grant.secrets {
        if allowed.secrets.get(var) != Some(source) {
            return Err(wider(
                format!("{key}.secrets"),
                format!("`{var}` is not the tenant's secret of that name"),
            ));
        }
    }
    for tool in &grant.tools {
        if let Some(&ceiling) = allowed.max_calls.get(tool) {
            let calls = grant.max_calls.get(tool).copied().unwrap_or(u32::MAX);
            at_most(&format!("{key}.max-calls.{tool}"), calls, ceiling)?;
        }
    }
    component_within(&format!("{key}.limits"), &grant.limits, &allowed.limits)
}

/// Whether pattern `a` allows everything `n` does.
fn covers(a: &NetPattern, n: &NetPattern) -> bool {
    if a.scheme != n.scheme || a.port != n.port {
        return false;
    }
    match (&a.host, &n.host) {
        (x, y) if x == y => true,
        (
            HostPattern::Subdomains(parent),
            HostPattern::Name(name) | HostPattern::Subdomains(name),
        ) => name.ends_with(&format!(".{parent}")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(dir: &std::path::Path, text: &str) -> Policy {
        Policy::parse(dir.join("p.toml"), text).expect("a valid policy")
    }

    const CEILING: &str = r#"
version = 1
[capabilities.fs]
component = "builtin:fs"
tools = ["read_file", "list_dir"]
mounts = [{ guest = "/data", host = "data", mode = "ro" }]
[capabilities.web]
component = "builtin:http"
tools = ["get"]
net = ["https://*.example.com"]
"#;

    fn key_of(dir: &std::path::Path, text: &str) -> Option<String> {
        let ceiling = parse(dir, CEILING);
        parse(dir, text).within(&ceiling).err().map(|w| w.key)
    }

    #[test]
    fn a_narrower_policy_is_within_and_each_widening_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("data/sub")).expect("mkdir");
        std::fs::write(dir.path().join("brain.json"), "[]").expect("write");
        let ceiling = parse(dir.path(), CEILING);
        assert_eq!(ceiling.within(&ceiling), Ok(()));
        let narrow = r#"
version = 1
[limits]
max-steps = 4
[capabilities.fs]
component = "builtin:fs"
tools = ["read_file"]
mounts = [{ guest = "/d", host = "data/sub", mode = "ro" }]
[capabilities.web]
component = "builtin:http"
tools = ["get"]
net = ["https://api.example.com"]
"#;
        assert_eq!(key_of(dir.path(), narrow), None);
        let cases = [
            ("[limits]\nmax-steps = 17", "limits.max-steps"),
            ("[limits]\nfuel = 3000000000", "limits.fuel"),
            (
                "[capabilities.shell]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/d\", host = \"data\", mode = \"ro\" }]",
                "capabilities.shell",
            ),
            (
                "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"write_file\"]\nmounts = [{ guest = \"/d\", host = \"data\", mode = \"rw\" }]",
                "capabilities.fs.tools",
            ),
            (
                "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"list_dir\"]\nmounts = [{ guest = \"/d\", host = \"data\", mode = \"rw\" }]",
                "capabilities.fs.mounts",
            ),
            (
                "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"list_dir\"]\nmounts = [{ guest = \"/d\", host = \".\", mode = \"ro\" }]",
                "capabilities.fs.mounts",
            ),
            (
                "[capabilities.web]\ncomponent = \"builtin:http\"\ntools = [\"get\"]\nnet = [\"https://example.org\"]",
                "capabilities.web.net",
            ),
            (
                "[capabilities.web]\ncomponent = \"builtin:http\"\ntools = [\"get\"]\nnet = [\"http://api.example.com\"]",
                "capabilities.web.net",
            ),
            (
                "[brain]\nkind = \"scripted\"\nscript = \"brain.json\"",
                "brain",
            ),
            (
                "[journal]\non-uncertain = \"retry\"",
                "journal.on-uncertain",
            ),
            ("[memory]\nmax-stored = \"1GiB\"", "memory.max-stored"),
        ];
        for (text, key) in cases {
            let policy = format!("version = 1\n{text}\n");
            assert_eq!(key_of(dir.path(), &policy).as_deref(), Some(key), "{text}");
        }
    }
}
