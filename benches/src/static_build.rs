//! The statically linked build (`x86_64-unknown-linux-musl`, built by
//! `benches/run.sh static`) beside the glibc build, on the same trivial run:
//! file size, wall time and peak RSS. Each figure's baseline is the glibc
//! build's, measured in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{fc_host, series, write_example};
use crate::{Row, median};

/// Where run.sh leaves the static build.
fn static_host() -> PathBuf {
    std::env::var_os("FC_HOST_STATIC").map_or_else(
        || PathBuf::from("target/x86_64-unknown-linux-musl/dist/fc-host"),
        PathBuf::from,
    )
}

fn mib(path: &Path) -> f64 {
    let bytes = std::fs::metadata(path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (build it with benches/run.sh static)",
                path.display()
            )
        })
        .len();
    bytes as f64 / f64::from(1 << 20)
}

pub fn rows() -> Vec<Row> {
    let tmp = crate::scratch("fc-bench");
    let trivial = write_example(&tmp.path().join("trivial"), r#"[{"content":"done"}]"#, "");
    let (glibc, musl) = (fc_host(), static_host());
    let run = |host: &Path, state: &str| {
        let mut c = Command::new(host);
        c.env("FC_STATE_DIR", tmp.path().join(state))
            .args(["--log-level", "off", "run", "--policy"])
            .arg(&trivial);
        c
    };
    let (glibc_wall, glibc_rss) = series(|| run(&glibc, "glibc"));
    let (musl_wall, musl_rss) = series(|| run(&musl, "musl"));
    let one = |v: f64| vec![v];
    vec![
        Row {
            name: "static build (musl, static-pie): file size".into(),
            samples: one(mib(&musl)),
            unit: "MiB",
            baseline: Some(("glibc build".into(), mib(&glibc))),
        },
        Row {
            name: "static build: trivial run (wall)".into(),
            samples: musl_wall,
            unit: "ms",
            baseline: Some(("glibc build".into(), median(&glibc_wall))),
        },
        Row {
            name: "static build: trivial run (peak RSS)".into(),
            samples: musl_rss,
            unit: "MiB",
            baseline: Some(("glibc build".into(), median(&glibc_rss))),
        },
    ]
}
