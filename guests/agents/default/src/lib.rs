//! The default agent: ask the brain, run each proposed tool call through the
//! runtime, feed the results back, and stop at the first turn without tool
//! calls. Budgets (steps, tool calls) are enforced by the host, not here: an
//! agent cannot be trusted to stop itself.

wit_bindgen::generate!({ path: "../../../wit", world: "agent" });

use exports::femtoclaw::runtime::runner::Guest;
use femtoclaw::runtime::types::{Message, Role, ToolError};
use femtoclaw::runtime::{inference, log, tools};

const SYSTEM: &str = "You are an agent running inside FemtoClaw. Use the tools offered to \
complete the task; answer with plain text and no tool calls when you are done.";

struct Agent;

impl Guest for Agent {
    fn run(task: String) -> Result<String, String> {
        let mut messages = vec![text(Role::System, SYSTEM), text(Role::User, &task)];
        loop {
            let turn = inference::complete(&messages).map_err(|e| format!("brain failed: {e:?}"))?;
            let calls = turn.tool_calls.clone();
            messages.push(Message {
                role: Role::Assistant,
                content: turn.content.clone(),
                tool_calls: turn.tool_calls,
                tool_call_id: None,
            });
            if calls.is_empty() {
                return Ok(turn.content.unwrap_or_default());
            }
            for call in calls {
                let content = match tools::call(&call.name, &call.arguments) {
                    Ok(result) => result,
                    Err(error) => {
                        log::log(log::Level::Info, &format!("tool `{}` refused or failed", call.name));
                        error_json(&error)
                    }
                };
                messages.push(Message {
                    role: Role::Tool,
                    content: Some(content),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(call.id),
                });
            }
        }
    }
}

fn text(role: Role, content: &str) -> Message {
    Message { role, content: Some(content.into()), tool_calls: Vec::new(), tool_call_id: None }
}

/// The error as the model sees it: a JSON object with its kind and message.
fn error_json(error: &ToolError) -> String {
    let (kind, message) = match error {
        ToolError::Denied(m) => ("denied", m),
        ToolError::InvalidArguments(m) => ("invalid_arguments", m),
        ToolError::UnknownTool(m) => ("unknown_tool", m),
        ToolError::LimitExceeded(m) => ("limit_exceeded", m),
        ToolError::Failed(m) => ("failed", m),
    };
    serde_json::json!({ "error": kind, "message": message }).to_string()
}

export!(Agent);
