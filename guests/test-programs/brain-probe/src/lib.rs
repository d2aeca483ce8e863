//! Test brain: its single answer reports what its sandbox lets it see (its
//! environment and files), so a test can check that no secret reaches a
//! brain. A task `fetch URL…` makes it try an HTTP GET of each URL and
//! report whether the network gate let it through; `spin` and `grow`
//! exhaust its limits.

use serde_json::json;

wit_bindgen::generate!({ path: "../../../host/runtime/wit", world: "brain" });

use exports::femtoclaw::runtime::model::{Guest, Request};
use femtoclaw::runtime::types::{BrainError, Completion, FinishReason};

struct Probe;

impl Guest for Probe {
    fn complete(request: Request) -> Result<Completion, BrainError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let root = std::fs::read_dir("/").map(|d| d.count()).map_err(|e| e.to_string());
        let tools: Vec<String> = request.tools.iter().map(|t| t.name.clone()).collect();
        let task = request.messages.iter().rev().find_map(|m| m.content.clone()).unwrap_or_default();
        // `spin` and `grow` exhaust the brain's fuel and memory.
        if task == "spin" {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        if task == "grow" {
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            loop {
                chunks.push(vec![1; 1 << 20]);
                std::hint::black_box(&chunks);
            }
        }
        let fetched: Vec<String> = task.strip_prefix("fetch ").map_or(Vec::new(), |urls| urls.split(' ').map(fetch).collect());
        let content = json!({ "env": env, "root": format!("{root:?}"), "tools": tools, "messages": request.messages.len(), "fetched": fetched });
        Ok(Completion { content: Some(content.to_string()), tool_calls: vec![], usage: None, finish: FinishReason::Complete })
    }
}

/// `ok STATUS` or the error the gate gave.
fn fetch(url: &str) -> String {
    use wasip2::http::types::{Fields, Method, OutgoingRequest, Scheme};
    let Some((_, rest)) = url.split_once("://") else { return "not a URL".into() };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    match wasip2::http::outgoing_handler::handle(request, None) {
        Err(e) => format!("{e:?}"),
        Ok(future) => {
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => format!("ok {}", response.status()),
                Some(Ok(Err(e))) => format!("{e:?}"),
                _ => "no response".into(),
            }
        }
    }
}

export!(Probe);
