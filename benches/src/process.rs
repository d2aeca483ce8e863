//! Whole-process figures: `fc-host` started cold (built-in components
//! precompiled into it, components from files in a warm compile cache, its
//! state directory on tmpfs) beside `/bin/true` and a bare runtime-only
//! wasmtime embedding running a precompiled component.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Row, median, ms};

const RUNS: usize = 30;

/// Wall time (ms) and peak RSS (MiB) of `cmd`, from two runs of it: one
/// timed from here, one whose memory a launcher reports ([`peak_rss`]).
pub fn measure(cmd: &mut Command) -> (f64, f64) {
    (wall(cmd), peak_rss(cmd))
}

/// Wall time (ms) of one run of `cmd`, spawned from here.
pub fn wall(cmd: &mut Command) -> f64 {
    let started = Instant::now();
    let exited = spawn_and_wait(cmd);
    let wall = ms(started.elapsed());
    assert!(exited, "{cmd:?} failed");
    wall
}

/// Peak RSS (MiB) of one run of `cmd`. Not measured from here: Linux starts
/// a process's `ru_maxrss` at the resident set of the address space it had
/// before `exec`, which for a child of this process (spawned by `vfork` or
/// `fork`) is fc-bench's own, many MiB. A small static launcher
/// (`benches/launch/launch.c`, built by `benches/run.sh`, named by
/// `FC_BENCH_LAUNCHER`) runs it and reports; its floor is `/bin/true`'s row.
pub fn peak_rss(cmd: &Command) -> f64 {
    let launcher = std::env::var_os("FC_BENCH_LAUNCHER").expect(
        "FC_BENCH_LAUNCHER names the launcher that measures peak RSS (benches/run.sh builds it)",
    );
    let mut launch = Command::new(launcher);
    launch.arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => launch.env(key, value),
            None => launch.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        launch.current_dir(dir);
    }
    let out = launch.stderr(Stdio::null()).output().expect("launch");
    let kib: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{cmd:?} failed under the launcher"));
    kib / 1024.0
}

/// Runs `cmd` with its output discarded: whether it exited 0.
fn spawn_and_wait(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn")
        .success()
}

pub fn series(mut make: impl FnMut() -> Command) -> (Vec<f64>, Vec<f64>) {
    measure(&mut make()); // warm the page cache
    (0..RUNS).map(|_| measure(&mut make())).unzip()
}

pub fn fc_host() -> PathBuf {
    std::env::var_os("FC_HOST").map_or_else(|| PathBuf::from("target/dist/fc-host"), PathBuf::from)
}

pub fn write_example(dir: &Path, turns: &str, capabilities: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/a.txt"), "hello").unwrap();
    std::fs::write(dir.join("brain.json"), turns).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\n[brain]\nkind = \"scripted\"\nscript = \"brain.json\"\n{capabilities}"
        ),
    )
    .unwrap();
    policy
}

pub fn rows() -> Vec<crate::Row> {
    let tmp = crate::scratch("fc-bench");
    let state = tmp.path().join("state");
    let trivial = write_example(&tmp.path().join("trivial"), r#"[{"content":"done"}]"#, "");
    // One `fs.read_file` call, to the fs capability from `component`.
    let one_call_to = |name: &str, component: &str| {
        write_example(
            &tmp.path().join(name),
            r#"[{"content":null,"tool_calls":[{"name":"fs.read_file","arguments":{"path":"/data/a.txt"}}]},{"content":"done"}]"#,
            &format!(
                "[capabilities.fs]\ncomponent = {component:?}\ntools = [\"read_file\"]\nmounts = [{{ guest = \"/data\", host = \"data\", mode = \"ro\" }}]\n"
            ),
        )
    };
    let one_call = one_call_to("one", "builtin:fs");
    let run = |policy: &Path, state: &Path| {
        let mut c = Command::new(fc_host());
        c.env("FC_STATE_DIR", state)
            .args(["--log-level", "off", "run", "--policy"])
            .arg(policy);
        c
    };
    let mut rows = Vec::new();
    let (true_wall, true_rss) = series(|| Command::new("/bin/true"));
    let bare = std::env::var_os("BARE_HOST").zip(std::env::var_os("BARE_CWASM"));
    let (bare_wall, bare_rss) = match &bare {
        Some((host, cwasm)) => {
            let (w, r) = series(|| {
                let mut c = Command::new(host);
                c.arg("run").arg(cwasm);
                c
            });
            rows.push(Row {
                name: "bare runtime-only embedding, one precompiled component (wall)".into(),
                samples: w.clone(),
                unit: "ms",
                baseline: Some(("/bin/true".into(), median(&true_wall))),
            });
            rows.push(Row {
                name: "bare runtime-only embedding (peak RSS)".into(),
                samples: r.clone(),
                unit: "MiB",
                baseline: Some(("/bin/true, the launcher's floor".into(), median(&true_rss))),
            });
            (Some(median(&w)), Some(median(&r)))
        }
        None => (None, None),
    };
    let base_wall = bare_wall
        .map(|b| ("bare embedding".to_string(), b))
        .or(Some(("/bin/true".into(), median(&true_wall))));
    let base_rss = bare_rss.map(|b| ("bare embedding".to_string(), b));

    // Warm the compile cache once.
    measure(&mut run(&one_call, &state));
    let (w, r) = series(|| run(&trivial, &state));
    rows.push(Row {
        name: "1. cold start, trivial run (wall)".into(),
        samples: w,
        unit: "ms",
        baseline: base_wall.clone(),
    });
    rows.push(Row {
        name: "1. cold start, trivial run (peak RSS)".into(),
        samples: r,
        unit: "MiB",
        baseline: base_rss.clone(),
    });
    let (w, r) = series(|| run(&one_call, &state));
    rows.push(Row {
        name: "2. cold start, one fs.read_file (wall)".into(),
        samples: w,
        unit: "ms",
        baseline: base_wall.clone(),
    });
    rows.push(Row {
        name: "2. cold start, one fs.read_file (peak RSS)".into(),
        samples: r,
        unit: "MiB",
        baseline: base_rss,
    });
    // A component from a file (the fs capability's own .wasm): its first run
    // compiles it into an empty compile cache; the built-ins need no compile.
    let from_file = one_call_to("file", femtoclaw_runtime::artifacts::CAP_FS);
    let cold_cache = tmp.path().join("cold");
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for i in 0..5 {
        let state = cold_cache.join(i.to_string());
        cold.push(measure(&mut run(&from_file, &state)));
        warm.push(measure(&mut run(&from_file, &state)));
    }
    let (w, r): (Vec<f64>, Vec<f64>) = cold.into_iter().unzip();
    rows.push(Row {
        name: "3. first run of a component from a file, cold compile cache (wall)".into(),
        samples: w,
        unit: "ms",
        baseline: base_wall.clone(),
    });
    rows.push(Row {
        name: "3. first run of a component from a file (peak RSS)".into(),
        samples: r,
        unit: "MiB",
        baseline: None,
    });
    let (w, _): (Vec<f64>, Vec<f64>) = warm.into_iter().unzip();
    rows.push(Row {
        name: "3. its second run, from the compile cache (wall)".into(),
        samples: w,
        unit: "ms",
        baseline: base_wall,
    });
    rows
}

/// ms per `fc-host run` of the trivial run with one `fs.read_file` (the
/// serve benchmark's baseline), state on `dir`.
pub fn trivial_read_ms(dir: &Path) -> Vec<f64> {
    let turns = r#"[{"content":null,"tool_calls":[{"name":"fs.read_file","arguments":{"path":"/data/a.txt"}}]},{"content":"done"}]"#;
    let policy = write_example(
        dir,
        turns,
        "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"ro\" }]\n",
    );
    let state = dir.join("state");
    series(|| {
        let mut c = Command::new(fc_host());
        c.args(["run", "--policy"])
            .arg(&policy)
            .arg("--state")
            .arg(&state);
        c
    })
    .0
}
