//! Runs the HTTP/1.1 connections: the listener and its backlog, a cap on open connections, the
//! per-connection timeouts, and a shutdown drain with a deadline.
//!
//! `axum::serve` gives hyper no timer and no limits, so a client that opens a connection and sends
//! nothing (or one byte a second) holds it, its file descriptor and its buffers forever, and enough
//! of them starve everyone. Here each connection is served by hyper's http1 builder under a watchdog
//! ([`conn`]) that closes it when a request head is not complete within the header timeout, or when
//! it sits idle between requests past the idle timeout; request bodies get a deadline of their own
//! ([`request`]). Past the cap, a small reserve of connections answers the probes at once
//! ([`slot`]); past that too, new connections wait in the kernel's listen backlog until a slot frees.

mod conn;
mod request;
pub mod signals;
mod slot;
mod trim;
mod watchdog;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What `serve` serves: the app (`server::app_with_jobs`), or any router. Each connection keeps
/// its own clone, made once when it opens.
pub trait HttpService:
    tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S> HttpService for S where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + 'static
{
}

/// Connections the kernel queues past the cap before refusing more (Linux caps it at
/// `net.core.somaxconn`, 4096 by default).
pub const LISTEN_BACKLOG: u32 = 1024;

/// File descriptors kept out of the default connection cap: outbound provider connections, stored
/// files being written or served, the runtime's own descriptors.
const RESERVED_FDS: u64 = 128;

/// The default cap never exceeds this, whatever the fd limit: each open connection costs buffers.
const MAX_DEFAULT_CONNECTIONS: u64 = 4096;

/// How long cancel requests for cut upstream work may take before the process exits anyway.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Connection limits and timeouts, from the environment (README, "Configuration").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// `MVGEN_HEADER_TIMEOUT_SECS`: from a connection's first byte (or its opening) to a complete
    /// request head.
    pub header_timeout: Duration,
    /// `MVGEN_IDLE_TIMEOUT_SECS`: how long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// `MVGEN_BODY_TIMEOUT_SECS`: from a request's head to the end of its body.
    pub body_timeout: Duration,
    /// `MVGEN_MAX_CONNECTIONS`; `None`: derived from the file descriptor limit at start.
    pub max_connections: Option<usize>,
    /// `MVGEN_DRAIN_TIMEOUT_SECS`: how long shutdown waits for in-flight requests before cutting them.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections: None,
            // Below the 30 s grace period Kubernetes gives before SIGKILL, leaving time to send the
            // cancel requests for cut upstream work.
            drain_timeout: Duration::from_secs(25),
        }
    }
}

impl Limits {
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Limits> {
        use crate::providers::config::{DAY, secs_setting};
        let defaults = Limits::default();
        let secs = |name: &str, default: Duration, bounds| secs_setting(&var, name, default, bounds);
        // A connection timeout under 0.1 s closes clients on an ordinary network round trip; over
        // a day holds a silent connection's descriptor for no client's sake.
        let timeout = Duration::from_millis(100)..=DAY;
        let max_connections = match var("MVGEN_MAX_CONNECTIONS").map(|v| v.trim().to_owned()) {
            None => None,
            // At most 1 Mi, Linux's default ceiling on a process's file descriptors (nr_open):
            // each connection holds one, and far larger would panic tokio's semaphore.
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=1 << 20).contains(&n) => Some(n),
                _ => anyhow::bail!("MVGEN_MAX_CONNECTIONS={text:?}: expected a whole number from 1 to {}", 1 << 20),
            },
        };
        Ok(Limits {
            header_timeout: secs("MVGEN_HEADER_TIMEOUT_SECS", defaults.header_timeout, timeout.clone())?,
            idle_timeout: secs("MVGEN_IDLE_TIMEOUT_SECS", defaults.idle_timeout, timeout.clone())?,
            body_timeout: secs("MVGEN_BODY_TIMEOUT_SECS", defaults.body_timeout, timeout)?,
            max_connections,
            // 0 cuts at once; past an hour no orchestrator is still waiting (Kubernetes' default
            // grace period is 30 s).
            drain_timeout: secs("MVGEN_DRAIN_TIMEOUT_SECS", defaults.drain_timeout, Duration::ZERO..=HOUR)?,
        })
    }
}

/// The longest shutdown drain.
const HOUR: Duration = Duration::from_secs(60 * 60);

/// Binds `addr` with an explicit listen backlog (`TcpListener::bind` leaves it to mio's choice).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // A restarted server must not wait out TIME_WAIT connections of the previous one.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the cap: `requested`, or a default
/// well under the fd limit.
fn connection_cap(requested: Option<usize>) -> usize {
    let nofile = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise RLIMIT_NOFILE; assuming 1024");
            1024
        }
    };
    let default = (nofile.saturating_sub(RESERVED_FDS) / 2).clamp(16, MAX_DEFAULT_CONNECTIONS);
    let cap = requested.unwrap_or(usize::try_from(default).unwrap_or(16));
    if u64::try_from(cap).is_ok_and(|c| c.saturating_add(RESERVED_FDS) > nofile) {
        tracing::warn!(cap, nofile, "MVGEN_MAX_CONNECTIONS is close to or above the file descriptor limit");
    }
    tracing::info!(max_connections = cap, nofile, "connection limits");
    cap
}

/// What shutdown had to cut.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections still open when the drain was cut short.
    pub connections_cut: usize,
    /// Of those, connections with a request in flight.
    pub requests_cut: usize,
}

/// Counters the connection tasks update when a drain is cut short.
#[derive(Default)]
struct CutCounts {
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// Shutdown, as the connection tasks see it.
#[derive(Clone)]
struct Shutdown {
    /// Finish the request in flight, then close.
    drain: CancellationToken,
    /// Close now.
    cut: CancellationToken,
    counts: Arc<CutCounts>,
}

/// Serves `app` on `listener` until the first message on `signals`, then drains: no new
/// connections, in-flight requests finish, connections without one close. Past
/// `limits.drain_timeout`, or on a second signal, the rest are cut (their handlers dropped, which
/// cancels their upstream predictions), and the cancel requests get a few seconds to go out.
pub async fn serve(
    listener: TcpListener,
    app: impl HttpService,
    limits: Limits,
    mut signals: mpsc::UnboundedReceiver<&'static str>,
) -> std::io::Result<Drained> {
    let slots = slot::Slots::new(connection_cap(limits.max_connections));
    let tasks = TaskTracker::new();
    let shutdown = Shutdown { drain: CancellationToken::new(), cut: CancellationToken::new(), counts: Arc::default() };
    let trimmer = crate::background::spawn_task(trim::after_floods(tasks.clone()));
    let signal = loop {
        // A place under the cap if one is free, else one in the probes' reserve; past both, stop
        // accepting: new connections wait in the listen backlog.
        let (permit, in_reserve) = tokio::select! {
            biased;
            permit = slots.main.clone().acquire_owned() => (permit.map_err(std::io::Error::other)?, false),
            permit = slots.reserve.clone().acquire_owned() => (permit.map_err(std::io::Error::other)?, true),
            signal = signals::next(&mut signals) => break signal,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory, or a connection reset while queued: keep serving
                    // the connections already open and try again shortly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            signal = signals::next(&mut signals) => break signal,
        };
        let slot = slot::Slot::new(permit, in_reserve, &slots);
        tasks.spawn(conn::serve(stream, app.clone(), limits, shutdown.clone(), slot));
    };
    drop(listener);
    trimmer.abort();
    tasks.close();
    tracing::info!(
        signal,
        connections = tasks.len(),
        deadline_secs = limits.drain_timeout.as_secs_f64(),
        "shutting down: finishing in-flight requests (a second signal exits at once)"
    );
    shutdown.drain.cancel();
    let cut_by = tokio::select! {
        () = tasks.wait() => None,
        () = tokio::time::sleep(limits.drain_timeout) => Some("drain deadline"),
        _ = signals::next(&mut signals) => Some("second signal"),
    };
    let mut drained = Drained::default();
    if let Some(reason) = cut_by {
        shutdown.cut.cancel();
        tasks.wait().await;
        drained.connections_cut = shutdown.counts.connections.load(Ordering::Relaxed);
        drained.requests_cut = shutdown.counts.requests.load(Ordering::Relaxed);
        tracing::warn!(
            reason,
            connections_cut = drained.connections_cut,
            requests_cut = drained.requests_cut,
            "shutdown cut connections still open"
        );
    }
    if !crate::background::finish(CANCEL_GRACE).await {
        tracing::warn!("exiting before every upstream cancel request finished");
    }
    Ok(drained)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(vars: &[(&str, &str)]) -> Result<Limits, String> {
        Limits::from_vars(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(limits(&[]), Ok(Limits::default()));
        let set = limits(&[
            ("MVGEN_HEADER_TIMEOUT_SECS", "0.5"),
            ("MVGEN_IDLE_TIMEOUT_SECS", "5"),
            ("MVGEN_BODY_TIMEOUT_SECS", "2"),
            ("MVGEN_MAX_CONNECTIONS", "64"),
            ("MVGEN_DRAIN_TIMEOUT_SECS", "0"),
        ])
        .expect("limits");
        assert_eq!(set.header_timeout, Duration::from_millis(500));
        assert_eq!((set.idle_timeout, set.body_timeout), (Duration::from_secs(5), Duration::from_secs(2)));
        assert_eq!((set.max_connections, set.drain_timeout), (Some(64), Duration::ZERO));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("MVGEN_HEADER_TIMEOUT_SECS", "0"),
            ("MVGEN_IDLE_TIMEOUT_SECS", "soon"),
            ("MVGEN_BODY_TIMEOUT_SECS", "-1"),
            ("MVGEN_MAX_CONNECTIONS", "0"),
            ("MVGEN_MAX_CONNECTIONS", "many"),
            ("MVGEN_DRAIN_TIMEOUT_SECS", "x"),
        ] {
            let err = limits(&[(name, value)]).expect_err(value);
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn timeouts_and_the_cap_have_bounds() {
        for (name, value) in [
            ("MVGEN_HEADER_TIMEOUT_SECS", "0.000001"),
            ("MVGEN_IDLE_TIMEOUT_SECS", "86401"),
            ("MVGEN_BODY_TIMEOUT_SECS", "1e19"),
            ("MVGEN_DRAIN_TIMEOUT_SECS", "3601"),
            ("MVGEN_MAX_CONNECTIONS", "1048577"),
        ] {
            let err = limits(&[(name, value)]).expect_err(value);
            assert!(err.starts_with(&format!("{name}={value:?}: expected ")), "{err}");
        }
        let err = limits(&[("MVGEN_HEADER_TIMEOUT_SECS", "0.05")]).expect_err("too short");
        assert_eq!(err, "MVGEN_HEADER_TIMEOUT_SECS=\"0.05\": expected a number of seconds from 0.1 to 86400");
        let edges = limits(&[
            ("MVGEN_HEADER_TIMEOUT_SECS", "0.1"),
            ("MVGEN_IDLE_TIMEOUT_SECS", "86400"),
            ("MVGEN_DRAIN_TIMEOUT_SECS", "3600"),
            ("MVGEN_MAX_CONNECTIONS", "1048576"),
        ])
        .expect("edges");
        assert_eq!((edges.header_timeout, edges.max_connections), (Duration::from_millis(100), Some(1 << 20)));
    }
}
