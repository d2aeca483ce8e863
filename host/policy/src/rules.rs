//! What a policy says about a granted tool's calls beyond granting it:
//! rules on the validated arguments (`[[rules]]`), human approval
//! (`approve`), and rates over time (`rates`, `tool-rates`).
//!
//! Rules are plain TOML, judged by one function ([`Policy::judge`]) that the
//! runtime calls after the arguments passed the tool's schema (decision 41
//! says why not Cedar). The rules of a tool are tried in file order and
//! the first whose conditions all hold decides; a tool with an `allow` rule
//! is refused where none matches (deny by default), and an allowed call of
//! a tool in `approve` waits for a person.

use serde::Serialize;
use serde_json::Value;

use crate::model::{HostPattern, NetPattern, Policy};

/// One `[[rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Its name, unique in the policy: every decision it makes names it as
    /// `rules.NAME`.
    pub name: String,
    /// The granted tool it judges, `<capability>.<tool>`.
    pub tool: String,
    /// What it does to a call that meets every condition.
    pub action: Action,
    /// Conditions on the validated arguments, all of which must hold (none:
    /// every call of the tool).
    pub when: Vec<Condition>,
}

/// What a rule does to a call it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// The call goes on (to approval, if its tool is in `approve`).
    Allow,
    /// The call is refused before any capability sees it.
    Deny,
    /// The call waits for a person's approval.
    Approve,
}

impl Action {
    /// The policy's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Approve => "approve",
        }
    }
}

/// A test of the argument value at a JSON pointer (RFC 6901). A value that
/// is absent, or of another type than the test reads, does not meet it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    /// Where in the arguments (`/path`; empty: the whole value).
    pub pointer: String,
    /// What the value must be.
    #[serde(flatten)]
    pub test: Test,
}

impl Eq for Condition {}

/// The tests a condition can make.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Test {
    /// A string that, read as an absolute path and normalised lexically
    /// (`.` and `..` resolved, `//` folded), matches a glob: `*` within one
    /// path segment, `**` across segments. A path that climbs above `/` or
    /// is not absolute matches nothing.
    Path(PathGlob),
    /// A URL string whose scheme, host and port match a `net` pattern
    /// (`https://*.github.com`), as the network gate matches them.
    Url(NetPattern),
    /// A number within bounds (inclusive).
    Range {
        /// The least value allowed.
        #[serde(skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// The greatest value allowed.
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    /// One of these JSON values, exactly.
    OneOf(Vec<Value>),
}

/// A path glob, compiled once when the policy is parsed.
#[derive(Debug, Clone)]
pub struct PathGlob {
    text: String,
    glob: globset::GlobMatcher,
}

impl PathGlob {
    /// Compiles an absolute path glob.
    pub fn new(text: &str) -> Result<PathGlob, String> {
        if !text.starts_with('/') {
            return Err(format!(
                "path pattern `{text}` must be absolute (tool paths are guest paths such as `/data/**`)"
            ));
        }
        let glob = globset::GlobBuilder::new(text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("path pattern `{text}`: {}", e.kind()))?;
        Ok(PathGlob {
            text: text.to_owned(),
            glob: glob.compile_matcher(),
        })
    }

    /// Whether `path`, normalised, matches.
    pub fn matches(&self, path: &str) -> bool {
        normalise(path).is_some_and(|p| self.glob.is_match(p))
    }
}

impl PartialEq for PathGlob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Serialize for PathGlob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// An absolute path with `.`, `..` and empty segments resolved; `None` if
/// it is not absolute, climbs above `/`, or holds a NUL.
fn normalise(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

impl Test {
    fn holds(&self, value: &Value) -> bool {
        match (self, value) {
            (Test::Path(glob), Value::String(s)) => glob.matches(s),
            (Test::Url(pattern), Value::String(s)) => url_matches(pattern, s),
            (Test::Range { min, max }, Value::Number(n)) => n
                .as_f64()
                .is_some_and(|x| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m)),
            (Test::OneOf(values), v) => values.contains(v),
            _ => false,
        }
    }
}

/// Whether a URL's origin matches a `net` pattern (an IP literal matches
/// only an IP pattern, a name only a name pattern).
fn url_matches(pattern: &NetPattern, text: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else {
        return false;
    };
    let port_ok = url.port_or_known_default() == Some(pattern.port);
    let host_ok = match (url.host(), &pattern.host) {
        (Some(url::Host::Domain(d)), HostPattern::Name(n)) => d.eq_ignore_ascii_case(n),
        (Some(url::Host::Domain(d)), HostPattern::Subdomains(n)) => {
            let d = d.to_ascii_lowercase();
            d.strip_suffix(n.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        }
        (Some(url::Host::Ipv4(ip)), HostPattern::Ip(p)) => std::net::IpAddr::V4(ip) == *p,
        (Some(url::Host::Ipv6(ip)), HostPattern::Ip(p)) => std::net::IpAddr::V6(ip) == *p,
        _ => false,
    };
    url.scheme() == pattern.scheme && port_ok && host_ok
}

impl Condition {
    /// Whether the arguments meet this condition.
    pub fn holds(&self, arguments: &Value) -> bool {
        arguments
            .pointer(&self.pointer)
            .is_some_and(|v| self.test.holds(v))
    }
}

/// How the policy judges one schema-valid call of a granted tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What happens to the call.
    pub action: Action,
    /// The rule behind it: `rules.NAME`, `rules` (the tool has allow rules
    /// and none matched), `approve`, or `capabilities.CAP.tools` (the grant
    /// alone).
    pub rule: String,
}

impl Policy {
    /// Judges a call of the granted tool `tool` (`<capability>.<tool>`)
    /// whose arguments passed its schema.
    pub fn judge(&self, tool: &str, arguments: &Value) -> Verdict {
        let mut allow_rules = false;
        let mut verdict = None;
        for rule in self.rules.iter().filter(|r| r.tool == tool) {
            allow_rules |= rule.action == Action::Allow;
            if rule.when.iter().all(|c| c.holds(arguments)) {
                verdict = Some(Verdict {
                    action: rule.action,
                    rule: format!("rules.{}", rule.name),
                });
                break;
            }
        }
        let verdict = verdict.unwrap_or_else(|| match allow_rules {
            true => Verdict {
                action: Action::Deny,
                rule: "rules".into(),
            },
            false => Verdict {
                action: Action::Allow,
                rule: format!(
                    "capabilities.{}.tools",
                    tool.split_once('.').map_or(tool, |(c, _)| c)
                ),
            },
        });
        if verdict.action == Action::Allow && self.approve.iter().any(|t| t == tool) {
            return Verdict {
                action: Action::Approve,
                rule: "approve".into(),
            };
        }
        verdict
    }
}

/// Rates over time of a capability's calls, or of one tool's
/// (`[capabilities.NAME.rates]`, `[capabilities.NAME.tool-rates.TOOL]`).
/// Counted from the journal, with journaled timestamps, so a replay decides
/// the same and a resumed run keeps its counts. Unset: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Rates {
    /// Calls that ran in any 60 seconds.
    pub calls_per_minute: Option<u32>,
    /// Calls that ran on one UTC day in every run of the state directory
    /// (in `fc-host serve`, the tenant's).
    pub calls_per_day: Option<u32>,
    /// Bytes of results handed back to the run (what it read), per run.
    pub read_per_run: Option<u64>,
    /// Bytes of arguments handed to the capability (what it was given to
    /// write), per run.
    pub written_per_run: Option<u64>,
}

impl Rates {
    /// Whether no rate is set.
    pub fn is_empty(&self) -> bool {
        *self == Rates::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_are_normalised_before_they_are_matched() {
        let g = PathGlob::new("/data/public/**").unwrap();
        assert!(g.matches("/data/public/a.txt"));
        assert!(g.matches("/data/public/x/y/z"));
        assert!(g.matches("//data/./public/a"));
        assert!(!g.matches("/data/public/../private/a"));
        assert!(!g.matches("/data/private/a"));
        assert!(!g.matches("data/public/a"));
        assert!(!g.matches("/../data/public/a"));
        let one = PathGlob::new("/data/*.txt").unwrap();
        assert!(one.matches("/data/a.txt"));
        assert!(!one.matches("/data/sub/a.txt"));
        assert!(PathGlob::new("data/**").is_err());
        assert!(PathGlob::new("/data/[").is_err());
    }

    #[test]
    fn urls_match_like_the_network_gate() {
        let p = NetPattern::parse("https://*.github.com").unwrap();
        assert!(url_matches(&p, "https://api.github.com/repos"));
        assert!(!url_matches(&p, "https://github.com/"));
        assert!(!url_matches(&p, "https://api.github.com.evil.io/"));
        assert!(!url_matches(&p, "https://evilgithub.com/"));
        assert!(!url_matches(&p, "http://api.github.com/"));
        assert!(!url_matches(&p, "https://api.github.com:8443/"));
        let ip = NetPattern::parse("http://127.0.0.1:8080").unwrap();
        assert!(url_matches(&ip, "http://127.0.0.1:8080/x"));
        assert!(!url_matches(&ip, "http://localhost:8080/x"));
        assert!(!url_matches(&ip, "not a url"));
    }

    #[test]
    fn ranges_and_enumerations() {
        let range = Test::Range {
            min: Some(1.0),
            max: Some(10.0),
        };
        assert!(range.holds(&json!(1)) && range.holds(&json!(10.0)));
        assert!(!range.holds(&json!(0)) && !range.holds(&json!(11)) && !range.holds(&json!("5")));
        let one_of = Test::OneOf(vec![json!("GET"), json!("HEAD")]);
        assert!(one_of.holds(&json!("GET")));
        assert!(!one_of.holds(&json!("get")) && !one_of.holds(&json!("POST")));
    }
}
