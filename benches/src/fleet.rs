//! Serve nodes on one PostgreSQL database (docs/fleet.md): a trivial run's
//! request → answer and runs per second on one node and on two, beside a
//! node on its own redb journal (the default) in the same run; and how long
//! a surviving node takes to claim and finish a killed node's runs.
//!
//! The nodes are an fc-host built with `--features postgres`
//! (`FC_BENCH_FLEET_HOST`, which `benches/run.sh` builds).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use femtoclaw_journal::Journal;

use crate::serve::{Client, Node, Served, TOKEN_A, TRIVIAL_POLICY, slow_model, start_node};
use crate::{Row, median, ms};

/// The database `.ci/postgres` makes; `FC_BENCH_POSTGRES` names another.
const POSTGRES: &str = "postgresql://femtoclaw:femtoclaw@127.0.0.1:5432/femtoclaw_test";
/// The nodes' lease: a killed node's runs are taken over this long after
/// its last renewal.
const LEASE: &str = "2s";
const ROOMY: &str = "concurrent-runs = 64\nqueued-runs = 4096\nruns-per-minute = 1000000000\njournal-bytes = \"64GiB\"";

fn host() -> PathBuf {
    std::env::var_os("FC_BENCH_FLEET_HOST").map_or_else(
        || panic!("the fleet benchmark needs an fc-host built with --features postgres in FC_BENCH_FLEET_HOST: run `benches/run.sh fleet`"),
        PathBuf::from,
    )
}

/// Drops the bench tenants' schemas: every measurement starts empty.
fn reset(url: &str) {
    let mut admin = postgres::Client::connect(url, postgres::NoTls).unwrap_or_else(|e| {
        panic!("the fleet benchmark needs PostgreSQL: {e}; start it with `.ci/postgres`")
    });
    admin
        .batch_execute("DROP SCHEMA IF EXISTS t_a CASCADE; DROP SCHEMA IF EXISTS t_b CASCADE")
        .unwrap();
}

fn node(url: &str, dir: &Path, state: &str, policy: &str) -> Served {
    let node = Node {
        host: host(),
        tables: format!(
            "[journal]\npostgres-url-env = \"FC_BENCH_JOURNAL_URL\"\nlease = \"{LEASE}\"\n"
        ),
        env: vec![("FC_BENCH_JOURNAL_URL".into(), url.into())],
    };
    start_node(
        dir,
        &dir.join(state),
        [policy, policy],
        [ROOMY, ROOMY],
        &node,
    )
}

fn redb_node(dir: &Path, state: &str) -> Served {
    let node = Node {
        host: host(),
        tables: String::new(),
        env: Vec::new(),
    };
    start_node(
        dir,
        &dir.join(state),
        [TRIVIAL_POLICY, TRIVIAL_POLICY],
        [ROOMY, ROOMY],
        &node,
    )
}

/// Sequential request → answer of a trivial run on one keep-alive
/// connection, after a warm-up.
fn latency(served: &Served) -> Vec<f64> {
    let mut client = served.client();
    for _ in 0..20 {
        client.run(TOKEN_A);
    }
    (0..200).map(|_| client.run(TOKEN_A)).collect()
}

/// Runs per second with 32 clients spread over `nodes`.
fn throughput(nodes: &[&Served]) -> f64 {
    let (clients, per_client) = (32, 25);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let address = nodes[i % nodes.len()].address.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(&address);
                for _ in 0..per_client {
                    c.run(TOKEN_A);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    (clients * per_client) as f64 / started.elapsed().as_secs_f64()
}

pub fn rows() -> Vec<Row> {
    let url = std::env::var("FC_BENCH_POSTGRES").unwrap_or_else(|_| POSTGRES.to_owned());
    let tmp = crate::scratch("fc-bench-fleet");
    // The redb node's state on the same disk as PostgreSQL's data.
    let disk = tempfile::tempdir_in(".").unwrap();
    let mut rows = Vec::new();

    let local = redb_node(tmp.path(), "local");
    let local_latency = latency(&local);
    drop(local);
    let on_disk = redb_node(disk.path(), "local");
    let disk_latency = latency(&on_disk);
    let disk_rate = throughput(&[&on_disk]);
    drop(on_disk);

    reset(&url);
    let a = node(&url, tmp.path(), "node-a", TRIVIAL_POLICY);
    let pg_latency = latency(&a);
    rows.push(Row {
        name: "fleet: request → answer, trivial run, one node on PostgreSQL".into(),
        samples: pg_latency.clone(),
        unit: "ms",
        baseline: Some(("one node, redb on disk".into(), median(&disk_latency))),
    });
    rows.push(Row {
        name: "fleet: the same, against redb on tmpfs".into(),
        samples: pg_latency,
        unit: "ms",
        baseline: Some(("one node, redb on tmpfs".into(), median(&local_latency))),
    });
    let one = throughput(&[&a]);
    rows.push(Row {
        name: "fleet: runs per second, 32 clients, one node on PostgreSQL".into(),
        samples: vec![one],
        unit: "runs/s",
        baseline: Some(("one node, redb on disk".into(), disk_rate)),
    });
    let b = node(&url, tmp.path(), "node-b", TRIVIAL_POLICY);
    let two = throughput(&[&a, &b]);
    rows.push(Row {
        name: "fleet: runs per second, 32 clients over two nodes on PostgreSQL (one machine)"
            .into(),
        samples: vec![two],
        unit: "runs/s",
        baseline: Some(("one node on PostgreSQL".into(), one)),
    });
    drop((a, b));

    rows.extend(takeover(&url, tmp.path()));
    reset(&url);
    rows
}

/// Node a holds 50 runs waiting on a model that answers after 1 s; it is
/// killed with -9; node b claims them once their leases lapse and ends
/// them. Five rounds.
fn takeover(url: &str, dir: &Path) -> Vec<Row> {
    const RUNS: usize = 50;
    let port = slow_model(Duration::from_secs(1));
    let policy = format!(
        "version = 1\n[limits]\nrun-timeout = \"120s\"\n[brain]\nkind = \"openai\"\nbase-url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\n"
    );
    let lease = Duration::from_secs(2);
    let (mut claimed, mut answered) = (Vec::new(), Vec::new());
    for round in 0..5 {
        reset(url);
        let mut a = node(url, dir, &format!("takeover-a{round}"), &policy);
        let b = node(url, dir, &format!("takeover-b{round}"), &policy);
        let mut client = a.client();
        let ids: Vec<String> = (0..RUNS)
            .map(|_| {
                let (status, body) = client.call("POST", "/v1/runs", TOKEN_A, r#"{"task":"t"}"#);
                assert_eq!(status, 202, "{body}");
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                v["id"].as_str().unwrap().to_owned()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let killed = Instant::now();
        a.child.kill().unwrap();
        a.child.wait().unwrap();
        // Claimed: every lease of a's runs is b's.
        let journal = Journal::open_postgres(url, "t_a").unwrap();
        let b_name = format!("{}", dir.join(format!("takeover-b{round}")).display());
        for _ in 0..1500 {
            let leases = journal.all_leases().unwrap();
            let by_b = leases
                .iter()
                .filter(|l| ids.contains(&l.run) && l.owner.ends_with(&b_name))
                .count();
            let ended = journal
                .runs()
                .unwrap()
                .runs
                .iter()
                .filter(|r| r.status != femtoclaw_journal::RunStatus::Running)
                .count();
            if by_b + ended >= RUNS {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        claimed.push(ms(killed.elapsed()));
        let mut client = b.client();
        for id in &ids {
            for _ in 0..6000 {
                let (_, body) = client.call("GET", &format!("/v1/runs/{id}"), TOKEN_A, "");
                if body.contains("\"status\":\"ok\"") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        answered.push(ms(killed.elapsed()));
    }
    let lease_ms = ms(lease);
    vec![
        Row {
            name: format!("fleet: kill -9 of a node with {RUNS} runs in flight → all claimed by the other (lease {LEASE})"),
            samples: claimed.clone(),
            unit: "ms",
            baseline: Some(("the lease".into(), lease_ms)),
        },
        Row {
            name: "fleet: the same, beyond the lease (claim and resume, every third of the lease a tick)".into(),
            samples: claimed.iter().map(|c| c - lease_ms).collect(),
            unit: "ms",
            baseline: None,
        },
        Row {
            name: "fleet: kill -9 → all answered by the other (each resumed run calls the 1 s model again)".into(),
            samples: answered,
            unit: "ms",
            baseline: Some(("the lease".into(), lease_ms)),
        },
    ]
}
