//! Strict JSON: the parser a validator and a consumer cannot disagree about.
//!
//! `serde_json::Value` silently keeps the last of duplicate keys
//! (`{"path":"ok","path":"/etc/passwd"}`), which lets a payload mean one thing
//! to a validator and another to a tool. This parser refuses duplicates, caps
//! size before parsing and depth while parsing, and refuses trailing data.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Caps applied to untrusted JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of the text in bytes (default 1 MiB).
    pub max_bytes: usize,
    /// Maximum nesting of arrays and objects (default 64).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 20,
            max_depth: 64,
        }
    }
}

/// Why a text is not strict JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The text is larger than the cap; it was not parsed.
    #[error("{size} bytes exceed the cap of {max} bytes")]
    TooLarge {
        /// Size of the text.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// Not JSON, or JSON with a duplicate key, too deep, or followed by more
    /// data.
    #[error("{0}")]
    Malformed(String),
}

/// Parses `text` as exactly one strict JSON value.
pub fn parse_strict(text: &str, limits: Limits) -> Result<Value, JsonError> {
    if text.len() > limits.max_bytes {
        return Err(JsonError::TooLarge {
            size: text.len(),
            max: limits.max_bytes,
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict {
        depth: 0,
        max_depth: limits.max_depth,
    }
    .deserialize(&mut de)
    .map_err(|e| JsonError::Malformed(e.to_string()))?;
    de.end()
        .map_err(|e| JsonError::Malformed(format!("trailing data after the JSON value: {e}")))?;
    Ok(value)
}

#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
    max_depth: usize,
}

impl Strict {
    fn nested<E: de::Error>(self) -> Result<Strict, E> {
        if self.depth >= self.max_depth {
            return Err(E::custom(format_args!(
                "nesting deeper than {} levels",
                self.max_depth
            )));
        }
        Ok(Strict {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let value = map.next_value_seed(inner)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Value, JsonError> {
        parse_strict(s, Limits::default())
    }

    #[test]
    fn accepts_plain_json() {
        assert_eq!(
            parse(r#"{"a":[1,2.5,"x",null,true]}"#).unwrap()["a"][2],
            "x"
        );
    }

    #[test]
    fn rejects_duplicate_keys_even_when_escaped() {
        for text in [
            r#"{"path":"a","path":"b"}"#,
            r#"{"path":"a","p\u0061th":"b"}"#,
            r#"{"x":{"k":1,"k":2}}"#,
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains("duplicate key"), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_trailing_data_and_non_json() {
        for text in [
            r#"{"a":1} {"b":2}"#,
            "{\"a\":1}x",
            "read /etc/passwd",
            "",
            "{'a':1}",
            "[1,]",
            "NaN",
            "{\"a\":1,}",
        ] {
            assert!(parse(text).is_err(), "accepted {text:?}");
        }
    }

    #[test]
    fn caps_depth_and_size() {
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(
            parse(&deep)
                .unwrap_err()
                .to_string()
                .contains("nesting deeper than 64")
        );
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse(&ok).is_ok());
        let limits = Limits {
            max_bytes: 8,
            max_depth: 4,
        };
        assert_eq!(
            parse_strict("[1,2,3,4,5]", limits),
            Err(JsonError::TooLarge { size: 11, max: 8 })
        );
    }

    #[test]
    fn rejects_out_of_range_numbers() {
        assert!(parse("1e400").is_err());
        assert!(parse("[-1e999]").is_err());
    }
}
