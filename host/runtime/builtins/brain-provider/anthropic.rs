//! Anthropic Messages with tool use.

use serde_json::{Value, json};

use crate::exports::femtoclaw::runtime::model::Request;
use crate::femtoclaw::runtime::types::{BrainError, Completion, FinishReason, Role, ToolCall, Usage};
use crate::names::Names;
use crate::{Settings, http};

const VERSION: &str = "2023-06-01";

pub(crate) fn complete(s: &Settings, names: &Names, request: &Request) -> Result<Completion, BrainError> {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in &request.messages {
        match m.role {
            Role::System => system.extend(m.content.clone().filter(|t| !t.is_empty())),
            // The API refuses empty text blocks: an empty text is not sent.
            Role::User => push(&mut messages, "user", text_block(m.content.as_deref())),
            Role::Assistant => {
                let mut blocks = text_block(m.content.as_deref());
                for c in &m.tool_calls {
                    // The transcript needs an object; a model's malformed
                    // arguments are kept as text inside one.
                    let input = serde_json::from_str::<Value>(&c.arguments).ok().filter(Value::is_object).unwrap_or_else(|| json!({ "_raw": c.arguments }));
                    blocks.push(json!({ "type": "tool_use", "id": c.id, "name": names.wire(&c.name), "input": input }));
                }
                push(&mut messages, "assistant", blocks);
            }
            // Results of one turn's calls travel together in one user message.
            Role::Tool => {
                let mut block = json!({ "type": "tool_result", "tool_use_id": m.tool_call_id.clone().unwrap_or_default() });
                if let Some(content) = m.content.as_deref().filter(|c| !c.is_empty()) {
                    block["content"] = json!(content);
                }
                push(&mut messages, "user", vec![block]);
            }
        }
    }
    if messages.first().is_none_or(|m| m["role"] != "user") {
        return Err(BrainError::Config(
            "the conversation has no user text to send (is the task empty? give `--task`)".into(),
        ));
    }
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            let schema: Value = serde_json::from_str(&t.input_schema).unwrap_or(json!({ "type": "object" }));
            json!({ "name": names.wire(&t.name), "description": t.description, "input_schema": schema })
        })
        .collect();
    let mut body = json!({ "model": s.model, "max_tokens": s.max_tokens, "messages": messages });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !tools.is_empty() {
        body["tools"] = json!(tools);
    }
    let response = http::post_json(&format!("{}/messages", s.base_url), &[("anthropic-version", VERSION)], &body)?;
    parse(names, &response)
}

/// Appends blocks, merging with the previous message of the same role (the
/// API wants user and assistant turns to alternate).
fn push(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut().filter(|m| m["role"] == role) {
        last["content"].as_array_mut().expect("invariant: content is an array").extend(blocks);
    } else {
        messages.push(json!({ "role": role, "content": blocks }));
    }
}

/// A text block, or none for an absent or empty text.
fn text_block(text: Option<&str>) -> Vec<Value> {
    text.filter(|t| !t.is_empty()).map(|t| json!({ "type": "text", "text": t })).into_iter().collect()
}

fn parse(names: &Names, response: &Value) -> Result<Completion, BrainError> {
    let finish = match response["stop_reason"].as_str() {
        None | Some("end_turn" | "stop_sequence" | "tool_use") => FinishReason::Complete,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("refusal") => FinishReason::Refusal,
        // `pause_turn` and anything newer is not taken for a complete answer.
        Some(other) => {
            return Err(BrainError::Provider(format!("the response's `stop_reason` `{other}` is not one this brain knows")));
        }
    };
    let blocks = response["content"].as_array().ok_or_else(|| BrainError::Provider("the response has no content".into()))?;
    let mut text = Vec::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => text.extend(b["text"].as_str().map(str::to_owned)),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: b["id"].as_str().unwrap_or_default().to_owned(),
                name: names.address(b["name"].as_str().unwrap_or_default()),
                arguments: b["input"].to_string(),
            }),
            _ => {}
        }
    }
    let usage = response["usage"].as_object().map(|u| Usage {
        input_tokens: u.get("input_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: u.get("output_tokens").and_then(Value::as_u64).unwrap_or(0),
    });
    let content = (!text.is_empty()).then(|| text.join(""));
    Ok(Completion { content, tool_calls, usage, finish })
}
