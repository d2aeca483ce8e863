//! The tracing subscriber: pretty or JSON lines on stderr, and spans for an
//! OTLP collector when one is configured. Field values are escaped as they
//! are formatted (pretty) or as the line is written (JSON): a tool name
//! or a log message chosen by a guest cannot forge a line.

use std::io::IsTerminal;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
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
    // The MCP SDK logs what servers and clients send (a server's
    // instructions, messages), unredacted, and its failures are reported by
    // fc-host's own errors: it is silent unless a directive names it.
    let named = level
        .or(from_env.as_deref())
        .is_some_and(|l| l.contains("rmcp"));
    let filter = if named {
        filter
    } else {
        filter.add_directive("rmcp=off".parse().expect("invariant: a valid directive"))
    };
    let otlp = crate::otlp::init::<Registry>()?;
    if level == Some("off") && otlp.is_none() {
        // Nothing would be written anywhere: no subscriber at all, so
        // every event is discarded at its call site.
        return Ok(Telemetry(None));
    }
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match format {
        Format::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(SafeJson)
            .boxed(),
        Format::Pretty => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                let text = format!("{value:?}");
                let text = femtoclaw_runtime::text::escape(&text);
                match field.name() {
                    "message" => write!(w, "{text}"),
                    name => write!(w, "{name}={text}"),
                }
            })
            .delimited(" ");
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(colour)
                .compact()
                .fmt_fields(fields)
                .with_writer(std::io::stderr)
                .boxed()
        }
    };
    // The filter applies to the lines on stderr; the trace gets every span.
    let (exporter, spans) = otlp.unzip();
    let mut layers = vec![lines.with_filter(filter).boxed()];
    layers.extend(spans);
    tracing_subscriber::registry().with(layers).init();
    Ok(Telemetry(exporter))
}

/// stderr for JSON lines: serde_json escapes C0 controls, and this escapes
/// what it leaves raw (see [`crate::console::json_safe`]).
struct SafeJson;

struct SafeJsonWriter;

impl std::io::Write for SafeJsonWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter writes each event whole, so `buf` is whole lines.
        match std::str::from_utf8(buf) {
            Ok(text) => std::io::stderr()
                .lock()
                .write_all(crate::console::json_safe(text).as_bytes())?,
            Err(_) => std::io::stderr().lock().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for SafeJson {
    type Writer = SafeJsonWriter;
    fn make_writer(&'a self) -> SafeJsonWriter {
        SafeJsonWriter
    }
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
