//! `GET /v1/runs/{id}/events`: a run's events as Server-Sent Events, read
//! from its journal (appended events included, as they happen), each with
//! its sequence number as the event id, then the run's outcome. A client
//! that reconnects with `Last-Event-ID: N` gets the events after N.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, header};
use serde_json::json;
use tokio::sync::watch;

use crate::runs;
use crate::tenant::{Progress, Tenant};

/// Events read from the journal per step.
const BATCH: usize = 64;
/// How often the journal is read for the events of a run another node
/// executes.
const POLL: Duration = Duration::from_millis(200);
/// Idle time after which a comment keeps the stream (and its connection)
/// alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Stream {
    tenant: Arc<Tenant>,
    run: String,
    next: u64,
    progress: Option<watch::Receiver<Progress>>,
    done: bool,
    /// Time waited without news, for a run executing on another node.
    idle: Duration,
}

/// The response streaming run `run`'s events from sequence number `from`.
pub fn response(tenant: Arc<Tenant>, run: String, from: u64) -> Response {
    let progress = tenant
        .lock_active()
        .get(&run)
        .map(|a| a.progress.subscribe());
    let state = Stream {
        tenant,
        run,
        next: from,
        progress,
        done: false,
        idle: Duration::ZERO,
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        let chunk = s.step().await;
        Some((Ok::<Bytes, std::convert::Infallible>(chunk), s))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl Stream {
    /// The next piece of the stream: new events, else (once the run has
    /// ended) its outcome, else a keep-alive after waiting for news.
    async fn step(&mut self) -> Bytes {
        loop {
            let ended = match self.progress.as_mut() {
                Some(p) => p.borrow_and_update().finished,
                // Not this node's: it goes on while another node executes it.
                None => crate::fleet::executing_elsewhere(&self.tenant, &self.run).is_none(),
            };
            let events = self
                .tenant
                .journal
                .lock()
                .events_from(&self.run, self.next, BATCH);
            let events = match events {
                Ok(events) => events,
                Err(e) => {
                    self.done = true;
                    let data = json!({ "error": e.to_string() });
                    return Bytes::from(format!("event: error\ndata: {data}\n\n"));
                }
            };
            if !events.is_empty() {
                let mut out = String::new();
                for event in &events {
                    let data = serde_json::to_string(event).expect("invariant: events serialize");
                    out.push_str(&format!(
                        "id: {}\nevent: {}\ndata: {data}\n\n",
                        event.seq, event.kind
                    ));
                }
                self.next = events.last().map_or(self.next, |e| e.seq + 1);
                self.idle = Duration::ZERO;
                return Bytes::from(out);
            }
            if ended {
                self.done = true;
                let view = runs::view(&self.tenant, &self.run, true)
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| json!({ "id": self.run }));
                return Bytes::from(format!("event: outcome\ndata: {view}\n\n"));
            }
            let Some(progress) = self.progress.as_mut() else {
                // Its events reach this node through the shared journal.
                tokio::time::sleep(POLL).await;
                self.idle += POLL;
                if self.idle >= KEEP_ALIVE {
                    self.idle = Duration::ZERO;
                    return Bytes::from_static(b": keep-alive\n\n");
                }
                continue;
            };
            match tokio::time::timeout(KEEP_ALIVE, progress.changed()).await {
                Ok(Ok(())) => continue,
                // The run's task is gone: it has ended.
                Ok(Err(_)) => self.progress = None,
                Err(_) => return Bytes::from_static(b": keep-alive\n\n"),
            }
        }
    }
}
