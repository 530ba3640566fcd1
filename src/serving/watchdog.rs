//! What the watchdog knows about one connection, and when it closes it because the client stalled.
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

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use super::Limits;

/// While draining, a connection with no request in flight gets this long to finish writing its
/// last answer (hyper closes it right after) before it is closed anyway.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

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
    /// Set at the drain on an idle connection: its next answer says `Connection: close`.
    closing: AtomicBool,
}

impl ConnState {
    pub(super) fn new() -> Self {
        ConnState {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            head_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            writing_since: AtomicU64::new(NONE),
            body_timed_out: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        }
    }

    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.opened + Duration::from_millis(ms)
    }

    /// Bytes arrived: if no request is in flight, they start the next request head.
    pub(super) fn on_read(&self) {
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
    pub(super) fn on_write(&self) {
        if self.writing_since.load(Relaxed) != NONE {
            self.writing_since.store(self.now(), Relaxed);
        }
    }

    /// The next answer closes the connection (see `closing`).
    pub(super) fn close_after_answer(&self) {
        self.closing.store(true, Relaxed);
    }

    pub(super) fn closing(&self) -> bool {
        self.closing.load(Relaxed)
    }

    pub(super) fn busy(&self) -> bool {
        self.in_flight.load(Relaxed) > 0
    }

    /// When the connection should be closed, if nothing happens before; `None` while a handler
    /// is running.
    pub(super) fn deadline(&self, limits: &Limits, draining_since: Option<u64>) -> Option<Instant> {
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
