//! Gives memory freed by closed connections back to the operating system.
//!
//! After a flood of connections closes, glibc's malloc keeps the freed buffers in its per-thread
//! arenas, so RSS stayed at the flood's peak (measured in BENCHMARKS.md, "connections").
//! `malloc_trim` releases the free pages of every arena. It costs a walk of the heap, so it runs
//! only when many connections have closed since the last time, on a blocking thread.

use std::time::Duration;

use tokio_util::task::TaskTracker;

/// Connections that must have closed since the peak to trim.
const AFTER_CLOSED: usize = 256;

/// How often the number of open connections is sampled.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Runs until aborted: trims once the open connections (the tasks of `connections`) fell by
/// [`AFTER_CLOSED`] from their peak since the last trim.
pub(super) async fn after_floods(connections: TaskTracker) {
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peak = 0;
    loop {
        check.tick().await;
        let open = connections.len();
        peak = peak.max(open);
        if peak >= open + AFTER_CLOSED {
            let _ = tokio::task::spawn_blocking(release_freed_memory).await;
            peak = open;
        }
    }
}

/// Releases free heap pages to the OS (glibc only; other allocators return memory themselves).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only walks glibc's own heap under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
