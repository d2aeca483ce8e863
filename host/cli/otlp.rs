//! Traces over OTLP/HTTP (JSON encoding), when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Spans are collected as
//! the run goes and sent in one request when the command ends: one process,
//! one run, one trace. A `TRACEPARENT` (W3C trace context) in the
//! environment makes the run's trace a child of the caller's.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

struct SpanRecord {
    id: u64,
    parent: Option<u64>,
    name: &'static str,
    start: u128,
    end: u128,
    attributes: Vec<(String, String)>,
}

/// Collects spans for export.
#[derive(Clone, Default)]
pub struct Collector {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
    next: Arc<AtomicU64>,
}

/// This layer's id of a span (tracing reuses its own ids).
struct SpanId(u64);

fn now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collector {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mine = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<SpanId>().map(|s| s.0));
        let mut attributes = Vec::new();
        attrs.record(&mut Fields(&mut attributes));
        span.extensions_mut().insert(SpanId(mine));
        let record = SpanRecord {
            id: mine,
            parent,
            name: attrs.metadata().name(),
            start: now(),
            end: 0,
            attributes,
        };
        self.spans
            .lock()
            .expect("invariant: no panic while holding the lock")
            .push(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.with_record(id, &ctx, |r| values.record(&mut Fields(&mut r.attributes)));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.with_record(&id, &ctx, |r| r.end = now());
    }
}

impl Collector {
    /// Applies `f` to the record of the span `id`, if this layer saw it open.
    fn with_record<S: Subscriber + for<'a> LookupSpan<'a>>(
        &self,
        id: &Id,
        ctx: &Context<'_, S>,
        f: impl FnOnce(&mut SpanRecord),
    ) {
        let Some(mine) = ctx
            .span(id)
            .and_then(|s| s.extensions().get::<SpanId>().map(|s| s.0))
        else {
            return;
        };
        let mut spans = self
            .spans
            .lock()
            .expect("invariant: no panic while holding the lock");
        if let Some(r) = spans.iter_mut().rev().find(|r| r.id == mine) {
            f(r);
        }
    }
}

/// Where traces go, if anywhere.
pub fn endpoint() -> Option<String> {
    if let Ok(url) = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some(url);
    }
    let base = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())?;
    Some(format!("{}/v1/traces", base.trim_end_matches('/')))
}

impl Collector {
    /// Sends the collected spans. Failures are reported, never fatal.
    pub fn export(&self, url: &str) {
        let body = self.encode().to_string();
        if let Err(e) = post(url, &body) {
            crate::console::warning(&format!("could not export traces to `{url}`: {e}"));
        }
    }

    fn encode(&self) -> Value {
        let (trace_id, remote_parent) = trace_context();
        let spans = self
            .spans
            .lock()
            .expect("invariant: no panic while holding the lock");
        let end = now();
        let encoded: Vec<Value> = spans
            .iter()
            .map(|s| {
                let mut span = json!({
                    "traceId": trace_id,
                    "spanId": format!("{:016x}", s.id),
                    "name": s.name,
                    "kind": 1,
                    "startTimeUnixNano": s.start.to_string(),
                    "endTimeUnixNano": (if s.end == 0 { end } else { s.end }).to_string(),
                    "attributes": s.attributes.iter().map(|(k, v)| json!({ "key": k, "value": { "stringValue": v } })).collect::<Vec<_>>(),
                });
                match (s.parent, &remote_parent) {
                    (Some(p), _) => span["parentSpanId"] = json!(format!("{p:016x}")),
                    (None, Some(p)) => span["parentSpanId"] = json!(p),
                    (None, None) => {}
                }
                span
            })
            .collect();
        json!({ "resourceSpans": [{
            "resource": { "attributes": [{ "key": "service.name", "value": { "stringValue": "fc-host" } }] },
            "scopeSpans": [{ "scope": { "name": "femtoclaw", "version": env!("CARGO_PKG_VERSION") }, "spans": encoded }]
        }]})
    }
}

/// The trace id (from `TRACEPARENT`, else fresh) and the remote parent span.
fn trace_context() -> (String, Option<String>) {
    if let Ok(tp) = std::env::var("TRACEPARENT") {
        let parts: Vec<&str> = tp.split('-').collect();
        if parts.len() == 4 && parts[1].len() == 32 && parts[2].len() == 16 {
            return (parts[1].to_owned(), Some(parts[2].to_owned()));
        }
    }
    let mut id = [0u8; 16];
    // Without randomness the trace id stays zero, which collectors refuse:
    // the run goes on, untraced.
    let _ = getrandom::fill(&mut id);
    (id.iter().map(|b| format!("{b:02x}")).collect(), None)
}

/// A minimal HTTP/1.1 POST (OTLP/HTTP collectors listen on plain HTTP,
/// usually on the same host).
fn post(url: &str, body: &str) -> std::io::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("only http:// endpoints are supported"))?;
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut status = [0u8; 12];
    stream.read_exact(&mut status)?;
    let line = String::from_utf8_lossy(&status);
    if line.starts_with("HTTP/1.1 2") || line.starts_with("HTTP/1.0 2") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "the collector answered `{}`",
            line.trim()
        )))
    }
}
