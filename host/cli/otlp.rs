//! Traces over OTLP, through OpenTelemetry's own SDK and exporter, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set. The standard variables choose the rest: the protocol
//! (`http/protobuf`, the default, `http/json` or `grpc`), headers, timeout
//! and compression; `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` the
//! resource. Spans leave in batches as they close and the rest when the
//! command ends. A `TRACEPARENT` (W3C trace context) in the environment
//! makes the command's spans children of the caller's.
//!
//! Only spans are exported, not events: a span's fields are what the
//! runtime chose to record (ids, names, outcomes), while events can carry
//! text a guest wrote, which stays on stderr where it is escaped.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use femtoclaw_runtime::RunError;

/// The variables that name the protocol, the signal's own first.
const PROTOCOL_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
];

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether traces go anywhere: an endpoint is named (as before the SDK, no
/// endpoint means no exporter, not the SDK's `localhost` default).
fn configured() -> bool {
    var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
}

/// The protocol the variables select. A value the specification does not
/// define is refused, naming the variable: a typo must not silently send
/// traces in another encoding, or nowhere.
fn protocol(var: impl Fn(&str) -> Option<String>) -> Result<Protocol, RunError> {
    for name in PROTOCOL_VARS {
        if let Some(value) = var(name) {
            return match value.trim() {
                "http/protobuf" => Ok(Protocol::HttpBinary),
                "http/json" => Ok(Protocol::HttpJson),
                "grpc" => Ok(Protocol::Grpc),
                other => Err(RunError::Config(format!(
                    "`{name}` is `{other}`: use `http/protobuf`, `http/json` or `grpc`"
                ))),
            };
        }
    }
    Ok(Protocol::HttpBinary)
}

/// The exporter while the command runs; [`Exporter::finish`] sends what is
/// left.
pub struct Exporter {
    provider: SdkTracerProvider,
    /// The gRPC client's connection lives on this runtime (one worker
    /// thread), apart from the command's own.
    _grpc: Option<tokio::runtime::Runtime>,
    /// The caller's trace context, current on this thread for the
    /// command's lifetime.
    _parent: Option<opentelemetry::ContextGuard>,
}

/// The tracing layer that hands spans to the exporter.
pub type SpanLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// The exporter and its tracing layer, if an endpoint is configured.
pub fn init<S>() -> Result<Option<(Exporter, SpanLayer<S>)>, RunError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    if !configured() {
        return Ok(None);
    }
    let protocol = protocol(var)?;
    let refused = |e: opentelemetry_otlp::ExporterBuildError| {
        RunError::Config(format!("the OTLP trace exporter: {e}"))
    };
    let (exporter, grpc) = match protocol {
        Protocol::Grpc => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("fc-otlp")
                .enable_all()
                .build()
                .map_err(|e| RunError::Config(format!("the OTLP gRPC runtime: {e}")))?;
            let exporter = {
                let _inside = rt.enter();
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_protocol(protocol)
                    .build()
                    .map_err(refused)?
            };
            (exporter, Some(rt))
        }
        _ => {
            let tls = femtoclaw_runtime::remote::tls_config()
                .map_err(|e| RunError::Config(format!("the OTLP exporter's TLS: {e}")))?;
            let client = reqwest::blocking::Client::builder()
                .tls_backend_preconfigured(tls)
                .build()
                .map_err(|e| RunError::Config(format!("the OTLP HTTP client: {e}")))?;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_protocol(protocol)
                .build()
                .map_err(refused)?;
            (exporter, None)
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_resource(resource())
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("femtoclaw");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_context_activation(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.is_span()))
        .boxed();
    Ok(Some((
        Exporter {
            provider,
            _grpc: grpc,
            _parent: parent().map(opentelemetry::Context::attach),
        },
        layer,
    )))
}

/// `service.name` is `fc-host` unless the environment names one.
fn resource() -> Resource {
    let named = var("OTEL_SERVICE_NAME").is_some()
        || var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    let builder = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if named {
        builder.build()
    } else {
        builder.with_service_name("fc-host").build()
    }
}

/// The caller's context from `TRACEPARENT` (and `TRACESTATE`), if valid.
fn parent() -> Option<opentelemetry::Context> {
    use opentelemetry::trace::TraceContextExt as _;
    let carrier: HashMap<String, String> =
        [("traceparent", "TRACEPARENT"), ("tracestate", "TRACESTATE")]
            .into_iter()
            .filter_map(|(key, name)| var(name).map(|v| (key.to_owned(), v)))
            .collect();
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

impl Exporter {
    /// Sends the spans not yet sent. Failures are reported, never fatal.
    pub fn finish(self) {
        if let Err(e) = self.provider.shutdown() {
            crate::console::warning(&format!("could not export traces over OTLP: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signal_variable_wins_and_an_undefined_protocol_is_refused() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        use opentelemetry_otlp::Protocol::*;
        assert_eq!(super::protocol(env(&[])).unwrap(), HttpBinary);
        assert_eq!(
            super::protocol(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])).unwrap(),
            Grpc
        );
        assert_eq!(
            super::protocol(env(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
            ]))
            .unwrap(),
            HttpJson
        );
        let e = super::protocol(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/proto")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("`OTEL_EXPORTER_OTLP_PROTOCOL` is `http/proto`"),
            "{e}"
        );
    }
}
