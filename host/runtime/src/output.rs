//! Guest stdout and stderr, captured: bytes are kept up to a cap (the rest
//! counted and dropped, never an error the guest could trip on), and handed
//! to the log a line at a time after each call into the guest.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Bytes of output kept per component between two drains.
const MAX_BUFFERED: usize = 64 << 10;

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    dropped: u64,
}

/// A guest's stdout and stderr (one buffer: lines are what matters).
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Buffer>>);

impl Captured {
    /// The complete lines written since the last call (a trailing partial
    /// line waits for its end, unless the buffer is full).
    pub(crate) fn take_lines(&self) -> Vec<String> {
        let mut buf = self
            .0
            .lock()
            .expect("invariant: no panic while holding the lock");
        let end = match buf.bytes.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if buf.bytes.len() >= MAX_BUFFERED => buf.bytes.len(),
            None => return Vec::new(),
        };
        let text: Vec<u8> = buf.bytes.drain(..end).collect();
        String::from_utf8_lossy(&text)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Bytes dropped over the cap so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.0.lock().map(|b| b.dropped).unwrap_or(0)
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Captured {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = self
            .0
            .lock()
            .expect("invariant: no panic while holding the lock");
        let room = MAX_BUFFERED.saturating_sub(buf.bytes.len());
        let kept = data.len().min(room);
        buf.bytes.extend_from_slice(&data[..kept]);
        buf.dropped += (data.len() - kept) as u64;
        // Everything is accepted: a full buffer drops, it does not fail.
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
