//! `fc-host mcp`: the policy's granted tools served to an MCP client we did
//! not write, the official Python SDK (tests/mcp_client.py), over stdio.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::common::*;

/// Runs tests/mcp_client.py on a scenario; its report, with the client's
/// stderr (for stdio, the server's log) as `stderr`.
pub fn mcp_client(scenario: Value) -> Value {
    let out = python_script("mcp_client.py", scenario.to_string().as_bytes());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mcp_client.py failed:\n{stderr}");
    let mut report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    // What the server logged (stdio: its stderr comes through the client).
    report["stderr"] = json!(stderr);
    report
}

/// The hello example's directory, its two read tools granted.
fn hello_policy(s: &Scratch) -> std::path::PathBuf {
    s.mkdir("data");
    s.write("data/notes.txt", "The model proposes; FemtoClaw decides.");
    s.write(
        "policy.toml",
        r#"version = 1
[limits]
max-tool-calls = 16

[capabilities.fs]
component = "builtin:fs"
tools = ["read_file", "list_dir"]
mounts = [{ guest = "/data", host = "data", mode = "ro" }]
"#,
    )
}

fn stdio_scenario(state: &Path, policy: &Path, mode: &str, steps: Value) -> Value {
    json!({
        "command": [env!("CARGO_BIN_EXE_fc-host"), "mcp", "--policy", policy],
        "env": { "FC_STATE_DIR": state },
        "mode": mode,
        "steps": steps,
    })
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[test]
fn the_python_sdk_lists_exactly_the_granted_tools_and_is_refused_the_rest() {
    let s = Scratch::new();
    let policy = hello_policy(&s);
    let state = fresh_dir();
    for (mode, version) in [("legacy", "2025-11-25"), ("auto", "2026-07-28")] {
        let report = mcp_client(stdio_scenario(
            &state,
            &policy,
            mode,
            json!([
                { "list": true },
                { "call": "fs_list_dir", "arguments": { "path": "/data" } },
                { "call": "fs_read_file", "arguments": { "path": "/data/notes.txt" } },
                { "call": "fs_write_file", "arguments": { "path": "/data/x", "content": "x" } },
                { "call": "fs_read_file", "arguments": { "path": 7 } },
                { "call": "fs_read_file", "arguments": { "path": "/etc/passwd" } },
                { "call": "fs.write_file", "arguments": { "path": "/data/x", "content": "x" } },
            ]),
        ));
        assert_eq!(report["protocol_version"], version, "{report:#}");
        assert_eq!(report["server"], "femtoclaw");
        let steps = report["steps"].as_array().unwrap();

        let mut names: Vec<&str> = steps[0]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["fs_list_dir", "fs_read_file"], "{report:#}");
        for tool in steps[0]["tools"].as_array().unwrap() {
            assert_eq!(tool["inputSchema"]["type"], "object", "{tool:#}");
            assert_eq!(tool["annotations"]["readOnlyHint"], true, "{tool:#}");
        }

        let listed = &steps[1];
        assert_ne!(listed["isError"], true, "{listed:#}");
        assert!(text(listed).contains("notes.txt"), "{listed:#}");
        let read = &steps[2];
        assert_ne!(read["isError"], true, "{read:#}");
        assert!(
            serde_json::to_string(read)
                .unwrap()
                .contains("FemtoClaw decides"),
            "{read:#}"
        );

        // Refusals are tool errors naming what refused them, not transport
        // failures: the session goes on after each.
        let unoffered = &steps[3];
        assert_eq!(unoffered["isError"], true, "{unoffered:#}");
        assert!(
            text(unoffered).contains("(refused by `tools.address`)"),
            "{unoffered:#}"
        );
        let bad_arguments = &steps[4];
        assert_eq!(bad_arguments["isError"], true, "{bad_arguments:#}");
        assert!(text(bad_arguments).contains("schema"), "{bad_arguments:#}");
        let outside = &steps[5];
        assert_eq!(outside["isError"], true, "{outside:#}");
        assert!(text(outside).contains("denied"), "{outside:#}");
        let ungranted = &steps[6];
        assert_eq!(ungranted["isError"], true, "{ungranted:#}");
        assert!(
            text(ungranted).contains("(refused by `capabilities.fs.tools`)"),
            "{ungranted:#}"
        );
    }

    // Each session is a journaled run: listed, audited, replayed.
    let runs = fc(&state, &["runs", "--json"]);
    assert_eq!(runs.code, exit::OK, "{runs:#?}");
    let runs: Value = serde_json::from_str(&runs.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    for run in runs {
        assert_eq!(run["status"], "ok", "{run:#}");
        assert_eq!(run["agent"], "mcp:stdio", "{run:#}");
        let id = run["id"].as_str().unwrap();
        let audit = fc(&state, &["audit", id]);
        assert_eq!(audit.code, exit::OK, "{audit:#?}");
        assert!(audit.stdout.contains("fs.write_file"), "{audit:#?}");
        assert!(audit.stdout.contains("capabilities.fs.tools"), "{audit:#?}");
        let replay = fc(&state, &["replay", id]);
        assert_eq!(replay.code, exit::OK, "{replay:#?}");
        assert!(
            replay.stdout.contains("session of 6 tool calls"),
            "{replay:#?}"
        );
    }
}

/// A hostile client on stdio: garbage, an unterminated message, a line over
/// the 16 MiB cap, wrong argument types, unknown methods, and a flood of
/// 200 calls at once. Each gets a JSON-RPC error or a tool error; every
/// request is answered; the policy's `max-tool-calls` (16) ends the session
/// as a limit, and its replay ends the same way.
#[test]
fn a_hostile_client_gets_errors_and_the_session_goes_on() {
    let s = Scratch::new();
    let policy = hello_policy(&s);
    let state = fresh_dir();
    let mut input = String::new();
    input.push_str("garbage\n[1,2\n");
    input.push_str(&format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"{}\"}}\n",
        "x".repeat(17 << 20)
    ));
    let message = |v: Value| format!("{v}\n");
    input.push_str(&message(json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": { "name": "hostile", "version": "1" } }
    })));
    input.push_str(&message(
        json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
    ));
    input.push_str(&message(
        json!({ "jsonrpc": "2.0", "id": 2, "method": "bogus/method" }),
    ));
    input.push_str(&message(json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": { "name": "fs_list_dir", "arguments": "not an object" }
    })));
    for id in 100..300 {
        input.push_str(&message(json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": "fs_read_file", "arguments": { "path": "/data/notes.txt" } }
        })));
    }
    let mut child = fc_host()
        .env("FC_STATE_DIR", &state)
        .arg("mcp")
        .arg("--policy")
        .arg(&policy)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
        // Closing stdin would end the session before the flood's answers:
        // wait for them (bounded) by keeping it open a while.
        std::thread::sleep(std::time::Duration::from_secs(5));
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::LIMIT), "{stderr}");
    let answers: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let answer = |id: i64| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no answer to {id}: {stdout}\n{stderr}"))
    };
    assert!(answer(1)["result"]["protocolVersion"].is_string());
    assert!(answer(2)["error"]["code"].is_i64());
    assert!(answer(3)["error"]["code"].is_i64());
    let mut ok = 0;
    for id in 100..300 {
        let result = &answer(id)["result"];
        let text = result.to_string();
        if result["isError"] == true {
            assert!(
                text.contains("calls are waiting")
                    || text.contains("the session has ended")
                    || text.contains("limits.max-tool-calls"),
                "{result:#}"
            );
        } else {
            assert!(text.contains("FemtoClaw decides"), "{result:#}");
            ok += 1;
        }
    }
    assert_eq!(ok, 16, "exactly the budget of calls ran");
    let id = first_run_id(&state);
    let replay = fc(&state, &["replay", &id]);
    assert_eq!(replay.code, exit::LIMIT, "{replay:#?}");
    assert!(
        replay.stderr.contains("limits.max-tool-calls"),
        "{replay:#?}"
    );
}

/// A capability that puts its secret into its descriptions, its schemas and
/// its results: the MCP client, the logs and the journal see only
/// `[redacted:TOKEN]`.
#[test]
fn a_capabilitys_secret_never_reaches_the_mcp_client() {
    const SECRET: &str = "mcp-canary-7d1f0c";
    let s = Scratch::new();
    let policy = s.write(
        "policy.toml",
        &format!(
            "version = 1\n[capabilities.h]\ncomponent = {:?}\ntools = [\"spin\", \"env\"]\nenv = [\"HOSTILE_DESCRIBE\"]\nsecrets = {{ TOKEN = {{ env = \"FC_TEST_SECRET\" }} }}\n",
            artifacts::CAP_HOSTILE
        ),
    );
    let state = fresh_dir();
    let mut scenario = stdio_scenario(
        &state,
        &policy,
        "legacy",
        json!([{ "list": true }, { "call": "h_env", "arguments": {} }]),
    );
    scenario["env"]["FC_TEST_SECRET"] = json!(SECRET);
    scenario["env"]["HOSTILE_DESCRIBE"] = json!("leak:TOKEN");
    scenario["env"]["RUST_LOG"] = json!("trace");
    let report = mcp_client(scenario);
    let shown = report.to_string();
    assert!(!shown.contains(SECRET), "{report:#}");
    assert!(
        report["steps"][0].to_string().contains("[redacted:TOKEN]"),
        "{report:#}"
    );
    assert!(
        report["steps"][1].to_string().contains("[redacted:TOKEN]"),
        "{report:#}"
    );
    assert!(
        report["stderr"].as_str().unwrap().contains("TRACE"),
        "the server's log is checked: {report:#}"
    );
    let id = first_run_id(&state);
    for command in [vec!["audit", &id], vec!["inspect", &id]] {
        let out = fc(&state, &command);
        assert_eq!(out.code, exit::OK, "{out:#?}");
        assert_no_canary(&out, SECRET);
    }
    let journal = std::fs::read(state.join(femtoclaw_journal::FILE_NAME)).unwrap();
    assert!(
        !journal
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the secret is in the journal"
    );
}
