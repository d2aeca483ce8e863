//! Several `fc-host serve` nodes on one PostgreSQL database: runs spread
//! over them, any node answers for any run, a node killed with -9 has its
//! runs taken over by another (every run ends once, no write repeated),
//! and a node whose run another node claimed stops executing it.

use femtoclaw_journal::{Journal, RunStatus};

use super::postgres::database;
use super::*;

/// Two nodes' configuration: the tenants' journals in `url`, leases of
/// `lease` (renewed every third of it).
fn fleet_setup(url: &str, lease: &str) -> Setup {
    let mut setup = Setup::new();
    setup.tables =
        format!("[journal]\npostgres-url-env = \"FC_TEST_JOURNAL_URL\"\nlease = \"{lease}\"\n");
    setup
        .env
        .push(("FC_TEST_JOURNAL_URL".into(), url.to_owned()));
    setup.quotas[0] = "concurrent-runs = 50\nqueued-runs = 64\nruns-per-minute = 1000".into();
    setup
}

/// [`fleet_setup`] with 2 s leases and room for a run spinning in a tool
/// call for 30 s.
fn spinning_fleet_setup(url: &str) -> Setup {
    let mut setup = fleet_setup(url, "2s");
    setup.run_limits = "call-timeout = \"30s\"\nfuel = 1000000000000".into();
    setup
}

#[test]
fn two_nodes_share_the_runs_and_one_killed_with_9_is_taken_over_by_the_other() {
    const RUNS: usize = 50;
    const STEPS: usize = 5;
    let (_serial, url) = database();
    let mut setup = fleet_setup(&url, "3s");
    // Two slots per node: most of a's runs are still queued or running
    // when a dies, whatever the machine's speed; b takes over both kinds.
    setup.quotas[0] = "concurrent-runs = 2\nqueued-runs = 64\nruns-per-minute = 1000".into();
    let a = setup.start();
    let b = a.another_node("state-b");
    // Runs posted to both nodes, each appending STEPS lines to its file.
    let mut ids = Vec::new();
    for i in 0..RUNS {
        let node = if i % 2 == 0 { &a } else { &b };
        let body = json!({ "task": format!("run {i}"), "brain": { "script": appends(&format!("{i}.log"), STEPS) } });
        let (status, accepted, _) = node.post("/v1/runs", Some(ACME), &body);
        assert_eq!(status, 202, "{accepted:#}");
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    // Any node answers for any run: a's runs through b.
    let (status, run) = b.get(&format!("/v1/runs/{}", ids[0]), Some(ACME));
    assert_eq!(status, 200, "{run:#}");
    let ended = |node: &Served, of: &[&String]| {
        let (_, list) = node.get("/v1/runs", Some(ACME));
        let list = list["runs"].as_array().unwrap().clone();
        list.iter()
            .filter(|r| r["status"] == "ok" && of.iter().any(|id| r["id"] == id.as_str()))
            .count()
    };
    let on_a: Vec<&String> = ids.iter().step_by(2).collect();
    for _ in 0..400 {
        if ended(&b, &on_a) >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let unfinished = on_a.len() - ended(&b, &on_a);
    assert!(
        unfinished > 0,
        "the kill came while a's runs were in flight"
    );
    // b takes a's runs over once their leases lapse, and ends every run.
    for (i, id) in ids.iter().enumerate() {
        let run = b.wait_for_end(ACME, id);
        assert_eq!(run["status"], "ok", "run {i}: {run:#}\n{}", b.log());
        assert_eq!(run["answer"], format!("{i}.log done"));
        let log =
            std::fs::read_to_string(a.setup.scratch.path(&format!("acme/out/{i}.log"))).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        let expected: Vec<String> = (0..STEPS).map(|s| format!("step {s}")).collect();
        assert_eq!(lines.len(), STEPS, "run {i} wrote each step once:\n{log}");
        for step in &expected {
            assert_eq!(
                lines.iter().filter(|l| l.ends_with(step.as_str())).count(),
                1,
                "run {i}: `{step}` written once:\n{log}"
            );
        }
    }
    let taken = b.log().matches("taking over a run").count();
    assert!(
        (1..=unfinished).contains(&taken),
        "b took over {taken} runs; {unfinished} of a's were unfinished\n{}",
        b.log()
    );
    // The journal agrees: every run once, each chain whole, every lease
    // given back.
    let journal = Journal::open_postgres(&url, "t_acme").unwrap();
    let listing = journal.runs().unwrap();
    assert!(listing.damage.is_empty(), "{:?}", listing.damage);
    assert_eq!(listing.runs.len(), RUNS);
    assert!(listing.runs.iter().all(|r| r.status == RunStatus::Ok));
    assert_eq!(journal.all_leases().unwrap(), []);
    // The queue of accepted runs is empty: each started once.
    let (_, list) = b.get("/v1/runs", Some(ACME));
    assert_eq!(list["runs"].as_array().unwrap().len(), RUNS, "{list:#}");
}

#[test]
fn a_run_another_node_claimed_stops_on_this_one_and_writes_nothing_more() {
    let (_serial, url) = database();
    let a = spinning_fleet_setup(&url).start();
    let id = a.start_spinning(ACME, "after the spin");
    // Another node claims the run (as after this one stalled past its
    // lease): a's next renewal finds a newer token.
    let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let taken = admin
        .execute(
            "UPDATE t_acme.leases SET token = token + 1, owner = 'another-node', expires = clock_timestamp() + interval '1 hour' WHERE run = $1",
            &[&id],
        )
        .unwrap();
    assert_eq!(taken, 1, "a holds the run's lease");
    let mut view = Value::Null;
    for _ in 0..200 {
        view = a.get(&format!("/v1/runs/{id}"), Some(ACME)).1;
        if a.log()
            .contains("the run goes on on the node that took it over")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its next commit (or renewal, whichever comes first) found the newer
    // token: the run stopped here.
    assert!(
        a.log()
            .contains("the run goes on on the node that took it over"),
        "{}",
        a.log()
    );
    // a reports where it runs, and neither resumes nor writes it.
    assert_eq!(view["status"], "running", "{view:#}");
    assert_eq!(view["node"], "another-node", "{view:#}");
    // So does its listing (which reads the leases once for all its runs).
    let (_, list) = a.get("/v1/runs", Some(ACME));
    let listed = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id);
    assert_eq!(listed.unwrap()["node"], "another-node", "{list:#}");
    let events = Journal::open_postgres(&url, "t_acme")
        .unwrap()
        .events(&id)
        .unwrap()
        .len();
    let resumed = a.post(&format!("/v1/runs/{id}/resume"), Some(ACME), &json!({}));
    let problem = a.problem(resumed, 409, "running-elsewhere");
    assert_eq!(problem["node"], "another-node", "{problem:#}");
    std::thread::sleep(Duration::from_millis(500));
    let after = Journal::open_postgres(&url, "t_acme")
        .unwrap()
        .events(&id)
        .unwrap()
        .len();
    assert_eq!(after, events, "a wrote nothing more of the run");
}

#[test]
fn a_run_on_one_node_is_followed_and_cancelled_through_another() {
    let (_serial, url) = database();
    let a = spinning_fleet_setup(&url).start();
    let b = a.another_node("state-b");
    let id = a.start_spinning(ACME, "after the spin");
    // b says where it runs, and sends approvals there.
    let (status, view) = b.get(&format!("/v1/runs/{id}"), Some(ACME));
    assert_eq!(status, 200, "{view:#}");
    b.conforms("Run", &view);
    assert_eq!(view["status"], "running", "{view:#}");
    let node = view["node"].as_str().unwrap().to_owned();
    assert!(node.ends_with(&a.state.display().to_string()), "{node}");
    let approvals = b.request("GET", &format!("/v1/runs/{id}/approvals"), Some(ACME), None);
    let problem = b.problem(approvals, 409, "running-elsewhere");
    assert_eq!(problem["node"], json!(node));
    // b's event stream follows the run from the journal while a executes
    // it, and a cancel asked of b reaches a.
    let stream = std::thread::scope(|scope| {
        let follower = scope.spawn(|| sse(&b, &id, None));
        std::thread::sleep(Duration::from_millis(300));
        let (status, cancelling, _) =
            b.post(&format!("/v1/runs/{id}/cancel"), Some(ACME), &json!({}));
        assert_eq!(status, 202, "{cancelling:#}");
        b.conforms("Change", &cancelling);
        assert_eq!(cancelling["node"], json!(node));
        follower.join().unwrap()
    });
    let kinds: Vec<&str> = stream.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run-start"), "{kinds:?}");
    assert!(kinds.contains(&"run-end"), "{kinds:?}");
    let (_, last, outcome) = stream.last().unwrap();
    assert_eq!(last, "outcome");
    assert_eq!(outcome["status"], "cancelled", "{outcome:#}");
    let (_, ended) = a.get(&format!("/v1/runs/{id}"), Some(ACME));
    assert_eq!(ended["status"], "cancelled", "{ended:#}");
}
