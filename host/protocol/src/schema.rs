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

/// The compiled input (and optional output) schema of one tool.
pub struct ToolSchema {
    input: jsonschema::Validator,
    output: Option<jsonschema::Validator>,
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
        check(&self.input, value)
    }

    /// Checks a result against the output schema, if the tool declared one.
    pub fn check_output(&self, value: &Value) -> Result<(), Violation> {
        self.output.as_ref().map_or(Ok(()), |v| check(v, value))
    }
}

fn compile_one(which: &'static str, text: &str) -> Result<jsonschema::Validator, SchemaError> {
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
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| err(e.to_string()))
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
    }
}
