//! A scratch directory with a policy, a brain script and data, and a way to
//! run `fc-host` on it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub use femtoclaw_runtime::artifacts;

/// The exit codes of `fc-host` (see README.md).
pub mod exit {
    pub const OK: i32 = 0;
    pub const USAGE: i32 = 2;
    pub const LIMIT: i32 = 3;
    pub const TRAP: i32 = 4;
    pub const COMPONENT: i32 = 5;
    pub const DIVERGENCE: i32 = 6;
    pub const JOURNAL: i32 = 7;
    pub const BUNDLE: i32 = 9;
    pub const SIGNATURE: i32 = 10;
    pub const DOWNGRADE: i32 = 11;
    pub const REFUSED: i32 = 14;
    pub const REGISTRY: i32 = 15;
    pub const COMPLIANCE: i32 = 16;
}

/// `fc-host` with a state directory of its own (tests run in parallel, and
/// a journal is held by one process at a time).
pub fn fc_host() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fc-host"));
    cmd.env_remove("RUST_LOG").env("FC_STATE_DIR", fresh_dir());
    cmd
}

/// Runs `fc-host` with `args` on the given state directory.
pub fn fc(state: &Path, args: &[&str]) -> Output {
    run(fc_host().env("FC_STATE_DIR", state).args(args))
}

/// The id of the newest run journaled in `state`.
pub fn first_run_id(state: &Path) -> String {
    let out = fc(state, &["runs", "--json"]);
    let runs: Value = serde_json::from_str(&out.stdout).unwrap();
    runs[0]["id"].as_str().unwrap().to_owned()
}

/// A new empty directory that outlives the test (for state directories).
pub fn fresh_dir() -> PathBuf {
    tempfile::tempdir().unwrap().keep()
}

/// What a finished `fc-host` printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Every stderr line parsed as JSON (the run used `--log-format json`).
    pub fn events(&self) -> Vec<Value> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// The run id `fc-host run` announced on stderr (a `fc-host: run ID`
    /// line, or with `--log-format json` a JSON line with `run_id`).
    pub fn run_id(&self) -> String {
        self.stderr
            .lines()
            .find_map(|l| match l.strip_prefix("fc-host: run ") {
                Some(id) => Some(id.to_owned()),
                None => serde_json::from_str::<Value>(l)
                    .ok()
                    .filter(|e| e["target"] == "fc-host")
                    .and_then(|e| e["run_id"].as_str().map(str::to_owned)),
            })
            .unwrap_or_else(|| panic!("no run id on stderr: {self:#?}"))
    }

    /// Log events whose `message` is `message`.
    pub fn events_named(&self, message: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["message"] == message)
            .collect()
    }

    /// The answer of the `agent-echo` test agent: one entry per tool call.
    pub fn transcript(&self) -> Vec<Value> {
        assert_eq!(self.code, exit::OK, "fc-host failed: {self:#?}");
        match serde_json::from_str(self.stdout.trim()) {
            Ok(Value::Array(entries)) => entries,
            _ => panic!("stdout is not a transcript: {self:#?}"),
        }
    }
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("fc-host runs");
    Output {
        code: out.status.code().expect("fc-host exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary directory holding a policy and what it refers to.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// Writes `brain.json` with these turns and `policy.toml` with this text.
    pub fn setup(&self, policy: &str, turns: Value) -> PathBuf {
        self.write("brain.json", &turns.to_string());
        self.write("policy.toml", policy)
    }

    /// `fc-host --log-format json run AGENT --policy policy.toml`.
    pub fn run_with(&self, agent: Option<&str>) -> Output {
        let mut cmd = fc_host();
        cmd.args(["--log-format", "json", "run"]);
        if let Some(agent) = agent {
            cmd.arg(agent);
        }
        cmd.arg("--policy")
            .arg(self.path("policy.toml"))
            .args(["--task", "test"]);
        run(&mut cmd)
    }

    /// `fc-host run AGENT --policy policy.toml [--task TASK]` on `state`.
    pub fn run_agent(&self, state: &Path, agent: &str, task: Option<&str>) -> Output {
        let policy = self.path("policy.toml");
        let mut args = vec!["run", agent, "--policy", policy.to_str().unwrap()];
        if let Some(task) = task {
            args.extend(["--task", task]);
        }
        fc(state, &args)
    }

    /// Runs the `agent-echo` test agent.
    pub fn run_echo(&self) -> Output {
        self.run_with(Some(artifacts::AGENT_ECHO))
    }
}

/// One scripted turn calling these tools with these arguments (a string is
/// passed as raw JSON text), followed by nothing else.
pub fn calls(calls: &[(&str, Value)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(n, a)| serde_json::json!({ "name": n, "arguments": a }))
        .collect();
    serde_json::json!([{ "content": null, "tool_calls": calls }, { "content": "done" }])
}

/// A policy header with a scripted brain and these extra lines.
pub fn policy(body: &str) -> String {
    policy_with("", body)
}

/// A policy with these top-level keys (`approve = [...]`: before any table),
/// a scripted brain and these extra lines.
pub fn policy_with(top: &str, body: &str) -> String {
    format!("version = 1\n{top}[brain]\nkind = \"scripted\"\nscript = \"brain.json\"\n{body}\n")
}

pub fn assert_no_canary(out: &Output, canary: &str) {
    assert!(
        !out.stdout.contains(canary),
        "canary leaked to stdout: {out:#?}"
    );
    assert!(
        !out.stderr.contains(canary),
        "canary leaked to stderr: {out:#?}"
    );
}

/// The outcome of each entry of a transcript: `ok` or the error kind.
pub fn kinds(t: &[Value]) -> Vec<&str> {
    t.iter()
        .map(|e| e["error"].as_str().unwrap_or("ok"))
        .collect()
}

/// Cuts a journaled run back to its first `keep` events, as a process killed
/// right after event `keep - 1` was committed leaves it: the later events
/// gone, the run `running`, its head at the last kept event.
pub fn cut_run(state: &Path, id: &str, keep: u64) {
    use redb::{ReadableTable, TableDefinition};
    let events: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("events");
    let runs: TableDefinition<&[u8], &[u8]> = TableDefinition::new("runs");
    let heads: TableDefinition<&[u8], &[u8]> = TableDefinition::new("heads");
    let db = redb::Database::open(state.join("journal.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(events).unwrap();
        let mut bytes = 0;
        let mut last = Value::Null;
        for seq in 0..keep {
            let text = t
                .get((id.as_bytes(), seq))
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            bytes += text.len();
            last = serde_json::from_slice(&text).unwrap();
        }
        for seq in keep..10_000 {
            t.remove((id.as_bytes(), seq)).unwrap();
        }
        let head = serde_json::json!({ "events": keep, "hash": last["hash"], "bytes": bytes });
        txn.open_table(heads)
            .unwrap()
            .insert(id.as_bytes(), head.to_string().as_bytes())
            .unwrap();
        let mut r = txn.open_table(runs).unwrap();
        let mut info: Value =
            serde_json::from_slice(r.get(id.as_bytes()).unwrap().unwrap().value()).unwrap();
        info["status"] = "running".into();
        info["outcome"] = Value::Null;
        r.insert(id.as_bytes(), info.to_string().as_bytes())
            .unwrap();
    }
    txn.commit().unwrap();
}

/// Runs a script of tests/ with the toolchains' Python (where the official
/// SDKs are installed), `input` on its stdin; what it printed. A missing
/// toolchain fails the test: it is never skipped.
pub fn python_script(script: &str, input: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("guests/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run guests/toolchains.sh",
        python.display()
    );
    let mut child = Command::new(python)
        .arg(root.join("tests").join(script))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// An OpenMetrics exposition as Prometheus's official parser reads it
/// (tests/openmetrics.py, which refuses what the format forbids): the
/// samples, and the sum of those named `name` that carry `labels`.
pub struct Scrape(pub Vec<serde_json::Value>);

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let out = python_script("openmetrics.py", text.as_bytes());
        assert!(
            out.status.success(),
            "not OpenMetrics: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        Scrape(
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        )
    }

    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][k] == *v))
            .map(|s| s["value"].as_f64().unwrap())
            .sum()
    }
}
