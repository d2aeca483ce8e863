//! A secret reaches only the capability granted it, and its value never
//! appears in any output: not the agent's, not the brain's, not another
//! capability's, not a log line.

use serde_json::json;

use crate::common::*;

const CANARY: &str = "canary-secret-5e1f9b27d0";

fn policy_with_secret(extra: &str) -> String {
    policy(&format!(
        r#"
[capabilities.h]
component = {hostile:?}
tools = ["env", "flood"]
env = ["FC_TEST_PLAIN"]
secrets = {{ API_TOKEN = {{ env = "FC_TEST_SECRET" }}, FILE_TOKEN = {{ file = "token.txt" }} }}

[capabilities.other]
component = {hostile:?}
tools = ["env"]
{extra}"#,
        hostile = artifacts::CAP_HOSTILE
    ))
}

#[test]
fn a_secret_reaches_only_its_capability_and_no_output() {
    let s = Scratch::new();
    s.write("token.txt", &format!("{CANARY}-file\n"));
    s.setup(
        &policy_with_secret(""),
        calls(&[
            ("h.env", json!({})),
            ("other.env", json!({})),
            ("h.flood", json!({ "lines": 1, "text": "leaking" })),
        ]),
    );
    let out = run(s_cmd(&s)
        .env("FC_TEST_SECRET", CANARY)
        .env("FC_TEST_PLAIN", "plain-value"));
    let t = out.transcript();
    let granted: serde_json::Value = serde_json::from_str(t[0]["ok"].as_str().unwrap()).unwrap();
    assert_eq!(
        granted["API_TOKEN"], "[redacted:API_TOKEN]",
        "the capability had it; the agent sees its name: {granted}"
    );
    assert_eq!(granted["FILE_TOKEN"], "[redacted:FILE_TOKEN]", "{granted}");
    assert_eq!(
        granted["FC_TEST_PLAIN"], "plain-value",
        "granted plain variables pass"
    );
    assert_eq!(
        granted.as_object().unwrap().len(),
        3,
        "nothing else of the host's environment: {granted}"
    );
    assert_eq!(
        t[1]["ok"], "{}",
        "another capability sees no variable at all"
    );
    let logged = out.events().into_iter().find(|e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("my environment"))
    });
    assert!(
        logged.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("[redacted:API_TOKEN]"),
        "{}",
        out.stderr
    );
    assert_no_canary(&out, CANARY);
}

#[test]
fn the_brain_sees_no_secret() {
    let s = Scratch::new();
    s.write("token.txt", &format!("{CANARY}-file\n"));
    s.setup(&policy_with_secret(""), json!([]));
    let out = run(fc_host()
        .env("FC_TEST_SECRET", CANARY)
        .args(["run", "--policy"])
        .arg(s.path("policy.toml"))
        .args(["--brain", artifacts::BRAIN_PROBE, "--task", "t"]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let probe: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(probe["env"], json!([]), "{probe}");
    assert!(
        probe["root"].as_str().unwrap().starts_with("Err"),
        "{probe}"
    );
    assert_eq!(
        probe["tools"],
        json!(["h.env", "h.flood", "other.env"]),
        "the brain is offered exactly the granted tools"
    );
    assert_no_canary(&out, CANARY);
}

#[test]
fn a_missing_or_short_secret_stops_the_run_before_it_starts() {
    let s = Scratch::new();
    s.write("token.txt", "short\n");
    s.setup(&policy_with_secret(""), json!([{ "content": "done" }]));
    let out = run(s_cmd(&s).env_remove("FC_TEST_SECRET"));
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr.contains(
            "`capabilities.h.secrets.API_TOKEN`: the host variable `FC_TEST_SECRET` is not set"
        ),
        "{}",
        out.stderr
    );
    let out = run(s_cmd(&s).env("FC_TEST_SECRET", CANARY));
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr
            .contains("`capabilities.h.secrets.FILE_TOKEN`: a secret must be at least 8 bytes"),
        "{}",
        out.stderr
    );
}

fn s_cmd(s: &Scratch) -> std::process::Command {
    let mut cmd = fc_host();
    cmd.args([
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "run",
        artifacts::AGENT_ECHO,
        "--policy",
    ])
    .arg(s.path("policy.toml"));
    cmd
}
