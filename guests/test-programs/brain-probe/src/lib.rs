//! Test brain: its single answer reports what its sandbox lets it see (its
//! environment and files), so a test can check that no secret reaches a brain.

use serde_json::json;

wit_bindgen::generate!({ path: "../../../wit", world: "brain" });

use exports::femtoclaw::runtime::model::{Guest, Request};
use femtoclaw::runtime::types::{BrainError, Completion};

struct Probe;

impl Guest for Probe {
    fn complete(request: Request) -> Result<Completion, BrainError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let root = std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.to_string());
        let tools: Vec<String> = request.tools.iter().map(|t| t.name.clone()).collect();
        let content = json!({ "env": env, "root": format!("{root:?}"), "tools": tools, "messages": request.messages.len() });
        Ok(Completion { content: Some(content.to_string()), tool_calls: vec![], usage: None })
    }
}

export!(Probe);
