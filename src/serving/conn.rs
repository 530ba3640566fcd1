//! One connection: hyper's HTTP/1.1 state machine over a socket that reports its reads and writes
//! to the watchdog (`watchdog.rs`), closed when the watchdog's deadline passes or on shutdown.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::slot::{RESERVE_HEAD_TIMEOUT, Slot};
use super::watchdog::ConnState;
use super::{HttpService, Limits, Shutdown, request};

/// The largest request head (request line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

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
/// `slot` is this connection's place (under the cap or in the reserve), given back when it ends.
/// `app` is this connection's own copy of the app, called for each of its requests in turn.
pub(super) async fn serve<S: HttpService>(
    stream: TcpStream,
    app: S,
    limits: Limits,
    shutdown: Shutdown,
    slot: Arc<Slot>,
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
        let (state, slot, app) = (state.clone(), slot.clone(), Mutex::new(app));
        hyper::service::service_fn(move |req| request::handle_in(&slot, req, &app, &state, limits.body_timeout))
    };
    // A reserve connection has less time to send its request head (see `slot`).
    let reserve_limits = Limits { header_timeout: limits.header_timeout.min(RESERVE_HEAD_TIMEOUT), ..limits };
    // hyper buffers up to ~400 KiB of request head by default; with thousands of slow connections
    // that is the bulk of a flood's memory. 64 KiB is twice what nginx allows (431 past it).
    let conn = hyper::server::conn::http1::Builder::new().max_header_size(MAX_HEAD_BYTES).serve_connection(io, service);
    tokio::pin!(conn);
    // The watchdog wakes at the connection's deadline, or sooner: no deadline that can appear later
    // (a head starting, a request ending) is earlier than `now + recheck`.
    let mut draining_since = None;
    loop {
        let limits = if slot.in_reserve() { &reserve_limits } else { &limits };
        let recheck = limits.header_timeout.min(limits.idle_timeout);
        let now = Instant::now();
        let wake = state.deadline(limits, draining_since).map_or(now + recheck, |d| d.min(now + recheck));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(wake) => {
                if state.deadline(limits, draining_since).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(draining = draining_since.is_some(), "closing a stalled or idle connection");
                    return;
                }
            }
            () = shutdown.drain.cancelled(), if draining_since.is_none() => {
                draining_since = Some(state.now());
                if state.busy() {
                    // Keep-alive off: the connection closes once this answer is written.
                    conn.as_mut().graceful_shutdown();
                } else {
                    // Closing an idle connection now would reset a request its client may be
                    // sending this very moment (a balancer reusing its pooled connection). For
                    // the drain's short grace it stays open, and an answer sent then says
                    // `Connection: close`; the watchdog closes it if nothing comes.
                    state.close_after_answer();
                }
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
