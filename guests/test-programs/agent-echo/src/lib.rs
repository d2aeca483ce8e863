//! Test agent. It runs the brain's tool calls like the default agent, and its
//! final answer is a JSON array with one entry per call: the tool, and either
//! `ok` with the result or `error` with the error kind and message. Tests
//! read it to see exactly what the runtime handed back to the agent. It
//! stops at the first turn without tool calls, whatever its finish reason.

wit_bindgen::generate!({ path: "../../../host/runtime/wit", world: "agent" });

use exports::femtoclaw::runtime::runner::{Guest, RunError};
use femtoclaw::runtime::types::{Message, Role, ToolError};
use femtoclaw::runtime::{inference, tools};
use serde_json::{Value, json};

struct Echo;

impl Guest for Echo {
    fn run(task: String) -> Result<String, RunError> {
        let mut messages =
            vec![Message { role: Role::User, content: Some(task), tool_calls: vec![], tool_call_id: None }];
        let mut transcript = Vec::<Value>::new();
        loop {
            let turn = inference::complete(&messages).map_err(|e| RunError::Failed(format!("{e:?}")))?;
            messages.push(Message {
                role: Role::Assistant,
                content: turn.content.clone(),
                tool_calls: turn.tool_calls.clone(),
                tool_call_id: None,
            });
            if turn.tool_calls.is_empty() {
                return Ok(Value::Array(transcript).to_string());
            }
            for call in turn.tool_calls {
                let entry = match tools::call(&call.name, &call.arguments) {
                    Ok(out) => json!({ "tool": call.name, "ok": out }),
                    Err(e) => {
                        let (kind, message) = match e {
                            ToolError::Denied(m) => ("denied", m),
                            ToolError::InvalidArguments(m) => ("invalid_arguments", m),
                            ToolError::UnknownTool(m) => ("unknown_tool", m),
                            ToolError::LimitExceeded(m) => ("limit_exceeded", m),
                            ToolError::Failed(m) => ("failed", m),
                        };
                        json!({ "tool": call.name, "error": kind, "message": message })
                    }
                };
                messages.push(Message {
                    role: Role::Tool,
                    content: Some(entry.to_string()),
                    tool_calls: vec![],
                    tool_call_id: Some(call.id),
                });
                transcript.push(entry);
            }
        }
    }
}

export!(Echo);
