//! OpenAI Chat Completions with `tools` / `tool_calls`.

use serde_json::{Value, json};

use crate::exports::femtoclaw::runtime::model::Request;
use crate::femtoclaw::runtime::types::{BrainError, Completion, FinishReason, Role, ToolCall, Usage};
use crate::names::Names;
use crate::{Settings, http};

pub(crate) fn complete(s: &Settings, names: &Names, request: &Request) -> Result<Completion, BrainError> {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
            };
            // Only an assistant turn may have no content (when it calls tools).
            let content = match (&m.content, m.role) {
                (Some(c), _) => json!(c),
                (None, Role::Assistant) => Value::Null,
                (None, _) => json!(""),
            };
            let mut msg = json!({ "role": role, "content": content });
            if !m.tool_calls.is_empty() {
                msg["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({ "id": c.id, "type": "function", "function": { "name": names.wire(&c.name), "arguments": c.arguments } }))
                    .collect();
            }
            if let Some(id) = &m.tool_call_id {
                msg["tool_call_id"] = json!(id);
            }
            msg
        })
        .collect();
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| {
            let parameters: Value = serde_json::from_str(&t.input_schema).unwrap_or(json!({ "type": "object" }));
            json!({ "type": "function", "function": { "name": names.wire(&t.name), "description": t.description, "parameters": parameters } })
        })
        .collect();
    let mut body = json!({ "model": s.model, "messages": messages, "max_tokens": s.max_tokens });
    if !tools.is_empty() {
        body["tools"] = json!(tools);
    }
    if let Some(t) = s.temperature {
        body["temperature"] = json!(t);
    }
    let response = http::post_json(&format!("{}/chat/completions", s.base_url), &[], &body)?;
    parse(names, &response)
}

fn parse(names: &Names, response: &Value) -> Result<Completion, BrainError> {
    let choice = response["choices"].get(0).ok_or_else(|| BrainError::Provider("the response has no choices".into()))?;
    let message = &choice["message"];
    let refusal = message["refusal"].as_str().filter(|r| !r.is_empty());
    let finish = match (refusal, choice["finish_reason"].as_str()) {
        (Some(_), _) => FinishReason::Refusal,
        (None, None | Some("stop" | "tool_calls" | "function_call")) => FinishReason::Complete,
        (None, Some("length")) => FinishReason::Length,
        (None, Some("content_filter")) => FinishReason::ContentFilter,
        // An unknown reason is not taken for a complete answer.
        (None, Some(other)) => {
            return Err(BrainError::Provider(format!("the response's `finish_reason` `{other}` is not one this brain knows")));
        }
    };
    let tool_calls = message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c["id"].as_str().unwrap_or_default().to_owned(),
                    name: names.address(c["function"]["name"].as_str().unwrap_or_default()),
                    // Passed on exactly as the model wrote it: the runtime
                    // checks it.
                    arguments: match &c["function"]["arguments"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let usage = response["usage"].as_object().map(|u| Usage {
        input_tokens: u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        output_tokens: u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
    });
    let content = message["content"].as_str().or(refusal).map(str::to_owned);
    Ok(Completion { content, tool_calls, usage, finish })
}
