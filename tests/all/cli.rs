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

/// `policy diff` on the shipped strict and dev policies, and on a change
/// that adds a capability with a secret and a net rule: every difference
/// classified, in text and JSON, and no secret value shown.
#[test]
fn policy_diff_says_what_a_change_grants_and_takes_away() {
    let out = run(fc_host().args([
        "policy",
        "diff",
        "policies/strict.toml",
        "policies/dev.toml",
    ]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    for line in [
        "+ grants     capabilities.fs.tools: \"write_file\"",
        "> widens     limits.max-steps: 8 -> 64",
        "> widens     trust.require-signature: true -> false",
        "\"mode\":\"read-write\"",
        "- takes away capabilities.fs.mounts: ",
    ] {
        assert!(out.stdout.contains(line), "{line}\n{}", out.stdout);
    }
    let back = run(fc_host().args([
        "policy",
        "diff",
        "policies/dev.toml",
        "policies/strict.toml",
        "--json",
    ]));
    let changes: serde_json::Value = serde_json::from_str(&back.stdout).unwrap();
    let kinds: Vec<(&str, &str)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["kind"].as_str().unwrap()))
        .collect();
    assert!(
        kinds.contains(&("capabilities.fs.tools", "takes-away")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("limits.max-steps", "narrows")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("trust.require-signature", "narrows")),
        "{kinds:?}"
    );

    let s = Scratch::new();
    s.mkdir("data");
    let base = "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"ro\" }]\n";
    s.write("a.toml", base);
    // The same grants, spelled differently: no difference.
    s.write(
        "same.toml",
        "version = 1\n[limits]\nmax-steps = 16\n[capabilities.fs]\ntools = [\"read_file\"]\ncomponent = \"builtin:fs\"\nmounts = [{ guest = \"/data\", host = \"./data\", mode = \"ro\" }]\n",
    );
    let same = run(fc_host()
        .args(["policy", "diff"])
        .arg(s.path("a.toml"))
        .arg(s.path("same.toml")));
    assert_eq!(same.code, exit::OK, "{same:#?}");
    assert!(
        same.stdout.contains("no difference in effect"),
        "{}",
        same.stdout
    );
    s.write(
        "b.toml",
        &format!(
            "{base}[capabilities.http]\ncomponent = \"builtin:http\"\ntools = [\"get\"]\nnet = [\"https://api.example.com\"]\nsecrets = {{ TOKEN = {{ env = \"FC_DIFF_TOKEN\" }} }}\n"
        ),
    );
    let out = run(fc_host()
        .env("FC_DIFF_TOKEN", "value-never-shown-1234")
        .args(["policy", "diff"])
        .arg(s.path("a.toml"))
        .arg(s.path("b.toml")));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    for line in [
        "+ grants     capabilities.http.tools: \"get\"",
        "+ grants     capabilities.http.net: {\"host\":{\"name\":\"api.example.com\"}",
        "+ grants     capabilities.http.secrets.TOKEN.env: \"FC_DIFF_TOKEN\"",
        "+ grants     capabilities.http.component.builtin: \"http\"",
    ] {
        assert!(out.stdout.contains(line), "{line}\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("value-never-shown"), "{}", out.stdout);
    // A policy that does not parse is the usual policy error.
    s.write("bad.toml", "version = 1\n[capabilities.fs]\ntools = 3\n");
    let bad = run(fc_host()
        .args(["policy", "diff"])
        .arg(s.path("a.toml"))
        .arg(s.path("bad.toml")));
    assert_eq!(bad.code, exit::USAGE, "{bad:#?}");
    assert!(bad.stderr.contains("bad.toml"), "{}", bad.stderr);
}

/// `--policy Strict` (and `Standard`, `Dev`) is a built-in policy over the
/// working directory: Strict reads it and refuses a write, Standard
/// writes; the run journals the preset's text, so it replays from
/// anywhere; a wrong case is refused with the right spelling.
#[test]
fn presets_are_policies_named_by_their_names() {
    let s = Scratch::new();
    s.write("notes.txt", "from the working directory");
    let write = serde_json::json!({ "path": "/workspace/made.txt", "content": "x" });
    s.write(
        "turns.json",
        &calls(&[
            (
                "fs.read_file",
                serde_json::json!({ "path": "/workspace/notes.txt" }),
            ),
            ("fs.write_file", write),
        ])
        .to_string(),
    );
    let state = fresh_dir();
    let preset_run = |name: &str| {
        run(fc_host()
            .current_dir(s.path(""))
            .env("FC_STATE_DIR", &state)
            .args([
                "run",
                "--policy",
                name,
                "--brain",
                "scripted:turns.json",
                "--task",
                "t",
            ]))
    };
    // Strict reads, refuses the write, and (`on-refusal = "stop"`) ends
    // the run there as a policy violation.
    let strict = preset_run("Strict");
    assert_eq!(strict.code, exit::REFUSED, "{strict:#?}");
    assert!(
        strict
            .stderr
            .contains("(denied: tool `fs.write_file` is not granted by `capabilities.fs.tools`), and `on-refusal` is `stop`"),
        "{}",
        strict.stderr
    );
    let id = strict.run_id();
    let audit = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .args(["audit", &id, "--json"]));
    let report: serde_json::Value = serde_json::from_str(&audit.stdout).unwrap();
    let rows: Vec<(&str, &str)> = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["tool"].as_str().unwrap_or("-"),
                d["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("fs.read_file", "allow"),
            ("fs.write_file", "deny"),
            ("-", "stop")
        ]
    );
    assert_eq!(report["status"], "refused", "{report:#}");
    assert!(!s.path("made.txt").exists(), "Strict wrote nothing");
    let replay = run(fc_host()
        .current_dir(std::env::temp_dir())
        .env("FC_STATE_DIR", &state)
        .args(["replay", &id]));
    assert_eq!(
        replay.code,
        exit::REFUSED,
        "the journaled preset replays anywhere, to the same end: {replay:#?}"
    );

    // The same calls under `on-refusal = "inform"` (the default): the agent
    // is told and finishes.
    s.write(
        "inform.toml",
        "version = 1\non-refusal = \"inform\"\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/workspace\", host = \".\", mode = \"ro\" }]\n",
    );
    let inform = preset_run("inform.toml");
    assert_eq!(inform.code, exit::OK, "{inform:#?}");
    s.write("typo.toml", "version = 1\non-refusal = \"halt\"\n");
    let typo = preset_run("typo.toml");
    assert_eq!(typo.code, exit::USAGE, "{typo:#?}");
    assert!(
        typo.stderr
            .contains("`on-refusal`: `halt` is not `inform` or `stop`"),
        "{}",
        typo.stderr
    );

    let standard = preset_run("Standard");
    assert_eq!(standard.code, exit::OK, "{standard:#?}");
    assert_eq!(std::fs::read_to_string(s.path("made.txt")).unwrap(), "x");

    let explain = run(fc_host()
        .current_dir(s.path(""))
        .args(["policy", "explain", "Dev"]));
    assert!(
        explain.stdout.starts_with("preset Dev: "),
        "{}",
        explain.stdout
    );
    let wrong = preset_run("strict");
    assert_eq!(wrong.code, exit::USAGE, "{wrong:#?}");
    assert!(
        wrong
            .stderr
            .contains("the preset is spelled `Strict` (presets: Strict, Standard, Dev)"),
        "{}",
        wrong.stderr
    );
}

/// The bash completion script loads into bash and completes subcommands
/// and their flags; the other shells get a script too.
#[test]
fn completions_load_into_bash_and_complete() {
    let s = Scratch::new();
    let out = run(fc_host().args(["completions", "bash"]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let script = s.write("fc-host.bash", &out.stdout);
    // Complete `LINE` as bash would at its end, and print the candidates.
    let complete = |line: &str| {
        let probe = r#"source "$1" || exit 9
fn=$(complete -p fc-host | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || exit 8
read -ra COMP_WORDS <<< "$2"
[[ "$2" == *' ' ]] && COMP_WORDS+=('')
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}
"$fn" fc-host "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}""#;
        let out = std::process::Command::new("bash")
            .args(["--norc", "-c", probe, "probe"])
            .arg(&script)
            .arg(line)
            .output()
            .expect("bash runs");
        assert!(out.status.success(), "{line}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let words = complete("fc-host m");
    let words: Vec<&str> = words.lines().collect();
    assert!(
        words.contains(&"mcp") && words.contains(&"man"),
        "{words:?}"
    );
    assert!(!words.contains(&"run"), "{words:?}");
    let flags = complete("fc-host run --pol");
    assert_eq!(flags.trim(), "--policy", "{flags}");

    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = run(fc_host().args(["completions", shell]));
        assert_eq!(out.code, exit::OK, "{shell}: {out:#?}");
        assert!(out.stdout.contains("fc-host"), "{shell}: {}", out.stdout);
    }
    let out = run(fc_host().args(["completions", "tcsh"]));
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(out.stderr.contains("tcsh"), "{}", out.stderr);
}

/// `fc-host man DIR` writes a page for fc-host and each subcommand, and
/// `man` renders them.
#[test]
fn man_pages_are_written_and_render() {
    let s = Scratch::new();
    let dir = s.path("man/man1");
    let out = run(fc_host().arg("man").arg(&dir));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    for page in [
        "fc-host.1",
        "fc-host-run.1",
        "fc-host-serve.1",
        "fc-host-bundle-sign.1",
    ] {
        assert!(dir.join(page).is_file(), "{page}");
    }
    let rendered = std::process::Command::new("man")
        .arg("-l")
        .arg(dir.join("fc-host-run.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C")
        .output()
        .expect("man runs");
    assert!(rendered.status.success(), "{rendered:?}");
    let text = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        text.contains("fc-host-run") && text.contains("--policy"),
        "{text}"
    );
    // A file where the directory should be is a clear error.
    let file = s.write("not-a-dir", "");
    let out = run(fc_host().arg("man").arg(file.join("sub")));
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(out.stderr.contains("not-a-dir"), "{}", out.stderr);
}

#[test]
fn run_json_prints_one_object_for_scripts() {
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello/policy.toml");
    let state = fresh_dir();
    let out = fc(&state, &["run", "--policy", hello, "--json"]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(v["run_id"], out.run_id(), "{v}");
    assert!(v["answer"].as_str().unwrap().contains("notes.txt"), "{v}");
    assert_eq!(
        (
            v["stats"]["tool_calls"].as_u64(),
            v["stats"]["refused"].as_u64()
        ),
        (Some(4), Some(1)),
        "{v}"
    );

    // A run a limit stops: still one object, with the error and its code.
    let s = Scratch::new();
    s.setup(
        &policy("[limits]\nmax-tool-calls = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"list_dir\"]\n"),
        calls(&[("fs.list_dir", serde_json::json!({ "path": "/" })), ("fs.list_dir", serde_json::json!({ "path": "/" }))]),
    );
    let out = fc(
        &state,
        &[
            "run",
            "--policy",
            s.path("policy.toml").to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(out.code, exit::LIMIT, "{out:#?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["exit_code"].as_i64()),
        (Some("error"), Some(3)),
        "{v}"
    );
    assert!(
        v["error"].as_str().unwrap().contains("max-tool-calls"),
        "{v}"
    );
    assert!(
        out.stderr.contains("max-tool-calls"),
        "the error line stays on stderr: {out:#?}"
    );
}

#[test]
fn wit_writes_the_package_guests_build_against() {
    let dir = fresh_dir().join("wit");
    let out = fc(&fresh_dir(), &["wit", dir.to_str().unwrap()]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let names = |d: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("host/runtime/wit");
    assert_eq!(
        names(&dir),
        names(&repo),
        "every file of host/runtime/wit/, and no other"
    );
    for name in names(&repo) {
        assert_eq!(
            std::fs::read_to_string(dir.join(&name)).unwrap(),
            std::fs::read_to_string(repo.join(&name)).unwrap(),
            "{name}"
        );
    }
}

/// Compiling a component takes seconds for an interpreter-sized one: a
/// line says so before, and how long it took after, at the default level,
/// on a terminal (a pseudo-terminal here) as in a pipe; a cached component
/// compiles no more.
#[test]
fn compiling_a_component_says_so_on_a_terminal() {
    let state = fresh_dir();
    let under_pty = || {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import pty, sys; sys.exit(pty.spawn(sys.argv[1:]) >> 8)",
            ])
            .arg(env!("CARGO_BIN_EXE_fc-host"))
            .args([
                "call",
                artifacts::CAP_FS,
                "list_dir",
                r#"{"path":"/"}"#,
                "--state",
            ])
            .arg(&state)
            .env_remove("RUST_LOG")
            .output()
            .expect("python3 runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = under_pty();
    assert!(first.contains("compiling a component"), "{first}");
    assert!(
        first.contains("component compiled") && first.contains("seconds="),
        "{first}"
    );
    let second = under_pty();
    assert!(!second.contains("compiling a component"), "{second}");
    // In a pipe, the same event.
    let state = fresh_dir();
    let piped = fc(
        &state,
        &["call", artifacts::CAP_FS, "list_dir", r#"{"path":"/"}"#],
    );
    assert!(piped.stderr.contains("compiling a component"), "{piped:#?}");
}

#[test]
fn doctor_checks_what_a_run_needs_and_says_what_to_do() {
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello/policy.toml");
    let state = fresh_dir();
    let out = fc(&state, &["doctor", "--policy", hello]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert!(
        out.stdout
            .contains("capability fs: builtin:fs provides read_file"),
        "{out:#?}"
    );
    assert!(out.stdout.contains("no problems found"), "{out:#?}");

    // A brain whose key is unset and a component file that is not one.
    let s = Scratch::new();
    s.write("bad.wasm", "not wasm");
    s.write(
        "policy.toml",
        "version = 1\n[brain]\nkind = \"openai\"\nbase-url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\napi-key-env = \"FC_TEST_UNSET_KEY\"\n[capabilities.x]\ncomponent = \"bad.wasm\"\ntools = [\"t\"]\n",
    );
    let out = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .env_remove("FC_TEST_UNSET_KEY")
        .args(["doctor", "--policy"])
        .arg(s.path("policy.toml")));
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stdout.contains("PROBLEM  capabilities")
            && out.stdout.contains("not a WebAssembly file"),
        "{out:#?}"
    );
    assert!(
        out.stdout.contains("PROBLEM  brain") && out.stdout.contains("FC_TEST_UNSET_KEY"),
        "{out:#?}"
    );
    assert_eq!(
        out.stdout.matches("do: ").count(),
        2,
        "each problem says what to do: {out:#?}"
    );
    assert!(out.stdout.contains("2 problem(s) found"), "{out:#?}");
}
