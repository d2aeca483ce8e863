//! The default agent: ask the brain, run each proposed tool call through the
//! runtime, feed the results back, and stop at the first complete turn
//! without tool calls. Budgets (steps, tool calls) are enforced by the host,
//! not here: an agent cannot be trusted to stop itself.

wit_bindgen::generate!({ path: "../../wit", world: "agent" });

use exports::femtoclaw::runtime::runner::{Guest, RunError};
use femtoclaw::runtime::types::{BrainError, FinishReason, Message, Role, ToolError};
use femtoclaw::runtime::{inference, log, tools};

const SYSTEM: &str = "You are an agent running inside FemtoClaw. Use the tools offered to \
complete the task; answer with plain text and no tool calls when you are done.";

struct Agent;

impl Guest for Agent {
    fn run(task: String) -> Result<String, RunError> {
        let mut messages = vec![text(Role::System, SYSTEM), text(Role::User, &task)];
        loop {
            let turn = inference::complete(&messages).map_err(|e| RunError::Failed(brain_failure(&e)))?;
            // An incomplete turn is not an answer, and its tool calls may be
            // cut off: none of it is acted on.
            if let Some(why) = incomplete(turn.finish, turn.content.as_deref()) {
                return Err(RunError::Incomplete(why));
            }
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

/// Why a turn is not a usable answer, or `None` when it is complete.
fn incomplete(finish: FinishReason, content: Option<&str>) -> Option<String> {
    let said = content.filter(|c| !c.is_empty()).map(|c| format!(": {c}")).unwrap_or_default();
    match finish {
        FinishReason::Complete => None,
        FinishReason::Length => Some("the model's turn was cut off at its output-token limit (`brain.max-tokens`)".into()),
        FinishReason::ContentFilter => Some("the model's turn was withheld by the provider's content filter".into()),
        FinishReason::Refusal => Some(format!("the model refused{said}")),
    }
}

/// A brain's failure in words.
fn brain_failure(error: &BrainError) -> String {
    match error {
        BrainError::Config(m) => format!("the brain is misconfigured: {m}"),
        BrainError::Transport(m) => format!("the model could not be reached: {m}"),
        BrainError::Provider(m) => format!("the model's provider failed: {m}"),
        BrainError::Exhausted => "the brain has no turns left (a scripted brain's script ended)".into(),
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
