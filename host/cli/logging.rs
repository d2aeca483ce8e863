//! The tracing subscriber: pretty or JSON lines on stderr, and spans for an
//! OTLP collector when one is configured.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::otlp::Collector;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// What must happen when the command ends: export the trace.
pub struct Telemetry(Option<(Collector, String)>);

impl Telemetry {
    pub fn finish(self) {
        if let Some((collector, url)) = self.0 {
            collector.export(&url);
        }
    }
}

pub fn init(level: Option<&str>, format: Format) -> anyhow::Result<Telemetry> {
    let otlp = crate::otlp::endpoint().map(|url| (Collector::default(), url));
    if level == Some("off") && otlp.is_none() {
        // Nothing would be written anywhere: no subscriber at all, so
        // every event is discarded at its call site.
        return Ok(Telemetry(None));
    }
    let filter = match level {
        Some(l) => {
            EnvFilter::try_new(l).map_err(|e| anyhow::anyhow!("invalid --log-level `{l}`: {e}"))?
        }
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match format {
        Format::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
        Format::Pretty => tracing_subscriber::fmt::layer()
            .with_target(false)
            .compact()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // The filter applies to the lines on stderr; the trace gets every span.
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(otlp.as_ref().map(|(c, _)| c.clone()))
        .init();
    Ok(Telemetry(otlp))
}
