//! Counters and histograms of what the runtime decided and spent, kept in a
//! `prometheus-client` registry and rendered in its text format
//! (`fc-host run --metrics FILE`, `fc-host serve`'s `/metrics`). One
//! registry per [`Runtime`](crate::Runtime), shared by its runs.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

fn latency() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Status {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ToolDecision {
    pub tool: String,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Rule {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Tool {
    pub tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Direction {
    pub direction: &'static str,
}

/// `capability X`, `brain` or `run`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Component {
    pub component: String,
}

type Latency = Family<Tool, Histogram, fn() -> Histogram>;

/// The registry and its metric families. Help texts have no final
/// full stop: the encoder adds one.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) runs: Family<Status, Counter>,
    pub(crate) tool_calls: Family<ToolDecision, Counter>,
    pub(crate) denials: Family<Rule, Counter>,
    pub(crate) tool_call_seconds: Latency,
    pub(crate) inference_seconds: Histogram,
    pub(crate) tokens: Family<Direction, Counter>,
    pub(crate) fuel: Family<Component, Counter>,
    pub(crate) traps: Family<Component, Counter>,
    pub(crate) limit_stops: Family<Component, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let runs = Family::default();
        let tool_calls = Family::default();
        let denials = Family::default();
        let tool_call_seconds = Latency::new_with_constructor(latency);
        let inference_seconds = latency();
        let tokens = Family::default();
        let fuel = Family::default();
        let traps = Family::default();
        let limit_stops = Family::default();
        // Counters are registered without `_total`: the encoder adds it.
        registry.register("fc_runs", "Runs by final status", runs.clone());
        registry.register(
            "fc_tool_calls",
            "Tool calls by tool and decision (allow, deny)",
            tool_calls.clone(),
        );
        registry.register(
            "fc_denials",
            "Refused tool calls and requests by the policy rule that refused them",
            denials.clone(),
        );
        registry.register(
            "fc_tool_call_seconds",
            "Duration of allowed tool calls, by tool",
            tool_call_seconds.clone(),
        );
        registry.register(
            "fc_inference_seconds",
            "Duration of brain turns",
            inference_seconds.clone(),
        );
        registry.register(
            "fc_tokens",
            "Model tokens by direction (input, output)",
            tokens.clone(),
        );
        registry.register(
            "fc_fuel_consumed",
            "Fuel consumed by capability calls, by component",
            fuel.clone(),
        );
        registry.register("fc_traps", "Guest traps by component", traps.clone());
        registry.register(
            "fc_limit_stops",
            "Calls or runs stopped by a limit, by component",
            limit_stops.clone(),
        );
        Metrics {
            registry,
            runs,
            tool_calls,
            denials,
            tool_call_seconds,
            inference_seconds,
            tokens,
            fuel,
            traps,
            limit_stops,
        }
    }
}

impl Metrics {
    /// Everything, in the OpenMetrics text format (which Prometheus
    /// scrapes), ending with `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out.push_str("# EOF\n");
        out
    }

    /// How many calls of `tool` the gate let through to its capability.
    pub fn allowed_calls(&self, tool: &str) -> u64 {
        let labels = ToolDecision {
            tool: tool.to_owned(),
            decision: "allow",
        };
        self.tool_calls.get(&labels).map_or(0, |c| c.get())
    }

    /// The families without the closing `# EOF`, for an exposition that
    /// adds its own (a server's gauges).
    pub fn render_into(&self, out: &mut String) {
        prometheus_client::encoding::text::encode_registry(out, &self.registry)
            .expect("invariant: writing to a String cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.tool_calls
            .get_or_create(&ToolDecision {
                tool: "fs.read_file".into(),
                decision: "allow",
            })
            .inc_by(2);
        m.denials
            .get_or_create(&Rule {
                rule: "a \"quoted\"\nrule".into(),
            })
            .inc();
        m.inference_seconds.observe(0.002);
        let text = m.render();
        assert!(
            text.contains("fc_tool_calls_total{tool=\"fs.read_file\",decision=\"allow\"} 2"),
            "{text}"
        );
        assert_eq!(m.allowed_calls("fs.read_file"), 2);
        assert_eq!(m.allowed_calls("fs.write_file"), 0);
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
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
