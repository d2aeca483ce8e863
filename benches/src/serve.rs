//! `fc-host serve` figures: request → answer latency of a trivial run over a
//! keep-alive connection (beside the same run through `fc-host run` and a
//! bare instantiate + call on FemtoClaw's engine), throughput with 64
//! clients on tmpfs and on disk, runs held per GiB while waiting on a slow
//! model, and a tenant's latency beside a neighbour saturating its quota.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use femtoclaw_runtime::artifacts;

use crate::{Row, median, ms};

pub(crate) const TOKEN_A: &str = "bench-tenant-a";
const TOKEN_B: &str = "bench-tenant-b";
const OPERATOR: &str = "bench-operator";

fn sha256_hex(text: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A running server and its directory.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) address: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn rss_kib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(f64::NAN)
    }

    pub(crate) fn client(&self) -> Client {
        Client::connect(&self.address)
    }
}

/// Two tenants, `a` and `b`, with the given policies and quotas.
fn start(dir: &Path, state: &Path, policies: [&str; 2], quotas: [&str; 2]) -> Served {
    let node = Node {
        host: crate::process::fc_host(),
        tables: String::new(),
        env: Vec::new(),
    };
    start_node(dir, state, policies, quotas, &node)
}

/// The fc-host a server runs, and what its configuration and environment
/// add.
pub(crate) struct Node {
    pub host: std::path::PathBuf,
    /// Tables at the end of `serve.toml` (`[journal]`).
    pub tables: String,
    pub env: Vec<(String, String)>,
}

/// [`start`] with `node`'s binary, tables and environment; each state root
/// has its own configuration file, so that nodes can share `dir`.
pub(crate) fn start_node(
    dir: &Path,
    state: &Path,
    policies: [&str; 2],
    quotas: [&str; 2],
    node: &Node,
) -> Served {
    for (i, id) in ["a", "b"].iter().enumerate() {
        let t = dir.join(id);
        std::fs::create_dir_all(t.join("data")).unwrap();
        std::fs::write(t.join("data/a.txt"), "hello").unwrap();
        std::fs::write(
            t.join("brain.json"),
            r#"[{"content":null,"tool_calls":[{"name":"fs.read_file","arguments":{"path":"/data/a.txt"}}]},{"content":"done"}]"#,
        )
        .unwrap();
        std::fs::write(t.join("policy.toml"), policies[i]).unwrap();
    }
    let config = format!(
        "listen = \"127.0.0.1:0\"\nstate = {state:?}\nplain-http = \"loopback\"\n[limits]\nconnections = 4096\n[operator]\ntoken-sha256 = \"{}\"\n[tenants.a]\ntoken-sha256 = \"{}\"\npolicy = \"a/policy.toml\"\n[tenants.a.quotas]\n{}\n[tenants.b]\ntoken-sha256 = \"{}\"\npolicy = \"b/policy.toml\"\n[tenants.b.quotas]\n{}\n",
        sha256_hex(OPERATOR),
        sha256_hex(TOKEN_A),
        quotas[0],
        sha256_hex(TOKEN_B),
        quotas[1]
    ) + &node.tables;
    let name = state.file_name().unwrap().to_string_lossy();
    let path = dir.join(format!("serve-{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(&node.host)
        .args([
            "--log-level",
            "warn",
            "--log-format",
            "json",
            "serve",
            "--config",
        ])
        .arg(&path)
        .envs(node.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fc-host serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("the server starts").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(a) = v["address"].as_str() {
            break a.to_owned();
        }
    };
    // Keep reading its stderr, so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Served { child, address }
}

pub(crate) const TRIVIAL_POLICY: &str = "version = 1\n[brain]\nkind = \"scripted\"\nscript = \"brain.json\"\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"ro\" }]\n";

/// A keep-alive HTTP/1.1 client, just enough for the API.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub(crate) fn connect(address: &str) -> Client {
        let stream = TcpStream::connect(address).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub(crate) fn call(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> (u16, String) {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes()).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// One trivial run to its answer; its latency in ms.
    pub(crate) fn run(&mut self, token: &str) -> f64 {
        let started = Instant::now();
        let (status, body) = self.call("POST", "/v1/runs?wait=true", token, r#"{"task":"t"}"#);
        let took = ms(started.elapsed());
        assert!(status == 200 && body.contains("\"ok\""), "{status} {body}");
        took
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// ms per bare instantiate of the fs capability and one `read_file`, on
/// FemtoClaw's engine (the in-process baseline).
fn bare_instantiate_call(data: &Path, n: usize) -> Vec<f64> {
    let runtime = femtoclaw_runtime::Runtime::new().unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(crate::inproc::instantiate_and_call(
        runtime.engine(),
        data,
        n,
    ))
}

pub fn rows() -> Vec<Row> {
    let tmp = crate::scratch("fc-bench-serve");
    let mut rows = Vec::new();
    let roomy = "concurrent-runs = 64\nqueued-runs = 4096\nruns-per-minute = 1000000000\njournal-bytes = \"64GiB\"";
    let served = start(
        tmp.path(),
        &tmp.path().join("state"),
        [TRIVIAL_POLICY, TRIVIAL_POLICY],
        [roomy, roomy],
    );
    let idle_rss = served.rss_kib() / 1024.0;

    // Latency: sequential runs on one keep-alive connection.
    let mut client = served.client();
    for _ in 0..50 {
        client.run(TOKEN_B);
    }
    let latency: Vec<f64> = (0..500).map(|_| client.run(TOKEN_B)).collect();
    let cli = crate::process::trivial_read_ms(&tmp.path().join("cli"));
    let bare = bare_instantiate_call(&tmp.path().join("a/data"), 500);
    rows.push(Row {
        name: "serve: request → answer, one `fs.read_file` (keep-alive, tmpfs)".into(),
        samples: latency.clone(),
        unit: "ms",
        baseline: Some(("the same run by `fc-host run`".into(), median(&cli))),
    });
    rows.push(Row {
        name: "serve: the same, against a bare instantiate + call on FemtoClaw's engine".into(),
        samples: latency.clone(),
        unit: "ms",
        baseline: Some(("bare instantiate + call".into(), median(&bare))),
    });
    rows.push(Row {
        name: "serve: p99 of request → answer".into(),
        samples: vec![percentile(&latency, 0.99)],
        unit: "ms",
        baseline: None,
    });

    // Throughput: 64 clients, each on its own connection.
    let throughput = |served: &Served| -> (f64, f64) {
        let per_client = 40;
        let clients = 64;
        let started = Instant::now();
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let address = served.address.clone();
                std::thread::spawn(move || {
                    let mut c = Client::connect(&address);
                    let token = if i % 2 == 0 { TOKEN_A } else { TOKEN_B };
                    for _ in 0..per_client {
                        c.run(token);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let runs = (per_client * clients) as f64;
        let rate = runs / started.elapsed().as_secs_f64();
        let commits = metric(served, "fc_serve_journal_commits_total");
        (rate, commits)
    };
    let before = metric(&served, "fc_serve_journal_commits_total");
    let (tmpfs_rate, commits) = throughput(&served);
    let runs_total = 64.0 * 40.0;
    rows.push(Row {
        name: "serve: runs per second, 64 clients, state on tmpfs".into(),
        samples: vec![tmpfs_rate],
        unit: "runs/s",
        baseline: None,
    });
    rows.push(Row {
        name: "serve: durable commits per run under that load (group commit; 2 per run alone)"
            .into(),
        samples: vec![(commits - before) / runs_total],
        unit: "commits",
        baseline: None,
    });
    drop(served);
    let disk = tempfile::Builder::new()
        .prefix("fc-bench-serve-disk")
        .tempdir_in(std::env::current_dir().unwrap().join("target"))
        .unwrap();
    let on_disk = start(
        tmp.path(),
        &disk.path().join("state"),
        [TRIVIAL_POLICY, TRIVIAL_POLICY],
        [roomy, roomy],
    );
    let (disk_rate, _) = throughput(&on_disk);
    rows.push(Row {
        name: "serve: runs per second, 64 clients, state on the work disk".into(),
        samples: vec![disk_rate],
        unit: "runs/s",
        baseline: Some(("tmpfs".into(), tmpfs_rate)),
    });
    drop(on_disk);

    rows.extend(density(tmp.path(), idle_rss));
    rows.extend(noisy_neighbour(tmp.path()));
    rows
}

/// A counter's value summed over its series, from `/metrics`.
fn metric(served: &Served, name: &str) -> f64 {
    let (_, text) = served.client().call("GET", "/metrics", OPERATOR, "");
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A loopback OpenAI-compatible server that answers every request after
/// `delay`, a thread per connection.
pub(crate) fn slow_model(delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || answer_slowly(stream, delay));
        }
    });
    port
}

fn answer_slowly(stream: TcpStream, delay: Duration) {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    std::thread::sleep(delay);
    let answer = r#"{"id":"c","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"done"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = reader.get_mut().write_all(response.as_bytes());
}

/// Runs waiting on a model that answers after 5 s, held at once: the
/// server's RSS with them all in flight, less its idle RSS, per run.
fn density(dir: &Path, idle_rss: f64) -> Vec<Row> {
    const WAITING: usize = 1000;
    let port = slow_model(Duration::from_secs(5));
    let policy = format!(
        "version = 1\n[limits]\nrun-timeout = \"120s\"\n[brain]\nkind = \"openai\"\nbase-url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\n"
    );
    let quotas = format!(
        "concurrent-runs = {WAITING}\nqueued-runs = {WAITING}\nruns-per-minute = 1000000000\nwasm-memory = \"64GiB\""
    );
    let dir = dir.join("density");
    let served = start(
        &dir,
        &dir.join("state"),
        [&policy, TRIVIAL_POLICY],
        [&quotas, &quotas],
    );
    let idle = served.rss_kib() / 1024.0;
    let mut client = served.client();
    let started = Instant::now();
    for _ in 0..WAITING {
        let (status, body) = client.call("POST", "/v1/runs", TOKEN_A, r#"{"task":"t"}"#);
        assert_eq!(status, 202, "{body}");
    }
    let posted = started.elapsed();
    // Peak while every run waits on its model (they answer 5 s after each
    // request): sample until the first ones finish.
    let mut peak: f64 = 0.0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        peak = peak.max(served.rss_kib() / 1024.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    let per_run_mib = (peak - idle) / WAITING as f64;
    vec![
        Row {
            name: "serve: RSS of an idle server (2 tenants)".into(),
            samples: vec![idle_rss.min(idle)],
            unit: "MiB",
            baseline: None,
        },
        Row {
            name: format!(
                "serve: {WAITING} runs waiting on a 5 s model: RSS (posted in {:.1} s)",
                posted.as_secs_f64()
            ),
            samples: vec![peak],
            unit: "MiB",
            baseline: Some(("idle".into(), idle)),
        },
        Row {
            name: "serve: runs held per GiB of RSS while waiting on the model".into(),
            samples: vec![1024.0 / per_run_mib],
            unit: "runs",
            baseline: None,
        },
    ]
}

/// Tenant b's trivial-run latency alone, then beside tenant a running 8
/// spinning runs (its quota's worth).
fn noisy_neighbour(dir: &Path) -> Vec<Row> {
    let dir = dir.join("noisy");
    let spin_policy = format!(
        "version = 1\n[limits]\nrun-timeout = \"600s\"\nfuel = 1000000000000000\ncall-timeout = \"600s\"\n[brain]\nkind = \"scripted\"\nscript = \"spin.json\"\n[capabilities.h]\ncomponent = {:?}\ntools = [\"spin\"]\n",
        artifacts::CAP_HOSTILE
    );
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(
        dir.join("a/spin.json"),
        r#"[{"content":null,"tool_calls":[{"name":"h.spin","arguments":{}}]},{"content":"done"}]"#,
    )
    .unwrap();
    let quotas = "concurrent-runs = 8\nqueued-runs = 64\nruns-per-minute = 1000000000";
    let served = start(
        &dir,
        &dir.join("state"),
        [&spin_policy, TRIVIAL_POLICY],
        [quotas, quotas],
    );
    let mut client = served.client();
    for _ in 0..50 {
        client.run(TOKEN_B);
    }
    let alone: Vec<f64> = (0..300).map(|_| client.run(TOKEN_B)).collect();
    let mut noisy = served.client();
    for _ in 0..8 {
        let (status, body) = noisy.call("POST", "/v1/runs", TOKEN_A, r#"{"task":"spin"}"#);
        assert_eq!(status, 202, "{body}");
    }
    std::thread::sleep(Duration::from_secs(1));
    let beside: Vec<f64> = (0..300).map(|_| client.run(TOKEN_B)).collect();
    vec![
        Row {
            name: "serve: tenant b's request → answer beside tenant a's 8 spinning runs (median)"
                .into(),
            samples: beside.clone(),
            unit: "ms",
            baseline: Some(("alone".into(), median(&alone))),
        },
        Row {
            name: "serve: tenant b's p99 beside them".into(),
            samples: vec![percentile(&beside, 0.99)],
            unit: "ms",
            baseline: Some(("alone".into(), percentile(&alone, 0.99))),
        },
    ]
}
