//! The tracing subscriber: pretty or JSON lines on stderr
//! ([`femtoclaw_runtime::logs`]), and spans for an OTLP collector when one
//! is configured.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// What must happen when the command ends: export the rest of the trace.
pub struct Telemetry(Option<crate::otlp::Exporter>);

impl Telemetry {
    pub fn finish(self) {
        if let Some(exporter) = self.0 {
            exporter.finish();
        }
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// `--log-level`: a level, or `RUST_LOG`-style directives whose every part
/// names a level (`info,femtoclaw::decision=debug`). A bare word that is no
/// level (`verbose`) would silently filter out every line: it is refused.
fn filter(level: &str) -> anyhow::Result<EnvFilter> {
    let invalid = |why: String| {
        anyhow::Error::new(femtoclaw_runtime::RunError::Config(format!(
            "invalid --log-level `{level}`: {why} (use one of {}, or directives like `info,femtoclaw::decision=debug`)",
            LEVELS.join(", ")
        )))
    };
    for part in level.split(',') {
        let named = part.rsplit('=').next().unwrap_or(part).trim();
        if !LEVELS.contains(&named.to_ascii_lowercase().as_str()) {
            return Err(invalid(format!("`{named}` is not a level")));
        }
    }
    EnvFilter::try_new(level).map_err(|e| invalid(e.to_string()))
}

pub fn init(level: Option<&str>, format: Format) -> anyhow::Result<Telemetry> {
    crate::console::init(format);
    // `RUST_LOG` is held to the same rule: a typo must not hide every line.
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = match (level, &from_env) {
        (Some(l), _) => filter(l)?,
        (None, Some(env)) => filter(env).map_err(|e| e.context("from the variable `RUST_LOG`"))?,
        (None, None) => EnvFilter::new("info"),
    };
    let filter = femtoclaw_runtime::logs::quiet_sdk(filter, level.or(from_env.as_deref()));
    let otlp = crate::otlp::init::<Registry>()?;
    if level == Some("off") && otlp.is_none() {
        // Nothing would be written anywhere: no subscriber at all, so
        // every event is discarded at its call site.
        return Ok(Telemetry(None));
    }
    let lines = femtoclaw_runtime::logs::lines(match format {
        Format::Json => femtoclaw_runtime::logs::LogFormat::Json,
        Format::Pretty => femtoclaw_runtime::logs::LogFormat::Pretty,
    });
    // The filter applies to the lines on stderr; the trace gets every span.
    let (exporter, spans) = otlp.unzip();
    let mut layers = vec![lines.with_filter(filter).boxed()];
    layers.extend(spans);
    tracing_subscriber::registry().with(layers).init();
    Ok(Telemetry(exporter))
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_levels_are_levels() {
        for ok in [
            "info",
            "OFF",
            "warn,femtoclaw::decision=debug",
            "femtoclaw=trace",
        ] {
            assert!(super::filter(ok).is_ok(), "{ok}");
        }
        for bad in ["verbose", "info,loud", "femtoclaw=chatty", ""] {
            let e = super::filter(bad).unwrap_err().to_string();
            assert!(e.contains("invalid --log-level"), "{bad}: {e}");
        }
    }
}
