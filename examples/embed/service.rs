//! A service that runs agents on requests: one [`Agent`] under the policy
//! it was started with, shared by every connection; each `POST /run` (the
//! body is the task) is one journaled run, answered as JSON.
//!
//! `cargo run --example embed-service -- --listen 127.0.0.1:8080 --policy Strict`
//!
//! ```text
//! curl -s --data 'What is in this folder?' http://127.0.0.1:8080/run
//! {"run_id":"…","answer":"…","tool_calls":2}
//! ```
//!
//! Plain HTTP/1.1 on a thread per connection, at most [`MAX_CONNECTIONS`]
//! at once, [`MAX_BODY`] bytes per task: a sketch of an embedding, not a
//! server to expose (`fc-host serve` is that).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use femtoclaw_runtime::prelude::*;
use serde_json::json;

const MAX_CONNECTIONS: usize = 16;
const MAX_BODY: usize = 64 * 1024;

fn main() -> Result<(), Error> {
    let mut listen = "127.0.0.1:8080".to_owned();
    let mut policy = "Strict".to_owned();
    let mut config = Config::industrial();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| Error::Usage(format!("`{flag}` needs a value")))
        };
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--policy" => policy = value()?,
            "--brain" => config = config.brain(value()?),
            "--state" => config = config.state_dir(value()?),
            _ => {
                return Err(Error::Usage(format!(
                    "unknown argument `{flag}` (expected --listen ADDR, --policy FILE|PRESET, --brain SPEC, --state DIR)"
                )));
            }
        }
    }
    femtoclaw_runtime::logs::init(LogFormat::Pretty);
    let agent = Arc::new(Agent::new(config));
    agent.enforce_policy(Policy::load(&policy)?);
    let listener = TcpListener::bind(&listen)
        .map_err(|e| Error::Usage(format!("cannot listen on `{listen}`: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    // The first line on stdout says where it listens (port 0 picks one).
    println!("listening on http://{address}");
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            let _ = respond(&stream, 503, &json!({ "error": "busy: try again" }));
            continue;
        }
        let (agent, open) = (agent.clone(), open.clone());
        std::thread::spawn(move || {
            let _ = serve(&agent, &stream);
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

/// One request on `stream`.
fn serve(agent: &Agent, stream: &TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.take(MAX_BODY as u64 + 8192));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(usize::MAX);
        }
    }
    let mut parts = request_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("GET"), Some("/healthz")) => respond(stream, 200, &json!({ "ok": true })),
        (Some("POST"), Some("/run")) if length <= MAX_BODY => {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            let Ok(task) = String::from_utf8(body) else {
                return respond(
                    stream,
                    400,
                    &json!({ "error": "the task must be UTF-8 text" }),
                );
            };
            match agent.run(&task) {
                Ok(answer) => respond(
                    stream,
                    200,
                    &json!({
                        "run_id": answer.run_id,
                        "answer": answer.text,
                        "tool_calls": answer.stats.tool_calls,
                    }),
                ),
                Err(e) => {
                    let status = if e.exit_code() == 70 { 500 } else { 422 };
                    respond(
                        stream,
                        status,
                        &json!({ "error": e.to_string(), "exit_code": e.exit_code() }),
                    )
                }
            }
        }
        (Some("POST"), Some("/run")) => respond(
            stream,
            413,
            &json!({ "error": format!("a task is at most {MAX_BODY} bytes") }),
        ),
        _ => respond(
            stream,
            404,
            &json!({ "error": "POST /run (the body is the task) or GET /healthz" }),
        ),
    }
}

fn respond(mut stream: &TcpStream, status: u16, body: &serde_json::Value) -> std::io::Result<()> {
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}
