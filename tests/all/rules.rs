//! Policy depth: rules on arguments, human approval, rates over time, and
//! what a refusal tells the model (the refusal in full goes to the journal
//! and the audit only). Every decision replays without anyone asked.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::*;

const FS: &str = r#"
[capabilities.fs]
component = "builtin:fs"
tools = ["read_file", "write_file"]
mounts = [{ guest = "/data", host = "data", mode = "rw" }]
"#;

fn scratch() -> Scratch {
    let s = Scratch::new();
    s.write("data/public/a.txt", "public text");
    s.write("data/private/b.txt", "PRIVATE-CANARY-41");
    s
}

fn audit(state: &Path, id: &str) -> Vec<Value> {
    let out = fc(state, &["audit", id, "--json"]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["decisions"].as_array().unwrap().clone()
}

/// The answers to approval requests in an audit: (decision, by).
fn answers(rows: &[Value]) -> Vec<(&str, &str)> {
    rows.iter()
        .filter(|r| r["outcome"] == "approval" && r["decision"] != "ask")
        .map(|r| (r["decision"].as_str().unwrap(), r["by"].as_str().unwrap()))
        .collect()
}

fn echo(s: &Scratch, state: &Path, extra: &[&str]) -> Output {
    let policy = s.path("policy.toml");
    let mut args = vec![
        "run",
        artifacts::AGENT_ECHO,
        "--policy",
        policy.to_str().unwrap(),
    ];
    args.extend(extra);
    fc(state, &args)
}

#[test]
fn a_rule_allows_one_path_and_refuses_its_neighbour_telling_the_model_only_that() {
    let s = scratch();
    s.setup(
        &policy(&format!(
            "{FS}\n[[rules]]\nname = \"public-reads\"\ntool = \"fs.read_file\"\naction = \"allow\"\nwhen = {{ \"/path\" = {{ path = \"/data/public/**\" }} }}\n"
        )),
        calls(&[
            ("fs.read_file", json!({ "path": "/data/public/a.txt" })),
            ("fs.read_file", json!({ "path": "/data/private/b.txt" })),
            ("fs.read_file", json!({ "path": "/data/public/../private/b.txt" })),
        ]),
    );
    let state = fresh_dir();
    let out = echo(&s, &state, &[]);
    let t = out.transcript();
    assert_eq!(kinds(&t), ["ok", "denied", "denied"], "{t:#?}");
    assert!(t[0]["ok"].as_str().unwrap().contains("public text"));
    for refused in &t[1..] {
        let told = refused["message"].as_str().unwrap();
        assert_eq!(
            told,
            "the policy does not allow this call of `fs.read_file`"
        );
    }
    assert_no_canary(&out, "PRIVATE-CANARY-41");
    let rows = audit(&state, &out.run_id());
    let rules: Vec<&str> = rows.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["rules.public-reads", "rules", "rules"], "{rows:#?}");
    assert!(
        rows[1]["detail"]
            .as_str()
            .unwrap()
            .contains("no `allow` rule of `fs.read_file` matches"),
        "the audit has what the model was not told: {rows:#?}"
    );
    let replay = fc(&state, &["replay", &out.run_id()]);
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
    assert_eq!(replay.stdout, out.stdout);
}

const APPROVE: &str = "approve = [\"fs.write_file\"]\n";

fn approval_setup() -> Scratch {
    let s = scratch();
    s.setup(
        &policy_with(APPROVE, FS),
        calls(&[(
            "fs.write_file",
            json!({ "path": "/data/out.txt", "content": "approved write" }),
        )]),
    );
    s
}

#[test]
fn approvals_from_flags_are_journaled_and_never_asked_again_in_replay() {
    for (flag, kind, by) in [
        ("allow", "ok", "--approve allow"),
        ("deny", "denied", "--approve deny"),
    ] {
        let s = approval_setup();
        let state = fresh_dir();
        let out = echo(&s, &state, &["--approve", flag]);
        let t = out.transcript();
        assert_eq!(kinds(&t), [kind], "{t:#?}");
        assert_eq!(s.path("data/out.txt").exists(), flag == "allow");
        let rows = audit(&state, &out.run_id());
        let expected = if flag == "allow" { "approve" } else { "deny" };
        assert_eq!(answers(&rows), [(expected, by)], "{rows:#?}");
        assert!(
            rows.iter()
                .any(|r| r["outcome"] == "approval" && r["rule"] == "approve")
        );
        // Replay needs no approver (and has none: stdin is not a terminal
        // and no --approve is given).
        let replay = fc(&state, &["replay", &out.run_id()]);
        assert_eq!(replay.code, exit::OK, "{replay:#?}");
        assert_eq!(replay.stdout, out.stdout);
    }
    // Without a terminal and without --approve, nobody approves.
    let s = approval_setup();
    let out = echo(&s, &fresh_dir(), &[]);
    assert_eq!(kinds(&out.transcript()), ["denied"]);
    assert!(!s.path("data/out.txt").exists());
}

/// Runs fc-host under a pseudo-terminal, typing `answers[i]` at its i-th
/// approval prompt (`-`: nothing); what the terminal showed, and the exit
/// code.
fn under_pty(state: &Path, args: &[&str], answers: &[&str]) -> (String, i32) {
    let script = r#"
import os, pty, sys, select, time
answers = sys.argv[1].split(",")
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
out = b""
seen = 0
deadline = time.time() + 120
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 1.0)
    if not r:
        continue
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    prompts = out.count(b"approve? [y/N]")
    while seen < prompts:
        answer = answers[seen] if seen < len(answers) else "-"
        if answer != "-":
            os.write(fd, answer.encode() + b"\n")
        seen += 1
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &answers.join(","),
            env!("CARGO_BIN_EXE_fc-host"),
        ])
        .args(args)
        .env("FC_STATE_DIR", state)
        .env_remove("RUST_LOG")
        .output()
        .expect("python3 runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The echo agent on `policy.toml`, under a pseudo-terminal.
fn echo_under_pty(s: &Scratch, state: &Path, answers: &[&str]) -> (String, i32) {
    let policy = s.path("policy.toml");
    let args = [
        "run",
        artifacts::AGENT_ECHO,
        "--policy",
        policy.to_str().unwrap(),
    ];
    under_pty(state, &args, answers)
}

#[test]
fn a_person_at_a_terminal_approves_denies_or_lets_it_time_out() {
    for (answer, written, by) in [
        (Some("y"), true, "terminal"),
        (Some("n"), false, "terminal"),
        (None, false, "timeout"),
    ] {
        let s = scratch();
        s.setup(
            &policy_with(
                APPROVE,
                &format!("[limits]\napproval-timeout = \"2s\"\n{FS}"),
            ),
            calls(&[(
                "fs.write_file",
                json!({ "path": "/data/out.txt", "content": "approved write" }),
            )]),
        );
        let state = fresh_dir();
        let (screen, code) = echo_under_pty(&s, &state, &[answer.unwrap_or("-")]);
        assert_eq!(code, 0, "{screen}");
        assert!(screen.contains("approval needed (`approve`)"), "{screen}");
        assert!(screen.contains("tool:      fs.write_file"), "{screen}");
        assert!(
            screen.contains("approved write"),
            "the arguments are shown: {screen}"
        );
        assert_eq!(s.path("data/out.txt").exists(), written, "{screen}");
        let id = first_run_id(&state);
        let rows = audit(&state, &id);
        assert_eq!(answers(&rows)[0].1, by, "{rows:#?}");
        assert_eq!(fc(&state, &["replay", &id]).code, exit::OK);
    }
}

/// A prompt that timed out leaves nothing behind to take the answer to the
/// next one, and what was typed before a question is no answer to it.
#[test]
fn the_answer_to_a_later_prompt_is_not_taken_by_one_that_timed_out() {
    let s = scratch();
    let write = |file: &str| {
        (
            "fs.write_file",
            json!({ "path": format!("/data/{file}"), "content": "x" }),
        )
    };
    s.setup(
        &policy_with(
            APPROVE,
            &format!("[limits]\napproval-timeout = \"2s\"\n{FS}"),
        ),
        calls(&[write("first.txt"), write("second.txt")]),
    );
    let state = fresh_dir();
    let (screen, code) = echo_under_pty(&s, &state, &["-", "y"]);
    assert_eq!(code, 0, "{screen}");
    assert!(!s.path("data/first.txt").exists(), "{screen}");
    assert!(s.path("data/second.txt").exists(), "{screen}");
    let rows = audit(&state, &first_run_id(&state));
    assert_eq!(
        answers(&rows),
        [("deny", "timeout"), ("approve", "terminal")],
        "{rows:#?}"
    );
}

/// A run killed with SIGKILL while it waits for a person (its calls so far
/// journaled with their times) and resumed keeps the counts its rates are
/// fed from: the call over `calls-per-minute` is refused after the resume as
/// it would have been without the kill. The `write` that waited never ran,
/// so it is asked again, not treated as of unknown outcome (which the
/// default `on-uncertain = "fail"` would stop at).
#[test]
fn a_rate_limit_refuses_past_the_limit_and_keeps_its_count_across_kill_9() {
    let s = scratch();
    let read = |p: &str| json!({ "name": "fs.read_file", "arguments": { "path": p } });
    s.setup(
        &policy_with(
            APPROVE,
            &format!("{FS}[capabilities.fs.tool-rates.read_file]\ncalls-per-minute = 2\n"),
        ),
        json!([
            { "content": null, "tool_calls": [read("/data/public/a.txt"), read("/data/public/a.txt"),
                { "name": "fs.write_file", "arguments": { "path": "/data/out.txt", "content": "x" } }] },
            { "content": null, "tool_calls": [read("/data/public/a.txt")] },
            { "content": "done" },
        ]),
    );
    let state = fresh_dir();
    let policy = s.path("policy.toml");
    // Killed (SIGKILL, by the script) once the prompt shows.
    let script = r#"
import os, pty, sys, signal, select, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
deadline = time.time() + 120
while time.time() < deadline and b"approve? [y/N]" not in out:
    r, _, _ = select.select([fd], [], [], 1.0)
    if r:
        out += os.read(fd, 4096)
os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(0 if os.WIFSIGNALED(status) else 1)
"#;
    let killed = std::process::Command::new("python3")
        .args(["-c", script, env!("CARGO_BIN_EXE_fc-host")])
        .args([
            "run",
            artifacts::AGENT_ECHO,
            "--policy",
            policy.to_str().unwrap(),
        ])
        .env("FC_STATE_DIR", &state)
        .output()
        .expect("python3 runs");
    let screen = String::from_utf8_lossy(&killed.stdout);
    assert!(killed.status.success(), "killed while waiting: {screen}");
    let id = first_run_id(&state);
    let resumed = fc(&state, &["resume", &id, "--approve", "deny"]);
    assert_eq!(resumed.code, exit::OK, "{resumed:#?}");
    let rows = audit(&state, &id);
    let calls: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| {
            r.get("outcome")
                .is_some_and(|o| o != "approval" && o != "uncertain")
        })
        .map(|r| (r["tool"].as_str().unwrap(), r["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        calls,
        [
            ("fs.read_file", "capabilities.fs.tools"),
            ("fs.read_file", "capabilities.fs.tools"),
            ("fs.write_file", "approve"),
            (
                "fs.read_file",
                "capabilities.fs.tool-rates.read_file.calls-per-minute"
            ),
        ],
        "{rows:#?}"
    );
    assert!(
        !s.path("data/out.txt").exists(),
        "the write was never approved"
    );
    let replay = fc(&state, &["replay", &id]);
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
}

/// `calls-per-day` counts every run of the state directory (in a server,
/// the tenant's): a second run gets what the first left of the day.
#[test]
fn calls_per_day_are_shared_by_every_run_of_the_state_directory() {
    let s = scratch();
    s.setup(
        &policy(&format!("{FS}[capabilities.fs.rates]\ncalls-per-day = 3\n")),
        calls(&[
            ("fs.read_file", json!({ "path": "/data/public/a.txt" })),
            ("fs.read_file", json!({ "path": "/data/public/a.txt" })),
        ]),
    );
    let state = fresh_dir();
    let first = echo(&s, &state, &[]);
    assert_eq!(kinds(&first.transcript()), ["ok", "ok"]);
    let second = echo(&s, &state, &[]);
    let t = second.transcript();
    assert_eq!(kinds(&t), ["ok", "limit_exceeded"], "{t:#?}");
    assert!(
        !t[1]["message"].as_str().unwrap().contains("calls-per-day"),
        "the model is not told the rule"
    );
    let rows = audit(&state, &second.run_id());
    assert_eq!(
        rows[1]["rule"], "capabilities.fs.rates.calls-per-day",
        "{rows:#?}"
    );
    // Another state directory has its own day.
    assert_eq!(
        kinds(&echo(&s, &fresh_dir(), &[]).transcript()),
        ["ok", "ok"]
    );
    // The replay decides from the journal, whatever the day's count is now.
    let replay = fc(&state, &["replay", &first.run_id()]);
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
    assert_eq!(replay.stdout, first.stdout);
}

/// `policy explain` shows the rules in the order they are tried, the
/// approvals and the rates; `policy diff` says what adding them narrows.
#[test]
fn explain_and_diff_show_rules_approvals_and_rates() {
    let s = scratch();
    let plain = s.write("plain.toml", &policy(FS));
    let strict = s.write(
        "strict.toml",
        &policy_with(
            APPROVE,
            &format!(
                "{FS}[capabilities.fs.tool-rates.read_file]\ncalls-per-minute = 5\n[[rules]]\nname = \"public\"\ntool = \"fs.read_file\"\naction = \"allow\"\nwhen = {{ \"/path\" = {{ path = \"/data/public/**\" }} }}\n[[rules]]\nname = \"no-keys\"\ntool = \"fs.write_file\"\naction = \"deny\"\nwhen = {{ \"/path\" = {{ path = \"/data/**/*.key\" }} }}\n"
            ),
        ),
    );
    std::fs::write(s.path("brain.json"), "[]").unwrap();
    let state = fresh_dir();
    let explain = fc(&state, &["policy", "explain", strict.to_str().unwrap()]);
    assert_eq!(explain.code, exit::OK, "{explain:#?}");
    for line in [
        "rates of fs.read_file: 5 calls per minute",
        "approval (a person answers; none within 300s denies): fs.write_file",
        "rules.public: allow fs.read_file when /path {\"path\":\"/data/public/**\"}",
        "rules.no-keys: deny fs.write_file when /path {\"path\":\"/data/**/*.key\"}",
    ] {
        assert!(explain.stdout.contains(line), "{line}\n{}", explain.stdout);
    }
    let diff = fc(
        &state,
        &[
            "policy",
            "diff",
            plain.to_str().unwrap(),
            strict.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(diff.code, exit::OK, "{diff:#?}");
    let changes: Value = serde_json::from_str(&diff.stdout).unwrap();
    let kinds: Vec<(&str, &str)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("approve", "narrows"),
            (
                "capabilities.fs.tool-rates.read_file.calls-per-minute",
                "narrows"
            ),
            ("rules", "changes"),
            ("rules", "narrows"),
        ],
        "{changes:#}"
    );
}

/// A call refused after the quota check (here, not approved) does not use
/// up the tool's `max-calls`: live as in a resumed run, only a call
/// journaled as counted counts.
#[test]
fn a_call_refused_by_a_later_check_does_not_use_up_the_quota() {
    let s = scratch();
    let write = |file: &str| {
        (
            "fs.write_file",
            json!({ "path": format!("/data/{file}"), "content": "x" }),
        )
    };
    s.setup(
        &policy_with(APPROVE, &format!("{FS}max-calls = {{ write_file = 1 }}\n")),
        calls(&[write("a.txt"), write("b.txt")]),
    );
    let state = fresh_dir();
    let out = echo(&s, &state, &["--approve", "deny"]);
    assert_eq!(kinds(&out.transcript()), ["denied", "denied"]);
    let rows = audit(&state, &out.run_id());
    let rules: Vec<&str> = rows
        .iter()
        .filter(|r| r["outcome"] != "approval")
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["approve", "approve"], "{rows:#?}");
}

/// `read-per-run` withholds a result that would go over it (the call ran,
/// and counts) and refuses the next call before it runs; `written-per-run`
/// refuses a call whose arguments would go over it.
#[test]
fn byte_rates_withhold_what_goes_over_and_refuse_what_would() {
    let s = scratch();
    s.setup(
        &policy(&format!(
            "{FS}[capabilities.fs.tool-rates.read_file]\nread-per-run = 20\n[capabilities.fs.tool-rates.write_file]\nwritten-per-run = 60\n"
        )),
        calls(&[
            ("fs.read_file", json!({ "path": "/data/public/a.txt" })),
            ("fs.read_file", json!({ "path": "/data/public/a.txt" })),
            ("fs.write_file", json!({ "path": "/data/w1.txt", "content": "small" })),
            ("fs.write_file", json!({ "path": "/data/w2.txt", "content": "too large for what is left" })),
        ]),
    );
    let state = fresh_dir();
    let out = echo(&s, &state, &[]);
    let t = out.transcript();
    assert_eq!(
        kinds(&t),
        ["limit_exceeded", "limit_exceeded", "ok", "limit_exceeded"],
        "{t:#?}"
    );
    assert!(
        !out.stdout.contains("public text"),
        "the result was withheld"
    );
    assert!(s.path("data/w1.txt").exists() && !s.path("data/w2.txt").exists());
    let rows = audit(&state, &out.run_id());
    let rules: Vec<&str> = rows.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules,
        [
            "capabilities.fs.tool-rates.read_file.read-per-run",
            "capabilities.fs.tool-rates.read_file.read-per-run",
            "capabilities.fs.tools",
            "capabilities.fs.tool-rates.write_file.written-per-run",
        ],
        "{rows:#?}"
    );
    assert!(
        rows[0]["detail"].as_str().unwrap().contains("withheld"),
        "{rows:#?}"
    );
    // A resumed or replayed run counts the same bytes from the journal.
    let replay = fc(&state, &["replay", &out.run_id()]);
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
}

/// `fc-host call` asks whoever `--approve` names, as a run does.
#[test]
fn a_single_call_is_approved_or_denied_by_the_flag() {
    let s = scratch();
    let policy = s.write("call.toml", &format!("version = 1\n{APPROVE}{FS}"));
    let state = fresh_dir();
    let call = |file: &str, flag: &str| {
        let arguments = json!({ "path": format!("/data/{file}"), "content": "x" }).to_string();
        fc(
            &state,
            &[
                "call",
                "builtin:fs",
                "write_file",
                &arguments,
                "--policy",
                policy.to_str().unwrap(),
                "--approve",
                flag,
            ],
        )
    };
    let allowed = call("yes.txt", "allow");
    assert_eq!(allowed.code, exit::OK, "{allowed:#?}");
    assert!(s.path("data/yes.txt").exists());
    let denied = call("no.txt", "deny");
    assert_eq!(denied.code, 1, "{denied:#?}");
    assert!(denied.stderr.contains("was not approved"), "{denied:#?}");
    assert!(!s.path("data/no.txt").exists());
}
