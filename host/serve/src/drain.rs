//! Early answers reach the client: a request refused before its body is
//! read (a bad token, a bad query) has the rest of its body read and
//! discarded, within the server's limits, while the answer is sent.
//!
//! Without this, the connection closes with the client's bytes unread, the
//! kernel answers them with a reset, and a client still uploading (a bundle
//! sent with the wrong token) sees "connection reset" instead of the `401`
//! (RFC 9112, section 9.6).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt as _;
use tokio::sync::oneshot;

use crate::Server;

/// Gives the handler a body that, dropped unfinished, comes back here; an
/// unfinished body is then drained (at most `limits.max-bundle` bytes,
/// within `limits.body-timeout`) while the response leaves.
pub async fn unread_bodies(
    State(server): State<Arc<Server>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let (back, mut returned) = oneshot::channel();
    let body = Body::new(Returning {
        inner: Some(body),
        back: Some(back),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    // A body still held (by a task the handler started) is left to it. The
    // rest is read beside the response, which leaves at once; a body over
    // the bound or too slow is given up on, and its connection closed.
    if let Ok(rest) = returned.try_recv() {
        let limits = server.config.limits;
        let bounded = http_body_util::Limited::new(rest, limits.max_bundle.max(limits.max_body));
        tokio::spawn(async move {
            let _ = tokio::time::timeout(limits.body_timeout, bounded.collect()).await;
        });
    }
    response
}

/// A request body that hands itself back when dropped before its end.
struct Returning {
    inner: Option<Body>,
    back: Option<oneshot::Sender<Body>>,
}

impl HttpBody for Returning {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if let (Some(inner), Some(back)) = (self.inner.take(), self.back.take())
            && !inner.is_end_stream()
        {
            let _ = back.send(inner);
        }
    }
}
