//! Performance: a trivial run, a gated tool call and this process's peak
//! memory, each beside a bare wasmtime baseline measured in the same
//! process on the same engine. Reported always; checked only against the
//! thresholds the user passes (a machine's speed is not the policy's).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use femtoclaw_policy::{CapabilityGrant, ComponentSource};
use femtoclaw_runtime::prelude::*;
use femtoclaw_runtime::{Builtin, ComponentRef};
use serde_json::json;

use super::probe::{Kind, Probe};
use super::report::{Report, Verdict};

const SECTION: &str = "performance";
/// Trivial runs and bare instantiations measured.
const RUNS: usize = 15;
/// Calls measured, after as many again to warm up.
const CALLS: usize = 400;

/// The user's thresholds; none by default.
#[derive(Debug, Default, Clone, Copy)]
pub struct Thresholds {
    pub run_ms: Option<f64>,
    pub call_overhead_us: Option<f64>,
    pub rss_mib: Option<f64>,
}

pub async fn check(
    runtime: &Runtime,
    plan: &RunPlan,
    scratch: &Path,
    thresholds: Thresholds,
    report: &mut Report,
) -> anyhow::Result<()> {
    let probe = ComponentRef::Builtin(Builtin::Probe);
    let empty = r#"{"bytes":0}"#;

    // A trivial run under the policy: its capabilities start, the brain
    // answers at once, the run is journaled.
    let script = scratch.join("performance-brain.json");
    std::fs::write(&script, r#"[{ "content": "ok" }]"#)?;
    let mut trivial = plan.clone();
    trivial.brain = Some(BrainChoice::Scripted(script));
    trivial.state = Some(scratch.join("performance"));
    let mut runs = Vec::with_capacity(RUNS);
    for i in 0..=RUNS {
        let started = Instant::now();
        if let Err(e) = runtime.run(trivial.clone()).await {
            let why = super::shorten(&format!("a run that answers at once failed: {e}"), 200);
            report.add(SECTION, "a trivial run", "run", Verdict::Fail, why);
            return Ok(());
        }
        // The first run compiles and caches; it is not counted.
        if i > 0 {
            runs.push(started.elapsed());
        }
    }
    let bare = runtime
        .bare_instantiate_and_call(&probe, "output", empty, RUNS)
        .await?;
    let (run, base) = (ms(median(runs)), ms(median(bare)));
    figure(
        report,
        "a trivial run",
        "run",
        judge(run, thresholds.run_ms, "--max-run-ms"),
        format!(
            "{run:.2} ms median of {RUNS}; bare instantiate and call {base:.3} ms ({:.0}×)",
            run / base
        ),
    );

    // One gated, validated, journaled call against a raw call of the same
    // component on the same engine.
    let grant = CapabilityGrant {
        component: ComponentSource::Builtin("compliance-probe".into()),
        tools: vec![],
        mounts: vec![],
        net: vec![],
        env: vec![],
        secrets: BTreeMap::new(),
        max_calls: BTreeMap::new(),
        rates: Default::default(),
        tool_rates: BTreeMap::new(),
        limits: plan.policy.limits.component,
    };
    let calls_dir = scratch.join("performance-calls");
    let mut session = Probe::open(
        runtime,
        &plan.policy,
        "probe",
        &grant,
        Kind::Journaled(&calls_dir),
    )
    .await?;
    let mut gated = Vec::with_capacity(CALLS);
    for i in 0..2 * CALLS {
        let started = Instant::now();
        session
            .call("output", json!({ "bytes": 0 }))
            .await?
            .map_err(anyhow::Error::msg)?;
        if i >= CALLS {
            gated.push(started.elapsed());
        }
    }
    session.close()?;
    let raw = runtime
        .bare_calls(&probe, "output", empty, 2 * CALLS)
        .await?;
    let (gated, raw) = (us(median(gated)), us(median(raw[CALLS..].to_vec())));
    let overhead = gated - raw;
    figure(
        report,
        "tool-call overhead",
        "call",
        judge(
            overhead,
            thresholds.call_overhead_us,
            "--max-call-overhead-us",
        ),
        format!("{overhead:.1} µs: gated {gated:.1} µs, raw {raw:.1} µs (medians of {CALLS})"),
    );

    match peak_rss_mib() {
        Some(rss) => figure(
            report,
            "peak memory",
            "process",
            judge(rss, thresholds.rss_mib, "--max-rss-mib"),
            format!("{rss:.1} MiB peak resident set of this process, every check so far included"),
        ),
        None => report.add(
            SECTION,
            "peak memory",
            "process",
            Verdict::Skip,
            "measured on Linux only",
        ),
    }
    Ok(())
}

/// Within the threshold, if one was passed: the verdict, and what to add
/// to the detail.
fn judge(value: f64, threshold: Option<f64>, flag: &str) -> (Verdict, String) {
    match threshold {
        Some(max) if value > max => (Verdict::Fail, format!("; over `{flag} {max}`")),
        Some(max) => (Verdict::Pass, format!("; within `{flag} {max}`")),
        None => (Verdict::Pass, String::new()),
    }
}

/// Adds a figure's check.
fn figure(
    report: &mut Report,
    name: &str,
    subject: &str,
    judged: (Verdict, String),
    detail: String,
) {
    report.add(SECTION, name, subject, judged.0, detail + &judged.1);
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `VmHWM` of /proc/self/status, in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_fails_only_over_a_threshold_the_user_passed() {
        assert_eq!(
            judge(5.0, None, "--max-run-ms"),
            (Verdict::Pass, String::new())
        );
        assert_eq!(judge(5.0, Some(5.0), "--max-run-ms").0, Verdict::Pass);
        let (verdict, said) = judge(5.1, Some(5.0), "--max-run-ms");
        assert_eq!(
            (verdict, said.as_str()),
            (Verdict::Fail, "; over `--max-run-ms 5`")
        );
        let ms = |n| Duration::from_millis(n);
        assert_eq!(median(vec![ms(3), ms(1), ms(2)]), ms(2));
        assert!(peak_rss_mib().is_none_or(|m| m > 0.0));
    }
}
