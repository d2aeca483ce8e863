//! A tool call through an MCP server beside the same call to the component
//! directly: the outer run's gate, JSON-RPC over a pipe to `fc-host mcp`
//! (a stdio server, `unsandboxed`), that server's gate, capability and
//! journal, and back. Per call: a run with `CALLS` calls minus a run with
//! none, divided by `CALLS`.

use std::path::Path;
use std::process::Command;

use crate::process::{fc_host, wall, write_example};
use crate::{Row, median};

const CALLS: usize = 50;
const RUNS: usize = 10;

fn turns(tool: &str, calls: usize) -> String {
    let call = format!(r#"{{"name":"{tool}","arguments":{{"path":"/data/a.txt"}}}}"#);
    let calls = vec![call; calls].join(",");
    format!(r#"[{{"content":null,"tool_calls":[{calls}]}},{{"content":"done"}}]"#)
}

const LIMITS: &str = "[limits]\nmax-tool-calls = 64\n";
const FS: &str = "[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/data\", host = \"data\", mode = \"ro\" }]\n";

/// Wall times (ms) of `RUNS` runs of `policy`, state in `state`.
fn walls(policy: &Path, state: &Path) -> Vec<f64> {
    let run = || {
        let mut c = Command::new(fc_host());
        c.env("FC_STATE_DIR", state)
            .args(["--log-level", "off", "run", "--policy"])
            .arg(policy);
        c
    };
    wall(&mut run());
    (0..RUNS).map(|_| wall(&mut run())).collect()
}

/// Per-call ms: each run of `calls` minus the median run of none.
fn per_call(with: &[f64], without: &[f64]) -> Vec<f64> {
    let none = median(without);
    with.iter().map(|w| (w - none) / CALLS as f64).collect()
}

pub fn rows() -> Vec<Row> {
    let tmp = crate::scratch("fc-bench-mcp");
    let dir = tmp.path();
    let direct = |name: &str, calls: usize| {
        write_example(
            &dir.join(name),
            &turns("fs.read_file", calls),
            &format!("{LIMITS}{FS}"),
        )
    };
    // The server: fc-host mcp on the same fs grant, its own state.
    let inner = write_example(&dir.join("inner"), "[]", FS);
    let via = |name: &str, calls: usize| {
        let server = format!(
            "[capabilities.inner]\ncommand = [{:?}, \"mcp\", \"--policy\", {:?}, \"--state\", {:?}]\nunsandboxed = true\ncwd = \".\"\ntools = [\"fs_read_file\"]\n",
            std::fs::canonicalize(fc_host()).unwrap(),
            inner,
            dir.join("inner-state")
        );
        write_example(
            &dir.join(name),
            &turns("inner.fs_read_file", calls),
            &format!("{LIMITS}{server}"),
        )
    };
    let state = dir.join("state");
    let direct_none = walls(&direct("direct-0", 0), &state);
    let direct_many = walls(&direct("direct-n", CALLS), &state);
    let via_none = walls(&via("via-0", 0), &state);
    let via_many = walls(&via("via-n", CALLS), &state);
    let direct_call = per_call(&direct_many, &direct_none);
    vec![
        Row {
            name: format!(
                "7. fs.read_file through a stdio MCP server (`fc-host mcp`), per call of {CALLS}"
            ),
            samples: per_call(&via_many, &via_none),
            unit: "ms",
            baseline: Some((
                "the call to the component directly".into(),
                median(&direct_call),
            )),
        },
        Row {
            name: "7. a run that starts that MCP server and lists its tools (wall)".into(),
            samples: via_none,
            unit: "ms",
            baseline: Some(("the run without it".into(), median(&direct_none))),
        },
    ]
}
