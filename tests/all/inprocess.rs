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
