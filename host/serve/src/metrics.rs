//! `/metrics`: the server's own counters and per-tenant gauges, read at
//! scrape time, then the runtime's families, as one OpenMetrics
//! exposition encoded by `prometheus-client`.

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::Server;
use crate::tenant::Tenant;

/// What a scraper is told the body is.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// One family's values as read at scrape time.
#[derive(Debug)]
struct Family {
    /// Without `_total`: the encoder adds it to counters.
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, u64)>,
}

/// The server's families, read once per scrape.
#[derive(Debug)]
struct Snapshot(Vec<Family>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let mut family = encoder.encode_descriptor(f.name, f.help, None, f.kind)?;
            for (labels, value) in &f.samples {
                let sample = family.encode_family(labels)?;
                match f.kind {
                    MetricType::Counter => ConstCounter::new(*value).encode(sample)?,
                    _ => ConstGauge::new(*value).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

/// The whole exposition, ending with `# EOF`.
pub(crate) fn exposition(server: &Server) -> String {
    let c = &server.counters;
    let one = |v: &std::sync::atomic::AtomicU64| vec![(Vec::new(), v.load(Ordering::Relaxed))];
    let per_tenant = |f: &dyn Fn(&Tenant) -> u64| -> Vec<(Labels, u64)> {
        server
            .tenants
            .iter()
            .map(|t| (vec![("tenant", t.id().to_owned())], f(t)))
            .collect()
    };
    let family = |name, kind, help, samples| Family {
        name,
        help,
        kind,
        samples,
    };
    use MetricType::{Counter, Gauge};
    let families = vec![
        family(
            "fc_serve_requests",
            Counter,
            "HTTP requests received",
            one(&c.requests),
        ),
        family(
            "fc_serve_responses",
            Counter,
            "HTTP responses by status class",
            (1..=5)
                .map(|k| {
                    (
                        vec![("class", format!("{k}xx"))],
                        c.responses[k].load(Ordering::Relaxed),
                    )
                })
                .collect(),
        ),
        family(
            "fc_serve_connections_open",
            Gauge,
            "Open connections",
            one(&c.open_connections),
        ),
        family(
            "fc_serve_connections_refused",
            Counter,
            "Connections closed on arrival because `limits.connections` were open",
            one(&c.refused_connections),
        ),
        family(
            "fc_serve_runs_accepted",
            Counter,
            "Runs accepted",
            one(&c.accepted),
        ),
        family(
            "fc_serve_runs_active",
            Gauge,
            "Runs of this process, queued or running",
            per_tenant(&|t| t.lock_active().len() as u64),
        ),
        family(
            "fc_serve_runs_queued",
            Gauge,
            "Runs waiting for a slot",
            per_tenant(&|t| t.queued() as u64),
        ),
        family(
            "fc_serve_wasm_memory_bytes",
            Gauge,
            "Linear memory held by the tenant's live instances",
            per_tenant(&|t| t.pool.used()),
        ),
        family(
            "fc_serve_fuel",
            Counter,
            "Fuel burnt by the tenant's runs",
            per_tenant(&|t| t.fuel.used()),
        ),
        family(
            "fc_serve_journal_commits",
            Counter,
            "Durable commits of the tenant's journal (one covers every run that appended since the last)",
            per_tenant(&|t| t.journal.lock().commits()),
        ),
    ];
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(families)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode_registry(&mut out, &registry)
        .expect("invariant: writing to a String cannot fail");
    server.runtime.metrics().render_into(&mut out);
    out.push_str("# EOF\n");
    out
}
