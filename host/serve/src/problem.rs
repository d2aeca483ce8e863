//! Errors as RFC 9457 problem details (`application/problem+json`): a type
//! naming the kind of problem, its title, the status, and a detail saying
//! what is wrong and what to do, with the key, quota or run it concerns.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::{Map, Value, json};

/// A problem to answer with.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short slug of the kind: `unauthorized`, `quota`, `widening`...
    pub kind: &'static str,
    /// What is wrong and what to do.
    pub detail: String,
    /// Members beyond the standard ones (`key`, `quota`, `run`).
    pub extra: Map<String, Value>,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of `kind` with `status`.
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            kind,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
        }
    }

    /// Adds a member.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Problem {
        self.extra.insert(name.to_owned(), value.into());
        self
    }

    /// Says when to retry.
    pub fn retry_after(mut self, seconds: u64) -> Problem {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// `400`: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// `404` for a run the tenant does not have (another tenant's included).
    pub fn no_run(id: &str) -> Problem {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no-such-run",
            format!(
                "there is no run `{}` for this tenant",
                femtoclaw_runtime::text::escape(id)
            ),
        )
        .with("run", id)
    }

    /// `500`, with what went wrong inside (never a secret: run errors are
    /// redacted where they arise).
    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    /// The JSON document.
    pub fn body(&self) -> Value {
        let mut doc = json!({
            "type": format!("urn:femtoclaw:problem:{}", self.kind),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Value::Object(map) = &mut doc {
            map.extend(self.extra.clone());
        }
        doc
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).expect("invariant: JSON serializes");
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fc-host\""),
            );
        }
        response
    }
}
