//! Traces over OTLP, received by a collector on loopback that decodes them
//! with OpenTelemetry's own protocol types: `http/protobuf` (the default),
//! `http/json` and `grpc`, as the standard variables select; headers from
//! `OTEL_EXPORTER_OTLP_HEADERS`; the resource; W3C ids and `TRACEPARENT`.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message as _;
use serde_json::json;

use crate::common::*;
use crate::mock_provider::MockProvider;

/// One exported span, ids in hex.
#[derive(Debug, Clone)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    start: u64,
    end: u64,
}

/// What the collector received: the requests' headers and their spans.
#[derive(Default, Clone)]
struct Received {
    headers: Vec<Vec<(String, String)>>,
    requests: Vec<ExportTraceServiceRequest>,
}

impl Received {
    fn spans(&self) -> Vec<Span> {
        self.requests
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| Span {
                trace: hex::encode(&s.trace_id),
                id: hex::encode(&s.span_id),
                parent: hex::encode(&s.parent_span_id),
                name: s.name.clone(),
                start: s.start_time_unix_nano,
                end: s.end_time_unix_nano,
            })
            .collect()
    }

    /// A resource attribute's string value.
    fn resource(&self, key: &str) -> Option<String> {
        let r = self
            .requests
            .first()?
            .resource_spans
            .first()?
            .resource
            .as_ref()?;
        r.attributes.iter().find(|a| a.key == key).and_then(|a| {
            match a.value.as_ref()?.value.as_ref()? {
                Any::StringValue(s) => Some(s.clone()),
                _ => None,
            }
        })
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .first()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// The collector's HTTP side: the bodies MockProvider kept, decoded by
/// their content type.
fn over_http(collector: &MockProvider) -> Received {
    let requests = collector.requests();
    for r in &requests {
        assert_eq!(r.path, "/v1/traces");
    }
    Received {
        headers: requests.iter().map(|r| r.headers.clone()).collect(),
        requests: requests
            .iter()
            .map(|r| match r.header("content-type") {
                Some("application/x-protobuf") => {
                    ExportTraceServiceRequest::decode(r.raw.as_slice()).unwrap()
                }
                Some("application/json") => serde_json::from_slice(&r.raw).unwrap(),
                other => panic!("content type {other:?}"),
            })
            .collect(),
    }
}

/// A gRPC collector: tonic serving OpenTelemetry's `TraceService`.
#[derive(Default, Clone)]
struct GrpcCollector {
    got: Arc<Mutex<Received>>,
}

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.to_string(), v.to_str().ok()?.to_owned()))
                }
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        let mut got = self.got.lock().unwrap();
        got.headers.push(headers);
        got.requests.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl GrpcCollector {
    /// Serves on a loopback port on its own thread, for the test's life.
    fn start() -> (GrpcCollector, u16) {
        let collector = GrpcCollector::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let service = TraceServiceServer::new(collector.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(incoming)
                    .await
                    .unwrap();
            });
        });
        (collector, port)
    }

    fn received(&self) -> Received {
        self.got.lock().unwrap().clone()
    }
}

/// The hello example with these OTLP variables.
fn traced_hello(vars: &[(&str, String)]) -> Output {
    let mut cmd = fc_host();
    for (k, v) in vars {
        cmd.env(k, v);
    }
    run(cmd.args([
        "--log-level",
        "warn",
        "run",
        "--policy",
        "examples/hello/policy.toml",
    ]))
}

/// The hello run's spans: one trace, nested run → step → tool call and
/// inference, every parent exported, times in order, ids W3C-sized and
/// not zero.
fn assert_hello_trace(spans: &[Span]) {
    let trace = &spans[0].trace;
    assert_eq!(trace.len(), 32);
    assert_ne!(trace, &"0".repeat(32));
    assert!(spans.iter().all(|s| &s.trace == trace), "one trace per run");
    let mut ids: Vec<&String> = spans.iter().map(|s| &s.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
    assert!(
        spans
            .iter()
            .all(|s| s.id.len() == 16 && s.id != "0".repeat(16))
    );
    let named = |n: &str| {
        spans
            .iter()
            .filter(|s| s.name == n)
            .cloned()
            .collect::<Vec<_>>()
    };
    let by_id = |id: &str| spans.iter().find(|s| s.id == id);
    let runs = named("run");
    assert_eq!(runs.len(), 1, "{spans:#?}");
    assert_eq!(named("step").len(), 3);
    assert_eq!(named("inference").len(), 3);
    assert_eq!(named("tool_call").len(), 4);
    for s in named("step") {
        assert_eq!(s.parent, runs[0].id);
    }
    for s in named("tool_call").into_iter().chain(named("inference")) {
        let parent = by_id(&s.parent).expect("the parent span is exported");
        assert_eq!(parent.name, "step", "{s:?}");
        assert!(s.end >= s.start && s.start >= parent.start && s.end <= parent.end);
    }
}

#[test]
fn spans_go_over_http_protobuf_by_default_with_the_configured_headers() {
    let collector = MockProvider::start(vec![(200, "", json!({})); 8]);
    let out = traced_hello(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", collector.port),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-tenant=acme,x-key=k%201".into(),
        ),
    ]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let got = over_http(&collector);
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("application/x-protobuf")
    );
    assert_eq!(got.header("x-tenant").as_deref(), Some("acme"));
    assert_eq!(
        got.header("x-key").as_deref(),
        Some("k 1"),
        "values are URL-decoded"
    );
    assert_eq!(got.resource("service.name").as_deref(), Some("fc-host"));
    let spans = got.spans();
    assert_hello_trace(&spans);
    let run = spans.iter().find(|s| s.name == "run").unwrap();
    assert!(run.parent.is_empty(), "a root without TRACEPARENT");
}

#[test]
fn a_traceparent_makes_the_run_a_child_of_the_callers_trace_over_http_json() {
    let collector = MockProvider::start(vec![(200, "", json!({})); 8]);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let out = traced_hello(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://127.0.0.1:{}/v1/traces", collector.port),
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json".into()),
        ("OTEL_SERVICE_NAME", "agents-prod".into()),
        ("TRACEPARENT", format!("00-{trace}-00f067aa0ba902b7-01")),
    ]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let got = over_http(&collector);
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(got.resource("service.name").as_deref(), Some("agents-prod"));
    let spans = got.spans();
    assert_hello_trace(&spans);
    assert_eq!(spans[0].trace, trace);
    let run = spans.iter().find(|s| s.name == "run").unwrap();
    assert_eq!(run.parent, "00f067aa0ba902b7");
}

#[test]
fn spans_go_over_grpc_when_the_protocol_says_so() {
    let (collector, port) = GrpcCollector::start();
    let out = traced_hello(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme".into()),
    ]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    let got = collector.received();
    assert_eq!(got.header("x-tenant").as_deref(), Some("acme"));
    assert_eq!(got.resource("service.name").as_deref(), Some("fc-host"));
    assert_hello_trace(&got.spans());
}

#[test]
fn an_undefined_protocol_is_refused_naming_the_variable() {
    let collector = MockProvider::start(vec![]);
    let out = traced_hello(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", collector.port),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/proto".into()),
    ]);
    assert_eq!(out.code, exit::USAGE, "{out:#?}");
    assert!(
        out.stderr
            .contains("`OTEL_EXPORTER_OTLP_PROTOCOL` is `http/proto`"),
        "{}",
        out.stderr
    );
    assert!(collector.requests().is_empty());
}

#[test]
fn an_unreachable_collector_is_reported_and_the_run_still_succeeds() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = traced_hello(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000".into()),
    ]);
    assert_eq!(out.code, exit::OK, "{out:#?}");
    assert!(!out.stdout.is_empty(), "the answer is printed: {out:#?}");
    assert!(out.stderr.contains("ExportError"), "{}", out.stderr);
}
