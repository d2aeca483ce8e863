//! Whether one policy grants no more than another: a tenant's run may bring
//! its own policy to `fc-host serve`, but only one inside the tenant's.

use std::fmt::Debug;

use crate::model::{
    Action, CapabilityGrant, ComponentLimits, HostPattern, Limits, MountMode, NetPattern,
    OnRefusal, OnUncertain, Policy, Rates, Rule,
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
        at_most("memory.max-stored", m.max_stored, c.max_stored)?;
        if ceiling.on_refusal == OnRefusal::Stop && self.on_refusal != OnRefusal::Stop {
            return Err(wider(
                "on-refusal",
                "the tenant's policy ends a run at its first refusal (`stop`)",
            ));
        }
        let missing = ceiling
            .approve
            .iter()
            .find(|t| self.grants(t) && !self.approve.contains(t));
        if let Some(tool) = missing {
            return Err(wider(
                "approve",
                format!("the tenant's policy has `{tool}` approved by a person"),
            ));
        }
        self.rules_within(ceiling)
    }

    /// Whether this policy grants `tool` (`<capability>.<tool>`).
    fn grants(&self, tool: &str) -> bool {
        tool.split_once('.').is_some_and(|(cap, name)| {
            self.capabilities
                .get(cap)
                .is_some_and(|g| g.tools.iter().any(|t| t == name))
        })
    }

    /// The ceiling's rules come first, unchanged, so that every call they
    /// match is judged as the ceiling judges it; rules after them can only
    /// refuse or ask for approval where the ceiling allowed, except an
    /// `allow` rule for a tool the ceiling already restricts with its own
    /// `allow` rules (the call it lets through the ceiling refuses).
    fn rules_within(&self, ceiling: &Policy) -> Result<(), Widening> {
        // The tenant's rules for the tools this policy grants (a rule for a
        // tool it does not grant judges nothing).
        let kept: Vec<&Rule> = ceiling
            .rules
            .iter()
            .filter(|r| self.grants(&r.tool))
            .collect();
        let n = kept.len();
        if self.rules.len() < n || self.rules[..n].iter().zip(&kept).any(|(a, b)| a != *b) {
            return Err(wider(
                "rules",
                format!(
                    "a run's policy starts with the tenant's {n} rules for the tools it grants, unchanged, and may add rules after them"
                ),
            ));
        }
        let restricted = |tool: &str| {
            ceiling
                .rules
                .iter()
                .any(|r| r.tool == tool && r.action == Action::Allow)
        };
        if let Some(rule) = self.rules[n..]
            .iter()
            .find(|r| r.action == Action::Allow && restricted(&r.tool))
        {
            return Err(wider(
                format!("rules.{}", rule.name),
                format!(
                    "it allows calls of `{}` that the tenant's own allow rules do not",
                    rule.tool
                ),
            ));
        }
        Ok(())
    }
}

/// Each rate at most the ceiling's (unset: no limit, the widest).
fn rates_within(key: &str, r: &Rates, c: &Rates) -> Result<(), Widening> {
    let check = |name: &str, v: Option<u64>, c: Option<u64>| match (v, c) {
        (_, None) => Ok(()),
        (Some(v), Some(c)) => at_most(&format!("{key}.{name}"), v, c),
        (None, Some(c)) => Err(wider(
            format!("{key}.{name}"),
            format!("unset; at most {c}"),
        )),
    };
    check(
        "calls-per-minute",
        r.calls_per_minute.map(u64::from),
        c.calls_per_minute.map(u64::from),
    )?;
    check(
        "calls-per-day",
        r.calls_per_day.map(u64::from),
        c.calls_per_day.map(u64::from),
    )?;
    check("read-per-run", r.read_per_run, c.read_per_run)?;
    check("written-per-run", r.written_per_run, c.written_per_run)
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
    at_most(
        "limits.approval-timeout",
        l.approval_timeout,
        c.approval_timeout,
    )?;
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
    rates_within(&format!("{key}.rates"), &grant.rates, &allowed.rates)?;
    let granted = allowed
        .tool_rates
        .iter()
        .filter(|(tool, _)| grant.tools.contains(tool));
    for (tool, ceiling) in granted {
        let rates = grant.tool_rates.get(tool).copied().unwrap_or_default();
        rates_within(&format!("{key}.tool-rates.{tool}"), &rates, ceiling)?;
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

#[cfg(test)]
mod rule_tests {
    use crate::Policy;

    const CAPS: &str =
        "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\", \"write_file\"]\n";

    fn policy(top: &str) -> Policy {
        Policy::parse_recorded("/p/p.toml", &format!("version = 1\n{top}{CAPS}")).unwrap()
    }

    fn widening(run: &str, ceiling: &str) -> Option<String> {
        policy(run).within(&policy(ceiling)).err().map(|w| w.key)
    }

    const PUBLIC: &str = "[[rules]]\nname = \"public\"\ntool = \"fs.read_file\"\naction = \"allow\"\nwhen = { \"/path\" = { path = \"/data/public/**\" } }\n";
    const DENY_WRITE: &str = "[[rules]]\nname = \"no-etc\"\ntool = \"fs.write_file\"\naction = \"deny\"\nwhen = { \"/path\" = { path = \"/etc/**\" } }\n";
    const ALL: &str = "[[rules]]\nname = \"all\"\ntool = \"fs.read_file\"\naction = \"allow\"\n";

    #[test]
    fn a_run_policy_keeps_the_ceilings_rules_approvals_and_rates() {
        assert_eq!(widening(PUBLIC, PUBLIC), None);
        assert_eq!(widening(&format!("{PUBLIC}{DENY_WRITE}"), PUBLIC), None);
        assert_eq!(widening(DENY_WRITE, PUBLIC).as_deref(), Some("rules"));
        assert_eq!(
            widening(&format!("{PUBLIC}{ALL}"), PUBLIC).as_deref(),
            Some("rules.all")
        );
        // An allow rule where the ceiling has none only narrows.
        assert_eq!(widening(PUBLIC, ""), None);
        let approve = "approve = [\"fs.write_file\"]\n";
        assert_eq!(widening("", approve).as_deref(), Some("approve"));
        assert_eq!(widening(approve, ""), None);
        let rate =
            |n: u32| format!("[capabilities.fs.tool-rates.read_file]\ncalls-per-minute = {n}\n");
        assert_eq!(widening(&rate(5), &rate(10)), None);
        assert_eq!(
            widening(&rate(20), &rate(10)).as_deref(),
            Some("capabilities.fs.tool-rates.read_file.calls-per-minute")
        );
        assert_eq!(
            widening("", &rate(10)).as_deref(),
            Some("capabilities.fs.tool-rates.read_file.calls-per-minute")
        );
        let stop = "on-refusal = \"stop\"\n";
        assert_eq!(widening("", stop).as_deref(), Some("on-refusal"));
        assert_eq!(widening(stop, ""), None);
    }

    #[test]
    fn approvals_and_rules_of_tools_a_run_does_not_grant_need_not_be_repeated() {
        let ceiling = policy(&format!("approve = [\"fs.write_file\"]\n{DENY_WRITE}"));
        let reads_only = Policy::parse_recorded(
            "/p/p.toml",
            "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\n",
        )
        .unwrap();
        assert_eq!(reads_only.within(&ceiling), Ok(()));
    }
}
