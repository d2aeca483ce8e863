//! The scripted brain: returns the turns of a JSON script in order, whatever
//! the conversation. The deterministic brain for tests, demos and air-gapped
//! use. The host reads the script file named by the policy and hands its text
//! over as the `script` setting; it has already checked its shape.

use std::cell::RefCell;

use serde_json::Value;

wit_bindgen::generate!({ path: "../../wit", world: "brain" });

use exports::femtoclaw::runtime::model::{Guest, Request};
use femtoclaw::runtime::brain_config;
use femtoclaw::runtime::types::{BrainError, Completion, FinishReason, ToolCall};

thread_local! {
    /// Turns not yet returned, and how many were.
    static SCRIPT: RefCell<Option<(Vec<Value>, usize)>> = const { RefCell::new(None) };
}

struct Scripted;

impl Guest for Scripted {
    fn complete(_request: Request) -> Result<Completion, BrainError> {
        SCRIPT.with_borrow_mut(|script| {
            if script.is_none() {
                // A resumed run continues the script where its journal ended.
                let start = brain_config::get("start-turn").and_then(|t| t.parse().ok()).unwrap_or(0);
                *script = Some((load()?, start));
            }
            let (turns, next) = script.as_mut().expect("invariant: loaded above");
            let turn = turns.get(*next).ok_or(BrainError::Exhausted)?;
            *next += 1;
            turn_to_completion(*next, turn)
        })
    }
}

fn load() -> Result<Vec<Value>, BrainError> {
    let text = brain_config::get("script")
        .ok_or_else(|| BrainError::Config("no `script` setting".into()))?;
    match serde_json::from_str(&text) {
        Ok(Value::Array(turns)) => Ok(turns),
        Ok(_) => Err(BrainError::Config("the script must be a JSON array of turns".into())),
        Err(e) => Err(BrainError::Config(format!("the script is not JSON: {e}"))),
    }
}

fn turn_to_completion(number: usize, turn: &Value) -> Result<Completion, BrainError> {
    let bad = |what: &str| BrainError::Config(format!("turn {number}: {what}"));
    let content = match &turn["content"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        _ => return Err(bad("`content` must be a string or null")),
    };
    let mut tool_calls = Vec::new();
    if let Some(calls) = turn.get("tool_calls") {
        let calls = calls.as_array().ok_or_else(|| bad("`tool_calls` must be an array"))?;
        for (i, call) in calls.iter().enumerate() {
            let name = call["name"].as_str().ok_or_else(|| bad("a tool call has no `name`"))?;
            // Arguments given as JSON text are passed on byte for byte, so a
            // script can propose malformed JSON exactly as a model might.
            let arguments = match &call["arguments"] {
                Value::String(text) => text.clone(),
                Value::Null => "{}".to_string(),
                value => value.to_string(),
            };
            tool_calls.push(ToolCall { id: format!("call_{number}_{i}"), name: name.into(), arguments });
        }
    }
    // A script can end a turn as a provider would: cut off, filtered, refused.
    let finish = match turn.get("finish").and_then(Value::as_str) {
        None | Some("complete") => FinishReason::Complete,
        Some("length") => FinishReason::Length,
        Some("content-filter") => FinishReason::ContentFilter,
        Some("refusal") => FinishReason::Refusal,
        Some(other) => return Err(bad(&format!("unknown `finish` `{other}`"))),
    };
    Ok(Completion { content, tool_calls, usage: None, finish })
}

export!(Scripted);
