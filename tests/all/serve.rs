//! `fc-host serve` end to end: a real server process on loopback, driven
//! over real HTTP by a Rust client (ureq) and by `curl`; two tenants attack
//! each other's runs, hostile clients try to tie the server up, and the
//! server is killed (-9) and stopped (SIGTERM) mid-flight. Every JSON
//! response is checked against the OpenAPI document the server serves.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

mod deploy;
mod fleet;
mod mcp_http;
mod postgres;

const ACME: &str = "acme-test-token";
const GLOBEX: &str = "globex-test-token";
const OPERATOR: &str = "operator-test-token";

fn sha256(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// A tenant's ceiling policy: read-only `/data`, the hostile capability's
/// `spin` and `append` (into `/out`), and a scripted brain.
fn tenant_policy(limits: &str) -> String {
    format!(
        "version = 1\n[limits]\nmax-steps = 64\nmax-tool-calls = 64\n{limits}\n[journal]\non-uncertain = \"retry\"\n[brain]\nkind = \"scripted\"\nscript = \"brain.json\"\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\", \"list_dir\"]\nmounts = [{{ guest = \"/data\", host = \"data\", mode = \"ro\" }}]\n[capabilities.h]\ncomponent = {:?}\ntools = [\"spin\", \"append\"]\nmounts = [{{ guest = \"/out\", host = \"out\", mode = \"rw\" }}]\n",
        artifacts::CAP_HOSTILE
    )
}

/// The default brain of every tenant: list `/data`, read a file, answer.
fn default_brain(file: &str) -> Value {
    json!([
        { "content": null, "tool_calls": [{ "name": "fs.list_dir", "arguments": { "path": "/data" } }] },
        { "content": null, "tool_calls": [{ "name": "fs.read_file", "arguments": { "path": format!("/data/{file}") } }] },
        { "content": format!("read {file}") }
    ])
}

struct Setup {
    scratch: Scratch,
    /// Extra text for `serve.toml`'s `[limits]`.
    limits: String,
    /// Extra text for each tenant's `[tenants.ID.quotas]`.
    quotas: [String; 2],
    /// Extra text for each tenant policy's `[limits]`.
    run_limits: String,
    /// A tenant policy in place of the default one.
    policies: [Option<String>; 2],
    /// Extra tables at the end of `serve.toml`.
    tables: String,
    /// Environment variables of the server process.
    env: Vec<(String, String)>,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            scratch: Scratch::new(),
            limits: String::new(),
            quotas: [String::new(), String::new()],
            run_limits: String::new(),
            policies: [None, None],
            tables: String::new(),
            env: Vec::new(),
        }
    }

    /// Writes the configuration: tenants `acme` and `globex`, each with its
    /// own data, output directory, policy and brain.
    fn write(&self) -> PathBuf {
        let s = &self.scratch;
        let tenants = [("acme", "notes.txt"), ("globex", "figures.txt")];
        for (i, (id, file)) in tenants.into_iter().enumerate() {
            s.write(&format!("{id}/data/{file}"), &format!("{id}'s {file}"));
            s.mkdir(&format!("{id}/out"));
            s.write(
                &format!("{id}/brain.json"),
                &default_brain(file).to_string(),
            );
            let policy = self.policies[i]
                .clone()
                .unwrap_or_else(|| tenant_policy(&self.run_limits));
            s.write(&format!("{id}/policy.toml"), &policy);
        }
        let config = format!(
            "listen = \"127.0.0.1:0\"\nstate = \"state\"\nplain-http = \"loopback\"\n[limits]\ndrain = \"2s\"\n{}\n[operator]\ntoken-sha256 = \"{}\"\n[tenants.acme]\ntoken-sha256 = \"{}\"\npolicy = \"acme/policy.toml\"\n[tenants.acme.quotas]\n{}\n[tenants.globex]\ntoken-sha256 = \"{}\"\npolicy = \"globex/policy.toml\"\n[tenants.globex.quotas]\n{}\n{}",
            self.limits,
            sha256(OPERATOR),
            sha256(ACME),
            self.quotas[0],
            sha256(GLOBEX),
            self.quotas[1],
            self.tables,
        );
        s.write("serve.toml", &config)
    }

    fn start(self) -> Served {
        let config = self.write();
        Served::start(self, config)
    }
}

/// A self-signed certificate for 127.0.0.1 (openssl): its key and
/// certificate files.
fn self_signed(key: &Path, cert: &Path) {
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
}

/// Reads a server's JSON log (its piped stderr) until it says where it
/// listens; the address. The rest of its log is drained.
fn listening_address(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("the server did not start: {:?}", child.wait());
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(a) = v["fields"]["address"].as_str().or(v["address"].as_str()) {
            break a.to_owned();
        }
    };
    // Keep reading, so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    address
}

/// A running `fc-host serve`.
struct Served {
    /// The configuration's directory (kept while the server runs).
    setup: Setup,
    child: Child,
    base: String,
    state: PathBuf,
    config: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
    http: ureq::Agent,
    openapi: Value,
}

impl Served {
    fn start(setup: Setup, config: PathBuf) -> Served {
        let state = setup.scratch.path("state");
        let mut child = fc_host()
            .args(["--log-format", "json", "serve", "--config"])
            .arg(&config)
            .envs(setup.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("fc-host serve starts");
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let Some(address) = v["fields"]["address"].as_str().or(v["address"].as_str())
                {
                    let _ = tx.send(address.to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not start: {:?}", stderr.lock().unwrap()));
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://{address}");
        let mut served = Served {
            setup,
            child,
            base,
            state,
            config,
            stderr,
            http,
            openapi: Value::Null,
        };
        let (status, doc) = served.get("/v1/openapi.json", None);
        assert_eq!(status, 200);
        served.openapi = doc;
        served
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value, ureq::http::HeaderMap) {
        let url = self.url(path);
        let auth = token.map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = self.http.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = self.http.post(&url).content_type("application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some(b) => r.send(b),
                    None => r.send_empty(),
                }
            }
        };
        let mut response =
            result.unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.body_mut().read_to_string().expect("a body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value, headers)
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (s, v, _) = self.request("GET", path, token, None);
        (s, v)
    }

    fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, Value, ureq::http::HeaderMap) {
        self.request("POST", path, token, Some(&body.to_string()))
    }

    /// Checks `value` against the OpenAPI document's schema `name`.
    fn conforms(&self, name: &str, value: &Value) {
        let mut root = self.openapi.clone();
        root["$ref"] = json!(format!("#/components/schemas/{name}"));
        let validator = jsonschema::validator_for(&root).expect("the OpenAPI schemas compile");
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{name} does not match the OpenAPI document: {errors:?}\n{value:#}"
        );
    }

    /// A problem response: checked against the document, and its type.
    fn problem(
        &self,
        (status, value, headers): (u16, Value, ureq::http::HeaderMap),
        expected: u16,
        kind: &str,
    ) -> Value {
        assert_eq!(status, expected, "{value:#}");
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        self.conforms("Problem", &value);
        assert_eq!(
            value["type"],
            json!(format!("urn:femtoclaw:problem:{kind}")),
            "{value:#}"
        );
        value
    }

    /// Starts a run and waits for its end.
    fn run_and_wait(&self, token: &str, body: &Value) -> Value {
        let (status, run, _) = self.post("/v1/runs?wait=true", Some(token), body);
        assert_eq!(status, 200, "{run:#}");
        self.conforms("Run", &run);
        run
    }

    /// Polls a run until it leaves `queued` and `running` (bounded).
    fn wait_for_end(&self, token: &str, id: &str) -> Value {
        for _ in 0..1200 {
            let (status, run) = self.get(&format!("/v1/runs/{id}"), Some(token));
            assert_eq!(status, 200, "{run:#}");
            let s = run["status"].as_str().unwrap_or("");
            if s != "queued"
                && (s != "running" || run["resumable"] == true && run.get("waiting").is_some())
            {
                return run;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("run {id} did not end\n{}", self.log())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap()
    }

    /// Kills the server with SIGKILL and starts another on the same
    /// configuration and state.
    fn kill9_and_restart(mut self) -> Served {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.restart()
    }

    /// Starts another server on the same configuration and state, once
    /// this one has exited.
    fn restart(mut self) -> Served {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let setup = std::mem::replace(&mut self.setup, Setup::new());
        let config = self.config.clone();
        Served::start(setup, config)
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Starts a run that spins in a tool call (`h.spin`) and then answers
    /// `answer`, and waits (bounded) until it runs; its id.
    fn start_spinning(&self, token: &str, answer: &str) -> String {
        let spin = json!({ "task": "spin", "brain": { "script": [
            { "content": null, "tool_calls": [{ "name": "h.spin", "arguments": {} }] },
            { "content": answer }
        ] } });
        let (_, run, _) = self.post("/v1/runs", Some(token), &spin);
        let id = run["id"].as_str().unwrap().to_owned();
        for _ in 0..200 {
            if self.get(&format!("/v1/runs/{id}"), Some(token)).1["status"] == "running" {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        id
    }

    /// Starts a second server on this one's configuration (same tenants,
    /// policies and files) with its own state root `name`: another node.
    fn another_node(&self, name: &str) -> Served {
        let text = std::fs::read_to_string(&self.config)
            .unwrap()
            .replace("state = \"state\"", &format!("state = \"{name}\""));
        let config = self.setup.scratch.write(&format!("{name}.toml"), &text);
        let setup = Setup {
            env: self.setup.env.clone(),
            ..Setup::new()
        };
        let mut node = Served::start(setup, config);
        node.state = self.setup.scratch.path(name);
        node
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn task(text: &str) -> Value {
    json!({ "task": text })
}

#[test]
fn tenants_see_only_their_own_runs_and_tokens_are_checked() {
    let served = Setup::new().start();
    let run = served.run_and_wait(ACME, &task("what is in /data?"));
    assert_eq!(run["status"], "ok", "{run:#}");
    assert_eq!(run["answer"], "read notes.txt");
    assert_eq!(run["stats"]["tool_calls"], 2);
    let id = run["id"].as_str().unwrap().to_owned();

    // Globex cannot see, stream, audit, cancel, resume or replay it: each is
    // the same 404 as a run that does not exist.
    let unknown = served.problem(
        served.request("GET", "/v1/runs/no-such-run", Some(GLOBEX), None),
        404,
        "no-such-run",
    );
    for (method, path) in [
        ("GET", format!("/v1/runs/{id}")),
        ("GET", format!("/v1/runs/{id}/events")),
        ("GET", format!("/v1/runs/{id}/audit")),
        ("POST", format!("/v1/runs/{id}/cancel")),
        ("POST", format!("/v1/runs/{id}/resume")),
        ("POST", format!("/v1/runs/{id}/replay")),
    ] {
        let p = served.problem(
            served.request(method, &path, Some(GLOBEX), None),
            404,
            "no-such-run",
        );
        assert_eq!(
            p["detail"].as_str().unwrap().replace(&id, "X"),
            unknown["detail"]
                .as_str()
                .unwrap()
                .replace("no-such-run", "X"),
            "{method} {path}"
        );
    }
    let (status, list) = served.get("/v1/runs", Some(GLOBEX));
    assert_eq!(status, 200);
    served.conforms("RunList", &list);
    assert_eq!(list["runs"], json!([]));
    let (_, list) = served.get("/v1/runs", Some(ACME));
    served.conforms("RunList", &list);
    assert_eq!(list["runs"][0]["id"], json!(id));

    // Globex's own run reads globex's data, never acme's.
    let theirs = served.run_and_wait(GLOBEX, &task("figures"));
    assert_eq!(theirs["answer"], "read figures.txt");

    // No token, a wrong one, a malformed header, the operator's: 401.
    for token in [None, Some("wrong"), Some(OPERATOR)] {
        let p = served.problem(
            served.request("GET", "/v1/runs", token, None),
            401,
            "unauthorized",
        );
        assert!(p["detail"].as_str().unwrap().contains("token"), "{p}");
    }
    let (_, _, headers) = served.request("GET", "/v1/runs", None, None);
    assert!(headers.get("www-authenticate").is_some());
    // Metrics take the operator's token only.
    served.problem(
        served.request("GET", "/metrics", Some(ACME), None),
        401,
        "unauthorized",
    );
    let (status, text) = served.get("/metrics", Some(OPERATOR));
    assert_eq!(status, 200);
    let text = text.as_str().unwrap().to_owned();
    let scrape = Scrape::parse(&text);
    assert_eq!(scrape.value("fc_serve_runs_accepted_total", &[]), 2.0);
    assert!(text.contains("fc_runs_total{status=\"ok\"} 2"), "{text}");

    // Health needs no token.
    let (status, health) = served.get("/healthz", None);
    assert_eq!(status, 200);
    served.conforms("Health", &health);
    let (status, ready) = served.get("/readyz", None);
    assert_eq!(status, 200);
    served.conforms("Health", &ready);
}

#[test]
fn the_audit_replay_and_events_of_a_run_come_from_its_journal() {
    let served = Setup::new().start();
    let id = served.run_and_wait(ACME, &task("look"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, audit) = served.get(&format!("/v1/runs/{id}/audit"), Some(ACME));
    assert_eq!(status, 200);
    served.conforms("Audit", &audit);
    let rules: Vec<&str> = audit["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["capabilities.fs.tools", "capabilities.fs.tools"]);

    let (status, replay, _) =
        served.request("POST", &format!("/v1/runs/{id}/replay"), Some(ACME), None);
    assert_eq!(status, 200, "{replay:#}");
    served.conforms("Replay", &replay);
    assert_eq!(replay["answer"], "read notes.txt");

    // Server-Sent Events: every event, ids in order, then the outcome; a
    // reconnect with Last-Event-ID gets what follows.
    let all = sse(&served, &id, None);
    let ids: Vec<u64> = all.iter().filter_map(|e| e.0).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    assert_eq!(all.first().unwrap().1, "run-start");
    let (_, kind, data) = all.last().unwrap();
    assert_eq!(kind, "outcome");
    served.conforms("Run", data);
    assert_eq!(data["status"], "ok");
    let rest = sse(&served, &id, Some(3));
    assert_eq!(rest.first().unwrap().0, Some(4));
    assert_eq!(rest.len(), all.len() - 4);
    served.problem(
        served.request_with(
            "GET",
            &format!("/v1/runs/{id}/events"),
            &[("Last-Event-ID", "x")],
        ),
        400,
        "bad-request",
    );

    // The same through curl, streaming a run as it happens.
    let (status, accepted, headers) = served.post("/v1/runs", Some(ACME), &task("again"));
    assert_eq!(status, 202);
    served.conforms("Accepted", &accepted);
    let location = headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-N",
            "--max-time",
            "60",
            "-H",
            &format!("Authorization: Bearer {ACME}"),
        ])
        .arg(served.url(&format!("{location}/events")))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("id: 0\nevent: run-start\n"), "{text}");
    assert!(
        text.contains("event: run-end\n") && text.contains("event: outcome\n"),
        "{text}"
    );

    // The CLI reads the state directory the server owns, while it runs.
    let state = served.state.join("tenants/acme");
    let runs = fc(&state, &["runs"]);
    assert_eq!(runs.code, exit::OK, "{runs:#?}");
    assert!(runs.stdout.contains(&id), "{runs:#?}");
    let audit = fc(&state, &["audit", &id]);
    assert!(audit.stdout.contains("capabilities.fs.tools"), "{audit:#?}");
    let replayed = fc(&state, &["replay", &id]);
    assert_eq!(replayed.code, exit::OK, "{replayed:#?}");
    assert_eq!(replayed.stdout.trim(), "read notes.txt");
}

impl Served {
    fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value, ureq::http::HeaderMap) {
        let mut r = match method {
            "GET" => self
                .http
                .get(&self.url(path))
                .header("Authorization", format!("Bearer {ACME}")),
            _ => unreachable!(),
        };
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let mut response = r.call().expect("the server answers");
        let status = response.status().as_u16();
        let h = response.headers().clone();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            h,
        )
    }
}

/// A run's event stream: (id, event, data) per event.
fn sse(served: &Served, id: &str, last: Option<u64>) -> Vec<(Option<u64>, String, Value)> {
    let mut r = served
        .http
        .get(served.url(&format!("/v1/runs/{id}/events")))
        .header("Authorization", format!("Bearer {ACME}"));
    if let Some(last) = last {
        r = r.header("Last-Event-ID", last.to_string());
    }
    let response = r.call().expect("the stream opens");
    assert_eq!(response.status().as_u16(), 200);
    let mut out = Vec::new();
    let (mut event_id, mut kind) = (None, String::new());
    for line in BufReader::new(response.into_body().into_reader()).lines() {
        let line = line.expect("the stream reads");
        if let Some(v) = line.strip_prefix("id: ") {
            event_id = Some(v.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("event: ") {
            kind = v.to_owned();
        } else if let Some(v) = line.strip_prefix("data: ") {
            let data: Value = serde_json::from_str(v).unwrap();
            let data = if kind == "outcome" {
                data
            } else {
                data["data"].clone()
            };
            out.push((event_id.take(), std::mem::take(&mut kind), data));
        }
    }
    out
}

#[test]
fn a_run_policy_may_only_narrow_the_tenants() {
    let served = Setup::new().start();
    let widen = |text: &str| json!({ "task": "t", "policy": format!("version = 1\n{text}\n") });
    for (text, key) in [
        (
            "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\", \"write_file\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"ro\" }]",
            "capabilities.fs.tools",
        ),
        (
            "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"rw\" }]",
            "capabilities.fs.mounts",
        ),
        (
            "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/g\", host = \"../globex/data\", mode = \"ro\" }]",
            "capabilities.fs.mounts",
        ),
        (
            "[capabilities.web]\ncomponent = \"builtin:http\"\ntools = [\"get\"]\nnet = [\"https://example.com\"]",
            "capabilities.web",
        ),
        ("[limits]\nmax-steps = 65", "limits.max-steps"),
    ] {
        let p = served.problem(
            served.post("/v1/runs", Some(ACME), &widen(text)),
            403,
            "widening",
        );
        assert_eq!(p["key"], key, "{p:#}");
    }
    let p = served.problem(
        served.post("/v1/runs", Some(ACME), &widen("[limits\n")),
        422,
        "invalid-policy",
    );
    assert!(
        !p["detail"]
            .as_str()
            .unwrap()
            .contains(served.state.parent().unwrap().to_str().unwrap()),
        "no server path: {p:#}"
    );

    // A narrower policy runs, and what it leaves out is refused by the gate.
    let narrow = widen(
        "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"ro\" }]",
    );
    let run = served.run_and_wait(ACME, &narrow);
    assert_eq!(run["stats"]["refused"], 1, "{run:#}");
    let (_, audit) = served.get(
        &format!("/v1/runs/{}/audit", run["id"].as_str().unwrap()),
        Some(ACME),
    );
    assert_eq!(audit["decisions"][0]["decision"], "deny", "{audit:#}");
    assert_eq!(
        served.get("/v1/runs", Some(ACME)).1["runs"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "refused requests leave no run"
    );
}

#[test]
fn hostile_requests_get_clear_errors_and_the_server_goes_on() {
    let mut setup = Setup::new();
    setup.limits =
        "max-body = \"64KiB\"\nheader-timeout = \"1s\"\nbody-timeout = \"1s\"\nconnections = 256"
            .into();
    let served = setup.start();
    let raw = |body: &str| served.request("POST", "/v1/runs", Some(ACME), Some(body));
    served.problem(raw("{\"task\": "), 400, "bad-request");
    served.problem(raw("[1, 2]"), 400, "bad-request");
    let p = served.problem(
        raw("{\"task\": \"t\", \"grant\": \"everything\"}"),
        400,
        "bad-request",
    );
    assert!(p["detail"].as_str().unwrap().contains("grant"), "{p:#}");
    served.problem(raw(&"[".repeat(10_000)), 400, "bad-request");
    served.problem(
        raw(&format!("{{\"task\": \"{}\"}}", "x".repeat(100 << 10))),
        413,
        "body-too-large",
    );
    served.problem(
        raw("{\"task\": \"t\", \"brain\": {\"script\": 5}}"),
        400,
        "bad-request",
    );
    served.problem(
        served.request(
            "POST",
            "/v1/runs?wait=maybe",
            Some(ACME),
            Some("{\"task\":\"t\"}"),
        ),
        400,
        "bad-request",
    );
    served.problem(
        served.request("GET", "/v1/nothing", Some(ACME), None),
        404,
        "no-such-route",
    );
    served.problem(
        served.request("POST", "/v1/runs/x/audit", Some(ACME), None),
        405,
        "method-not-allowed",
    );

    let address = served.base.trim_start_matches("http://").to_owned();
    // Slow-loris headers: the connection is closed at the header timeout.
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(b"GET /v1/runs HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // A slow body: 408 at the body timeout.
    let mut slow = TcpStream::connect(&address).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(format!("POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ACME}\r\nContent-Length: 100\r\n\r\n{{\"task\"").as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = slow.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // An idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(&address).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 4096];
    assert!(idle.read(&mut first).unwrap() > 0);
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);

    // 10,000 idle connections: the ones over `limits.connections` are
    // closed at once, the rest at the header timeout; memory stays bounded
    // and another tenant's run goes through meanwhile.
    let before = served.rss_kib();
    let mut idle = Vec::new();
    for _ in 0..10_000 {
        if let Ok(c) = TcpStream::connect(&address) {
            idle.push(c);
        }
    }
    let during = served.rss_kib();
    drop(idle);
    let run = served.run_and_wait(GLOBEX, &task("still there?"));
    assert_eq!(run["status"], "ok");
    assert!(
        during < before + 64 * 1024,
        "10,000 idle connections cost {} KiB",
        during - before
    );
    let (_, metrics) = served.get("/metrics", Some(OPERATOR));
    let refused = metrics
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("fc_serve_connections_refused_total "))
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(refused > 0, "connections over the limit are refused");
}

#[test]
fn quotas_refuse_with_retry_after_and_spare_the_other_tenant() {
    let mut setup = Setup::new();
    setup.quotas[0] = "runs-per-minute = 3".into();
    setup.quotas[1] = "concurrent-runs = 1\nqueued-runs = 1".into();
    setup.run_limits = "call-timeout = \"60s\"\nfuel = 1000000000000".into();
    let served = setup.start();
    for _ in 0..3 {
        assert_eq!(served.post("/v1/runs", Some(ACME), &task("t")).0, 202);
    }
    let refused = served.post("/v1/runs", Some(ACME), &task("t"));
    let retry = refused
        .2
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    let p = served.problem(refused, 429, "quota");
    assert_eq!(p["quota"], "runs-per-minute");

    // Globex: one slot and one queue place. A spinning run takes the slot,
    // a second waits, a third is refused.
    let first = served.start_spinning(GLOBEX, "never");
    let (status, second, _) = served.post("/v1/runs", Some(GLOBEX), &task("after the spin"));
    assert_eq!(status, 202);
    let second = second["id"].as_str().unwrap().to_owned();
    let p = served.problem(
        served.post("/v1/runs", Some(GLOBEX), &task("t")),
        429,
        "quota",
    );
    assert_eq!(p["quota"], "queued-runs");
    assert_eq!(
        served.get(&format!("/v1/runs/{second}"), Some(GLOBEX)).1["status"],
        "queued"
    );

    // Acme is not held up by globex's spinning run.
    let acme_run = served.wait_for_end(
        ACME,
        served.get("/v1/runs", Some(ACME)).1["runs"][0]["id"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(acme_run["status"], "ok");

    // Cancel the spin: it ends `cancelled` (journaled), the queued run runs.
    let (status, change, _) = served.request(
        "POST",
        &format!("/v1/runs/{first}/cancel"),
        Some(GLOBEX),
        None,
    );
    assert_eq!(status, 202);
    served.conforms("Change", &change);
    let ended = served.wait_for_end(GLOBEX, &first);
    assert_eq!(ended["status"], "cancelled", "{ended:#}");
    let after = served.wait_for_end(GLOBEX, &second);
    assert_eq!(after["status"], "ok", "{after:#}");
    served.problem(
        served.request(
            "POST",
            &format!("/v1/runs/{first}/cancel"),
            Some(GLOBEX),
            None,
        ),
        409,
        "not-running",
    );
    let (_, audit) = served.get(&format!("/v1/runs/{first}/audit"), Some(GLOBEX));
    served.conforms("Audit", &audit);
    assert_eq!(audit["status"], "cancelled", "{audit:#}");
}

#[test]
fn usage_quotas_refuse_new_runs_and_name_the_quota() {
    let mut setup = Setup::new();
    setup.quotas[0] = "fuel-per-minute = 1".into();
    setup.quotas[1] = "journal-bytes = \"1B\"".into();
    let served = setup.start();
    // The first run burns fuel; the next is refused for the minute.
    assert_eq!(served.run_and_wait(ACME, &task("burn"))["status"], "ok");
    let refused = served.post("/v1/runs", Some(ACME), &task("again"));
    assert!(refused.2.get("retry-after").is_some());
    let p = served.problem(refused, 429, "quota");
    assert_eq!(p["quota"], "fuel-per-minute");
    // Globex's journal is over its size at once: 507, nothing accepted.
    let p = served.problem(
        served.post("/v1/runs", Some(GLOBEX), &task("t")),
        507,
        "quota",
    );
    assert_eq!(p["quota"], "journal-bytes");
    assert_eq!(served.get("/v1/runs", Some(GLOBEX)).1["runs"], json!([]));
}

/// A script of `n` appends to `/out/FILE`, then an answer.
fn appends(file: &str, n: usize) -> Value {
    let mut turns: Vec<Value> = (0..n)
        .map(|i| json!({ "content": null, "tool_calls": [{ "name": "h.append", "arguments": { "path": format!("/out/{file}"), "line": format!("step {i}") } }] }))
        .collect();
    turns.push(json!({ "content": format!("{file} done") }));
    Value::Array(turns)
}

/// Starts `runs` runs of acme's, each appending `steps` lines to its own
/// file, kills the server with -9 once `done` of them have finished (while
/// others are in flight), restarts it, and checks that every run ends `ok`
/// with each line written once. Returns the restarted server and the runs.
fn kill_9_amid_writing_runs(
    served: Served,
    runs: usize,
    steps: usize,
    done: usize,
) -> (Served, Vec<String>) {
    let mut ids = Vec::new();
    for i in 0..runs {
        let body = json!({ "task": format!("run {i}"), "brain": { "script": appends(&format!("{i}.log"), steps) } });
        let (status, accepted, _) = served.post("/v1/runs", Some(ACME), &body);
        assert_eq!(status, 202, "{accepted:#}");
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    let finished = |served: &Served| {
        let (_, list) = served.get("/v1/runs", Some(ACME));
        let list = list["runs"].as_array().unwrap().clone();
        list.iter().filter(|r| r["status"] == "ok").count()
    };
    for _ in 0..400 {
        if finished(&served) >= done {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let unfinished = runs - finished(&served);
    let served = served.kill9_and_restart();
    assert!(unfinished > 0, "the kill came while runs were in flight");
    for (i, id) in ids.iter().enumerate() {
        let run = served.wait_for_end(ACME, id);
        assert_eq!(run["status"], "ok", "run {i}: {run:#}\n{}", served.log());
        assert_eq!(run["answer"], format!("{i}.log done"));
        let log = std::fs::read_to_string(served.setup.scratch.path(&format!("acme/out/{i}.log")))
            .unwrap();
        let keys: std::collections::BTreeSet<&str> =
            log.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(
            log.lines().count(),
            steps,
            "run {i} wrote each step once:\n{log}"
        );
        assert_eq!(keys.len(), steps, "{log}");
    }
    (served, ids)
}

#[test]
fn kill_9_during_100_runs_loses_no_run_and_repeats_no_write() {
    const RUNS: usize = 100;
    let mut setup = Setup::new();
    setup.quotas[0] = "concurrent-runs = 100\nqueued-runs = 128\nruns-per-minute = 1000".into();
    let (served, _) = kill_9_amid_writing_runs(setup.start(), RUNS, 5, 10);
    let (_, list) = served.get("/v1/runs", Some(ACME));
    assert_eq!(list["runs"].as_array().unwrap().len(), RUNS);
    // Commits were grouped: fewer than one per durable point of every run.
    let (_, metrics) = served.get("/metrics", Some(OPERATOR));
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("fc_serve_journal_commits_total{tenant=\"acme\"}")
    );
}

#[test]
fn sigterm_lets_runs_finish_then_leaves_the_rest_to_the_next_server() {
    let mut setup = Setup::new();
    setup.run_limits = "call-timeout = \"10s\"\nfuel = 1000000000000".into();
    let mut served = setup.start();
    let done = served.run_and_wait(ACME, &task("before"));
    let spinning = served.start_spinning(ACME, "after the spin");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &served.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Drain is 2 s: the spin (10 s call timeout) outlives it.
    let status = served.child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", served.log());
    assert!(served.log().contains("draining"), "{}", served.log());
    let state = served.state.join("tenants/acme");
    let inspect = fc(&state, &["inspect", &spinning, "--json"]);
    let v: Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(
        v["run"]["status"], "running",
        "left resumable: {inspect:#?}"
    );
    // The next server resumes it: the spin is called again, stops at its
    // call timeout, and the agent answers from the next turn.
    let served = served.restart();
    let resumed = served.wait_for_end(ACME, &spinning);
    assert_ne!(resumed["status"], "running", "{resumed:#}");
    assert_eq!(
        served
            .get(
                &format!("/v1/runs/{}", done["id"].as_str().unwrap()),
                Some(ACME)
            )
            .1["status"],
        "ok"
    );
}

#[test]
fn tls_serves_http_1_1_and_http_2_and_plain_http_stays_on_loopback() {
    let setup = Setup::new();
    let s = &setup.scratch;
    self_signed(&s.path("key.pem"), &s.path("cert.pem"));
    let config = setup.write();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("plain-http = \"loopback\"\n", "").replace(
            "[limits]",
            "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n[limits]",
        ),
    )
    .unwrap();
    let check = run(fc_host()
        .args(["serve", "--check", "--config"])
        .arg(&config));
    assert_eq!(check.code, exit::OK, "{check:#?}");

    let mut child = fc_host()
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = listening_address(&mut child);
    let curl = |version: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "30", version, "--cacert"])
            .arg(s.path("cert.pem"))
            .args([
                "-w",
                "\n%{http_version}",
                "-H",
                &format!("Authorization: Bearer {ACME}"),
            ])
            .args(["-d", "{\"task\": \"over tls\"}"])
            .arg(format!("https://{address}/v1/runs?wait=true"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let h2 = curl("--http2");
    assert!(h2.ends_with("\n2") && h2.contains("read notes.txt"), "{h2}");
    let h1 = curl("--http1.1");
    assert!(
        h1.ends_with("\n1.1") && h1.contains("read notes.txt"),
        "{h1}"
    );
    // Plain HTTP to a TLS port gets nothing served.
    let plain = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://{address}/healthz"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("ok"));
    let _ = child.kill();
    let _ = child.wait();

    // Plain HTTP must be chosen, and only on loopback.
    std::fs::write(&config, text.replace("127.0.0.1:0", "0.0.0.0:0")).unwrap();
    let refused = run(fc_host()
        .args(["serve", "--check", "--config"])
        .arg(&config));
    assert_eq!(refused.code, exit::USAGE, "{refused:#?}");
    assert!(
        refused.stderr.contains("plain-http") && refused.stderr.contains("serve.toml"),
        "{refused:#?}"
    );
}

#[test]
fn http_2_without_tls_serves_with_prior_knowledge() {
    let served = Setup::new().start();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "--http2-prior-knowledge",
            "-w",
            "\n%{http_version}",
        ])
        .arg(served.url("/healthz"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n2") && text.contains("ok"), "{text}");
}

impl Served {
    /// `POST /v1/bundles` by hand: the request's head, then, once the server
    /// has had time to refuse it, its body; what came back, as text.
    fn upload_after_a_pause(&self, token: &str, body: &[u8]) -> String {
        use std::io::{Read as _, Write as _};
        let address = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "POST /v1/bundles HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        // A server that closed without reading makes the client's send fail
        // with a reset, and a client such as curl then reports only that.
        stream
            .write_all(body)
            .expect("the server reads the body it refused");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// `POST /v1/bundles` with a file's bytes, by curl.
    fn store_bundle(&self, token: &str, bytes: &[u8]) -> (u16, Value, ureq::http::HeaderMap) {
        let file = self.setup.scratch.write("upload.fcb", "");
        std::fs::write(&file, bytes).unwrap();
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "60", "-D", "-", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .args([
                "-H",
                "Content-Type: application/octet-stream",
                // Send the body at once, as most clients do, not after a
                // `100 Continue`: a refusal must reach a client mid-upload.
                "-H",
                "Expect:",
                "--data-binary",
            ])
            .arg(format!("@{}", file.display()))
            .arg(self.url("/v1/bundles"))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{text}\n{}", self.log()));
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = ureq::http::HeaderMap::new();
        for line in head.lines().skip(1) {
            if let Some((k, v)) = line.split_once(": ") {
                headers.insert(
                    ureq::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.trim().parse().unwrap(),
                );
            }
        }
        (status, serde_json::from_str(body).unwrap(), headers)
    }
}

#[test]
fn bundles_are_verified_when_stored_and_run_per_tenant() {
    let mut setup = Setup::new();
    let s = &setup.scratch;
    s.write(
        "acme/bundle.toml",
        &std::fs::read_to_string("examples/hello/bundle.toml").unwrap(),
    );
    let cli = |args: &[&str]| {
        let out = run(fc_host().current_dir(s.path("acme")).args(args));
        assert_eq!(out.code, exit::OK, "{args:?}: {out:#?}");
    };
    cli(&["keygen", "--out", "publisher"]);
    cli(&["bundle", "pack", "bundle.toml", "-o", "unsigned.fcb"]);
    std::fs::copy(s.path("acme/unsigned.fcb"), s.path("acme/signed.fcb")).unwrap();
    cli(&["bundle", "sign", "signed.fcb", "--key", "publisher.key"]);
    // Acme runs bundles signed by its publisher; its fs capability comes
    // from the bundle.
    setup.policies[0] = Some(
        "version = 1\n[trust]\nkeys = [\"publisher.pub\"]\nrequire-signature = true\n[brain]\nkind = \"scripted\"\nscript = \"brain.json\"\n[capabilities.fs]\ncomponent = \"bundle:fs\"\ntools = [\"read_file\", \"list_dir\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"ro\" }]\n".into(),
    );
    let served = setup.start();
    let s = &served.setup.scratch;
    let signed = std::fs::read(s.path("acme/signed.fcb")).unwrap();

    // Unsigned, tampered, or not a bundle: 422, nothing stored.
    let unsigned = std::fs::read(s.path("acme/unsigned.fcb")).unwrap();
    let p = served.problem(served.store_bundle(ACME, &unsigned), 422, "bundle-refused");
    assert!(p["detail"].as_str().unwrap().contains("sign"), "{p:#}");
    let mut tampered = signed.clone();
    let at = tampered.len() - 100;
    tampered[at] ^= 0x20;
    served.problem(served.store_bundle(ACME, &tampered), 422, "bundle-refused");
    served.problem(
        served.store_bundle(ACME, b"not a bundle"),
        422,
        "bundle-refused",
    );
    served.problem(served.store_bundle("wrong", &signed), 401, "unauthorized");
    // A client still uploading when it is refused gets the refusal, not a
    // connection reset.
    let large = vec![7u8; 16 << 20];
    for _ in 0..3 {
        served.problem(served.store_bundle("wrong", &large), 401, "unauthorized");
    }
    let answer = served.upload_after_a_pause("wrong", &large);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // None of them was stored: a run naming one is refused.
    for refused in [&unsigned, &tampered] {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(refused));
        let run = json!({ "task": "t", "bundle": sha });
        let stored = served.post("/v1/runs", Some(ACME), &run);
        served.problem(stored, 422, "unknown-bundle");
    }

    let (status, bundle, _) = served.store_bundle(ACME, &signed);
    assert_eq!(status, 201, "{bundle:#}");
    served.conforms("StoredBundle", &bundle);
    assert_eq!(bundle["name"], "hello");
    let sha = bundle["sha256"].as_str().unwrap().to_owned();
    let run = served.run_and_wait(ACME, &json!({ "task": "bundled", "bundle": sha }));
    assert_eq!(run["status"], "ok", "{run:#}");
    assert_eq!(run["answer"], "read notes.txt");
    assert_eq!(run["agent"], "bundle:hello@1.0.0/agent", "{run:#}");

    // A bundle is the tenant's own: globex cannot run acme's, and the id
    // names no file.
    let p = served.problem(
        served.post(
            "/v1/runs",
            Some(GLOBEX),
            &json!({ "task": "t", "bundle": sha }),
        ),
        422,
        "unknown-bundle",
    );
    assert_eq!(p["key"], "bundle");
    served.problem(
        served.post(
            "/v1/runs",
            Some(ACME),
            &json!({ "task": "t", "bundle": "../../etc/passwd" }),
        ),
        422,
        "unknown-bundle",
    );

    // Cut back as a crash leaves it: the next server resumes the bundle run
    // with the stored bundle it started from.
    let id = run["id"].as_str().unwrap().to_owned();
    let mut served = served;
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    cut_run(&served.state.join("tenants/acme"), &id, 3);
    let served = served.restart();
    let resumed = served.wait_for_end(ACME, &id);
    assert_eq!(resumed["status"], "ok", "{resumed:#}\n{}", served.log());
    assert_eq!(resumed["answer"], "read notes.txt");
}

/// A call that needs approval waits in the server: the event stream
/// announces it, the tenant lists and answers it through the API, the answer
/// is journaled with the tenant, and no answer within the policy's
/// `approval-timeout` denies the next one.
#[test]
fn approvals_wait_in_the_server_until_the_api_answers_or_time_runs_out() {
    let mut setup = Setup::new();
    // `approve` is a top-level key: it goes before the first table.
    let policy = tenant_policy("approval-timeout = \"3s\"").replacen(
        "version = 1\n",
        "version = 1\napprove = [\"h.append\"]\n",
        1,
    );
    setup.policies[0] = Some(policy);
    let served = setup.start();
    let append = |line: &str| json!({ "name": "h.append", "arguments": { "path": "/out/log", "line": line } });
    let body = json!({ "task": "append", "brain": { "script": [
        { "content": null, "tool_calls": [append("approved")] },
        { "content": null, "tool_calls": [append("timed out")] },
        { "content": "done" },
    ] } });
    let (status, accepted, _) = served.post("/v1/runs", Some(ACME), &body);
    assert_eq!(status, 202, "{accepted:#}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/runs/{id}/approvals");
    let mut pending = Value::Null;
    for _ in 0..600 {
        let (status, list) = served.get(&path, Some(ACME));
        assert_eq!(status, 200, "{list:#}");
        if list["pending"].as_array().is_some_and(|p| !p.is_empty()) {
            pending = list;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    served.conforms("Approvals", &pending);
    let waiting = &pending["pending"][0];
    assert_eq!(waiting["tool"], "h.append", "{pending:#}");
    assert_eq!(waiting["rule"], "approve");
    assert!(waiting["arguments"].as_str().unwrap().contains("approved"));
    let call = waiting["call"].as_u64().unwrap();
    // Another tenant sees no such run.
    served.problem(
        served.post(
            &format!("{path}/{call}"),
            Some(GLOBEX),
            &json!({ "approve": true }),
        ),
        404,
        "no-such-run",
    );
    served.problem(
        served.post(
            &format!("{path}/{call}"),
            Some(ACME),
            &json!({ "approve": "yes" }),
        ),
        400,
        "bad-request",
    );
    served.problem(
        served.post(
            &format!("{path}/99"),
            Some(ACME),
            &json!({ "approve": true }),
        ),
        409,
        "no-pending-approval",
    );
    let (status, answered, _) = served.post(
        &format!("{path}/{call}"),
        Some(ACME),
        &json!({ "approve": true }),
    );
    assert_eq!(status, 200, "{answered:#}");
    assert_eq!(answered["decision"], "approve");
    let run = served.wait_for_end(ACME, &id);
    assert_eq!(run["status"], "ok", "{run:#}");
    let log = std::fs::read_to_string(served.setup.scratch.path("acme/out/log")).unwrap();
    // `append` writes its idempotency key before the line.
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "the second was never approved: {log}");
    assert!(lines[0].ends_with(" approved"), "{log}");
    let (_, audit) = served.get(&format!("/v1/runs/{id}/audit"), Some(ACME));
    served.conforms("Audit", &audit);
    let answers: Vec<(String, String)> = audit["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["outcome"] == "approval" && d["decision"] != "ask")
        .map(|d| {
            (
                d["decision"].as_str().unwrap().into(),
                d["by"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        answers,
        [
            ("approve".into(), "api (tenant acme)".into()),
            ("deny".into(), "timeout".into())
        ],
        "{audit:#}"
    );
    // The event stream announced each request.
    let asks = sse(&served, &id, None)
        .into_iter()
        .filter(|(_, kind, data)| kind == "decision" && data["decision"] == "ask")
        .count();
    assert_eq!(asks, 2);
}

/// What an older server kept in the state directory moves into the journal
/// at start: an accepted run's `queue/ID.json` runs, and a damaged one
/// stops the start naming it (it holds a run that was acknowledged).
#[test]
fn an_older_servers_queue_files_move_into_the_journal() {
    let served = Setup::new().start();
    let mut served = served;
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    let queue = served.state.join("tenants/acme/queue");
    std::fs::create_dir_all(&queue).unwrap();
    let id = "01a25000-0000-7000-8000-000000000001";
    let accepted = json!({
        "id": id, "task": "left by an older server", "policy": null,
        "script": appends("older.log", 2), "accepted": 1, "ended": null,
    });
    std::fs::write(queue.join(format!("{id}.json")), accepted.to_string()).unwrap();
    let served = served.restart();
    let run = served.wait_for_end(ACME, id);
    assert_eq!(run["status"], "ok", "{run:#}\n{}", served.log());
    assert_eq!(run["answer"], "older.log done");
    assert_eq!(std::fs::read_dir(&queue).unwrap().count(), 0);
    // A damaged one is named, and nothing starts.
    let mut served = served;
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    std::fs::write(queue.join("damaged.json"), "{ not json").unwrap();
    let out = fc_host()
        .args(["serve", "--config"])
        .arg(&served.config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("damaged.json") && stderr.contains("acknowledged"),
        "{stderr}"
    );
}
