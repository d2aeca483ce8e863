//! POST a JSON body through wasi:http, with retries where they make sense:
//! 429 (after `retry-after`, capped), 5xx and transport failures, with
//! exponential backoff. Authentication failures and other 4xx are final.

use serde_json::Value;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

use crate::femtoclaw::runtime::types::BrainError;

const ATTEMPTS: u32 = 4;
const MAX_RETRY_AFTER_MS: u64 = 10_000;
const MAX_RESPONSE: usize = 4 << 20;

struct Response {
    status: u16,
    retry_after_ms: Option<u64>,
    body: Vec<u8>,
}

/// POSTs `body` to `url` and returns the response's JSON; `headers` are
/// sent besides `content-type` (never a key: the host adds that).
pub(crate) fn post_json(url: &str, headers: &[(&str, &str)], body: &Value) -> Result<Value, BrainError> {
    let body = body.to_string();
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            sleep_ms(500 << (attempt - 1));
        }
        match send(url, headers, body.as_bytes()) {
            Err(Transport::Denied(m)) => return Err(BrainError::Config(m)),
            Err(Transport::Retryable(m)) => last = m,
            Ok(r) if r.status == 429 || r.status >= 500 => {
                last = format!("HTTP {}: {}", r.status, error_message(&r.body));
                if let Some(ms) = r.retry_after_ms {
                    sleep_ms(ms.min(MAX_RETRY_AFTER_MS));
                }
            }
            Ok(r) if r.status == 401 || r.status == 403 => {
                return Err(BrainError::Provider(format!(
                    "authentication failed (HTTP {}): {}; check the key named by `api-key-env`",
                    r.status,
                    error_message(&r.body)
                )));
            }
            // OpenAI, Ollama and the Messages API answer an unknown model
            // with 404: the policy's (or FC_MODEL's) model, not the agent.
            Ok(r) if r.status == 404 && body_model(&body).is_some() => {
                let model = body_model(&body).unwrap_or_default();
                return Err(BrainError::Config(format!(
                    "the provider has no model `{model}` (HTTP 404: {}); set `brain.model` in the policy or FC_MODEL to one it serves (for Ollama: `ollama pull {model}`)",
                    error_message(&r.body)
                )));
            }
            Ok(r) if !(200..300).contains(&r.status) => {
                return Err(BrainError::Provider(format!("HTTP {}: {}", r.status, error_message(&r.body))));
            }
            Ok(r) => {
                return serde_json::from_slice(&r.body)
                    .map_err(|e| BrainError::Provider(format!("the response is not JSON: {e}")));
            }
        }
    }
    Err(BrainError::Transport(format!("{url}: gave up after {ATTEMPTS} attempts: {last}")))
}

/// The model a request body names.
fn body_model(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v["model"].as_str().map(str::to_owned)
}

/// The provider's own error message, if its body has one.
fn error_message(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned())
}

enum Transport {
    Denied(String),
    Retryable(String),
}

fn send(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, Transport> {
    let bad = |m: &str| Transport::Denied(format!("`{url}`: {m}"));
    let parsed = url::Url::parse(url).map_err(|_| bad("not a URL"))?;
    let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    // A known length, not chunked encoding: simple local servers prefer it.
    let mut fields: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), b"application/json".to_vec()),
        ("content-length".into(), body.len().to_string().into_bytes()),
    ];
    fields.extend(headers.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())));
    let fields = Fields::from_list(&fields).map_err(|_| bad("invalid header"))?;
    let request = OutgoingRequest::new(fields);
    let scheme = if parsed.scheme() == "https" { Scheme::Https } else { Scheme::Http };
    request.set_method(&Method::Post).map_err(|_| bad("invalid method"))?;
    request.set_scheme(Some(&scheme)).map_err(|_| bad("invalid scheme"))?;
    request.set_authority(Some(&authority)).map_err(|_| bad("invalid host"))?;
    request.set_path_with_query(Some(&path)).map_err(|_| bad("invalid path"))?;
    let outgoing = request.body().map_err(|_| bad("no request body"))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| classify(url, e))?;
    {
        let stream = outgoing.write().map_err(|_| bad("no request stream"))?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|_| Transport::Retryable("the request body could not be sent".into()))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| classify(url, e))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(classify(url, e)),
        _ => return Err(Transport::Retryable("no response".into())),
    };
    let status = response.status();
    let retry_after_ms = response
        .headers()
        .get("retry-after")
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<f64>().ok())
        .map(|secs| (secs * 1000.0) as u64);
    let incoming = response.consume().map_err(|_| Transport::Retryable("no response body".into()))?;
    let stream = incoming.stream().map_err(|_| Transport::Retryable("no response body".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(Transport::Retryable(e.to_debug_string())),
        }
        if bytes.len() > MAX_RESPONSE {
            return Err(Transport::Denied(format!("`{url}`: response over {MAX_RESPONSE} bytes")));
        }
    }
    Ok(Response { status, retry_after_ms, body: bytes })
}

fn classify(url: &str, code: ErrorCode) -> Transport {
    match code {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            Transport::Denied(format!("`{url}` is not this brain's provider (denied by the network gate)"))
        }
        other => Transport::Retryable(format!("{other:?}")),
    }
}

fn sleep_ms(ms: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
}
