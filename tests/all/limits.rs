//! Run budgets stop the run with the limit exit code.

use serde_json::json;

use crate::common::*;

fn looping_brain(turns: usize) -> serde_json::Value {
    let turn = json!({ "content": null, "tool_calls": [{ "name": "fs.list_dir", "arguments": { "path": "/d" } }] });
    serde_json::Value::Array(vec![turn; turns])
}

#[test]
fn the_step_budget_stops_a_run() {
    let s = Scratch::new();
    s.mkdir("d");
    let fs = "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"list_dir\"]\nmounts = [{ guest = \"/d\", host = \"d\", mode = \"ro\" }]\n";
    s.setup(
        &policy(&format!("[limits]\nmax-steps = 3\n{fs}")),
        looping_brain(10),
    );
    let out = s.run_with(None);
    assert_eq!(out.code, exit::LIMIT, "{out:#?}");
    assert!(
        out.stderr.contains("`limits.max-steps` = 3"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    assert_eq!(out.events_named("tool call allowed").len(), 3);
}

#[test]
fn the_tool_call_budget_stops_a_run() {
    let s = Scratch::new();
    s.mkdir("d");
    let fs = "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"list_dir\"]\nmounts = [{ guest = \"/d\", host = \"d\", mode = \"ro\" }]\n";
    s.setup(
        &policy(&format!("[limits]\nmax-tool-calls = 2\n{fs}")),
        looping_brain(10),
    );
    let out = s.run_with(None);
    assert_eq!(out.code, exit::LIMIT, "{out:#?}");
    assert!(
        out.stderr.contains("`limits.max-tool-calls` = 2"),
        "{}",
        out.stderr
    );
    assert_eq!(out.events_named("tool call allowed").len(), 2);
}

#[test]
fn an_exhausted_script_is_the_agents_own_error() {
    let s = Scratch::new();
    s.setup(&policy(""), json!([]));
    let out = s.run_with(None);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains("the brain has no turns left"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_per_tool_quota_refuses_further_calls_and_the_run_goes_on() {
    let s = Scratch::new();
    s.write("d/a.txt", "a");
    let fs = "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\", \"list_dir\"]\nmax-calls = { read_file = 2 }\nmounts = [{ guest = \"/d\", host = \"d\", mode = \"ro\" }]\n";
    let read = ("fs.read_file", json!({ "path": "/d/a.txt" }));
    s.setup(
        &policy(fs),
        calls(&[
            read.clone(),
            read.clone(),
            read,
            ("fs.list_dir", json!({ "path": "/d" })),
        ]),
    );
    let out = s.run_echo();
    let t = out.transcript();
    let kinds = kinds(&t);
    assert_eq!(kinds, ["ok", "ok", "limit_exceeded", "ok"], "{t:#?}");
    assert_eq!(
        t[2]["message"], "`fs.read_file` has no calls left in this run",
        "{t:#?}"
    );
    let denied: Vec<_> = out
        .events_named("tool call refused")
        .into_iter()
        .filter(|e| e["rule"] == "capabilities.fs.max-calls")
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["rule"], "capabilities.fs.max-calls");
}
