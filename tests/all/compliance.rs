//! `fc-host compliance` on the user's own policy: what passes, and that a
//! check fails, naming the step, when the property does not hold.

use serde_json::{Value, json};

use crate::common::*;
use crate::mock_provider::{MockProvider, openai_turn};

fn compliance(args: &[&str]) -> Output {
    run(fc_host().arg("compliance").args(args))
}

/// That exactly one check failed, and its line says each of `expect`.
fn one_failure(out: &Output, expect: &[&str]) {
    assert_eq!(out.code, exit::COMPLIANCE, "{out:#?}");
    let failed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains(" FAIL "))
        .collect();
    assert_eq!(failed.len(), 1, "{out:#?}");
    for e in expect {
        assert!(failed[0].contains(e), "expected `{e}`: {out:#?}");
    }
}

#[test]
fn the_hello_example_passes_every_check_and_the_users_state_is_untouched() {
    let state = fresh_dir();
    let scratch = Scratch::new();
    let junit = scratch.path("report.xml");
    let out = run(fc_host().env("FC_STATE_DIR", &state).args([
        "compliance",
        "--policy",
        "examples/hello/policy.toml",
        "--replays",
        "5",
        "--json",
        "--junit",
        junit.to_str().unwrap(),
    ]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["passed"], true, "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    let named = |section: &str| checks.iter().filter(|c| c["section"] == section).count();
    assert_eq!(named("determinism"), 3, "{report:#}");
    // Eight hostile calls for each of the two granted tools.
    assert_eq!(named("protocol"), 16, "{report:#}");
    // The read-only mount: out of fc-host's state, escapes, links,
    // writes; no `net` grant, yet private addresses and raw sockets
    // refused; then four limits.
    assert_eq!(named("safety"), 10, "{report:#}");
    assert_eq!(named("performance"), 3, "{report:#}");
    assert!(checks.iter().all(|c| c["result"] == "pass"), "{report:#}");
    let replays = checks
        .iter()
        .find(|c| c["check"] == "replays give the recorded outcome")
        .unwrap();
    assert_eq!(replays["subject"], "5 replays");
    assert!(
        replays["detail"]
            .as_str()
            .unwrap()
            .contains("/data holds notes.txt")
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"32\" failures=\"0\" skipped=\"0\""),
        "{xml}"
    );
    assert!(xml.contains("<testsuite name=\"protocol\" tests=\"16\" failures=\"0\">"));
    // The runs journaled in a scratch directory, not in the user's state.
    let runs = fc(&state, &["runs", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&runs.stdout).unwrap(),
        json!([]),
        "{runs:#?}"
    );
}

#[test]
fn runs_that_depend_on_state_outside_the_journal_fail_determinism_naming_the_event() {
    // Each run lists a read-write directory, then writes a new file into
    // it: the second run lists what the first wrote.
    let s = Scratch::new();
    s.mkdir("data");
    s.setup(
        &policy(
            "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"list_dir\", \"write_file\"]\n\
             mounts = [{ guest = \"/data\", host = \"data\", mode = \"rw\" }]",
        ),
        json!([
            { "content": null, "tool_calls": [{ "name": "fs.list_dir", "arguments": { "path": "/data" } }] },
            { "content": null, "tool_calls": [{ "name": "fs.write_file",
                "arguments": { "path": "/data/note.txt", "content": "again" } }] },
            { "content": "done" }
        ]),
    );
    let junit = s.path("report.xml");
    let out = compliance(&[
        "--policy",
        s.path("policy.toml").to_str().unwrap(),
        "--only",
        "determinism",
        "--replays",
        "3",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    one_failure(
        &out,
        &["two fresh runs give the same events", "differs", "note.txt"],
    );
    // The recorded run still replays to its own outcome.
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("replays give the recorded outcome") && l.contains(" pass ")),
        "{out:#?}"
    );
    assert!(
        out.stdout
            .ends_with("3 checks: 2 passed, 1 failed, 0 skipped\n"),
        "{out:#?}"
    );
    assert!(!out.stdout.contains("protocol"), "{out:#?}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("failures=\"1\"") && xml.contains("<failure message=\"event "),
        "{xml}"
    );
}

#[test]
fn a_run_that_cannot_start_fails_the_determinism_check() {
    // Nothing listens on the port: the recorded run fails before its first
    // step, so there is nothing to replay, and the report says so.
    let out = compliance(&[
        "--policy",
        "examples/hello/policy.toml",
        "--brain",
        "local=http://127.0.0.1:9/v1",
        "--only",
        "determinism",
    ]);
    assert_eq!(out.code, exit::COMPLIANCE, "{out:#?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[1].contains("the recorded run starts") && lines[1].contains(" FAIL "),
        "{out:#?}"
    );
    assert!(lines[1].contains("unreachable"), "{out:#?}");
    assert!(
        out.stdout
            .ends_with("1 checks: 0 passed, 1 failed, 0 skipped\n"),
        "{out:#?}"
    );
}

#[test]
fn a_live_brain_skips_the_fresh_run_comparison_and_says_what_to_pass() {
    // One answer from a model on loopback: the recorded run, which then
    // replays from its journal without asking the model again.
    let done = json!({ "role": "assistant", "content": "Nothing to do." });
    let provider = MockProvider::start(vec![(200, "", openai_turn(done, (3, 2)))]);
    let brain = format!("local=http://127.0.0.1:{}/v1", provider.port);
    let out = compliance(&[
        "--policy",
        "examples/hello/policy.toml",
        "--brain",
        &brain,
        "--only",
        "determinism",
        "--replays",
        "3",
    ]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let skipped: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains(" skip "))
        .collect();
    assert_eq!(skipped.len(), 1, "{out:#?}");
    assert!(
        skipped[0].contains("live model") && skipped[0].contains("--brain scripted:FILE"),
        "{out:#?}"
    );
    assert!(
        out.stdout
            .ends_with("3 checks: 2 passed, 0 failed, 1 skipped\n"),
        "{out:#?}"
    );
    assert_eq!(
        provider.requests().len(),
        1,
        "the replays did not ask the model"
    );
}

#[test]
fn replaying_a_run_that_failed_before_it_started_says_so() {
    let state = fresh_dir();
    let out = fc(
        &state,
        &[
            "run",
            "--policy",
            "examples/hello/policy.toml",
            "--brain",
            "local=http://127.0.0.1:9/v1",
        ],
    );
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    let id = first_run_id(&state);
    let replay = fc(&state, &["replay", &id]);
    assert_eq!(replay.code, exit::USAGE, "{replay:#?}");
    assert!(
        replay.stderr.contains("the run failed before it started (")
            && replay.stderr.contains("unreachable")
            && replay.stderr.contains("nothing was recorded to replay"),
        "{replay:#?}"
    );
}

#[test]
fn probes_of_a_read_write_mount_hold_and_leave_it_as_it_was() {
    let s = Scratch::new();
    s.write("data/kept.txt", "kept");
    s.write(
        "policy.toml",
        "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\n\
         mounts = [{ guest = \"/data\", host = \"data\", mode = \"rw\" }]\n\
         max-calls = { read_file = 3 }\n\
         limits = { memory = \"8MiB\", fuel = 1000000 }\n",
    );
    let out = compliance(&[
        "--policy",
        s.path("policy.toml").to_str().unwrap(),
        "--only",
        "safety",
        "--json",
    ]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let detail = |check: &str| {
        let c = checks.iter().find(|c| c["check"] == check).unwrap();
        assert_eq!(c["result"], "pass", "{report:#}");
        c["detail"].as_str().unwrap().to_owned()
    };
    assert!(detail("symbolic links do not lead out").contains("planted from outside"));
    assert!(
        detail("memory limit").contains("memory limit of 8 MiB"),
        "{report:#}"
    );
    assert!(
        detail("fuel and time limits").contains("fuel budget of 1000000"),
        "{report:#}"
    );
    assert!(
        !checks
            .iter()
            .any(|c| c["check"] == "nothing is written through `ro`")
    );
    assert_eq!(checks[0]["subject"], "capabilities.fs.mounts /data (rw)");
    // What the probes made inside the mount, they removed.
    let left: Vec<_> = std::fs::read_dir(s.path("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["kept.txt"]);
}

#[test]
fn network_and_secret_probes_hold_and_never_print_the_secret() {
    let s = Scratch::new();
    s.write(
        "policy.toml",
        "version = 1\n[capabilities.web]\ncomponent = \"builtin:http\"\ntools = [\"get\"]\n\
         net = [\"http://127.0.0.1:8080\", \"http://localhost:9000\"]\n\
         secrets = { TOKEN = { env = \"FC_TEST_PROBE_TOKEN\" } }\n",
    );
    let policy = s.path("policy.toml");
    let secret = "s3cret-probe-value-42";
    let out = run(fc_host().env("FC_TEST_PROBE_TOKEN", secret).args([
        "compliance",
        "--policy",
        policy.to_str().unwrap(),
        "--only",
        "safety",
        "--json",
        "--log-level",
        "trace",
    ]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert!(
        !out.stdout.contains(secret) && !out.stderr.contains(secret),
        "{out:#?}"
    );
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let find = |check: &str, subject: &str| {
        checks
            .iter()
            .find(|c| c["check"] == check && c["subject"] == subject)
            .unwrap_or_else(|| panic!("{check} of {subject}: {report:#}"))
    };
    let local = find(
        "neighbouring destinations are refused",
        "capabilities.web.net http://127.0.0.1:8080",
    );
    assert_eq!(local["result"], "pass", "{report:#}");
    // The other scheme, the ports either side.
    assert_eq!(local["detail"], "3 destinations refused before connecting");
    let named = find(
        "neighbouring destinations are refused",
        "capabilities.web.net http://localhost:9000",
    );
    assert_eq!(
        named["detail"], "5 destinations refused before connecting",
        "{report:#}"
    );
    assert_eq!(
        find("raw sockets are refused", "capabilities.web.net")["result"],
        "pass"
    );
    let private = find(
        "private and metadata addresses are refused",
        "capabilities.web.net",
    );
    assert_eq!(private["result"], "pass", "{report:#}");
    let token = find(
        "the secret never leaves unredacted",
        "capabilities.web.secrets.TOKEN",
    );
    assert_eq!(token["result"], "pass", "{report:#}");
    assert!(
        token["detail"]
            .as_str()
            .unwrap()
            .contains("the log saw only its name"),
        "{report:#}"
    );

    // Without the secret's variable there is nothing to probe: skipped, saying why.
    let out = compliance(&["--policy", policy.to_str().unwrap(), "--only", "safety"]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("secrets.TOKEN"))
        .unwrap();
    assert!(
        line.contains(" skip ") && line.contains("`FC_TEST_PROBE_TOKEN` is not set"),
        "{line}"
    );
}

#[test]
fn the_shipped_policies_and_the_examples_pass() {
    let s = Scratch::new();
    let script = s.write(
        "brain.json",
        r#"[{"content": null, "tool_calls": [{"name": "fs.list_dir", "arguments": {"path": "/workspace"}}]}, {"content": "listed"}]"#,
    );
    let brain = format!("scripted:{}", script.display());
    let root = env!("CARGO_MANIFEST_DIR");
    let strict = format!("{root}/policies/strict.toml");
    let review = format!("{root}/examples/review/policy.toml");
    // The presets mount the working directory: a scratch one here.
    let cwd = s.mkdir("cwd");
    for args in [
        vec!["--policy", &strict, "--brain", &brain],
        vec!["--policy", &review],
        vec!["--policy", "Dev", "--brain", &brain],
    ] {
        let out = run(fc_host()
            .current_dir(&cwd)
            .arg("compliance")
            .args(&args)
            .args(["--replays", "10"]));
        assert_eq!(out.code, exit::OK, "{args:?}: {out:#?}");
        assert!(!out.stdout.contains(" FAIL "), "{out:#?}");
        assert!(
            out.stdout.contains(" 0 failed, 0 skipped"),
            "{args:?}: {out:#?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "the probes left nothing"
    );
}

#[test]
fn performance_is_reported_beside_the_bare_baseline_and_fails_only_over_a_threshold() {
    let out = compliance(&[
        "--policy",
        "examples/hello/policy.toml",
        "--only",
        "performance",
        "--json",
        // No run takes no time, and no process fits in 1 KiB: both fail.
        "--max-run-ms",
        "0",
        "--max-rss-mib",
        "0.001",
    ]);
    assert_eq!(out.code, exit::COMPLIANCE, "{out:#?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let check = |name: &str| checks.iter().find(|c| c["check"] == name).unwrap();
    let run = check("a trivial run");
    assert_eq!(run["result"], "fail", "{report:#}");
    let detail = run["detail"].as_str().unwrap();
    assert!(
        detail.contains("median of 15; bare instantiate and call")
            && detail.ends_with("; over `--max-run-ms 0`"),
        "{detail}"
    );
    // No threshold passed: reported, not judged.
    let call = check("tool-call overhead");
    assert_eq!(call["result"], "pass", "{report:#}");
    assert!(
        call["detail"].as_str().unwrap().contains("µs: gated "),
        "{report:#}"
    );
    let rss = check("peak memory");
    assert_eq!(rss["result"], "fail", "{report:#}");
    assert!(
        rss["detail"]
            .as_str()
            .unwrap()
            .ends_with("over `--max-rss-mib 0.001`"),
        "{report:#}"
    );
}

#[test]
fn a_signed_bundle_is_admitted_as_a_run_admits_it_and_passes() {
    let s = crate::bundles::example();
    crate::bundles::publish(&s, "hello.fcb");
    let out = crate::bundles::fc(
        &s,
        &[
            "compliance",
            "hello.fcb",
            "--policy",
            "bundle-policy.toml",
            "--replays",
            "5",
        ],
    );
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert!(out.stdout.contains(" 0 failed, 0 skipped"), "{out:#?}");
    // A tampered bundle is refused as `fc-host run` refuses it.
    let mut bytes = std::fs::read(s.path("hello.fcb")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(s.path("bad.fcb"), bytes).unwrap();
    let out = crate::bundles::fc(
        &s,
        &["compliance", "bad.fcb", "--policy", "bundle-policy.toml"],
    );
    assert_eq!(out.code, exit::BUNDLE, "{out:#?}");
    assert!(out.stdout.is_empty(), "{out:#?}");
}

#[test]
fn a_capability_that_cannot_start_ends_the_command_with_its_own_exit_code() {
    // An agent component where the policy names a capability: it does not
    // fit the `capability` world.
    let s = Scratch::new();
    s.setup(
        &policy(&format!(
            "[capabilities.echo]\ncomponent = {:?}\ntools = [\"echo\"]",
            artifacts::AGENT_ECHO
        )),
        json!([{ "content": "done" }]),
    );
    let out = compliance(&[
        "--policy",
        s.path("policy.toml").to_str().unwrap(),
        "--only",
        "protocol",
    ]);
    assert_eq!(out.code, exit::COMPONENT, "{out:#?}");
    assert!(
        out.stderr.contains("does not fit the `capability` world"),
        "{out:#?}"
    );
    assert!(!out.stderr.contains("internal error"), "{out:#?}");
}

#[test]
fn a_grant_of_the_cloud_metadata_address_fails_naming_the_grant() {
    let s = Scratch::new();
    s.write(
        "policy.toml",
        "version = 1\n[capabilities.web]\ncomponent = \"builtin:http\"\ntools = [\"get\"]\n\
         net = [\"http://127.0.0.1:8080\", \"http://169.254.169.254\"]\n",
    );
    let out = compliance(&[
        "--policy",
        s.path("policy.toml").to_str().unwrap(),
        "--only",
        "safety",
    ]);
    one_failure(
        &out,
        &[
            "capabilities.web.net",
            "the grant names `http://169.254.169.254:80`",
        ],
    );
}

#[test]
fn a_mount_over_the_users_state_fails_naming_the_grant() {
    let s = Scratch::new();
    let state = s.mkdir("state");
    s.write(
        "policy.toml",
        "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"list_dir\"]\n\
         mounts = [{ guest = \"/all\", host = \".\", mode = \"ro\" }]\n",
    );
    let out = compliance(&[
        "--policy",
        s.path("policy.toml").to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--only",
        "safety",
    ]);
    one_failure(
        &out,
        &["capabilities.fs.mounts /all (ro)", "state directory"],
    );
}
