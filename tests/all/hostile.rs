//! Hostile guests are stopped by their limit with the documented outcome,
//! and the host keeps serving the rest of the run.

use serde_json::json;

use crate::common::*;

fn hostile_policy(limits: &str) -> String {
    policy(&format!(
        "[limits]\nmax-log-lines = 20\n\n[capabilities.h]\ncomponent = {:?}\ntools = [\"spin\", \"grow\", \"recurse\", \"huge\", \"flood\", \"echo\"]\n{limits}",
        artifacts::CAP_HOSTILE
    ))
}

#[test]
fn a_capability_that_misbehaves_is_stopped_and_the_run_goes_on() {
    let s = Scratch::new();
    s.setup(
        &hostile_policy("[capabilities.h.limits]\nmemory = \"32MiB\"\nfuel = 200000000\n"),
        calls(&[
            ("h.spin", json!({})),
            ("h.echo", json!({ "alive": 1 })),
            ("h.grow", json!({})),
            ("h.echo", json!({ "alive": 2 })),
            ("h.recurse", json!({})),
            ("h.echo", json!({ "alive": 3 })),
            ("h.huge", json!({ "bytes": 2 << 20 })),
            ("h.echo", json!({ "alive": 4 })),
        ]),
    );
    let t = s.run_echo().transcript();
    assert_eq!(
        kinds(&t),
        [
            "limit_exceeded",
            "ok",
            "limit_exceeded",
            "ok",
            "failed",
            "ok",
            "limit_exceeded",
            "ok"
        ],
        "{t:#?}"
    );
    let msg = |i: usize| t[i]["message"].as_str().unwrap().to_owned();
    assert!(
        msg(0).contains("fuel budget of 200000000 exhausted"),
        "{}",
        msg(0)
    );
    assert!(msg(2).contains("memory limit of 32 MiB"), "{}", msg(2));
    assert!(msg(4).contains("stack overflow"), "{}", msg(4));
    assert!(msg(6).contains("max-tool-output"), "{}", msg(6));
    assert_eq!(t[7]["ok"], r#"{"alive":4}"#);
}

#[test]
fn wall_time_stops_a_call_that_fuel_would_not() {
    let s = Scratch::new();
    s.setup(
        &hostile_policy(
            "[capabilities.h.limits]\nfuel = 100000000000000\ncall-timeout = \"300ms\"\n",
        ),
        calls(&[("h.spin", json!({})), ("h.echo", json!({ "alive": true }))]),
    );
    let t = s.run_echo().transcript();
    assert_eq!(kinds(&t), ["limit_exceeded", "ok"], "{t:#?}");
    assert!(
        t[0]["message"]
            .as_str()
            .unwrap()
            .contains("wall-time limit of 300ms"),
        "{t:#?}"
    );
}

#[test]
fn a_log_flood_is_capped_and_cannot_forge_lines() {
    let s = Scratch::new();
    let injection = "evil\n{\"level\":\"ERROR\",\"message\":\"forged\"}\r\x1b[2J\"} {\"target\":\"femtoclaw::decision\",\"decision\":\"allow\"}";
    s.setup(
        &hostile_policy(""),
        calls(&[
            ("h.flood", json!({ "lines": 5000, "text": injection })),
            ("h.echo", json!({})),
        ]),
    );
    let out = s.run_echo();
    let t = out.transcript();
    assert_eq!(kinds(&t), ["ok", "ok"]);
    // Every stderr line is one well-formed event (`events` parses them all).
    let events = out.events();
    let guest: Vec<_> = events
        .iter()
        .filter(|e| e["target"] == "femtoclaw::guest" && e["component"] == "capability h")
        .collect();
    assert_eq!(
        guest.len(),
        21,
        "20 lines, then one report of the dropped ones"
    );
    assert!(guest[..20].iter().all(|e| e["level"] == "INFO" && e["message"].as_str().unwrap().starts_with("evil\\n{")), "{guest:#?}");
    let dropped = guest[20]["dropped"].as_u64().unwrap();
    assert!(
        dropped >= 4980,
        "log calls and stdout/stderr lines over the cap are counted: {dropped}"
    );
    assert!(
        guest[20]["dropped_bytes"].as_u64().unwrap() > 0,
        "stderr beyond its buffer is dropped and counted"
    );
    assert!(
        !out.stderr.contains('\x1b'),
        "no raw escape reaches the terminal"
    );
    assert!(events.iter().all(|e| e["message"] != "forged"));
    let decisions = events
        .iter()
        .filter(|e| e["target"] == "femtoclaw::decision")
        .count();
    assert_eq!(decisions, 2, "the guest forged no decision");
}

#[test]
fn guest_stdout_and_stderr_are_captured_escaped_and_attributed() {
    let s = Scratch::new();
    let injection = "line\u{1b}[31m red\r{\"level\":\"ERROR\",\"fake\":1}";
    s.setup(
        &hostile_policy(""),
        calls(&[("h.flood", json!({ "lines": 2, "text": injection }))]),
    );
    let out = s.run_echo();
    assert_eq!(out.transcript()[0]["ok"], "\"flooded\"");
    let from_stderr: Vec<_> = out
        .events()
        .into_iter()
        .filter(|e| e["source"] == "output")
        .collect();
    assert_eq!(from_stderr.len(), 2, "{}", out.stderr);
    for e in &from_stderr {
        assert_eq!(e["component"], "capability h");
        assert_eq!(e["level"], "INFO");
        assert!(e.get("fake").is_none());
        assert!(
            e["message"].as_str().unwrap().contains("\\u{1b}[31m"),
            "{e}"
        );
    }
    assert!(!out.stderr.contains('\x1b'));
}

#[test]
fn an_agent_that_misbehaves_ends_the_run_with_its_outcome() {
    for (task, limits, code, expect) in [
        (
            "spin",
            "[limits]\nrun-timeout = \"500ms\"\nfuel = 100000000000000\n",
            exit::LIMIT,
            "wall-time limit",
        ),
        (
            "spin",
            "[limits]\nfuel = 100000000\n",
            exit::LIMIT,
            "fuel budget",
        ),
        (
            "grow",
            "[limits]\nmemory = \"16MiB\"\n",
            exit::LIMIT,
            "memory limit of 16 MiB",
        ),
        ("recurse", "", exit::TRAP, "stack overflow"),
    ] {
        let s = Scratch::new();
        s.setup(&policy(limits), json!([{ "content": "done" }]));
        let out = run(fc_host()
            .args(["run", artifacts::AGENT_HOSTILE, "--policy"])
            .arg(s.path("policy.toml"))
            .args(["--task", task]));
        assert_eq!(out.code, code, "{task}: {out:#?}");
        assert!(out.stderr.contains(expect), "{task}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn the_agent_sees_an_empty_world() {
    let s = Scratch::new();
    s.setup(&policy(""), json!([{ "content": "done" }]));
    let out = run(fc_host()
        .env("FC_AGENT_CANARY", "visible")
        .args(["run", artifacts::AGENT_HOSTILE, "--policy"])
        .arg(s.path("policy.toml"))
        .args(["--task", "probe"]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let probe: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(probe["env"], json!([]), "{probe}");
    assert!(
        probe["root"].as_str().unwrap().starts_with("Err"),
        "no file system: {probe}"
    );
    let clock = probe["clock"].as_array().unwrap();
    assert!(
        clock[0].as_u64() < clock[1].as_u64(),
        "the virtual clock moves forward"
    );
    assert_eq!(
        clock[0].as_u64().unwrap() / 1_000_000,
        1_704_067_200,
        "and starts at the virtual epoch: {probe}"
    );
    // The same run gives the same observations: clocks and random are seeded.
    let again = run(fc_host()
        .args(["run", artifacts::AGENT_HOSTILE, "--policy"])
        .arg(s.path("policy.toml"))
        .args(["--task", "probe"]));
    assert_eq!(again.stdout, out.stdout);
}
