//! Provider brains against a real HTTP server on loopback that speaks each
//! provider's wire format.

use std::process::Command;

use serde_json::{Value, json};

use crate::common::*;
use crate::mock_provider::{MockProvider, openai_turn};

const KEY: &str = "sk-test-canary-0a1b2c3d4e";

fn setup(kind: &str, port: u16, extra_brain: &str) -> Scratch {
    let s = Scratch::new();
    // Only Chat Completions has a temperature.
    let temperature = if kind == "openai" {
        "temperature = 0.2\n"
    } else {
        ""
    };
    s.write("data/a.txt", "apples");
    s.write("data/b.txt", "bananas");
    s.write(
        "policy.toml",
        &format!(
            "version = 1\n[limits]\nmax-steps = 6\n[brain]\nkind = \"{kind}\"\nbase-url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"test-model\"\n{temperature}{extra_brain}\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{{ guest = \"/data\", host = \"data\", mode = \"ro\" }}]\n"
        ),
    );
    s
}

fn run_brain(s: &Scratch, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = fc_host();
    cmd.args(["--log-format", "json", "run", "--policy"])
        .arg(s.path("policy.toml"))
        .args(args);
    match key {
        Some(k) => cmd.env("FC_TEST_KEY", k),
        None => cmd.env_remove("FC_TEST_KEY"),
    };
    cmd.env_remove("OPENAI_API_KEY");
    run(&mut cmd)
}

#[test]
fn openai_brain_completes_a_multi_step_task() {
    let calls = json!({ "role": "assistant", "content": null, "tool_calls": [
        { "id": "call_a", "type": "function", "function": { "name": "fs__read_file", "arguments": "{\"path\":\"/data/a.txt\"}" } },
        { "id": "call_b", "type": "function", "function": { "name": "fs__read_file", "arguments": "{\"path\":\"/data/b.txt\"}" } }
    ]});
    let provider = MockProvider::start(vec![
        (200, "", openai_turn(calls, (50, 10))),
        (
            429,
            "retry-after: 0\r\n",
            json!({ "error": { "message": "rate limited", "type": "rate_limit_error" } }),
        ),
        (
            200,
            "",
            openai_turn(
                json!({ "role": "assistant", "content": "a holds apples, b holds bananas" }),
                (80, 12),
            ),
        ),
    ]);
    let s = setup("openai", provider.port, "api-key-env = \"FC_TEST_KEY\"");
    let out = run_brain(&s, Some(KEY), &["--task", "What do the files hold?"]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(out.stdout.trim(), "a holds apples, b holds bananas");
    assert_no_canary(&out, KEY);

    let reqs = provider.requests();
    assert_eq!(reqs.len(), 3, "two turns, one retried after a 429");
    for r in &reqs {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str()),
            "the host adds the key"
        );
        assert_eq!(r.body["model"], "test-model");
        assert_eq!(r.body["temperature"], 0.2);
        assert_eq!(r.body["tools"][0]["function"]["name"], "fs__read_file");
        assert_eq!(
            r.body["tools"][0]["function"]["parameters"]["required"],
            json!(["path"])
        );
    }
    let messages = reqs[2].body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "tool"]);
    assert_eq!(messages[1]["content"], "What do the files hold?");
    assert_eq!(
        messages[2]["tool_calls"][1]["function"]["name"],
        "fs__read_file"
    );
    assert_eq!(
        (
            messages[3]["tool_call_id"].as_str(),
            messages[4]["tool_call_id"].as_str()
        ),
        (Some("call_a"), Some("call_b"))
    );
    assert!(messages[3]["content"].as_str().unwrap().contains("apples"));
    provider.assert_conforms("openai");
    let done = &out.events_named("run finished")[0];
    assert_eq!(
        (
            done["input_tokens"].as_u64(),
            done["output_tokens"].as_u64()
        ),
        (Some(130), Some(22))
    );
}

#[test]
fn anthropic_brain_completes_a_multi_step_task() {
    let first = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "test-model", "stop_reason": "tool_use",
        "content": [
            { "type": "text", "text": "Reading both." },
            { "type": "tool_use", "id": "toolu_a", "name": "fs__read_file", "input": { "path": "/data/a.txt" } },
            { "type": "tool_use", "id": "toolu_b", "name": "fs__read_file", "input": { "path": "/data/b.txt" } }
        ],
        "usage": { "input_tokens": 40, "output_tokens": 20 }
    });
    let second = json!({
        "id": "msg_2", "type": "message", "role": "assistant", "model": "test-model", "stop_reason": "end_turn",
        "content": [{ "type": "text", "text": "apples and bananas" }],
        "usage": { "input_tokens": 90, "output_tokens": 5 }
    });
    let provider = MockProvider::start(vec![
        (
            503,
            "",
            json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } }),
        ),
        (200, "", first),
        (200, "", second),
    ]);
    let s = setup(
        "anthropic",
        provider.port,
        "api-key-env = \"FC_TEST_KEY\"\nmax-tokens = 512",
    );
    let out = run_brain(&s, Some(KEY), &["--task", "What do the files hold?"]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(out.stdout.trim(), "apples and bananas");
    assert_no_canary(&out, KEY);
    let reqs = provider.requests();
    assert_eq!(reqs.len(), 3, "a 503 is retried");
    for r in &reqs {
        assert_eq!(r.path, "/v1/messages");
        assert_eq!(r.header("x-api-key"), Some(KEY));
        assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.body["max_tokens"], 512);
        assert_eq!(r.body["tools"][0]["name"], "fs__read_file");
        assert!(r.body["system"].as_str().unwrap().contains("FemtoClaw"));
    }
    let messages = reqs[2].body["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        3,
        "user, assistant, then one user message with both results"
    );
    assert_eq!(messages[1]["content"][1]["type"], "tool_use");
    assert_eq!(
        messages[1]["content"][2]["input"],
        json!({ "path": "/data/b.txt" })
    );
    let results = messages[2]["content"].as_array().unwrap();
    assert_eq!(
        (
            results[0]["tool_use_id"].as_str(),
            results[1]["tool_use_id"].as_str()
        ),
        (Some("toolu_a"), Some("toolu_b"))
    );
    assert!(results[1]["content"].as_str().unwrap().contains("bananas"));
    provider.assert_conforms("anthropic");
}

#[test]
fn malformed_model_output_never_reaches_a_capability() {
    let bad = json!({ "role": "assistant", "content": null, "tool_calls": [
        { "id": "c1", "type": "function", "function": { "name": "fs__read_file", "arguments": "{\"path\": \"/data/a.txt\"" } },
        { "id": "c2", "type": "function", "function": { "name": "net__get", "arguments": "{}" } },
        { "id": "c3", "type": "function", "function": { "name": "fs__read_file", "arguments": "{\"path\":\"/data/a.txt\",\"sudo\":true}" } },
        { "id": "c4", "type": "function", "function": { "name": "fs.read_file", "arguments": "{\"path\":\"/data/a.txt\",\"path\":\"/etc/passwd\"}" } }
    ]});
    let provider = MockProvider::start(vec![
        (200, "", openai_turn(bad, (1, 1))),
        (
            200,
            "",
            openai_turn(
                json!({ "role": "assistant", "content": "recovered" }),
                (1, 1),
            ),
        ),
        (
            200,
            "",
            json!({ "id": "x", "choices": [], "usage": { "prompt_tokens": 1, "completion_tokens": 0 } }),
        ),
    ]);
    let s = setup("openai", provider.port, "");
    let out = run_brain(&s, None, &[]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(out.stdout.trim(), "recovered");
    assert_eq!(
        out.events_named("tool call allowed").len(),
        0,
        "no malformed call reached fs"
    );
    let tool_messages: Vec<Value> = provider.requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| serde_json::from_str(m["content"].as_str().unwrap()).unwrap())
        .collect();
    let kinds: Vec<&str> = tool_messages
        .iter()
        .map(|m| m["error"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "invalid_arguments",
            "unknown_tool",
            "invalid_arguments",
            "invalid_arguments"
        ]
    );

    // An empty `choices` is a provider error: the agent fails cleanly.
    let out = run_brain(&s, None, &[]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains("the response has no choices"),
        "{}",
        out.stderr
    );
}

#[test]
fn provider_errors_are_reported_clearly() {
    let provider = MockProvider::start(vec![(
        401,
        "",
        json!({ "error": { "message": "Incorrect API key provided" } }),
    )]);
    let s = setup("openai", provider.port, "api-key-env = \"FC_TEST_KEY\"");
    let out = run_brain(&s, Some("wrong-key-value"), &[]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr
            .contains("authentication failed (HTTP 401): Incorrect API key provided"),
        "{}",
        out.stderr
    );

    // Missing key, unreachable endpoint: refused before the agent starts.
    let out = run_brain(&s, None, &[]);
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr
            .contains("`brain.api-key-env`: the host variable `FC_TEST_KEY` is not set"),
        "{}",
        out.stderr
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = setup("openai", closed, "");
    let out = run_brain(&s, None, &[]);
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr.contains(&format!(
            "brain endpoint `http://127.0.0.1:{closed}/v1` is unreachable"
        )) && out.stderr.contains("start the local model server first"),
        "a local endpoint says how to start one: {}",
        out.stderr
    );

    // A model the provider does not serve: named, with what to set.
    let provider = MockProvider::start(vec![(
        404,
        "",
        json!({ "error": { "message": "model \"no-such-model\" not found, try pulling it first" } }),
    )]);
    let s = Scratch::new();
    s.write("policy.toml", "version = 1\n");
    let state = fresh_dir();
    let out = run(fc_host()
        .env("FC_MODEL", "no-such-model")
        .env("FC_STATE_DIR", &state)
        .args(["run", "--policy"])
        .arg(s.path("policy.toml"))
        .args([
            "--brain",
            &format!("local=http://127.0.0.1:{}/v1", provider.port),
        ]));
    assert_eq!(
        out.code,
        exit::USAGE,
        "a configuration error, not the agent's: {out:#?}"
    );
    assert!(
        out.stderr
            .contains("the provider has no model `no-such-model`")
            && out.stderr.contains("FC_MODEL"),
        "{}",
        out.stderr
    );
    // The stop is journaled: the replay ends the same way, with no provider.
    let replay = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .args(["replay", &out.run_id()]));
    assert_eq!(replay.code, exit::USAGE, "{replay:#?}");
    assert!(
        replay.stderr.contains("no model `no-such-model`"),
        "{}",
        replay.stderr
    );

    // `--brain remote` with nothing set says all it lacks at once.
    let out = run(fc_host()
        .env_remove("FC_MODEL")
        .env_remove("OPENAI_MODEL")
        .env_remove("OPENAI_API_KEY")
        .args(["run", "--policy"])
        .arg(s.path("policy.toml"))
        .args(["--brain", "remote"]));
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr.contains("needs a model") && out.stderr.contains("and a key"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_brain_reaches_its_provider_and_nothing_else() {
    let provider = MockProvider::start(vec![(200, "", json!({}))]);
    let other = MockProvider::start(vec![]);
    let s = setup("openai", provider.port, "api-key-env = \"FC_TEST_KEY\"");
    let task = format!(
        "fetch http://127.0.0.1:{}/v1/models http://127.0.0.1:{}/ http://169.254.169.254/",
        provider.port, other.port
    );
    let out = run_brain(
        &s,
        Some(KEY),
        &["--brain", artifacts::BRAIN_PROBE, "--task", &task],
    );
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let probe: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        probe["fetched"],
        json!([
            "ok 200",
            "ErrorCode::HttpRequestDenied",
            "ErrorCode::HttpRequestDenied"
        ]),
        "{probe}"
    );
    assert!(other.requests().is_empty(), "the other host saw nothing");
    assert_eq!(
        provider.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        probe["env"],
        json!([]),
        "the key is never in the brain's environment"
    );
}

#[test]
fn brain_local_talks_to_a_keyless_openai_compatible_server() {
    let provider = MockProvider::start(vec![(
        200,
        "",
        openai_turn(
            json!({ "role": "assistant", "content": "hi from local" }),
            (3, 2),
        ),
    )]);
    let s = Scratch::new();
    s.write("policy.toml", "version = 1\n");
    let url = format!("local=http://127.0.0.1:{}/v1", provider.port);
    let out = run(fc_host()
        .env("FC_MODEL", "qwen2.5:0.5b")
        .env("OPENAI_API_KEY", KEY)
        .args(["run", "--policy"])
        .arg(s.path("policy.toml"))
        .args(["--brain", &url]));
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(out.stdout.trim(), "hi from local");
    let req = &provider.requests()[0];
    assert_eq!(req.body["model"], "qwen2.5:0.5b");
    assert_eq!(
        req.header("authorization"),
        None,
        "--brain local sends no key"
    );
    assert!(req.body.get("tools").is_none(), "no capability, no tools");
}

/// The product page's quick start as written, under its own command name:
/// `femtoclaw run --brain local` (a keyless OpenAI-compatible server) and
/// `femtoclaw run --brain remote --policy Strict` (the provider from
/// `OPENAI_BASE_URL` with its key), the working directory read-only.
#[test]
fn the_product_pages_commands_run_as_femtoclaw() {
    let read = json!({ "role": "assistant", "content": null, "tool_calls": [
        { "id": "call_a", "type": "function", "function": { "name": "fs__read_file", "arguments": "{\"path\":\"/workspace/notes.txt\"}" } }
    ] });
    let answer = |text: &str| openai_turn(json!({ "role": "assistant", "content": text }), (5, 2));
    let provider = MockProvider::start(vec![
        (200, "", openai_turn(read.clone(), (3, 2))),
        (200, "", answer("local: the notes say hello")),
        (200, "", openai_turn(read, (3, 2))),
        (200, "", answer("remote: the notes say hello")),
    ]);
    let s = Scratch::new();
    s.write("notes.txt", "hello from the working directory");
    let base = format!("http://127.0.0.1:{}/v1", provider.port);
    let femtoclaw = |brain: &str| {
        run(Command::new(env!("CARGO_BIN_EXE_femtoclaw"))
            .current_dir(s.path(""))
            .env("FC_STATE_DIR", fresh_dir())
            .env("FC_MODEL", "llama3.2")
            .env("OPENAI_BASE_URL", &base)
            .env("OPENAI_API_KEY", KEY)
            .args(["run", "--brain", brain, "--policy", "Strict"])
            .args(["--task", "What do the notes say?"]))
    };
    let local = femtoclaw(&format!("local={base}"));
    assert_eq!(local.code, exit::OK, "{local:#?}");
    assert_eq!(local.stdout.trim(), "local: the notes say hello");
    let remote = femtoclaw("remote");
    assert_eq!(remote.code, exit::OK, "{remote:#?}");
    assert_eq!(remote.stdout.trim(), "remote: the notes say hello");
    let requests = provider.requests();
    assert_eq!(requests.len(), 4);
    for (i, req) in requests.iter().enumerate() {
        let key = (i >= 2).then(|| format!("Bearer {KEY}"));
        assert_eq!(req.header("authorization"), key.as_deref(), "request {i}");
    }
    assert!(
        requests[1].body["messages"]
            .to_string()
            .contains("hello from the working directory"),
        "the file read through Strict's read-only mount reached the model"
    );

    // Plain `--brain local` is Ollama's address; with nothing there, the
    // error says where it looked and what to do.
    let nothing = femtoclaw("local");
    assert_ne!(nothing.code, exit::OK, "{nothing:#?}");
    assert!(
        nothing.stderr.contains("127.0.0.1:11434"),
        "{}",
        nothing.stderr
    );
}

/// What the model's stop reason was, what the run did with it, and what
/// the journal and the audit say.
fn stopped(s: &Scratch, state: &std::path::Path) -> (Output, Value) {
    let out = run(fc_host()
        .env("FC_STATE_DIR", state)
        .env("FC_TEST_KEY", KEY)
        .args(["run", "--policy"])
        .arg(s.path("policy.toml"))
        .args(["--task", "answer"]));
    let id = first_run_id(state);
    let audit = run(fc_host()
        .env("FC_STATE_DIR", state)
        .args(["audit", &id, "--json"]));
    (out, serde_json::from_str(&audit.stdout).unwrap())
}

#[test]
fn the_models_stop_reason_is_never_taken_for_an_answer() {
    let cut = |finish: &str, extra: Value| {
        let mut message = json!({ "role": "assistant", "content": "The answer is" });
        if let Value::Object(m) = extra {
            message.as_object_mut().unwrap().extend(m);
        }
        json!({
            "id": "c", "object": "chat.completion", "created": 1767225600, "model": "test-model",
            "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
        })
    };
    let refusal = json!({
        "id": "c", "object": "chat.completion", "created": 1767225600, "model": "test-model",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": null, "refusal": "I can't help with that." }, "finish_reason": "stop" }],
    });
    let anthropic = |stop: &str| {
        json!({
            "id": "m", "type": "message", "role": "assistant", "model": "test-model", "stop_reason": stop, "stop_sequence": null,
            "content": [{ "type": "text", "text": "The answer is" }], "usage": { "input_tokens": 1, "output_tokens": 1 },
        })
    };
    let cases = [
        (
            "openai",
            cut("length", json!({})),
            "cut off at its output-token limit",
            "length",
        ),
        (
            "openai",
            cut("content_filter", json!({})),
            "withheld by the provider's content filter",
            "content-filter",
        ),
        (
            "openai",
            refusal,
            "the model refused: I can't help with that.",
            "refusal",
        ),
        (
            "anthropic",
            anthropic("max_tokens"),
            "cut off at its output-token limit",
            "length",
        ),
        (
            "anthropic",
            anthropic("refusal"),
            "the model refused: The answer is",
            "refusal",
        ),
    ];
    for (kind, response, message, finish) in cases {
        let provider = MockProvider::start(vec![(200, "", response)]);
        let s = setup(kind, provider.port, "api-key-env = \"FC_TEST_KEY\"");
        let state = fresh_dir();
        let (out, audit) = stopped(&s, &state);
        assert_eq!(out.code, 12, "{kind} {finish}: {out:#?}");
        assert!(out.stdout.is_empty(), "no answer on stdout: {out:#?}");
        assert!(
            out.stderr.contains("no complete answer: ") && out.stderr.contains(message),
            "{kind} {finish}: {}",
            out.stderr
        );
        assert_eq!(audit["status"], "incomplete", "{audit:#}");
        assert_eq!(audit["decisions"][0]["decision"], "incomplete", "{audit:#}");
        assert_eq!(audit["decisions"][0]["outcome"], finish, "{audit:#}");
        provider.assert_conforms(kind);
    }
    // A reason the brain does not know is not an answer either.
    let provider = MockProvider::start(vec![(200, "", cut("eaten_by_a_grue", json!({})))]);
    let s = setup("openai", provider.port, "api-key-env = \"FC_TEST_KEY\"");
    let (out, _) = stopped(&s, &fresh_dir());
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr
            .contains("`finish_reason` `eaten_by_a_grue` is not one this brain knows"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_empty_task_is_not_sent_as_an_empty_text_block() {
    let provider = MockProvider::start(vec![]);
    let s = setup("anthropic", provider.port, "api-key-env = \"FC_TEST_KEY\"");
    let out = run_brain(&s, Some(KEY), &[]);
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr.contains(
            "the conversation has no user text to send (is the task empty? give `--task`)"
        ),
        "{}",
        out.stderr
    );
    assert!(
        provider.requests().is_empty(),
        "nothing the API would refuse was sent"
    );
}

/// The conformance check itself refuses what the providers would: a test
/// of the brain is only as good as this check.
#[test]
fn the_conformance_check_refuses_what_the_apis_refuse() {
    use crate::mock_provider::check_provider_documents;
    let docs = [
        json!({ "api": "openai", "kind": "request", "body": { "model": "m", "messages": [{ "role": "robot", "content": "x" }] } }),
        json!({ "api": "openai", "kind": "request", "body": { "model": "m", "messages": [], "max_token": 5 } }),
        json!({ "api": "anthropic", "kind": "request", "body": { "model": "m", "max_tokens": 5, "messages": [{ "role": "user", "content": [{ "type": "text", "text": "" }] }] } }),
        json!({ "api": "anthropic", "kind": "request", "body": { "model": "m", "max_tokens": 5, "messages": [{ "role": "assistant", "content": "x" }] } }),
        json!({ "api": "openai", "kind": "response", "body": { "id": "c", "choices": [] } }),
    ];
    let report = check_provider_documents(&docs);
    for (doc, result) in docs.iter().zip(&report) {
        assert_eq!(result["ok"], false, "accepted: {doc}");
    }
}
