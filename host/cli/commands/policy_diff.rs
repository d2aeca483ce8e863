//! `fc-host policy diff A B`: what changing policy A into B grants or takes
//! away, for code review. Both policies are compared in their effective
//! form (every default filled in, paths resolved, as `policy explain
//! --json` prints them), so a change of spelling is no change, and a
//! default that B states explicitly is none either.
//!
//! One rule classifies every difference: what B has and A had not (a
//! capability, a tool, a mount, a net rule, a variable, a secret) is
//! granted; what A had and B has not is taken away (a mount whose mode
//! changed is one taken away and one granted); a limit or a rate raised
//! widens, lowered narrows (an unset limit being no limit); a `deny` or
//! `approve` rule or an `approve` entry added narrows, removed widens; an
//! `allow` rule added or removed, rules reordered and anything else
//! changes.

use serde_json::Value;

/// How a difference moves the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// B allows something A did not.
    Grants,
    /// A allowed something B does not.
    TakesAway,
    /// A limit is higher in B (or gone).
    Widens,
    /// A limit is lower in B (or new).
    Narrows,
    /// A value differs in a way that is neither (a model, a brain URL).
    Changes,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Grants => "+ grants    ",
            Kind::TakesAway => "- takes away",
            Kind::Widens => "> widens    ",
            Kind::Narrows => "< narrows   ",
            Kind::Changes => "~ changes   ",
        }
    }
}

/// One difference: where, how, and the values on each side.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    /// Dotted path of the key (`capabilities.fs.tools`).
    pub key: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

impl Change {
    /// One line of the text report.
    pub fn line(&self) -> String {
        let show = |v: &Option<Value>| v.as_ref().map_or("(none)".into(), Value::to_string);
        let values = match (&self.before, &self.after) {
            (None, Some(a)) => a.to_string(),
            (Some(b), None) => b.to_string(),
            _ => format!("{} -> {}", show(&self.before), show(&self.after)),
        };
        format!("{} {}: {values}", self.kind.label(), self.key)
    }
}

/// The differences from policy `a` to policy `b` (their effective JSON).
pub fn diff(a: &Value, b: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    // Where each policy was read from is no difference in what it grants.
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Value::Object(m) = &mut v {
            m.remove("path");
        }
        v
    };
    walk("", Some(&strip(a)), Some(&strip(b)), false, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `whole`: the key's parent is on one side only (a capability granted or
/// taken away whole), so what it holds is granted or taken with it.
fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, whole: bool, out: &mut Vec<Change>) {
    let change = |kind, before: Option<&Value>, after: Option<&Value>| Change {
        key: path.to_owned(),
        kind,
        before: before.cloned(),
        after: after.cloned(),
    };
    // A key on one side only is compared with an empty value of its kind,
    // so an added capability lists each thing it is granted.
    let (empty_object, empty_array) = (Value::Object(Default::default()), Value::Array(vec![]));
    let absent = |other: Option<&Value>| match other {
        Some(Value::Object(_)) => Some(&empty_object),
        Some(Value::Array(_)) => Some(&empty_array),
        _ => None,
    };
    // A key on one side only holds what comes or goes with it, unless it
    // is itself a set of limits (a tool's rates).
    let children_whole = whole || ((a.is_none() || b.is_none()) && !is_limit(path));
    let (a, b) = (a.or(absent(b)), b.or(absent(a)));
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                walk(&join(path, k), x.get(k), y.get(k), children_whole, out);
            }
        }
        // Rules are tried in order, and a rule that refuses or asks for
        // approval narrows what the policy allows where it is added.
        (Some(Value::Array(x)), Some(Value::Array(y))) if path == "rules" || path == "approve" => {
            let restricts = |v: &Value| path == "approve" || v["action"] != "allow";
            // Rules both have, tried in another order, decide otherwise.
            let common = |a: &[Value], b: &[Value]| -> Vec<Value> {
                a.iter()
                    .filter(|v| b.contains(v))
                    .map(|v| v["name"].clone())
                    .collect()
            };
            let (before, after) = (common(x, y), common(y, x));
            if before != after {
                out.push(change(
                    Kind::Changes,
                    Some(&Value::from(before)),
                    Some(&Value::from(after)),
                ));
            }
            for v in y.iter().filter(|v| !x.contains(v)) {
                let kind = if restricts(v) {
                    Kind::Narrows
                } else {
                    Kind::Changes
                };
                out.push(change(kind, None, Some(v)));
            }
            for v in x.iter().filter(|v| !y.contains(v)) {
                let kind = if restricts(v) {
                    Kind::Widens
                } else {
                    Kind::Changes
                };
                out.push(change(kind, Some(v), None));
            }
        }
        // Lists in a policy are sets (tools, net rules, mounts, variables):
        // an element is granted or taken away, order is no change.
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for v in y.iter().filter(|v| !x.contains(v)) {
                out.push(change(Kind::Grants, None, Some(v)));
            }
            for v in x.iter().filter(|v| !y.contains(v)) {
                out.push(change(Kind::TakesAway, Some(v), None));
            }
        }
        // A limit set where there was none narrows; dropped, it widens
        // (unless it comes or goes with its capability).
        (None, Some(v)) if !v.is_null() => {
            let kind = if is_limit(path) && !whole {
                Kind::Narrows
            } else {
                Kind::Grants
            };
            out.push(change(kind, None, Some(v)))
        }
        (Some(v), None) if !v.is_null() => {
            let kind = if is_limit(path) && !whole {
                Kind::Widens
            } else {
                Kind::TakesAway
            };
            out.push(change(kind, Some(v), None))
        }
        (Some(x), Some(y)) if x != y => out.push(change(kind(path, x, y), Some(x), Some(y))),
        _ => {}
    }
}

/// A limit's magnitude: a number, or a duration as the policy prints it
/// (`30000ms`); `None` for anything else.
fn magnitude(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.strip_suffix("ms")?.parse().ok(),
        _ => None,
    }
}

/// Whether the key is a limit (a budget, a quota, a rate).
fn is_limit(path: &str) -> bool {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    path.starts_with("limits.")
        || path.starts_with("memory.")
        || path.contains(".limits.")
        || path.contains(".max-calls.")
        || path.contains(".rates.")
        || path.contains(".tool-rates.")
        || leaf.starts_with("max-")
}

fn kind(path: &str, a: &Value, b: &Value) -> Kind {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let is_limit = is_limit(path);
    if leaf == "require-signature" {
        // Requiring a signature narrows what may run; dropping it widens.
        return if b == &Value::Bool(true) {
            Kind::Narrows
        } else {
            Kind::Widens
        };
    }
    if is_limit {
        match (magnitude(a), magnitude(b), a.is_null(), b.is_null()) {
            (Some(x), Some(y), ..) if y > x => return Kind::Widens,
            (Some(_), Some(_), ..) => return Kind::Narrows,
            // No limit is the widest limit.
            (_, _, true, false) => return Kind::Narrows,
            (_, _, false, true) => return Kind::Widens,
            _ => {}
        }
    }
    Kind::Changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(a: Value, b: Value) -> Vec<(String, Kind)> {
        diff(&a, &b).into_iter().map(|c| (c.key, c.kind)).collect()
    }

    #[test]
    fn every_difference_is_classified_by_one_rule() {
        let a = json!({
            "path": "a.toml",
            "capabilities": { "fs": { "tools": ["read_file"], "net": [], "limits": { "fuel": 10, "call-timeout": "30000ms" } } },
            "limits": { "max-steps": 8, "max-tokens": null },
            "trust": { "require-signature": true },
            "brain": { "model": "small" },
        });
        let b = json!({
            "path": "b.toml",
            "capabilities": {
                "fs": { "tools": ["list_dir", "read_file", "write_file"], "net": [], "limits": { "fuel": 5, "call-timeout": "60000ms" } },
                "http": { "tools": ["get"], "max-calls": { "get": 3 } },
            },
            "limits": { "max-steps": 8, "max-tokens": 1000 },
            "trust": { "require-signature": false },
            "brain": { "model": "large" },
        });
        assert_eq!(
            kinds(a, b),
            [
                ("brain.model".into(), Kind::Changes),
                ("capabilities.fs.limits.call-timeout".into(), Kind::Widens),
                ("capabilities.fs.limits.fuel".into(), Kind::Narrows),
                ("capabilities.fs.tools".into(), Kind::Grants),
                ("capabilities.fs.tools".into(), Kind::Grants),
                // An added capability's quota comes with it: granted.
                ("capabilities.http.max-calls.get".into(), Kind::Grants),
                ("capabilities.http.tools".into(), Kind::Grants),
                ("limits.max-tokens".into(), Kind::Narrows),
                ("trust.require-signature".into(), Kind::Widens),
            ]
        );
    }

    #[test]
    fn the_same_policy_from_two_files_has_no_difference() {
        let p = json!({ "path": "a.toml", "capabilities": { "fs": { "tools": ["a", "b"] } } });
        let mut q = p.clone();
        q["path"] = json!("b.toml");
        q["capabilities"]["fs"]["tools"] = json!(["b", "a"]);
        assert!(diff(&p, &q).is_empty());
    }

    #[test]
    fn rules_and_approvals_narrow_or_widen_by_what_they_do() {
        let deny =
            json!({ "name": "no-etc", "tool": "fs.read_file", "action": "deny", "when": [] });
        let allow =
            json!({ "name": "public", "tool": "fs.read_file", "action": "allow", "when": [] });
        let a = json!({ "rules": [allow.clone()], "approve": [],
                        "capabilities": { "fs": { "rates": { "calls-per-minute": null } } } });
        let b = json!({ "rules": [deny.clone(), allow.clone()], "approve": ["fs.write_file"],
                        "capabilities": { "fs": { "rates": { "calls-per-minute": 10 } } } });
        assert_eq!(
            kinds(a.clone(), b.clone()),
            [
                ("approve".into(), Kind::Narrows),
                (
                    "capabilities.fs.rates.calls-per-minute".into(),
                    Kind::Narrows
                ),
                ("rules".into(), Kind::Narrows),
            ]
        );
        assert_eq!(
            kinds(b, a),
            [
                ("approve".into(), Kind::Widens),
                (
                    "capabilities.fs.rates.calls-per-minute".into(),
                    Kind::Widens
                ),
                ("rules".into(), Kind::Widens),
            ]
        );
        let swapped = json!({ "rules": [allow.clone(), deny.clone()] });
        let original = json!({ "rules": [deny, allow] });
        assert_eq!(kinds(original, swapped), [("rules".into(), Kind::Changes)]);
    }
}
