//! The audit trail: one decision event per tool call with its rule, spans
//! nested run → step → tool call / inference (their export: otlp.rs), metrics
//! in the Prometheus format, the audit report, and no secret in any sink.

use serde_json::{Value, json};

use crate::common::*;
use crate::mock_provider::MockProvider;

#[test]
fn every_tool_call_has_one_decision_event_with_its_rule_and_run_id() {
    let out = run(fc_host().args([
        "--log-format",
        "json",
        "run",
        "--policy",
        "examples/hello/policy.toml",
    ]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let run_id = out.run_id();
    let events = out.events();
    let decisions: Vec<&Value> = events
        .iter()
        .filter(|e| e["target"] == "femtoclaw::decision")
        .collect();
    let calls = events
        .iter()
        .filter(|e| e["message"] == "tool call finished")
        .count()
        + decisions.iter().filter(|e| e["decision"] == "deny").count();
    assert_eq!(decisions.len(), 4);
    assert_eq!(
        calls, 4,
        "each call: one decision; allowed ones also finish"
    );
    for d in &decisions {
        assert!(d["rule"].as_str().is_some_and(|r| !r.is_empty()), "{d}");
        let spans = d["spans"].as_array().unwrap();
        assert_eq!(spans[0]["name"], "run");
        assert_eq!(spans[0]["run_id"], run_id.as_str());
        assert_eq!(spans[1]["name"], "step");
        assert_eq!(spans[2]["name"], "tool_call");
        assert_eq!(spans[2]["tool"], d["tool"]);
    }
}

#[test]
fn metrics_parse_and_match_the_run() {
    let dir = fresh_dir();
    let file = dir.join("metrics.prom");
    let out = run(fc_host()
        .args(["run", "--policy", "examples/hello/policy.toml", "--metrics"])
        .arg(&file));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let scrape = Scrape::parse(&text);
    let value = |name: &str, labels: &[(&str, &str)]| scrape.value(name, labels);
    assert_eq!(
        value("fc_tool_calls_total", &[("decision", "allow")]),
        3.0,
        "{text}"
    );
    assert_eq!(
        value(
            "fc_tool_calls_total",
            &[("tool", "fs.read_file"), ("decision", "allow")]
        ),
        2.0
    );
    assert_eq!(
        value(
            "fc_tool_calls_total",
            &[("tool", "fs.write_file"), ("decision", "deny")]
        ),
        1.0
    );
    assert_eq!(
        value("fc_denials_total", &[("rule", "capabilities.fs.tools")]),
        1.0
    );
    assert_eq!(value("fc_runs_total", &[("status", "ok")]), 1.0);
    assert!(value("fc_fuel_consumed_total", &[("component", "capability fs")]) > 0.0);
    assert!(text.contains("fc_inference_seconds_count 3"), "{text}");
}

#[test]
fn the_audit_report_names_each_decision_and_its_rule() {
    let state = fresh_dir();
    let run_out = run(fc_host().env("FC_STATE_DIR", &state).args([
        "run",
        "--policy",
        "examples/hello/policy.toml",
    ]));
    let id = run_out.run_id();
    let out = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .args(["audit", &id, "--json"]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows: Vec<(String, String, String, String)> = report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["tool"].as_str().unwrap().into(),
                d["decision"].as_str().unwrap().into(),
                d["rule"].as_str().unwrap().into(),
                d["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = [
        ("fs.list_dir", "allow", "capabilities.fs.tools", "ok"),
        ("fs.read_file", "allow", "capabilities.fs.tools", "ok"),
        ("fs.write_file", "deny", "capabilities.fs.tools", "Denied"),
        ("fs.read_file", "allow", "capabilities.fs.tools", "Denied"),
    ];
    assert_eq!(
        rows,
        expect.map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
    );
    let text = run(fc_host().env("FC_STATE_DIR", &state).args(["audit", &id]));
    assert!(
        text.stdout.contains("deny   fs.write_file"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_canary_secret_reaches_no_sink() {
    const CANARY: &str = "canary-all-sinks-77c0ffee";
    let collector = MockProvider::start(vec![(200, "", json!({})); 8]);
    let state = fresh_dir();
    let s = Scratch::new();
    s.setup(
        &policy(&format!(
            "[capabilities.h]\ncomponent = {:?}\ntools = [\"env\", \"flood\", \"echo\"]\nsecrets = {{ TOKEN = {{ env = \"FC_CANARY\" }} }}\n",
            artifacts::CAP_HOSTILE
        )),
        calls(&[("h.env", json!({})), ("h.echo", json!({ "note": "x" }))]),
    );
    let metrics = state.join("m.prom");
    let out = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .env("FC_CANARY", CANARY)
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", collector.port),
        )
        .args([
            "--log-format",
            "json",
            "--log-level",
            "trace",
            "run",
            artifacts::AGENT_ECHO,
            "--policy",
        ])
        .arg(s.path("policy.toml"))
        .arg("--metrics")
        .arg(&metrics));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert!(
        out.stdout.contains("[redacted:TOKEN]"),
        "the capability had it: {}",
        out.stdout
    );
    assert_no_canary(&out, CANARY);
    assert!(!std::fs::read_to_string(&metrics).unwrap().contains(CANARY));
    let trace = collector.requests();
    assert!(!trace.is_empty(), "the trace was exported");
    assert!(
        trace
            .iter()
            .all(|r| !r.raw.windows(CANARY.len()).any(|w| w == CANARY.as_bytes())),
        "not in the trace"
    );
    let journal = std::fs::read(state.join("journal.redb")).unwrap();
    assert!(
        !journal
            .windows(CANARY.len())
            .any(|w| w == CANARY.as_bytes()),
        "not in the journal file"
    );
    let inspect = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .args(["runs", "--json"]));
    assert!(!inspect.stdout.contains(CANARY));
}
