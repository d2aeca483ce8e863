//! `fc-host mcp`: the policy's granted tools served to an MCP client we did
//! not write, the official Python SDK (tests/mcp_client.py), over stdio.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::common::*;

/// Runs tests/mcp_client.py on a scenario; its report.
pub fn mcp_client(scenario: Value) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("guests/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run guests/toolchains.sh",
        python.display()
    );
    let mut child = Command::new(python)
        .arg(root.join("tests/mcp_client.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scenario.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mcp_client.py failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
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
