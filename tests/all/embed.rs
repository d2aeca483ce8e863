//! The embedding API, as programs use it: the product page's snippet and the
//! service example (examples/embed) run as their own processes, and the API
//! in this process (direct tool calls, errors).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use femtoclaw_runtime::prelude::*;
use serde_json::{Value, json};

use crate::common::*;
use crate::mock_provider::{MockProvider, openai_turn};

/// An example program `cargo test` built beside fc-host.
fn example(name: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_fc-host"));
    let path = bin.parent().unwrap().join("examples").join(name);
    assert!(path.exists(), "{} is built by `cargo test`", path.display());
    path
}

/// The snippet in `folder`, journaling in `state`, its brain the local
/// model server (`OLLAMA_HOST`) at `port`.
fn snippet(folder: &Path, state: &Path, port: u16) -> Command {
    let mut cmd = Command::new(example("embed"));
    cmd.current_dir(folder)
        .env_remove("RUST_LOG")
        .env("FC_STATE_DIR", state)
        .env("OLLAMA_HOST", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null());
    cmd
}

/// A folder holding `notes.txt`, and a model server whose first request
/// hangs (the program is stopped while it waits); then it lists the
/// folder and answers "The folder holds notes.txt."
fn interrupted_listing() -> (tempfile::TempDir, MockProvider) {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("notes.txt"), "ship on Friday").unwrap();
    let list = json!({ "role": "assistant", "content": null, "tool_calls": [{
        "id": "c1", "type": "function",
        "function": { "name": "fs.list_dir", "arguments": "{\"path\":\"/workspace\"}" } }] });
    let done = json!({ "role": "assistant", "content": "The folder holds notes.txt." });
    let provider = MockProvider::start(vec![
        (0, "", Value::Null),
        (200, "", openai_turn(list, (10, 5))),
        (200, "", openai_turn(done, (20, 5))),
    ]);
    (folder, provider)
}

/// Waits (at most 15 s) until the program has sent its first request.
fn wait_for_first_request(provider: &MockProvider) {
    for _ in 0..300 {
        if !provider.requests().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(provider.requests().len(), 1, "the run asked its brain");
}

#[test]
fn the_pages_snippet_runs_under_strict_and_resumes_its_run_after_sigterm() {
    let (folder, provider) = interrupted_listing();
    let state = fresh_dir();
    let child = snippet(folder.path(), &state, provider.port)
        .arg("What is in this folder?")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_first_request(&provider);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `main` returned the error: `Error: ` and its sentence, exit code 1.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("Error: SIGTERM stopped run `"))
        .unwrap_or_else(|| panic!("no sentence on stderr: {stderr}"));
    assert!(line.contains("the next start resumes it"), "{line}");
    let run_id = line.split('`').nth(1).unwrap().to_owned();
    // Industrial logs are JSON lines.
    assert!(
        stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{stderr}"
    );
    let marker = state.join("managed/agent");
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), run_id);

    // The next start resumes that run (its task is the journal's) and
    // answers; nothing new is started.
    let out = run(&mut snippet(folder.path(), &state, provider.port));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(out.stdout, "The folder holds notes.txt.\n");
    assert!(!marker.exists(), "an ended run is no longer the program's");
    let requests = provider.requests();
    assert_eq!(requests.len(), 3);
    // The model saw the folder through Strict's read-only mount.
    let seen = requests[2].body["messages"].to_string();
    assert!(seen.contains("notes.txt"), "{seen}");
    let runs: Value = serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["id"], run_id.as_str());
    assert_eq!(runs[0]["status"], "ok", "{runs:#?}");
    // The run is as auditable and replayable as one of `fc-host run`.
    let replay = fc(&state, &["replay", &run_id]);
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
    assert_eq!(replay.stdout, "The folder holds notes.txt.\n");
}

/// The job example (`examples/embed/job.rs`) in `folder`: its task on
/// stdin, metrics to `metrics`, journaling in `state`, its brain the local
/// model server at `port`.
fn job(folder: &Path, state: &Path, metrics: &Path, port: u16) -> Command {
    let mut cmd = Command::new(example("embed-job"));
    cmd.current_dir(folder)
        .args(["--name", "nightly", "--metrics"])
        .arg(metrics)
        .arg("--state")
        .arg(state)
        .args(["--brain", &format!("local=http://127.0.0.1:{port}/v1")])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Starts `cmd` with `task` on its standard input (then closed).
fn spawn_with_stdin(cmd: &mut Command, task: &str) -> std::process::Child {
    use std::io::Write as _;
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(task.as_bytes()).unwrap();
    drop(stdin);
    child
}

#[test]
fn a_job_killed_half_way_resumes_its_run_before_a_new_task_and_writes_its_metrics() {
    let (folder, provider) = interrupted_listing();
    let state = fresh_dir();
    let metrics = fresh_dir().join("nightly.prom");
    let mut child = spawn_with_stdin(
        &mut job(folder.path(), &state, &metrics, provider.port),
        "What is in this folder?\n",
    );
    wait_for_first_request(&provider);
    // SIGKILL: no handler runs, nothing is checkpointed by the program.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal: {status:?}");
    assert!(!metrics.exists(), "a killed job wrote no metrics");
    let marker = state.join("managed/nightly");
    let run_id = std::fs::read_to_string(&marker).unwrap().trim().to_owned();
    let runs: Value = serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs[0]["id"], run_id.as_str(), "{runs:#?}");
    assert_eq!(runs[0]["status"], "running", "{runs:#?}");

    // The next start resumes the killed run (its task is the journal's,
    // not the new one on stdin) and answers.
    let out = spawn_with_stdin(
        &mut job(folder.path(), &state, &metrics, provider.port),
        "Delete everything.\n",
    )
    .wait_with_output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "The folder holds notes.txt.\n"
    );
    assert!(!marker.exists(), "an ended run is no longer the job's");
    let requests = provider.requests();
    assert_eq!(requests.len(), 3);
    let asked = requests[2].body["messages"].to_string();
    assert!(asked.contains("What is in this folder?"), "{asked}");
    assert!(!asked.contains("Delete everything"), "{asked}");
    let runs: Value = serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "ok", "{runs:#?}");

    // The metrics file is whole OpenMetrics text of this start's run.
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains("fc_tool_calls_total{tool=\"fs.list_dir\",decision=\"allow\"} 1"),
        "{text}"
    );
    assert!(text.contains("fc_runs_total{status=\"ok\"} 1"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let mut aside = metrics.clone().into_os_string();
    aside.push(".new");
    assert!(!Path::new(&aside).exists(), "nothing left aside");

    // A metrics file that cannot be written is named, and the run's
    // answer is not lost: it is journaled, and the error says where.
    let provider = MockProvider::start(vec![(
        200,
        "",
        openai_turn(
            json!({ "role": "assistant", "content": "Nothing to do." }),
            (5, 5),
        ),
    )]);
    let unwritable = folder.path().join("no-such-dir/nightly.prom");
    let out = spawn_with_stdin(
        &mut job(folder.path(), &state, &unwritable, provider.port),
        "Anything new?\n",
    )
    .wait_with_output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no sentence on stderr: {stderr}"));
    assert!(
        line.contains("no-such-dir/nightly.prom") && line.contains("Config::metrics_file"),
        "{line}"
    );
    let second = line.split('`').nth(1).unwrap();
    let replay = fc(&state, &["replay", second]);
    assert_eq!(replay.code, exit::OK, "{replay:#?}");
    assert_eq!(replay.stdout, "Nothing to do.\n");
}

#[test]
fn the_service_example_runs_an_agent_per_request() {
    let state = fresh_dir();
    let mut child = Command::new(example("embed-service"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--policy",
            "examples/hello/policy.toml",
            "--state",
        ])
        .arg(&state)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();
    let post = |task: &str| {
        let mut response = http.post(&format!("{base}/run")).send(task).unwrap();
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    // Two requests at once: one agent, one journal, two runs.
    let both = std::thread::scope(|s| {
        let a = s.spawn(|| post("What is in /data?"));
        let b = s.spawn(|| post("What is in /data?"));
        [a.join().unwrap(), b.join().unwrap()]
    });
    for (status, body) in &both {
        assert_eq!(*status, 200, "{body}");
        assert!(
            body["answer"]
                .as_str()
                .unwrap()
                .starts_with("/data holds notes.txt"),
            "{body}"
        );
        assert_eq!(body["tool_calls"], 4);
    }
    assert_ne!(both[0].1["run_id"], both[1].1["run_id"]);
    let mut response = http.get(&format!("{base}/nope")).call().unwrap();
    let (status, body) = (
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap(),
    );
    assert_eq!(status, 404, "{body}");
    let _ = child.kill();
    let _ = child.wait();
    let runs: Value = serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs:#?}");
}

#[test]
fn a_direct_tool_call_takes_the_agents_path_and_a_refusal_names_its_rule() {
    let state = fresh_dir();
    let agent = Agent::new(Config::default().state_dir(&state));
    // No policy, no grant.
    let e = agent.run("anything").unwrap_err();
    assert!(
        matches!(e, Error::Usage(_)) && e.to_string().contains("enforce_policy"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 2);
    agent.enforce_policy(Policy::load("examples/hello/policy.toml").unwrap());
    let notes = agent
        .call_tool("fs.read_file", json!({ "path": "/data/notes.txt" }))
        .unwrap();
    assert!(notes.to_string().contains("FemtoClaw decides"), "{notes}");
    // Outside the mount, and a tool the policy does not grant.
    for (tool, arguments) in [
        ("fs.read_file", json!({ "path": "/etc/passwd" })),
        (
            "fs.write_file",
            json!({ "path": "/data/x", "content": "x" }),
        ),
        ("fs.read_file", json!({ "path": 7 })),
    ] {
        let e = agent.call_tool(tool, arguments.clone()).unwrap_err();
        assert!(matches!(e, Error::Tool(_)), "{tool} {arguments}: {e}");
        assert!(
            e.to_string().starts_with(&format!("tool `{tool}`: ")),
            "{e}"
        );
    }
    // A blocking call from async code is refused, not a panic.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = tokio.block_on(async { agent.run("x").unwrap_err() });
    assert!(e.to_string().contains("run_async"), "{e}");
    let answer = tokio
        .block_on(agent.run_async("What is in /data?"))
        .unwrap();
    assert!(
        answer.text.starts_with("/data holds notes.txt"),
        "{answer:?}"
    );
    // Each call was a journaled session, audited like any run (the
    // journal is the agent's until it is dropped).
    drop(agent);
    let runs: Value = serde_json::from_str(&fc(&state, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 5, "{runs:#?}");
    let audit = fc(&state, &["audit", runs[1]["id"].as_str().unwrap()]);
    assert!(audit.stdout.contains("fs.read_file"), "{audit:#?}");
}
