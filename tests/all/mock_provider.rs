//! A model provider on loopback for the brain tests: answers POSTs with
//! queued responses, in the providers' documented wire formats, and keeps
//! every request (path, headers, body) for the test to check.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::common::python_script;

/// A complete OpenAI chat-completion response carrying `message`, with
/// `usage` as (prompt, completion) tokens.
pub fn openai_turn(message: Value, usage: (u64, u64)) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": "test-model",
        "choices": [{ "index": 0, "message": message, "finish_reason": if message["tool_calls"].is_array() { "tool_calls" } else { "stop" } }],
        "usage": { "prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1 }
    })
}

/// One request as the provider received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// The body's bytes, for what is not JSON.
    pub raw: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct MockProvider {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// The 2xx bodies it answered with.
    served: Arc<Mutex<Vec<Value>>>,
}

impl MockProvider {
    /// Serves `responses` (status, extra headers, body) in order; afterwards
    /// every request gets a 500. Status 0 holds that request's connection
    /// open unanswered (a provider that hangs).
    pub fn start(responses: Vec<(u16, &'static str, Value)>) -> MockProvider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(Mutex::new(Vec::new()));
        let queue = Arc::new(Mutex::new(VecDeque::from(responses)));
        let (r, sv) = (received.clone(), served.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue; // a reachability probe
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let mut headers = Vec::new();
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                        if k == "content-length" {
                            length = v.parse().unwrap_or(0);
                        }
                        headers.push((k, v));
                    }
                }
                let chunked = headers
                    .iter()
                    .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
                let body = if chunked {
                    read_chunked(&mut reader)
                } else {
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    body
                };
                r.lock().unwrap().push(Received {
                    path,
                    headers,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    raw: body,
                });
                let (status, extra, body) = queue.lock().unwrap().pop_front().unwrap_or((
                    500,
                    "",
                    serde_json::json!({ "error": { "message": "no more responses" } }),
                ));
                if status == 0 {
                    held.push(stream);
                    continue;
                }
                if (200..300).contains(&status) {
                    sv.lock().unwrap().push(body.clone());
                }
                let body = body.to_string();
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        MockProvider {
            port,
            received,
            served,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Checks every request the brain sent, and every answer this mock
    /// gave, against the provider's published types (tests/providers.py,
    /// over the official SDKs): a test of the brain is only as good as the
    /// mock's likeness to the provider.
    pub fn assert_conforms(&self, api: &str) {
        let mut docs: Vec<Value> = self
            .requests()
            .into_iter()
            .map(|r| serde_json::json!({ "api": api, "kind": "request", "body": r.body }))
            .collect();
        docs.extend(
            self.served
                .lock()
                .unwrap()
                .iter()
                .map(|b| serde_json::json!({ "api": api, "kind": "response", "body": b })),
        );
        let report = check_provider_documents(&docs);
        for (doc, result) in docs.iter().zip(&report) {
            assert_eq!(
                result["ok"], true,
                "{api} {} does not conform: {:#}\n{:#}",
                doc["kind"], result["errors"], doc["body"]
            );
        }
    }
}

/// Runs tests/providers.py (with the toolchains' Python, where the SDKs
/// are installed) on the documents; its report, one entry each.
pub fn check_provider_documents(docs: &[Value]) -> Vec<Value> {
    let out = python_script(
        "providers.py",
        Value::Array(docs.to_vec()).to_string().as_bytes(),
    );
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "providers.py failed");
    let report: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.len(), docs.len());
    report
}

fn read_chunked(reader: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}
