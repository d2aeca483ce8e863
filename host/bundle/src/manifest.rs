//! The manifest: what a bundle holds and asks for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BundleError, Result};

/// The `format` every manifest names.
pub const FORMAT: &str = "femtoclaw-bundle/1";

/// A semantic version `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version(pub u64, pub u64, pub u64);

impl Version {
    /// Parses `1.2.3`.
    pub fn parse(text: &str) -> Result<Version> {
        let parts: Vec<u64> = text
            .split('.')
            .map(|p| p.parse().map_err(|_| ()))
            .collect::<Result<_, ()>>()
            .map_err(|()| bad_version(text))?;
        match parts[..] {
            [a, b, c] => Ok(Version(a, b, c)),
            _ => Err(bad_version(text)),
        }
    }
}

fn bad_version(text: &str) -> BundleError {
    BundleError::Manifest(format!("`{text}` is not a version MAJOR.MINOR.PATCH"))
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What a component is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The agent (world `agent`); at most one.
    Agent,
    /// A brain (world `brain`).
    Brain,
    /// A capability (world `capability`).
    Capability,
}

/// The grants a capability asks for. An operator's policy may grant less,
/// never more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Tools it asks the agent be allowed to call.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Guest paths it asks for, with `ro` or `rw`.
    #[serde(default)]
    pub mounts: BTreeMap<String, String>,
    /// `net` patterns it asks for.
    #[serde(default)]
    pub net: Vec<String>,
    /// Environment variables and secrets (by name) it asks for.
    #[serde(default)]
    pub env: Vec<String>,
}

/// One component of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Its name, unique in the bundle; a policy refers to it as `bundle:NAME`.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The WIT world it implements (`femtoclaw:runtime/capability`, …).
    pub world: String,
    /// sha256 of its bytes, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// For a capability: its tool specs as `describe()` returns them
    /// (pinned: a different answer at run time refuses the run).
    #[serde(default)]
    pub tools: Vec<Value>,
    /// For a capability: the grants it asks for.
    #[serde(default)]
    pub grants: Grants,
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The application's name.
    pub name: String,
    /// Its version (rollback protection compares these).
    pub version: Version,
    /// Its components, in file order.
    pub components: Vec<Component>,
}

/// `value` in the JSON Canonicalization Scheme (RFC 8785): sorted keys (by
/// UTF-16 code units), no whitespace, numbers as ECMAScript prints them.
/// A number that form cannot carry exactly (an integer beyond 2^53, which
/// RFC 8785 would round) is refused rather than signed as another value.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>> {
    let bytes = serde_json_canonicalizer::to_vec(value)
        .map_err(|e| BundleError::Manifest(format!("no canonical form: {e}")))?;
    let back: Value = serde_json::from_slice(&bytes)
        .map_err(|e| BundleError::Manifest(format!("no canonical form: {e}")))?;
    if !same_numbers(value, &back) {
        return Err(BundleError::Manifest(
            "it holds a number that canonical JSON (RFC 8785) cannot carry exactly: \
             integers must lie within ±2^53; write a larger one as a string"
                .into(),
        ));
    }
    Ok(bytes)
}

/// Whether two values are equal, numbers compared by what they denote
/// (`1.0` and `1` are one number in RFC 8785).
fn same_numbers(a: &Value, b: &Value) -> bool {
    /// An integer exactly, else a float.
    fn number(n: &serde_json::Number) -> Result<i128, f64> {
        n.as_i64()
            .map(i128::from)
            .or(n.as_u64().map(i128::from))
            .ok_or(n.as_f64().unwrap_or(f64::NAN))
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (number(x), number(y)) {
            (Ok(x), Ok(y)) => x == y,
            (Err(x), Err(y)) => x == y,
            (Ok(i), Err(f)) | (Err(f), Ok(i)) => f.fract() == 0.0 && f as i128 == i,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_numbers(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| same_numbers(a, b)))
        }
        _ => a == b,
    }
}

impl Manifest {
    /// The canonical encoding, the JSON Canonicalization Scheme (RFC 8785):
    /// signatures cover exactly these bytes, and a verifier in any language
    /// with an RFC 8785 library reproduces them.
    pub fn canonical(&self) -> Result<Vec<u8>> {
        let value = serde_json::to_value(self).expect("invariant: the manifest serializes");
        canonical_json(&value)
    }

    /// Parses a manifest, refusing anything but its canonical encoding (so
    /// that one manifest has one byte string to sign).
    pub fn from_canonical(bytes: &[u8]) -> Result<Manifest> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Manifest(e.to_string()))?;
        if manifest.canonical()? != bytes {
            return Err(BundleError::Manifest(
                "the manifest is not in canonical form".into(),
            ));
        }
        manifest.check()?;
        Ok(manifest)
    }

    /// Field rules.
    pub fn check(&self) -> Result<()> {
        if self.format != FORMAT {
            return Err(BundleError::Manifest(format!(
                "format `{}` is not `{FORMAT}`",
                self.format
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for c in &self.components {
            if !names.insert(&c.name) {
                return Err(BundleError::Manifest(format!(
                    "component `{}` appears twice",
                    c.name
                )));
            }
            if c.sha256.len() != 64 || !c.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BundleError::Manifest(format!(
                    "component `{}` has no valid sha256",
                    c.name
                )));
            }
        }
        if self
            .components
            .iter()
            .filter(|c| c.role == Role::Agent)
            .count()
            > 1
        {
            return Err(BundleError::Manifest(
                "a bundle has at most one agent".into(),
            ));
        }
        Ok(())
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn numbers_take_their_ecmascript_form_and_keys_their_utf16_order() {
        let value =
            json!({ "b": [1.0, 0.1, 1e21, -0.0, 100], "a": { "\u{e000}": 1, "\u{1f600}": 2 } });
        let text = String::from_utf8(super::canonical_json(&value).unwrap()).unwrap();
        // U+1F600 is the surrogate pair D83D DE00, which sorts before E000.
        assert_eq!(
            text,
            "{\"a\":{\"\u{1f600}\":2,\"\u{e000}\":1},\"b\":[1,0.1,1e+21,0,100]}"
        );
    }

    #[test]
    fn an_integer_the_canonical_form_would_round_is_refused() {
        let exact = json!({ "maximum": 9_007_199_254_740_992_u64 });
        assert!(super::canonical_json(&exact).is_ok(), "2^53 is exact");
        let rounded = json!({ "maximum": 9_007_199_254_740_993_u64 });
        let e = super::canonical_json(&rounded).unwrap_err().to_string();
        assert!(e.contains("RFC 8785") && e.contains("2^53"), "{e}");
    }
}
