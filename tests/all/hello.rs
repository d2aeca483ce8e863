//! The hello example, exactly as the README runs it.

use crate::common::*;

#[test]
fn hello_example_prints_its_answer_and_refuses_what_the_policy_does_not_grant() {
    let out = run(fc_host().args([
        "--log-format",
        "json",
        "run",
        "--policy",
        "examples/hello/policy.toml",
        "--task",
        "What is in /data?",
    ]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert!(
        out.stdout
            .starts_with("/data holds notes.txt and todo.txt."),
        "{out:#?}"
    );
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "stdout is the answer only: {out:#?}"
    );

    let decisions: Vec<_> = out
        .events()
        .into_iter()
        .filter(|e| e["target"] == "femtoclaw::decision")
        .collect();
    let summary: Vec<(String, String)> = decisions
        .iter()
        .map(|e| {
            (
                e["tool"].as_str().unwrap().to_owned(),
                e["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        ("fs.list_dir", "allow"),
        ("fs.read_file", "allow"),
        ("fs.write_file", "deny"),
        ("fs.read_file", "allow"),
    ];
    assert_eq!(
        summary,
        expect.map(|(t, d)| (t.to_owned(), d.to_owned())),
        "{out:#?}"
    );
    assert_eq!(decisions[2]["rule"], "capabilities.fs.tools");

    // The read of /etc/passwd was allowed by the gate (the tool is granted)
    // and refused by the sandbox: its result is a `denied` error.
    let finished = out.events_named("tool call finished");
    assert!(
        finished[2]["error"]
            .as_str()
            .unwrap()
            .starts_with("denied: "),
        "{finished:#?}"
    );
    assert!(!out.stderr.contains("root:x:0:0"), "{out:#?}");
}

/// The review example, exactly as its README runs it: rules, an approval
/// (denied by `--approve deny`) and a rate, each decision with its rule.
#[test]
fn review_example_judges_arguments_and_asks_for_approval() {
    let out = run(fc_host().args([
        "--log-format",
        "json",
        "run",
        "--policy",
        "examples/review/policy.toml",
        "--approve",
        "deny",
    ]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert!(
        out.stdout
            .starts_with("The plan is to ship the approval flow on Friday."),
        "{out:#?}"
    );
    let decisions: Vec<(String, String, String)> = out
        .events()
        .into_iter()
        .filter(|e| {
            e["target"] == "femtoclaw::decision"
                && (e["message"] == "tool call allowed" || e["message"] == "tool call refused")
        })
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_owned();
            (s("tool"), s("decision"), s("rule"))
        })
        .collect();
    let expect = [
        ("fs.read_file", "allow", "rules.docs-only"),
        ("fs.read_file", "deny", "rules"),
        ("fs.write_file", "deny", "approve"),
        ("fs.write_file", "deny", "rules"),
    ];
    assert_eq!(
        decisions,
        expect.map(|(t, d, r)| (t.to_owned(), d.to_owned(), r.to_owned())),
        "{out:#?}"
    );
    assert!(!out.stderr.contains("not-a-real-key"), "{out:#?}");
    assert!(!std::path::Path::new("examples/review/work/out/report.md").exists());
}
