//! `builtin:http`: `get {url}` returns status, headers and a capped body.
//! Every request, redirects included, goes through wasi:http, where the host
//! checks it against the capability's `net` grant; this code decides nothing.

use serde_json::{Map, Value, json};
use wasip2::http::outgoing_handler;
use url::Url;
use wasip2::http::types::{ErrorCode, Fields, IncomingResponse, Method, OutgoingRequest, Scheme};

wit_bindgen::generate!({ path: "../../wit", world: "capability" });

use exports::femtoclaw::runtime::tool_provider::{Guest, Invocation};
use femtoclaw::runtime::types::{EffectClass, ToolError, ToolSpec};

/// Body bytes returned to the agent; the rest is cut (and `truncated` set).
const MAX_BODY: usize = 256 << 10;
/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

struct Http;

impl Guest for Http {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "get".into(),
            description: "HTTP GET a URL the policy allows; returns status, headers and body (at most 256 KiB).".into(),
            input_schema: r#"{"type":"object","properties":{"url":{"type":"string","pattern":"^https?://","maxLength":2048}},"required":["url"],"additionalProperties":false}"#.into(),
            output_schema: Some(r#"{"type":"object","properties":{"url":{"type":"string"},"status":{"type":"integer"},"headers":{"type":"object","additionalProperties":{"type":"string"}},"body":{"type":"string"},"truncated":{"type":"boolean"}},"required":["url","status","headers","body","truncated"],"additionalProperties":false}"#.into()),
            effect: EffectClass::Read,
        }]
    }

    fn invoke(call: Invocation) -> Result<String, ToolError> {
        if call.tool != "get" {
            return Err(ToolError::UnknownTool(format!("http has no tool `{}`", call.tool)));
        }
        let args: Value = serde_json::from_str(&call.arguments).map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let text = args["url"].as_str().unwrap_or_default();
        let mut url = Url::parse(text).map_err(|e| ToolError::InvalidArguments(format!("`{text}` is not a URL: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let response = send(&url)?;
            let status = response.status();
            let headers: Map<String, Value> = response
                .headers()
                .entries()
                .into_iter()
                .map(|(k, v)| (k, Value::String(String::from_utf8_lossy(&v).into_owned())))
                .collect();
            if (300..400).contains(&status) {
                if let Some(Value::String(location)) = headers.get("location") {
                    // Relative, absolute-path and scheme-relative targets
                    // resolve against the URL they came from, as the URL
                    // standard says; the host checks the result again.
                    url = url.join(location).map_err(|e| {
                        ToolError::Failed(format!("`{url}` redirects to `{location}`, which is not a URL: {e}"))
                    })?;
                    continue;
                }
            }
            let (body, truncated) = read_body(response)?;
            return Ok(json!({ "url": url.as_str(), "status": status, "headers": headers, "body": body, "truncated": truncated }).to_string());
        }
        Err(ToolError::Failed(format!("more than {MAX_REDIRECTS} redirects")))
    }
}

fn send(url: &Url) -> Result<IncomingResponse, ToolError> {
    let scheme = match url.scheme() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(ToolError::InvalidArguments(format!("scheme `{other}` is not http or https"))),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ToolError::InvalidArguments(format!("`{url}` carries credentials; the policy grants hosts, not logins")));
    }
    let host = url.host_str().ok_or_else(|| ToolError::InvalidArguments(format!("`{url}` has no host")))?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let request = OutgoingRequest::new(Fields::new());
    let bad = |_| ToolError::InvalidArguments(format!("`{url}` is not a valid URL"));
    request.set_method(&Method::Get).map_err(bad)?;
    request.set_scheme(Some(&scheme)).map_err(bad)?;
    request.set_authority(Some(&authority)).map_err(bad)?;
    request.set_path_with_query(Some(&path)).map_err(bad)?;
    let future = outgoing_handler::handle(request, None).map_err(|e| error(url.as_str(), e))?;
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(e))) => Err(error(url.as_str(), e)),
        _ => Err(ToolError::Failed(format!("`{url}`: no response"))),
    }
}

fn read_body(response: IncomingResponse) -> Result<(String, bool), ToolError> {
    let body = response.consume().map_err(|_| ToolError::Failed("response body unavailable".into()))?;
    let stream = body.stream().map_err(|_| ToolError::Failed("response body unavailable".into()))?;
    let mut bytes = Vec::new();
    let mut truncated = false;
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > MAX_BODY {
                    bytes.extend_from_slice(&chunk[..MAX_BODY - bytes.len()]);
                    truncated = true;
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(wasip2::io::streams::StreamError::LastOperationFailed(e)) => {
                return Err(ToolError::LimitExceeded(format!("reading the body failed: {}", e.to_debug_string())));
            }
        }
    }
    Ok((String::from_utf8_lossy(&bytes).into_owned(), truncated))
}

fn error(url: &str, code: ErrorCode) -> ToolError {
    match code {
        ErrorCode::HttpRequestDenied => {
            ToolError::Denied(format!("`{url}` is not allowed by this capability's `net` grant"))
        }
        ErrorCode::DestinationIpProhibited => ToolError::Denied(format!(
            "`{url}` resolves to a private, loopback or link-local address that the `net` grant does not name"
        )),
        ErrorCode::HttpResponseBodySize(_) | ErrorCode::HttpResponseHeaderSectionSize(_) => {
            ToolError::LimitExceeded(format!("`{url}`: response over the host's cap ({code:?})"))
        }
        other => ToolError::Failed(format!("`{url}`: {other:?}")),
    }
}

export!(Http);
