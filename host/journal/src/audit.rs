//! A run's decisions, read off its events.

use serde_json::{Value, json};

use crate::Event;

/// The decisions a run's events record, one JSON row each (`fc-host
/// audit`, and a server's `GET /v1/runs/{id}/audit`): every tool call allowed
/// or denied with the policy rule behind it (and a refusal's full detail),
/// every person's answer to an approval request, every operator decision on
/// an uncertain write, every incomplete model turn and every stop.
pub fn decisions(events: &[Event]) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut pending: Option<&Event> = None;
    for e in events {
        match e.kind.as_str() {
            "tool-call" => pending = Some(e),
            "tool-result" => {
                let Some(call) = pending.take() else { continue };
                let name = call.data["name"].as_str().unwrap_or("?");
                let refused = e.data["refused"] == true;
                let rule = match e.data["rule"].as_str() {
                    Some(r) if !r.is_empty() => r.to_owned(),
                    _ if refused => "?".to_owned(),
                    _ => format!(
                        "capabilities.{}.tools",
                        name.split('.').next().unwrap_or("?")
                    ),
                };
                let outcome = match &e.data["result"] {
                    Value::Object(m) if m.contains_key("Ok") => "ok".to_owned(),
                    Value::Object(m) => m
                        .get("Err")
                        .and_then(|e| e.as_object())
                        .and_then(|e| e.keys().next().cloned())
                        .unwrap_or_default(),
                    _ => "?".to_owned(),
                };
                let mut row = json!({
                    "event": call.seq, "tool": name, "key": call.data["key"], "arguments": call.data["arguments"],
                    "decision": if refused { "deny" } else { "allow" }, "rule": rule, "outcome": outcome,
                });
                if let Some(detail) = e.data["detail"].as_str() {
                    // What the agent was not told: the refusal in full.
                    row["detail"] = json!(detail);
                }
                if call.data["unsandboxed"] == true {
                    // A stdio MCP server ran it: a host process.
                    row["unsandboxed"] = json!(true);
                }
                rows.push(row);
            }
            "decision" => {
                // A person's answer to an approval request, or the operator's
                // (or the policy's) choice for a call of unknown outcome.
                let outcome = if e.data["for"] == "approval" {
                    "approval"
                } else {
                    "uncertain"
                };
                rows.push(json!({
                    "event": e.seq, "tool": e.data["tool"], "key": e.data["key"], "decision": e.data["decision"],
                    "rule": e.data["rule"], "by": e.data["by"], "outcome": outcome,
                }))
            }
            "inference" => {
                // A turn the model did not complete (cut off, filtered,
                // refused) is a decision the model made, not the gate.
                let finish = e.data["result"]["Ok"]["finish"].as_str();
                if let Some(finish) = finish.filter(|f| *f != "Complete") {
                    let finish = match finish {
                        "ContentFilter" => "content-filter".to_owned(),
                        other => other.to_lowercase(),
                    };
                    rows.push(json!({ "event": e.seq, "decision": "incomplete", "rule": "model.finish", "outcome": finish }));
                }
            }
            "stop" => {
                rows.push(json!({ "event": e.seq, "decision": "stop", "rule": e.data["reason"] }))
            }
            _ => {}
        }
    }
    // A call's row stands at its intent, before the decisions made while
    // it waited (an approval, a choice for an uncertain write).
    rows.sort_by_key(|r| r["event"].as_u64());
    rows
}
