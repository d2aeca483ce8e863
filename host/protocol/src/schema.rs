//! JSON Schemas of tools, compiled once and checked on every call.

use serde_json::Value;

use crate::strict::{Limits, parse_strict};

/// A schema that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {which} schema: {message}")]
pub struct SchemaError {
    /// `input` or `output`.
    pub which: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// A value that violates a schema: every failed constraint, with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .errors.join("; "))]
pub struct Violation {
    /// One entry per failed constraint, `at /pointer: message`.
    pub errors: Vec<String>,
}

/// One compiled JSON Schema. The dialect is the schema's `$schema` (drafts
/// 4, 6, 7, 2019-09 and 2020-12), else 2020-12. Every `format` is asserted,
/// and a format the validator does not know is refused when the schema is
/// compiled: no format passes unchecked. A reference to another document is
/// refused: a schema cannot make the host fetch anything.
pub struct Schema(jsonschema::Validator);

impl Schema {
    /// Compiles a schema (an object, or `true`/`false`).
    pub fn compile(schema: &Value) -> Result<Schema, String> {
        jsonschema::options()
            .should_validate_formats(true)
            .should_ignore_unknown_formats(false)
            .build(schema)
            .map(Schema)
            .map_err(|e| e.to_string())
    }

    /// Checks a value: every failed constraint, with its location.
    pub fn check(&self, value: &Value) -> Result<(), Violation> {
        check(&self.0, value)
    }
}

/// The compiled input (and optional output) schema of one tool.
pub struct ToolSchema {
    input: Schema,
    output: Option<Schema>,
}

impl std::fmt::Debug for ToolSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSchema")
            .field("has_output", &self.output.is_some())
            .finish()
    }
}

/// How many violations a report lists before it stops.
const MAX_REPORTED: usize = 8;

impl ToolSchema {
    /// Compiles a tool's schemas (JSON text). References to other documents
    /// are refused: a schema cannot make the host fetch anything.
    pub fn compile(input: &str, output: Option<&str>) -> Result<ToolSchema, SchemaError> {
        Ok(ToolSchema {
            input: compile_one("input", input)?,
            output: output.map(|o| compile_one("output", o)).transpose()?,
        })
    }

    /// Checks call arguments against the input schema.
    pub fn check_input(&self, value: &Value) -> Result<(), Violation> {
        self.input.check(value)
    }

    /// Checks a result against the output schema, if the tool declared one.
    pub fn check_output(&self, value: &Value) -> Result<(), Violation> {
        self.output.as_ref().map_or(Ok(()), |s| s.check(value))
    }
}

fn compile_one(which: &'static str, text: &str) -> Result<Schema, SchemaError> {
    let err = |message: String| SchemaError { which, message };
    let schema = parse_strict(
        text,
        Limits {
            max_bytes: 256 << 10,
            max_depth: 64,
        },
    )
    .map_err(|e| err(e.to_string()))?;
    if !schema.is_object() {
        return Err(err("a tool schema must be a JSON object".into()));
    }
    Schema::compile(&schema).map_err(err)
}

fn check(validator: &jsonschema::Validator, value: &Value) -> Result<(), Violation> {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(MAX_REPORTED)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("at `{}`: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Violation { errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PATH: &str = r#"{"type":"object","properties":{"path":{"type":"string"}},"required":["path"],"additionalProperties":false}"#;

    #[test]
    fn accepts_valid_and_names_each_violation() {
        let s = ToolSchema::compile(PATH, None).unwrap();
        assert!(s.check_input(&json!({"path": "/data/a"})).is_ok());
        let missing = s.check_input(&json!({})).unwrap_err().to_string();
        assert!(
            missing.contains("\"path\" is a required property"),
            "{missing}"
        );
        let wrong = s.check_input(&json!({"path": 3})).unwrap_err().to_string();
        assert!(wrong.contains("/path"), "{wrong}");
        let extra = s
            .check_input(&json!({"path": "a", "admin": true}))
            .unwrap_err()
            .to_string();
        assert!(extra.contains("admin"), "{extra}");
    }

    #[test]
    fn output_schema_is_optional() {
        let s = ToolSchema::compile(PATH, None).unwrap();
        assert!(s.check_output(&json!("anything")).is_ok());
        let s = ToolSchema::compile(PATH, Some(r#"{"type":"string"}"#)).unwrap();
        assert!(s.check_output(&json!(1)).is_err());
    }

    #[test]
    fn refuses_bad_and_remote_schemas() {
        assert!(ToolSchema::compile("not json", None).is_err());
        assert!(ToolSchema::compile("[]", None).is_err());
        assert!(ToolSchema::compile(r#"{"type":"nonsense"}"#, None).is_err());
        let remote = r#"{"$ref":"https://example.com/schema.json"}"#;
        assert!(ToolSchema::compile(remote, None).is_err());
        let unknown = r#"{"type":"string","format":"colour"}"#;
        let e = ToolSchema::compile(unknown, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("colour"), "an unknown format is refused: {e}");
    }

    #[test]
    fn internationalised_formats_are_checked() {
        let s = ToolSchema::compile(r#"{"type":"string","format":"idn-hostname"}"#, None).unwrap();
        assert!(s.check_input(&json!("münchen.example")).is_ok());
        assert!(s.check_input(&json!("-not a host-")).is_err());
    }
}
