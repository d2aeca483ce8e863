//! Capabilities written in Python, JavaScript, C and Go (and the Rust one), each built from source
//! with its language's own component toolchain (guests/toolchains.sh installs
//! them; a missing toolchain fails these tests) and driven through `fc-host`
//! by the built-in agent and a scripted brain. For each: the tools answer
//! correctly, a call that violates a tool's schema never reaches the
//! component, and the component reaches nothing outside its grants.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::common::*;
use crate::server::Server;

/// Runs a guest's build script, which writes the component to `out`.
fn build(script: &[&str], name: &str) -> PathBuf {
    let out = fresh_dir().join(format!("{name}.wasm"));
    let started = Instant::now();
    let status = Command::new(script[0])
        .args(&script[1..])
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script[0]));
    assert!(
        status.success() && out.exists(),
        "{} failed ({status}); the toolchains come from guests/toolchains.sh",
        script.join(" ")
    );
    eprintln!(
        "built {name}: {} bytes in {:.1} s",
        std::fs::metadata(&out).unwrap().len(),
        started.elapsed().as_secs_f64()
    );
    out
}

/// `fc-host tools` lists the component's tools; `fc-host call` runs one
/// through the gate (its output on stdout) and refuses one that fails the
/// tool's schema before the component sees it.
fn tools_and_call(
    component: &Path,
    tools: &[&str],
    good: (&str, Value),
    expect: Value,
    bad: (&str, Value),
) {
    let state = fresh_dir();
    let listed = fc(&state, &["tools", component.to_str().unwrap(), "--json"]);
    assert_eq!(listed.code, exit::OK, "{listed:#?}");
    let specs: Value = serde_json::from_str(&listed.stdout).unwrap();
    let names: Vec<&str> = specs
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, tools, "{listed:#?}");
    let call = |(tool, arguments): (&str, Value)| {
        fc(
            &state,
            &[
                "call",
                component.to_str().unwrap(),
                tool,
                &arguments.to_string(),
            ],
        )
    };
    let out = call(good);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        expect,
        "{out:#?}"
    );
    assert!(
        !out.stderr.contains("compiling a component"),
        "`call` loads what `tools` compiled: {out:#?}"
    );
    let out = call(bad);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("protocol.input-schema"), "{out:#?}");
    let audit = fc(&state, &["audit", &out.run_id(), "--json"]);
    assert!(
        audit.stdout.contains("protocol.input-schema"),
        "the refusal is audited: {audit:#?}"
    );
}

/// What a run of the built-in agent did, read back from its journal.
struct Run {
    out: Output,
    /// One entry per proposed tool call, in order: `Ok(output JSON)` or
    /// `Err((error kind, message))`.
    results: Vec<Result<Value, (String, String)>>,
    /// Rule of each refused call, `""` for calls the capability ran.
    rules: Vec<String>,
}

impl Run {
    fn ok(&self, i: usize) -> &Value {
        match &self.results[i] {
            Ok(v) => v,
            Err(e) => panic!("call {i} failed with {e:?}: {:#?}", self.out),
        }
    }

    fn err(&self, i: usize) -> (&str, &str) {
        match &self.results[i] {
            Err((kind, message)) => (kind, message),
            Ok(v) => panic!("call {i} succeeded with {v}: {:#?}", self.out),
        }
    }

    /// The tools the capability itself was asked to run: each logs
    /// `invoke TOOL` on entry.
    fn invoked(&self, capability: &str) -> Vec<String> {
        self.out
            .events()
            .into_iter()
            .filter(|e| e["component"] == format!("capability {capability}"))
            .filter_map(|e| {
                e["message"]
                    .as_str()?
                    .strip_prefix("invoke ")
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// `fc-host run` of the built-in agent on one scripted turn of `calls`, with
/// `capability` granted as the policy text `grant`; then `fc-host inspect`.
fn run_calls(s: &Scratch, grant: &str, calls: &[(&str, Value)]) -> Run {
    s.setup(&policy(grant), crate::common::calls(calls));
    let state = fresh_dir();
    let policy = s.path("policy.toml");
    let policy = policy.to_str().unwrap();
    let out = fc(
        &state,
        &[
            "--log-format",
            "json",
            "run",
            "--policy",
            policy,
            "--task",
            "test",
        ],
    );
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let inspect = fc(&state, &["inspect", &first_run_id(&state), "--json"]);
    let timeline: Value = serde_json::from_str(&inspect.stdout).unwrap();
    let mut results = Vec::new();
    let mut rules = Vec::new();
    for event in timeline["events"].as_array().unwrap() {
        if event["kind"] != "tool-result" {
            continue;
        }
        let data = &event["data"];
        rules.push(data["rule"].as_str().unwrap_or_default().to_owned());
        results.push(match &data["result"] {
            Value::Object(r) if r.contains_key("Ok") => {
                Ok(serde_json::from_str(r["Ok"].as_str().unwrap()).unwrap())
            }
            Value::Object(r) => {
                let (kind, message) = r["Err"].as_object().unwrap().iter().next().unwrap();
                Err((
                    kind.clone(),
                    message.as_str().unwrap_or_default().to_owned(),
                ))
            }
            other => panic!("unexpected tool result {other}"),
        });
    }
    assert_eq!(results.len(), calls.len(), "{timeline:#}");
    Run {
        out,
        results,
        rules,
    }
}

fn mount_data(component: &Path, name: &str, tools: &str) -> String {
    format!(
        "[capabilities.{name}]\ncomponent = {component:?}\ntools = [{tools}]\nmounts = [{{ guest = \"/data\", host = \"data\", mode = \"ro\" }}]\n"
    )
}

/// A file outside the mount, which every capability tries to reach.
fn secret(s: &Scratch) -> String {
    s.write("outside/secret.txt", "CANARY-outside-the-grant");
    // From the guest's /data, `..` climbs to the scratch directory only if
    // the sandbox let it.
    "/data/../outside/secret.txt".into()
}

#[test]
fn c_hash_capability() {
    let component = build(&["guests/c/hash/build.sh"], "hash");
    let s = Scratch::new();
    s.write("data/hello.txt", "hello\n");
    s.write("data/million.txt", &"a".repeat(1_000_000));
    let secret = secret(&s);
    let run = run_calls(
        &s,
        &mount_data(&component, "hash", "\"sha256_text\", \"sha256_file\""),
        &[
            ("hash.sha256_text", json!({ "text": "abc" })),
            ("hash.sha256_text", json!({ "text": "é😀\n\"x" })),
            ("hash.sha256_file", json!({ "path": "/data/hello.txt" })),
            ("hash.sha256_file", json!({ "path": "/data/million.txt" })),
            ("hash.sha256_text", json!({ "text": 5 })),
            ("hash.sha256_file", json!({ "path": secret })),
            ("hash.sha256_file", json!({ "path": "/etc/passwd" })),
        ],
    );
    let digest = |i| run.ok(i).clone();
    assert_eq!(
        digest(0),
        json!({ "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "bytes": 3 })
    );
    assert_eq!(
        digest(1),
        json!({ "sha256": "f6470e320cc397ae9aa3f36c01e8ea9f39d43f2a1432fe4cc2fd94b5849e547d", "bytes": 9 }),
        "JSON escapes are decoded to UTF-8 before hashing"
    );
    assert_eq!(
        digest(2),
        json!({ "sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03", "bytes": 6 })
    );
    assert_eq!(
        digest(3),
        json!({ "sha256": "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "bytes": 1_000_000 })
    );
    assert_refused_by_schema(&run, 4);
    assert_eq!(run.err(5).0, "Denied", "{:?}", run.err(5));
    assert_eq!(run.err(6).0, "Failed", "{:?}", run.err(6));
    assert!(run.err(6).1.contains("No such file"), "{:?}", run.err(6));
    assert_eq!(
        run.invoked("hash"),
        [
            "sha256_text",
            "sha256_text",
            "sha256_file",
            "sha256_file",
            "sha256_file",
            "sha256_file"
        ],
        "the schema-violating call never reached the component"
    );
    assert_no_canary(&run.out, "CANARY");
    tools_and_call(
        &component,
        &["sha256_text", "sha256_file"],
        ("sha256_text", json!({ "text": "abc" })),
        json!({ "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "bytes": 3 }),
        ("sha256_text", json!({ "text": 5 })),
    );
}

#[test]
fn go_count_capability() {
    let component = build(&["guests/go/count/build.sh"], "count");
    let s = Scratch::new();
    s.write("data/hello.txt", "hello wide\nworld é\n");
    let secret = secret(&s);
    let run = run_calls(
        &s,
        &mount_data(&component, "count", "\"count_text\", \"count_file\""),
        &[
            ("count.count_text", json!({ "text": "one two  three\n😀" })),
            ("count.count_file", json!({ "path": "/data/hello.txt" })),
            (
                "count.count_text",
                json!({ "text": ["not", "a", "string"] }),
            ),
            ("count.count_file", json!({ "path": secret })),
            ("count.count_file", json!({ "path": "/etc/passwd" })),
        ],
    );
    assert_eq!(
        run.ok(0),
        &json!({ "lines": 1, "words": 4, "bytes": 19, "chars": 16 })
    );
    assert_eq!(
        run.ok(1),
        &json!({ "lines": 2, "words": 4, "bytes": 20, "chars": 19 })
    );
    assert_refused_by_schema(&run, 2);
    // Outside the mount: the sandbox has no such file to give.
    for i in [3, 4] {
        let (kind, message) = run.err(i);
        assert!(
            matches!(kind, "Failed" | "Denied") && !message.contains("CANARY"),
            "{:?}",
            run.err(i)
        );
    }
    assert_eq!(
        run.invoked("count"),
        ["count_text", "count_file", "count_file", "count_file"],
        "the schema-violating call never reached the component"
    );
    assert_no_canary(&run.out, "CANARY");
    tools_and_call(
        &component,
        &["count_text", "count_file"],
        ("count_text", json!({ "text": "a b\n" })),
        json!({ "lines": 1, "words": 2, "bytes": 4, "chars": 4 }),
        ("count_text", json!({ "text": 5 })),
    );
}

#[test]
fn python_text_capability() {
    let component = build(&["guests/python/text/build.sh"], "text");
    let s = Scratch::new();
    s.write(
        "data/notes.txt",
        "Ask ada@example.org or\nbob@example.net — thanks, ünïcode\n",
    );
    let secret = secret(&s);
    let run = run_calls(
        &s,
        &mount_data(&component, "text", "\"word_count\", \"extract\""),
        &[
            ("text.word_count", json!({ "path": "/data/notes.txt" })),
            ("text.word_count", json!({ "text": "one two  three\n" })),
            (
                "text.extract",
                json!({ "pattern": r"(\w+)@example\.\w+", "path": "/data/notes.txt" }),
            ),
            (
                "text.extract",
                json!({ "pattern": r"\d", "text": "a1b2c3", "max_matches": 2 }),
            ),
            (
                "text.word_count",
                json!({ "text": "both", "path": "/data/notes.txt" }),
            ),
            ("text.extract", json!({ "pattern": "(", "text": "x" })),
            ("text.word_count", json!({ "path": secret })),
            ("text.word_count", json!({ "path": "/etc/passwd" })),
        ],
    );
    assert_eq!(
        run.ok(0),
        &json!({ "words": 7, "lines": 2, "chars": 57 }),
        "characters, not bytes"
    );
    assert_eq!(run.ok(1), &json!({ "words": 3, "lines": 1, "chars": 15 }));
    assert_eq!(
        run.ok(2),
        &json!({ "matches": ["ada", "bob"], "truncated": false })
    );
    assert_eq!(
        run.ok(3),
        &json!({ "matches": ["1", "2"], "truncated": true })
    );
    assert_refused_by_schema(&run, 4);
    let (kind, message) = run.err(5);
    assert_eq!(kind, "InvalidArguments");
    assert!(message.contains("not a regular expression"), "{message}");
    assert_eq!(run.err(6).0, "Denied", "{:?}", run.err(6));
    assert_eq!(run.err(7).0, "Failed", "{:?}", run.err(7));
    assert_eq!(
        run.invoked("text"),
        [
            "word_count",
            "word_count",
            "extract",
            "extract",
            "extract",
            "word_count",
            "word_count"
        ],
        "the schema-violating call never reached the component"
    );
    assert_no_canary(&run.out, "CANARY");
    tools_and_call(
        &component,
        &["word_count", "extract"],
        ("word_count", json!({ "text": "one two  three\n" })),
        json!({ "words": 3, "lines": 1, "chars": 15 }),
        ("word_count", json!({ "text": 5 })),
    );
}

#[test]
fn javascript_json_capability() {
    let component = build(&["node", "guests/js/json/build.mjs"], "json");
    let server = Server::start(0);
    let other = Server::start(0);
    let s = Scratch::new();
    let grant = format!(
        "[capabilities.json]\ncomponent = {component:?}\ntools = [\"query\", \"fetch_query\"]\nnet = [\"http://127.0.0.1:{}\"]\n",
        server.port
    );
    let url = |port: u16| format!("http://127.0.0.1:{port}/store.json");
    let doc = json!({ "a": [1, 2, { "b": 3, "c": [{ "b": 4 }] }], "b": 0 });
    let run = run_calls(
        &s,
        &grant,
        &[
            ("json.query", json!({ "document": doc, "path": "$..b" })),
            (
                "json.query",
                json!({ "document": doc, "path": "$.a[-1].c[0]" }),
            ),
            ("json.query", json!({ "document": doc, "path": "$.a[0:2]" })),
            (
                "json.fetch_query",
                json!({ "url": url(server.port), "path": "$.store.book[*].title" }),
            ),
            ("json.query", json!({ "path": "$" })),
            (
                "json.query",
                json!({ "document": doc, "path": "$[?(@.b)]" }),
            ),
            (
                "json.fetch_query",
                json!({ "url": url(other.port), "path": "$..price" }),
            ),
        ],
    );
    assert_eq!(run.ok(0), &json!({ "matches": [0, 3, 4] }));
    assert_eq!(run.ok(1), &json!({ "matches": [{ "b": 4 }] }));
    assert_eq!(run.ok(2), &json!({ "matches": [1, 2] }));
    assert_eq!(
        run.ok(3),
        &json!({ "status": 200, "matches": ["Dune", "Emma"] })
    );
    assert_eq!(server.connections(), 1);
    assert_refused_by_schema(&run, 4);
    let (kind, message) = run.err(5);
    assert_eq!(kind, "InvalidArguments");
    assert!(message.contains("unsupported selector"), "{message}");

    // The other server is not in `net`: the host refused the request (and
    // said so, with its rule) before any connection was made.
    assert_eq!(run.err(6).0, "Failed", "{:?}", run.err(6));
    assert_eq!(other.connections(), 0, "the request never left the host");
    let refusals = run
        .out
        .events_named("outgoing request refused: no `net` pattern names it");
    assert_eq!(refusals.len(), 1, "{:#?}", run.out);
    assert_eq!(refusals[0]["rule"], "net");
    assert_eq!(
        run.invoked("json"),
        [
            "query",
            "query",
            "query",
            "fetch_query",
            "query",
            "fetch_query"
        ],
        "the schema-violating call never reached the component"
    );
    tools_and_call(
        &component,
        &["query", "fetch_query"],
        (
            "query",
            json!({ "document": { "a": [1, { "b": 2 }] }, "path": "$..b" }),
        ),
        json!({ "matches": [2] }),
        ("query", json!({ "path": "$" })),
    );
}

/// Call `i` was refused by the input schema: the gate answered, not the tool.
fn assert_refused_by_schema(run: &Run, i: usize) {
    let (kind, message) = run.err(i);
    assert_eq!(kind, "InvalidArguments", "{message}");
    assert!(message.contains("violate the input schema"), "{message}");
    assert_eq!(run.rules[i], "protocol.input-schema");
}

#[test]
fn rust_fs_capability_through_tools_and_call() {
    let component = artifacts::CAP_FS;
    let state = fresh_dir();
    let listed = fc(&state, &["tools", component]);
    assert_eq!(listed.code, exit::OK, "{listed:#?}");
    assert!(
        listed.stdout.contains("read_file (read)") && listed.stdout.contains("write_file (write)"),
        "{listed:#?}"
    );
    // With a policy, the call gets the policy's grant of that component.
    let s = Scratch::new();
    s.write("data/a.txt", "hello");
    let policy = s.write(
        "policy.toml",
        &format!("version = 1\n[capabilities.files]\ncomponent = {component:?}\ntools = [\"list_dir\"]\nmounts = [{{ guest = \"/data\", host = \"data\", mode = \"ro\" }}]\n"),
    );
    let policy = policy.to_str().unwrap();
    let out = fc(
        &state,
        &[
            "call",
            component,
            "list_dir",
            r#"{"path":"/data"}"#,
            "--policy",
            policy,
        ],
    );
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        json!({ "entries": [{ "name": "a.txt", "kind": "file" }] })
    );
    // A tool the policy does not grant is refused by its rule.
    let out = fc(
        &state,
        &[
            "call",
            component,
            "read_file",
            r#"{"path":"/data/a.txt"}"#,
            "--policy",
            policy,
        ],
    );
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("capabilities.files.tools"), "{out:#?}");
    // Without one, the component has no mounts at all.
    let out = fc(
        &state,
        &["call", component, "list_dir", r#"{"path":"/data"}"#],
    );
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains("outside the granted mounts"),
        "{out:#?}"
    );
    // A component the policy does not name.
    let out = fc(
        &state,
        &["call", "builtin:http", "get", "{}", "--policy", policy],
    );
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr
            .contains("grants no capability whose component is `builtin:http`"),
        "{out:#?}"
    );
}

/// docs/writing-capabilities.md's Python section, followed as written from
/// an empty folder: `fc-host wit wit`, its `app.py`, its componentize-py
/// line, then `fc-host call` on the result.
#[test]
fn the_python_guide_builds_from_an_empty_folder() {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/writing-capabilities.md"
    ))
    .unwrap();
    let section = &guide[guide.find("## Python").unwrap()..guide.find("## JavaScript").unwrap()];
    let block = |fence: &str, nth: usize| {
        let start = section.match_indices(fence).nth(nth).unwrap().0 + fence.len();
        section[start..start + section[start..].find("```").unwrap()].to_owned()
    };
    let app = block("```python\n", 0);
    let build = block("```sh\n", 1);
    let empty = fresh_dir();
    std::fs::write(empty.join("app.py"), app).unwrap();
    let wit = fc(&fresh_dir(), &["wit", empty.join("wit").to_str().unwrap()]);
    assert_eq!(wit.code, exit::OK, "{wit:#?}");
    // The guide's `.venv` is the toolchains' one.
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/.venv");
    std::os::unix::fs::symlink(&venv, empty.join(".venv")).unwrap();
    let status = Command::new("bash")
        .args(["-c", build.trim()])
        .current_dir(&empty)
        .status()
        .unwrap();
    assert!(status.success(), "the guide's build line failed: {build}");
    let out = fc(
        &fresh_dir(),
        &[
            "call",
            empty.join("upper.wasm").to_str().unwrap(),
            "upper",
            r#"{"text":"from the guide"}"#,
        ],
    );
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        json!({ "text": "FROM THE GUIDE" })
    );
}
