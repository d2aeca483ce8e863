//! Protocol: malformed and hostile calls of every granted tool, built from
//! that tool's own input schema, are refused by the gate before its
//! capability runs.
//!
//! The calls go through a session (the path an agent's or an MCP client's
//! call takes), not journaled. A call counts as refused when the client is
//! shown an error naming the refusing rule and the runtime's count of calls
//! the gate let through to that tool did not move.

use femtoclaw_policy::OnRefusal;
use femtoclaw_runtime::{Runtime, Session, SessionPlan, Shown};
use serde_json::{Map, Value, json};

use super::report::{Report, Verdict};

const SECTION: &str = "protocol";

/// Opens a session on `policy` and tries every hostile call on every
/// granted tool.
pub async fn check(
    runtime: &Runtime,
    plan: SessionPlan,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut policy = plan.policy.clone();
    // Hostile calls are refused by design: under `on-refusal = "stop"` the
    // first would end the session, and they must not use up its budget.
    policy.on_refusal = OnRefusal::Inform;
    policy.limits.max_tool_calls = u32::MAX;
    let mut session = runtime.open_session(SessionPlan { policy, ..plan }).await?;
    let tools = session.tools().to_vec();
    if tools.is_empty() {
        report.add(
            SECTION,
            "granted tools",
            "policy",
            Verdict::Skip,
            "the policy grants no tool",
        );
    }
    for tool in &tools {
        let schema: Value = serde_json::from_str(&tool.input_schema).unwrap_or(Value::Null);
        for (case, arguments) in hostile_calls(&schema) {
            let (verdict, detail) = refused(runtime, &mut session, &tool.name, &arguments).await?;
            report.add(SECTION, case, &tool.name, verdict, detail);
        }
        let unknown = format!("{}_", tool.name);
        let (verdict, detail) = refused(runtime, &mut session, &unknown, "{}").await?;
        report.add(
            SECTION,
            format!("unknown tool `{unknown}`"),
            &tool.name,
            verdict,
            detail,
        );
    }
    if let Some(why) = session.ended() {
        anyhow::bail!("the protocol session ended early: {why}");
    }
    session.close()?;
    Ok(())
}

/// Makes one call and judges it: refused by a named rule, without the
/// capability running.
async fn refused(
    runtime: &Runtime,
    session: &mut Session,
    tool: &str,
    arguments: &str,
) -> anyhow::Result<(Verdict, String)> {
    let before = runtime.metrics().allowed_calls(tool);
    let shown = session.call(tool, arguments).await?;
    Ok(judge(
        &shown,
        runtime.metrics().allowed_calls(tool) > before,
    ))
}

/// A hostile call passes when the client was shown an error naming the
/// refusing rule and the capability did not run.
fn judge(shown: &Shown, ran: bool) -> (Verdict, String) {
    let text = super::shorten(&shown.text, 160);
    match (shown.is_error, ran) {
        (true, false) if shown.text.contains("(refused by `") => (Verdict::Pass, text),
        (true, false) => (
            Verdict::Fail,
            format!("an error without a refusing rule: {text}"),
        ),
        (_, true) => (
            Verdict::Fail,
            format!("the gate let it through to the capability: {text}"),
        ),
        (false, false) => (Verdict::Fail, format!("answered without an error: {text}")),
    }
}

/// The hostile calls of a tool with this input schema: named cases and the
/// argument text each sends.
pub fn hostile_calls(schema: &Value) -> Vec<(String, String)> {
    let properties = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // A call that fills in every required property with a value of its type.
    let base: Map<String, Value> = required
        .iter()
        .map(|p| {
            (
                (*p).to_owned(),
                sample(&properties.get(*p).cloned().unwrap_or(Value::Null)),
            )
        })
        .collect();
    let text = |map: &Map<String, Value>| Value::Object(map.clone()).to_string();
    let mut cases = vec![
        ("arguments that are not JSON".to_owned(), "{\"".to_owned()),
        (
            "arguments that are not an object".to_owned(),
            "[]".to_owned(),
        ),
        (
            "trailing text after the arguments".to_owned(),
            format!("{} {{}}", text(&base)),
        ),
    ];
    if let Some((name, value)) = base.iter().next() {
        // The same key twice: a parser keeping the last would let a value
        // past the gate that the schema never saw.
        let pair = format!("{}:{}", Value::String(name.clone()), value);
        cases.push((
            format!("`{name}` given twice"),
            format!("{{{pair},{pair}}}"),
        ));
    }
    for name in &required {
        let mut call = base.clone();
        call.remove(*name);
        cases.push((format!("required `{name}` missing"), text(&call)));
    }
    for (name, property) in &properties {
        if let Some(wrong) = wrong_type(property) {
            let mut call = base.clone();
            call.insert(name.clone(), wrong);
            cases.push((format!("`{name}` of the wrong type"), text(&call)));
        }
    }
    if schema["additionalProperties"] == json!(false) {
        let mut call = base.clone();
        call.insert("fc_compliance_extra".into(), json!(1));
        cases.push(("a property the schema does not have".into(), text(&call)));
    }
    cases
}

/// A value of the property's type (the first of an `enum`).
fn sample(property: &Value) -> Value {
    if let Some(first) = property["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match property["type"].as_str() {
        Some("integer" | "number") => json!(property["minimum"].as_f64().unwrap_or(0.0) as i64),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        Some("object") => json!({}),
        Some("null") => Value::Null,
        _ => json!("x"),
    }
}

/// A value of a type the property does not allow, if it names one.
fn wrong_type(property: &Value) -> Option<Value> {
    match property["type"].as_str()? {
        "string" => Some(json!(12345)),
        "integer" | "number" | "boolean" | "array" | "null" => Some(json!("not this type")),
        "object" => Some(json!([1])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_passes_only_if_refused_by_a_rule_before_the_capability_ran() {
        let shown = |text: &str, is_error| Shown {
            text: text.into(),
            is_error,
        };
        let refused = shown(
            "invalid arguments: … (refused by `protocol.input-schema`)",
            true,
        );
        assert_eq!(judge(&refused, false).0, Verdict::Pass);
        let (verdict, why) = judge(&refused, true);
        assert_eq!(verdict, Verdict::Fail);
        assert!(why.starts_with("the gate let it through"), "{why}");
        let (verdict, why) = judge(&shown("{\"ok\":true}", false), false);
        assert_eq!(verdict, Verdict::Fail);
        assert!(why.starts_with("answered without an error"), "{why}");
        let (verdict, why) = judge(&shown("failed: disk", true), false);
        assert_eq!(verdict, Verdict::Fail);
        assert!(why.starts_with("an error without a refusing rule"), "{why}");
    }

    #[test]
    fn hostile_calls_follow_the_schema() {
        let schema = json!({ "type": "object", "additionalProperties": false, "required": ["path"],
            "properties": { "path": { "type": "string" }, "max": { "type": "integer", "minimum": 1 } } });
        let cases: std::collections::BTreeMap<String, String> =
            hostile_calls(&schema).into_iter().collect();
        assert_eq!(cases["`path` given twice"], r#"{"path":"x","path":"x"}"#);
        assert_eq!(cases["required `path` missing"], "{}");
        assert_eq!(cases["`path` of the wrong type"], r#"{"path":12345}"#);
        assert_eq!(
            cases["`max` of the wrong type"],
            r#"{"max":"not this type","path":"x"}"#
        );
        assert_eq!(
            cases["a property the schema does not have"],
            r#"{"fc_compliance_extra":1,"path":"x"}"#
        );
        assert_eq!(cases.len(), 8);
        // Every case is refused by a JSON parser or by the schema.
        for (case, text) in &cases {
            let valid = serde_json::from_str::<Value>(text).is_ok_and(|v| {
                v.is_object()
                    && v.get("path").is_some_and(Value::is_string)
                    && v.as_object().unwrap().len() == 1
                    && !text.contains("\"path\":\"x\",\"path\"")
            });
            assert!(!valid, "{case}: {text}");
        }
    }
}
