//! Uses only the interface of the published `femtoclaw` 1.x crate
//! (`Agent::new(Config) -> Result`, async `run`, `history`, `reset`,
//! `execute_tool`, `Config: Default`), under a multi-thread runtime as its
//! own compliance harness runs it: the checks that harness makes, and what
//! FemtoClaw adds underneath (the gate, the sandbox).

use femtoclaw::{Agent, Config};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_default_agent_answers_offline_and_keeps_a_history() {
    let agent = Agent::new(Config::default()).expect("the default config starts");
    let answer = agent.run("test input").await.unwrap();
    assert_eq!(answer.to_string(), "ACK: test input");
    agent.run("hello").await.unwrap();
    let history = agent.history().await;
    assert_eq!(history.len(), 4);
    assert!(!history.is_empty());
    agent.reset().await;
    assert!(agent.history().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_are_gated_deny_by_default() {
    let agent = Agent::new(Config::default()).unwrap();
    // The 1.x harness's security check: an unknown tool is an error.
    assert!(agent.execute_tool("unknown_tool", json!({})).await.is_err());
    // The 1.x crate's own tools ran host programs; none is granted here.
    for (tool, args) in [
        ("shell", json!({ "cmd": "ls" })),
        ("process", json!({ "program": "id", "args": [] })),
        ("web.get", json!({ "url": "http://127.0.0.1:9/" })),
    ] {
        let e = agent.execute_tool(tool, args).await.unwrap_err();
        assert!(e.to_string().contains(tool), "{e}");
    }
    // What the default policy (Strict) grants works, inside its mount only.
    let listing = agent
        .execute_tool("fs.list_dir", json!({ "path": "/workspace" }))
        .await
        .unwrap();
    assert!(listing.contains("Cargo.toml"), "{listing}");
    let e = agent
        .execute_tool("fs.read_file", json!({ "path": "/etc/passwd" }))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("fs.read_file"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_runs_on_one_agent_each_get_their_answer() {
    let agent = std::sync::Arc::new(Agent::new(Config::default()).unwrap());
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let agent = agent.clone();
            tokio::spawn(async move { agent.run(&format!("task {i}")).await.unwrap() })
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        assert_eq!(run.await.unwrap(), format!("ACK: task {i}"));
    }
    assert_eq!(agent.history().await.len(), 8);
}

#[test]
fn a_bad_config_is_an_error_that_says_what_to_set() {
    let mut config = Config::default();
    config.brain.backend = "telepathy".into();
    let e = Agent::new(config).err().unwrap();
    assert!(e.to_string().contains("FEMTO_BRAIN"), "{e}");
    let config = Config {
        policy: "no-such-policy.toml".into(),
        ..Config::default()
    };
    let e = Agent::new(config).err().unwrap();
    assert!(e.to_string().contains("no-such-policy.toml"), "{e}");
}
