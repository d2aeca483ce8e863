//! The CLI a user meets: one exit code per kind of mistake, messages
//! without Rust's shapes, each OS error once, a quiet end on a closed pipe,
//! no silent loss of logs, no state created by reading, no colour where
//! nobody sees it, and `policy check` honest about what it checked.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::common::*;

#[test]
fn a_missing_file_is_a_usage_error_named_once() {
    let s = Scratch::new();
    s.setup(&policy(""), serde_json::json!([{ "content": "done" }]));
    let policy_file = s.path("policy.toml");
    let p = policy_file.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["bundle", "verify", "missing.fcb", "--trust", p],
            "missing.fcb",
        ),
        (vec!["bundle", "inspect", "missing.fcb"], "missing.fcb"),
        (
            vec!["bundle", "pack", "missing.toml", "-o", "x.fcb"],
            "missing.toml",
        ),
        (vec!["run", "missing.wasm", "--policy", p], "missing.wasm"),
        (vec!["run", "missing.fcb", "--policy", p], "missing.fcb"),
        (vec!["run", "--policy", "missing.toml"], "missing.toml"),
        (
            vec!["run", "--policy", p, "--brain", "scripted:missing.json"],
            "missing.json",
        ),
        (vec!["compile", "missing.wasm"], "missing.wasm"),
        (
            vec!["policy", "explain", p, "--bundle", "missing.fcb"],
            "missing.fcb",
        ),
        (
            vec!["bundle", "sign", "missing.fcb", "--key", "missing.key"],
            "missing.fcb",
        ),
        (vec!["policy", "check", "missing.toml"], "missing.toml"),
    ];
    for (args, file) in cases {
        let out = run(fc_host().current_dir(s.dir.path()).args(&args));
        assert_eq!(out.code, exit::USAGE, "{args:?}: {out:#?}");
        assert!(
            out.stderr.contains(file),
            "{args:?} names `{file}`: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr.matches("No such file or directory").count(),
            1,
            "{args:?}: the OS error once: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("os error"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn user_facing_text_has_no_rust_shapes() {
    let s = Scratch::new();
    s.setup(&policy(""), serde_json::json!([]));
    let explain = run(fc_host()
        .args(["policy", "explain"])
        .arg(s.path("policy.toml")));
    assert_eq!(explain.code, exit::OK, "{explain:#?}");
    let failed = run(fc_host()
        .args(["run", "--policy"])
        .arg(s.path("policy.toml")));
    assert_eq!(failed.code, 1, "{failed:#?}");
    for text in [&explain.stdout, &failed.stderr] {
        for shape in [
            "Scripted {",
            "Builtin(",
            "BrainError",
            "ToolError",
            "Exhausted",
            "Some(",
            "\"}",
        ] {
            assert!(!text.contains(shape), "`{shape}` in: {text}");
        }
    }
    assert!(
        explain.stdout.contains("brain: scripted, script "),
        "{}",
        explain.stdout
    );
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let s = Scratch::new();
    s.setup(
        &policy("[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\n"),
        serde_json::json!([]),
    );
    // `fc-host policy explain --json FILE | head -1`
    let mut child = fc_host()
        .args(["policy", "explain", "--json"])
        .arg(s.path("policy.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first.trim(), "{");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn an_unknown_log_level_is_refused() {
    let out = run(fc_host().args([
        "--log-level",
        "verbose",
        "policy",
        "check",
        "examples/hello/policy.toml",
    ]));
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr
            .contains("invalid --log-level `verbose`: `verbose` is not a level"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "nothing ran: {out:#?}");
}

#[test]
fn reading_creates_no_state() {
    let state = fresh_dir().join("not-yet");
    let runs = run(fc_host().args(["runs", "--state"]).arg(&state));
    assert_eq!(runs.code, exit::OK, "{runs:#?}");
    assert_eq!(
        runs.stdout.lines().count(),
        1,
        "the header only: {}",
        runs.stdout
    );
    let inspect = run(fc_host()
        .args(["inspect", "some-run", "--state"])
        .arg(&state));
    assert_eq!(inspect.code, exit::JOURNAL, "{inspect:#?}");
    assert!(
        inspect.stderr.contains("no run `some-run`"),
        "{}",
        inspect.stderr
    );
    assert!(
        !state.exists(),
        "nothing was created at {}",
        state.display()
    );
}

#[test]
fn colour_only_on_a_terminal() {
    // stderr is a pipe here: not a byte of ANSI.
    let out = run(fc_host().args(["run", "--policy", "examples/hello/policy.toml"]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert!(out.stderr.lines().count() > 5, "{}", out.stderr);
    assert!(!out.stderr.contains('\u{1b}'), "{}", out.stderr);
}

#[test]
fn policy_check_says_what_it_checked() {
    let s = Scratch::new();
    s.mkdir("data");
    let missing = "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\", \"delete_everything\"]\n";
    s.write("policy.toml", missing);
    let plain = run(fc_host()
        .args(["policy", "check"])
        .arg(s.path("policy.toml")));
    assert_eq!(plain.code, exit::OK, "{plain:#?}");
    assert!(
        plain.stdout.contains(
            "its tools were not checked against the components (`--components` loads them)"
        ),
        "{}",
        plain.stdout
    );
    let deep = run(fc_host()
        .args(["policy", "check", "--components"])
        .arg(s.path("policy.toml")));
    assert_eq!(deep.code, exit::USAGE, "{deep:#?}");
    assert!(
        deep.stderr.contains("`capabilities.fs.tools` grants `delete_everything`, which the component does not provide (it provides: read_file, write_file, list_dir)"),
        "{}",
        deep.stderr
    );
    let good = run(fc_host().args([
        "policy",
        "check",
        "--components",
        "examples/hello/policy.toml",
    ]));
    assert_eq!(good.code, exit::OK, "{good:#?}");
    assert!(
        good.stdout.contains("every granted tool is provided"),
        "{}",
        good.stdout
    );
    assert!(
        good.stdout
            .contains("capability fs (builtin:fs) describes read_file, write_file, list_dir"),
        "{}",
        good.stdout
    );
}
