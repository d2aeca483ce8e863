//! Log lines on stderr, as `fc-host` and managed embedding programs write
//! them: JSON objects or compact human lines. Field values are escaped as
//! they are formatted (pretty) or as the line is written (JSON): a tool name
//! or a log message chosen by a guest cannot forge a line.

use tracing_subscriber::field::MakeExt as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line: for collectors.
    Json,
    /// Human-readable lines (coloured on a terminal unless `NO_COLOR`).
    Pretty,
}

/// The layer that writes log lines in `format` on stderr.
pub fn lines(format: LogFormat) -> Box<dyn Layer<Registry> + Send + Sync> {
    match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(SafeJson)
            .boxed(),
        LogFormat::Pretty => {
            use std::io::IsTerminal as _;
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                let text = format!("{value:?}");
                let text = crate::text::escape(&text);
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
    }
}

/// `filter` with the MCP SDK silenced unless a directive names it: it logs
/// what servers and clients send (a server's instructions, messages)
/// unredacted, and its failures are reported by FemtoClaw's own errors.
pub fn quiet_sdk(filter: EnvFilter, directives: Option<&str>) -> EnvFilter {
    if directives.is_some_and(|l| l.contains("rmcp")) {
        return filter;
    }
    filter.add_directive("rmcp=off".parse().expect("invariant: a valid directive"))
}

/// Sets up log lines in `format` for the process, filtered by `RUST_LOG`
/// (`info` when unset or invalid), unless the program already set up a
/// `tracing` subscriber (then nothing changes).
pub fn init(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let directives = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = directives
        .as_deref()
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let filter = quiet_sdk(filter, directives.as_deref());
    let _ = tracing_subscriber::registry()
        .with(lines(format).with_filter(filter))
        .try_init();
}

/// stderr for JSON lines: serde_json escapes C0 controls, and this escapes
/// what it leaves raw (see [`crate::text::json_safe`]).
struct SafeJson;

struct SafeJsonWriter;

impl std::io::Write for SafeJsonWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter writes each event whole, so `buf` is whole lines.
        match std::str::from_utf8(buf) {
            Ok(text) => std::io::stderr()
                .lock()
                .write_all(crate::text::json_safe(text).as_bytes())?,
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
