//! Counters and histograms of what the runtime decided and spent, rendered
//! in the Prometheus text format (`fc-host run --metrics FILE`). One
//! registry per [`Runtime`](crate::Runtime), shared by its runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The registry.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// Help text of every metric, in output order.
const HELP: &[(&str, &str, &str)] = &[
    ("fc_runs_total", "counter", "Runs by final status."),
    (
        "fc_tool_calls_total",
        "counter",
        "Tool calls by tool and decision (allow, deny).",
    ),
    (
        "fc_denials_total",
        "counter",
        "Refused tool calls and requests by the policy rule that refused them.",
    ),
    (
        "fc_tool_call_seconds",
        "histogram",
        "Duration of allowed tool calls, by tool.",
    ),
    (
        "fc_inference_seconds",
        "histogram",
        "Duration of brain turns.",
    ),
    (
        "fc_tokens_total",
        "counter",
        "Model tokens by direction (input, output).",
    ),
    (
        "fc_fuel_consumed_total",
        "counter",
        "Fuel consumed by capability calls, by component.",
    ),
    ("fc_traps_total", "counter", "Guest traps by component."),
    (
        "fc_limit_stops_total",
        "counter",
        "Calls or runs stopped by a limit, by component.",
    ),
];

impl Metrics {
    /// Adds `by` to a counter.
    pub(crate) fn add(&self, name: &'static str, labels: Labels, by: u64) {
        let mut inner = self
            .inner
            .lock()
            .expect("invariant: no panic while holding the lock");
        *inner.counters.entry((name, labels)).or_default() += by;
    }

    /// Records one observation in a histogram.
    pub(crate) fn observe(&self, name: &'static str, labels: Labels, seconds: f64) {
        let mut inner = self
            .inner
            .lock()
            .expect("invariant: no panic while holding the lock");
        let h = inner.histograms.entry((name, labels)).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        Metrics::render_each(&[(None, self)])
    }

    /// Several registries as one exposition (each family once), each
    /// registry's series labelled `tenant="ID"` when it has an id: a
    /// server's runtimes, one per tenant.
    pub fn render_each(registries: &[(Option<&str>, &Metrics)]) -> String {
        let locked: Vec<(Option<&str>, std::sync::MutexGuard<'_, Inner>)> = registries
            .iter()
            .map(|(tenant, m)| {
                let inner = m
                    .inner
                    .lock()
                    .expect("invariant: no panic while holding the lock");
                (*tenant, inner)
            })
            .collect();
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (tenant, inner) in &locked {
                let with_tenant = |labels: &Labels| -> Labels {
                    let mut all: Labels = tenant
                        .map(|t| vec![("tenant", t.to_owned())])
                        .unwrap_or_default();
                    all.extend(labels.iter().cloned());
                    all
                };
                for ((n, labels), value) in &inner.counters {
                    if n == name {
                        let labels = with_tenant(labels);
                        let _ = writeln!(out, "{name}{} {value}", render_labels(&labels, None));
                    }
                }
                for ((n, labels), h) in &inner.histograms {
                    if n != name {
                        continue;
                    }
                    let labels = with_tenant(labels);
                    for (i, bound) in BUCKETS.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            render_labels(&labels, Some(&bound.to_string())),
                            h.counts[i]
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        render_labels(&labels, Some("+Inf")),
                        h.count
                    );
                    let _ = writeln!(out, "{name}_sum{} {}", render_labels(&labels, None), h.sum);
                    let _ = writeln!(
                        out,
                        "{name}_count{} {}",
                        render_labels(&labels, None),
                        h.count
                    );
                }
            }
        }
        out
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Label values escape backslash, quote and newline (the format's rules).
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.add(
            "fc_tool_calls_total",
            vec![
                ("tool", "fs.read_file".into()),
                ("decision", "allow".into()),
            ],
            2,
        );
        m.add(
            "fc_denials_total",
            vec![("rule", "a \"quoted\"\nrule".into())],
            1,
        );
        m.observe("fc_inference_seconds", vec![], 0.002);
        let text = m.render();
        assert!(
            text.contains("fc_tool_calls_total{tool=\"fs.read_file\",decision=\"allow\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("fc_denials_total{rule=\"a \\\"quoted\\\"\\nrule\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fc_inference_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("fc_inference_seconds_bucket{le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(text.contains("fc_inference_seconds_count 1"), "{text}");
    }
}
