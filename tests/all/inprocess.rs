//! The runtime as a library: a hostile run does not poison the process, and
//! the next run in the same runtime works.

use femtoclaw_runtime::prelude::*;

use crate::common::*;

#[test]
fn a_second_run_in_the_same_process_works_after_a_hostile_one() {
    let s = Scratch::new();
    s.setup(
        &policy("[limits]\nfuel = 50000000\n"),
        serde_json::json!([{ "content": "done" }]),
    );
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new().unwrap();
    tokio.block_on(async {
        let mut hostile = RunPlan::new(Policy::load(s.path("policy.toml")).unwrap(), "spin");
        hostile.agent = ComponentRef::File(artifacts::AGENT_HOSTILE.into());
        match runtime.run(hostile).await {
            Err(RunError::Limit(m)) => assert!(m.contains("fuel"), "{m}"),
            other => panic!("expected a limit stop, got {other:?}"),
        }
        let hello = RunPlan::new(
            Policy::load("examples/hello/policy.toml").unwrap(),
            "What is in /data?",
        );
        let outcome = runtime.run(hello).await.unwrap();
        assert!(outcome.answer.unwrap().starts_with("/data holds notes.txt"));
        assert_eq!(
            (
                outcome.stats.steps,
                outcome.stats.tool_calls,
                outcome.stats.refused
            ),
            (3, 4, 1)
        );
    });
}

/// Built-ins run in place from the binary's text, which one engine at a
/// time may register: concurrent runs of one runtime, and two runtimes alive
/// side by side, each run them (the second compiles its own copy).
#[test]
fn concurrent_runs_and_two_runtimes_share_the_built_ins_safely() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let first = std::sync::Arc::new(Runtime::new().unwrap());
    let second = std::sync::Arc::new(Runtime::new().unwrap());
    tokio.block_on(async {
        let mut runs = Vec::new();
        for i in 0..8 {
            let runtime = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            runs.push(tokio::spawn(async move {
                let plan = RunPlan::new(
                    Policy::load("examples/hello/policy.toml").unwrap(),
                    "What is in /data?",
                );
                runtime.run(plan).await
            }));
        }
        for run in runs {
            let outcome = run.await.expect("no panic").expect("the run ends");
            assert!(outcome.answer.unwrap().starts_with("/data holds notes.txt"));
        }
    });
}

/// An embedding program answers approval requests with a callback: it sees
/// the tool, the rule and the validated arguments, and its answer decides.
#[test]
fn an_embedding_program_approves_through_a_callback() {
    let s = Scratch::new();
    s.mkdir("out");
    s.setup(
        &policy_with("approve = [\"fs.write_file\"]\n", "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"write_file\"]\nmounts = [{ guest = \"/out\", host = \"out\", mode = \"rw\" }]\n"),
        calls(&[
            ("fs.write_file", serde_json::json!({ "path": "/out/yes.txt", "content": "ok" })),
            ("fs.write_file", serde_json::json!({ "path": "/out/no.txt", "content": "no" })),
        ]),
    );
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let approver = move |r: &ApprovalRequest| {
        record
            .lock()
            .unwrap()
            .push((r.tool.clone(), r.rule.clone()));
        Approval::new(r.arguments.contains("yes.txt"), "callback")
    };
    let runtime = Runtime::new().unwrap();
    let mut plan = RunPlan::new(Policy::load(s.path("policy.toml")).unwrap(), "write");
    plan.agent = ComponentRef::File(artifacts::AGENT_ECHO.into());
    plan.hooks.approver = Some(std::sync::Arc::new(approver));
    let outcome = tokio.block_on(runtime.run(plan)).unwrap();
    let answer: serde_json::Value = serde_json::from_str(&outcome.answer.unwrap()).unwrap();
    let answer = answer.as_array().unwrap();
    assert_eq!(kinds(answer), ["ok", "denied"], "{answer:#?}");
    assert_eq!(answer[1]["message"], "`fs.write_file` was not approved");
    assert!(s.path("out/yes.txt").exists() && !s.path("out/no.txt").exists());
    let seen = seen.lock().unwrap().clone();
    let expected = ("fs.write_file".to_owned(), "approve".to_owned());
    assert_eq!(seen, [expected.clone(), expected]);
}
