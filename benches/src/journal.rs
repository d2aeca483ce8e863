//! Row 6: the journal on each backend. Appends and durable commits of the
//! redb file (on tmpfs and on the work disk), and beside the redb file on
//! disk, the same on PostgreSQL (the server `.ci/postgres` starts on this
//! machine, over loopback, fsync on): commits of one event and of 100,
//! two handles committing at once (two nodes), and what a node taking over
//! a dead node's run pays to claim it and read it back.

use std::time::{Duration, Instant};

use femtoclaw_journal::{Journal, RunInfo, RunStatus};
use serde_json::{Value, json};

use crate::{Row, median};

/// The database `.ci/postgres` makes; `FC_BENCH_POSTGRES` names another.
const POSTGRES: &str = "postgresql://femtoclaw:femtoclaw@127.0.0.1:5432/femtoclaw_test";
const ROUNDS: usize = 5;

fn info(id: &str) -> RunInfo {
    RunInfo {
        id: id.into(),
        started: 0,
        status: RunStatus::Running,
        agent: "a".into(),
        agent_hash: "h".into(),
        policy_hash: "p".into(),
        plan: json!({}),
        outcome: None,
    }
}

fn payload() -> Value {
    json!({ "result": { "Ok": "{\"content\":\"a tool result of modest size, as most are\"}" } })
}

/// Per second: `n` operations in `took`.
fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// A store to measure: how to open a new handle on it.
struct Backend {
    label: String,
    open: Box<dyn Fn() -> Journal + Sync>,
}

pub fn rows() -> Vec<Row> {
    let tmpfs = crate::scratch("fc-bench-journal");
    let disk = tempfile::tempdir_in(".").unwrap();
    let url = std::env::var("FC_BENCH_POSTGRES").unwrap_or_else(|_| POSTGRES.to_owned());
    let schema = format!("fc_bench_{}", std::process::id());
    if let Err(e) = Journal::open_postgres(&url, &schema) {
        panic!("the journal benchmark needs PostgreSQL: {e}; start it with `.ci/postgres`");
    }
    let (tmpfs_dir, disk_dir) = (tmpfs.path().to_owned(), disk.path().to_owned());
    let (pg_url, pg_schema) = (url.clone(), schema.clone());
    let backends = [
        Backend {
            label: "redb, tmpfs".into(),
            open: Box::new(move || Journal::open(&tmpfs_dir).unwrap()),
        },
        Backend {
            label: "redb, disk".into(),
            open: Box::new(move || Journal::open(&disk_dir).unwrap()),
        },
        Backend {
            label: "PostgreSQL 15, loopback".into(),
            open: Box::new(move || Journal::open_postgres(&pg_url, &pg_schema).unwrap()),
        },
    ];
    let measured: Vec<Vec<Row>> = backends.iter().map(measure).collect();
    drop_schema(&url, &schema);
    // PostgreSQL's rows beside the redb file on the same disk.
    let mut rows = Vec::new();
    for (i, set) in measured.iter().enumerate() {
        for (j, row) in set.iter().enumerate() {
            let baseline = (i == 2).then(|| {
                let base = &measured[1][j];
                ("redb, disk".to_owned(), median(&base.samples))
            });
            rows.push(Row {
                name: row.name.clone(),
                samples: row.samples.clone(),
                unit: row.unit,
                baseline,
            });
        }
    }
    rows
}

/// Nothing of the benchmark is kept in the database.
fn drop_schema(url: &str, schema: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

fn measure(backend: &Backend) -> Vec<Row> {
    let label = &backend.label;
    let mut journal = (backend.open)();
    journal.create_run(&info("bench")).unwrap();
    let (mut appends, mut single, mut batched) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..2000 {
            journal
                .append("bench", "tool-result", payload(), None)
                .unwrap();
        }
        appends.push(rate(2000, started.elapsed()));
        journal.sync().unwrap();
        single.push(rate(50, commits(&mut journal, "bench", 50, 1)));
        batched.push(rate(2000, commits(&mut journal, "bench", 20, 100)));
    }
    let two_nodes = two_handles(backend);
    let takeover = take_over(backend);
    vec![
        Row {
            name: format!("6. journal ({label}): events appended per second (buffered)"),
            samples: appends,
            unit: "events/s",
            baseline: None,
        },
        Row {
            name: format!("6. journal ({label}): durable commits per second, one event each"),
            samples: single,
            unit: "commits/s",
            baseline: None,
        },
        Row {
            name: format!("6. journal ({label}): events committed per second, 100 per commit"),
            samples: batched,
            unit: "events/s",
            baseline: None,
        },
        Row {
            name: format!("6. journal ({label}): durable commits per second, two handles at once"),
            samples: two_nodes,
            unit: "commits/s",
            baseline: None,
        },
        Row {
            name: format!(
                "6. journal ({label}): take over a run of 100 events (claim, read it back)"
            ),
            samples: takeover,
            unit: "ms",
            baseline: None,
        },
    ]
}

/// How long `n` durable commits of `per` events each to `run` take.
fn commits(journal: &mut Journal, run: &str, n: usize, per: usize) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        for _ in 0..per {
            journal.append(run, "tool-result", payload(), None).unwrap();
        }
        journal.sync_run(run).unwrap();
    }
    started.elapsed()
}

/// Two handles (two nodes, or two tenants' runs) committing one event at a
/// time, each to its own run: commits per second of both together.
fn two_handles(backend: &Backend) -> Vec<f64> {
    let mut samples = Vec::new();
    for round in 0..ROUNDS {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for node in 0..2 {
                scope.spawn(move || {
                    let mut journal = (backend.open)();
                    let run = format!("node{node}-{round}");
                    journal.create_run(&info(&run)).unwrap();
                    commits(&mut journal, &run, 50, 1);
                });
            }
        });
        samples.push(rate(2 * 51, started.elapsed()));
    }
    samples
}

/// A run of 100 events whose node stopped renewing: another handle claims
/// it and reads it back verified, as a resume does first.
fn take_over(backend: &Backend) -> Vec<f64> {
    let mut samples = Vec::new();
    for round in 0..ROUNDS {
        let run = format!("dead-{round}");
        let mut dead = (backend.open)();
        dead.create_run(&info(&run)).unwrap();
        dead.claim(&run, "node-a", Duration::ZERO).unwrap();
        commits(&mut dead, &run, 1, 100);
        let mut survivor = (backend.open)();
        let started = Instant::now();
        survivor
            .claim(&run, "node-b", Duration::from_secs(30))
            .unwrap();
        let (_, events) = survivor.load(&run).unwrap();
        samples.push(crate::ms(started.elapsed()));
        assert_eq!(events.len(), 100);
    }
    samples
}
