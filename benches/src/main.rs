//! fc-bench: FemtoClaw's benchmark suite. Prints one markdown table; each
//! figure beside the baseline measured in the same run. Rerun with
//! `benches/run.sh` (see benches/README.md). Never used by tests: timings on
//! shared machines are for reading, not for asserting.

mod fleet;
mod inproc;
mod journal;
mod mcp;
mod process;
mod serve;
mod static_build;

use std::time::Duration;

/// One row of the table.
pub struct Row {
    pub name: String,
    pub samples: Vec<f64>,
    pub unit: &'static str,
    /// Median of the baseline, with its name.
    pub baseline: Option<(String, f64)>,
}

/// A scratch directory on tmpfs where there is one, named `prefix…`.
pub fn scratch(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let only: Option<String> = std::env::args().nth(1);
    let mut rows = Vec::new();
    if only.as_deref().is_none_or(|o| o == "process") {
        rows.extend(process::rows());
    }
    if only.as_deref().is_none_or(|o| o == "inproc") {
        rows.extend(inproc::rows());
    }
    if only.as_deref().is_none_or(|o| o == "journal") {
        rows.extend(journal::rows());
    }
    if only.as_deref().is_none_or(|o| o == "serve") {
        rows.extend(serve::rows());
    }
    if only.as_deref().is_none_or(|o| o == "fleet") {
        rows.extend(fleet::rows());
    }
    if only.as_deref().is_none_or(|o| o == "mcp") {
        rows.extend(mcp::rows());
    }
    // Only on request: it needs a second release build (`benches/run.sh static`).
    if only.as_deref() == Some("static") {
        rows.extend(static_build::rows());
    }
    println!("| benchmark | median | min – max | baseline (median) | ratio |");
    println!("|---|---|---|---|---|");
    for r in rows {
        let min = r.samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = r.samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let m = median(&r.samples);
        let (base, ratio) = match &r.baseline {
            Some((name, b)) => (
                format!("{name}: {} {}", fmt(*b), r.unit),
                format!("{:.2}×", m / b),
            ),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {} | {} {} | {} – {} | {base} | {ratio} |",
            r.name,
            fmt(m),
            r.unit,
            fmt(min),
            fmt(max)
        );
    }
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
