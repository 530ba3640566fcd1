//! One connection: hyper's HTTP/1.1 state machine under a watchdog that closes it when the client
//! stalls.
//!
//! hyper's own `header_read_timeout` (it needs a timer) also runs while a keep-alive connection
//! waits for its next request, so it cannot tell "10 s to send a request head" from "60 s idle
//! between requests". The watchdog here tracks both from what the connection does:
//! - no request in flight and part of a request head received (or nothing yet, on a fresh
//!   connection): closed `header_timeout` after that head's first byte (or the opening);
//! - no request in flight and nothing received since the last answer: closed after `idle_timeout`;
//! - a request in flight whose handler is still running: never closed by the watchdog (its body
//!   has a deadline of its own, and a video generation may run for many minutes);
//! - a request whose answer is being written: closed after `idle_timeout` without a byte of write
//!   progress, so a client that stops reading (a large video, say) cannot hold its connection.
//!
//! Everything a connection does (reads, its requests, its watchdog) runs in one task, so the state
//! needs no locking; atomics only because the task may move between threads.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{Limits, Shutdown, request};

/// While draining, a connection with no request in flight gets this long to finish writing its
/// last answer (hyper closes it right after) before it is closed anyway.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// The largest request head (request line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// `head_since` when no partial request head is pending.
const NONE: u64 = u64::MAX;

/// What the watchdog knows about a connection. Times are milliseconds since `opened`.
pub(super) struct ConnState {
    opened: Instant,
    in_flight: AtomicU32,
    /// When the current partial request head began (0 for a fresh connection), or [`NONE`].
    head_since: AtomicU64,
    /// When the last request finished.
    idle_since: AtomicU64,
    /// While an answer is being written: when it last made write progress (its start, at first);
    /// [`NONE`] otherwise.
    writing_since: AtomicU64,
    /// Set when a request body missed its deadline, so the answer becomes a 408.
    pub(super) body_timed_out: AtomicBool,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            writing_since: AtomicU64::new(NONE),
            body_timed_out: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// Bytes arrived: if no request is in flight, they start the next request head.
    fn on_read(&self) {
        if self.in_flight.load(Relaxed) == 0 && self.head_since.load(Relaxed) == NONE {
            self.head_since.store(self.now(), Relaxed);
        }
    }

    pub(super) fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.writing_since.store(NONE, Relaxed);
        self.head_since.store(NONE, Relaxed);
        self.body_timed_out.store(false, Relaxed);
    }

    /// The answer was written out (or abandoned).
    pub(super) fn request_finished(&self) {
        self.idle_since.store(self.now(), Relaxed);
        self.writing_since.store(NONE, Relaxed);
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// The handler has returned: from here on the answer is only being written.
    pub(super) fn answer_started(&self) {
        self.writing_since.store(self.now(), Relaxed);
    }

    /// Bytes went out: an answer being written made progress.
    fn on_write(&self) {
        if self.writing_since.load(Relaxed) != NONE {
            self.writing_since.store(self.now(), Relaxed);
        }
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Relaxed) > 0
    }

    /// When the connection should be closed, if nothing happens before; `None` while a handler
    /// is running.
    fn deadline(&self, limits: &Limits, draining_since: Option<u64>) -> Option<Instant> {
        if self.busy() {
            let writing = self.writing_since.load(Relaxed);
            return (writing != NONE).then(|| self.at(writing) + limits.idle_timeout);
        }
        let head = self.head_since.load(Relaxed);
        let mut deadline = if head == NONE {
            self.at(self.idle_since.load(Relaxed)) + limits.idle_timeout
        } else {
            self.at(head) + limits.header_timeout
        };
        if let Some(since) = draining_since {
            deadline = deadline.min(self.at(since) + DRAIN_GRACE);
        }
        Some(deadline)
    }
}

/// The socket, reporting reads to the watchdog.
struct Watched {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.state.on_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.state.on_write();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.state.on_write();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Serves one connection until the client closes it, a timeout closes it, or shutdown does.
/// `_slot` is this connection's place under the cap, given back when it ends.
pub(super) async fn serve(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    shutdown: Shutdown,
    _slot: OwnedSemaphorePermit,
) {
    // Without TCP_NODELAY a response written in two pieces (an event stream's head, then its first
    // event) waits for the client's delayed ACK: ~40 ms per event on Linux. Nothing here gains from
    // Nagle's coalescing, as hyper already writes whole buffers. A socket that refuses is served anyway.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    let state = Arc::new(ConnState::new());
    let io = TokioIo::new(Watched { stream, state: state.clone() });
    let service = {
        let state = state.clone();
        hyper::service::service_fn(move |req| request::handle(req, router.clone(), state.clone(), limits.body_timeout))
    };
    // hyper buffers up to ~400 KiB of request head by default; with thousands of slow connections
    // that is the bulk of a flood's memory. 64 KiB is twice what nginx allows (431 past it).
    let conn = hyper::server::conn::http1::Builder::new().max_header_size(MAX_HEAD_BYTES).serve_connection(io, service);
    tokio::pin!(conn);
    // The watchdog wakes at the connection's deadline, or sooner: no deadline that can appear later
    // (a head starting, a request ending) is earlier than `now + recheck`.
    let recheck = limits.header_timeout.min(limits.idle_timeout);
    let mut draining_since = None;
    loop {
        let now = Instant::now();
        let wake = state.deadline(&limits, draining_since).map_or(now + recheck, |d| d.min(now + recheck));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(wake) => {
                if state.deadline(&limits, draining_since).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(draining = draining_since.is_some(), "closing a stalled or idle connection");
                    return;
                }
            }
            () = shutdown.drain.cancelled(), if draining_since.is_none() => {
                draining_since = Some(state.now());
                conn.as_mut().graceful_shutdown();
            }
            () = shutdown.cut.cancelled() => {
                shutdown.counts.connections.fetch_add(1, Relaxed);
                if state.busy() {
                    shutdown.counts.requests.fetch_add(1, Relaxed);
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { header_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(60), ..Limits::default() }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_what_the_connection_does() {
        let state = ConnState::new();
        let opened = state.opened;
        let limits = limits();
        assert_eq!(state.deadline(&limits, None), Some(opened + Duration::from_secs(10)), "fresh: header timeout");
        state.request_started();
        assert_eq!(state.deadline(&limits, None), None, "a request in flight is never timed out");
        state.on_read();
        assert_eq!(state.deadline(&limits, None), None, "body bytes start no head");
        tokio::time::advance(Duration::from_secs(5)).await;
        state.request_finished();
        let idle = opened + Duration::from_secs(65);
        assert_eq!(state.deadline(&limits, None), Some(idle), "idle: idle timeout from the answer");
        tokio::time::advance(Duration::from_secs(20)).await;
        state.on_read();
        let head = opened + Duration::from_secs(35);
        assert_eq!(state.deadline(&limits, None), Some(head), "a partial head: header timeout from its first byte");
        state.on_read();
        assert_eq!(state.deadline(&limits, None), Some(head), "more bytes do not extend it");
        let draining = state.now();
        assert_eq!(state.deadline(&limits, Some(draining)), Some(state.at(draining) + DRAIN_GRACE));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_stops_going_out_is_timed_out_but_a_running_handler_is_not() {
        let state = ConnState::new();
        let limits = limits();
        state.request_started();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(state.deadline(&limits, None), None, "a long generation is never cut");
        state.answer_started();
        let started = Instant::now();
        assert_eq!(state.deadline(&limits, None), Some(started + limits.idle_timeout), "writing: idle timeout");
        tokio::time::advance(Duration::from_secs(30)).await;
        state.on_write();
        assert_eq!(state.deadline(&limits, None), Some(Instant::now() + limits.idle_timeout), "progress extends it");
        state.request_finished();
        state.on_write();
        assert_eq!(state.deadline(&limits, None), Some(Instant::now() + limits.idle_timeout), "then idle as usual");
    }
}
