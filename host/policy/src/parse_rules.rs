//! `approve`, `[[rules]]` and rates, raw → validated. Every rule and
//! approval names a tool the policy grants: a rule about a tool nobody can
//! call is a mistake the author should hear about.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;

use crate::Result;
use crate::model::CapabilityGrant;
use crate::parse::{Ctx, is_identifier, positive, size};
use crate::raw::{RawRates, RawRule, RawTest};
use crate::rules::{Action, Condition, PathGlob, Rates, Rule, Test};
use crate::units;

/// Whether `tool` (`<capability>.<tool>`) is granted; else a message.
fn granted(tool: &str, capabilities: &BTreeMap<String, CapabilityGrant>) -> Result<(), String> {
    let Some((cap, name)) = tool.split_once('.') else {
        return Err(format!(
            "`{tool}` is not a tool address (`<capability>.<tool>`, e.g. `fs.write_file`)"
        ));
    };
    match capabilities.get(cap) {
        Some(grant) if grant.tools.iter().any(|t| t == name) => Ok(()),
        Some(_) => Err(format!(
            "`{tool}` is not granted: add `{name}` to `capabilities.{cap}.tools`, or remove it here"
        )),
        None => Err(format!("`{tool}`: no capability `{cap}` is granted")),
    }
}

pub(crate) fn approve(
    cx: &Ctx,
    raw: &[Spanned<String>],
    capabilities: &BTreeMap<String, CapabilityGrant>,
) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for tool in raw {
        let t = tool.get_ref();
        if let Err(m) = granted(t, capabilities) {
            return cx.err(tool.span(), "approve", m);
        }
        if out.contains(t) {
            return cx.err(tool.span(), "approve", format!("`{t}` is listed twice"));
        }
        out.push(t.clone());
    }
    Ok(out)
}

pub(crate) fn rules(
    cx: &Ctx,
    raw: Vec<RawRule>,
    capabilities: &BTreeMap<String, CapabilityGrant>,
) -> Result<Vec<Rule>> {
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for rule in raw {
        let name = rule.name.get_ref();
        if !is_identifier(name) {
            return cx.err(
                rule.name.span(),
                "rules.name",
                format!("`{name}` is not a rule name (lowercase letters, digits, `_` and `-`, starting with a letter)"),
            );
        }
        let key = format!("rules.{name}");
        if !names.insert(name.clone()) {
            return cx.err(
                rule.name.span(),
                &key,
                "two rules have this name: each decision names its rule, so names are unique",
            );
        }
        if let Err(m) = granted(rule.tool.get_ref(), capabilities) {
            return cx.err(rule.tool.span(), &format!("{key}.tool"), m);
        }
        let action = match rule.action.get_ref().as_str() {
            "allow" => Action::Allow,
            "deny" => Action::Deny,
            "approve" => Action::Approve,
            other => {
                return cx.err(
                    rule.action.span(),
                    &format!("{key}.action"),
                    format!("`{other}` is not `allow`, `deny` or `approve`"),
                );
            }
        };
        let mut when = Vec::new();
        for (pointer, test) in &rule.when {
            let at = format!("{key}.when");
            if !(pointer.get_ref().is_empty() || pointer.get_ref().starts_with('/')) {
                return cx.err(
                    pointer.span(),
                    &at,
                    format!(
                        "`{}` is not a JSON pointer: it starts with `/` (`/path`, `/headers/0`)",
                        pointer.get_ref()
                    ),
                );
            }
            let tests = tests(test.get_ref()).or_else(|m| cx.err(test.span(), &at, m))?;
            when.extend(tests.into_iter().map(|test| Condition {
                pointer: pointer.get_ref().clone(),
                test,
            }));
        }
        out.push(Rule {
            name: name.clone(),
            tool: rule.tool.into_inner(),
            action,
            when,
        });
    }
    Ok(out)
}

/// The tests one condition table makes.
fn tests(raw: &RawTest) -> Result<Vec<Test>, String> {
    let mut out = Vec::new();
    if let Some(p) = &raw.path {
        out.push(Test::Path(PathGlob::new(p)?));
    }
    if let Some(u) = &raw.url {
        out.push(Test::Url(units::net_pattern(u)?));
    }
    if raw.min.is_some() || raw.max.is_some() {
        if raw.min.zip(raw.max).is_some_and(|(a, b)| a > b) {
            return Err("`min` is above `max`".into());
        }
        if [raw.min, raw.max].iter().flatten().any(|v| !v.is_finite()) {
            return Err("`min` and `max` are finite numbers".into());
        }
        out.push(Test::Range {
            min: raw.min,
            max: raw.max,
        });
    }
    if let Some(values) = &raw.one_of {
        let json: Result<Vec<serde_json::Value>, _> = values.iter().map(toml_to_json).collect();
        out.push(Test::OneOf(json?));
    }
    if out.is_empty() {
        return Err("a condition needs a test: `path`, `url`, `min`/`max` or `one-of`".into());
    }
    Ok(out)
}

/// A TOML value as the JSON value arguments would hold.
fn toml_to_json(v: &toml::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or("`one-of` values are finite numbers")?,
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Array(a) => J::Array(a.iter().map(toml_to_json).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        toml::Value::Datetime(_) => return Err("`one-of` values are JSON values, not dates".into()),
    })
}

pub(crate) fn rates(cx: &Ctx, raw: &RawRates, key: &str) -> Result<Rates> {
    Ok(Rates {
        calls_per_minute: raw
            .calls_per_minute
            .as_ref()
            .map(|v| positive(cx, v, &format!("{key}.calls-per-minute")))
            .transpose()?,
        calls_per_day: raw
            .calls_per_day
            .as_ref()
            .map(|v| positive(cx, v, &format!("{key}.calls-per-day")))
            .transpose()?,
        read_per_run: raw
            .read_per_run
            .as_ref()
            .map(|v| size(cx, v, &format!("{key}.read-per-run")))
            .transpose()?,
        written_per_run: raw
            .written_per_run
            .as_ref()
            .map(|v| size(cx, v, &format!("{key}.written-per-run")))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Action, Policy};

    const BASE: &str =
        "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\", \"write_file\"]\n";

    fn parse(extra: &str) -> crate::Result<Policy> {
        Policy::parse_recorded("/p/policy.toml", &format!("version = 1\n{extra}{BASE}"))
    }

    fn judged(p: &Policy, tool: &str, args: serde_json::Value) -> (Action, String) {
        let v = p.judge(tool, &args);
        (v.action, v.rule)
    }

    #[test]
    fn the_first_matching_rule_decides_and_allow_rules_deny_the_rest() {
        let p = parse(
            r#"approve = ["fs.write_file"]
[[rules]]
name = "no-secrets"
tool = "fs.read_file"
action = "deny"
when = { "/path" = { path = "/data/public/secret*" } }
[[rules]]
name = "public"
tool = "fs.read_file"
action = "allow"
when = { "/path" = { path = "/data/public/**" } }
[[rules]]
name = "small-writes"
tool = "fs.write_file"
action = "deny"
when = { "/size" = { min = 1000 } }
"#,
        )
        .unwrap();
        let read = |path: &str| judged(&p, "fs.read_file", json!({ "path": path }));
        assert_eq!(
            read("/data/public/a.txt"),
            (Action::Allow, "rules.public".into())
        );
        assert_eq!(
            read("/data/public/secret.txt"),
            (Action::Deny, "rules.no-secrets".into())
        );
        assert_eq!(read("/data/private/a.txt"), (Action::Deny, "rules".into()));
        assert_eq!(
            read("/data/public/../private/a.txt"),
            (Action::Deny, "rules".into())
        );
        let write = |v| judged(&p, "fs.write_file", v);
        assert_eq!(
            write(json!({ "size": 10 })),
            (Action::Approve, "approve".into())
        );
        assert_eq!(
            write(json!({ "size": 5000 })),
            (Action::Deny, "rules.small-writes".into())
        );
        let plain = parse("").unwrap();
        assert_eq!(
            judged(&plain, "fs.read_file", json!({ "path": "/x" })),
            (Action::Allow, "capabilities.fs.tools".into())
        );
    }

    #[test]
    fn rules_and_rates_refuse_mistakes_naming_the_key() {
        for (extra, key, says) in [
            (
                "approve = [\"fs.list_dir\"]\n",
                "`approve`",
                "add `list_dir`",
            ),
            (
                "approve = [\"net.get\"]\n",
                "`approve`",
                "no capability `net`",
            ),
            (
                "approve = [\"read_file\"]\n",
                "`approve`",
                "not a tool address",
            ),
            (
                "[[rules]]\nname = \"a\"\ntool = \"fs.read_file\"\naction = \"permit\"\n",
                "`rules.a.action`",
                "`permit`",
            ),
            (
                "[[rules]]\nname = \"A\"\ntool = \"fs.read_file\"\naction = \"deny\"\n",
                "`rules.name`",
                "not a rule name",
            ),
            (
                "[[rules]]\nname = \"a\"\ntool = \"fs.read_file\"\naction = \"deny\"\n[[rules]]\nname = \"a\"\ntool = \"fs.read_file\"\naction = \"deny\"\n",
                "`rules.a`",
                "unique",
            ),
            (
                "[[rules]]\nname = \"a\"\ntool = \"fs.read_file\"\naction = \"deny\"\nwhen = { \"path\" = { path = \"/x\" } }\n",
                "`rules.a.when`",
                "JSON pointer",
            ),
            (
                "[[rules]]\nname = \"a\"\ntool = \"fs.read_file\"\naction = \"deny\"\nwhen = { \"/path\" = { path = \"x/**\" } }\n",
                "`rules.a.when`",
                "absolute",
            ),
            (
                "[[rules]]\nname = \"a\"\ntool = \"fs.read_file\"\naction = \"deny\"\nwhen = { \"/n\" = { min = 5, max = 1 } }\n",
                "`rules.a.when`",
                "above `max`",
            ),
            (
                "[[rules]]\nname = \"a\"\ntool = \"fs.read_file\"\naction = \"deny\"\nwhen = { \"/u\" = { url = \"https://*\" } }\n",
                "`rules.a.when`",
                "every host",
            ),
            (
                "[[rules]]\nname = \"a\"\ntool = \"fs.read_file\"\naction = \"deny\"\nwhen = { \"/u\" = {} }\n",
                "`rules.a.when`",
                "needs a test",
            ),
            (
                "[capabilities.fs.rates]\ncalls-per-minute = 0\n",
                "`capabilities.fs.rates.calls-per-minute`",
                "between 1",
            ),
            (
                "[capabilities.fs.tool-rates.list_dir]\nread-per-run = \"1MiB\"\n",
                "`capabilities.fs.tool-rates.list_dir`",
                "not in",
            ),
            (
                "[limits]\napproval-timeout = \"0s\"\n",
                "`limits.approval-timeout`",
                "",
            ),
        ] {
            let err = parse(extra).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(says), "{extra}: {err}");
        }
        let unknown = parse(
            "[[rules]]\nname = \"a\"\ntool = \"fs.read_file\"\naction = \"deny\"\nwhen = { \"/p\" = { glob = \"/x\" } }\n",
        );
        assert!(unknown.unwrap_err().to_string().contains("glob"));
    }

    #[test]
    fn rates_parse_per_capability_and_per_tool() {
        let p = parse("[capabilities.fs.rates]\ncalls-per-minute = 30\nread-per-run = \"1MiB\"\n[capabilities.fs.tool-rates.write_file]\nwritten-per-run = 4096\n").unwrap();
        let fs = &p.capabilities["fs"];
        assert_eq!(fs.rates.calls_per_minute, Some(30));
        assert_eq!(fs.rates.read_per_run, Some(1 << 20));
        assert_eq!(fs.tool_rates["write_file"].written_per_run, Some(4096));
        assert!(fs.tool_rates["write_file"].calls_per_minute.is_none());
    }
}
