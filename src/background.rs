//! Detached work the process must not abandon on exit: today, the cancel requests sent for upstream
//! predictions whose request was dropped (see `CancelOnDrop` in `providers::cancel`, used by the Replicate and Veo clients). A task spawned
//! plainly would be dropped with the runtime when `main` returns, and the prediction would run on,
//! billing, after a shutdown that cut it.
//!
//! Also the one task type the process's long-lived and otherwise cold tasks are spawned as
//! ([`Task`], [`spawn_task`]): tokio makes a copy of its task machinery (poll, complete, cancel,
//! join, drop; for both scheduler flavors) for every future type it spawns, and these tasks are
//! all one type boxed (BENCHMARKS.md, "Issue 22: the binary under 10 MB"). Not for a task per
//! request or per connection, which would pay the box's allocation on that path.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

static TASKS: LazyLock<TaskTracker> = LazyLock::new(TaskTracker::new);

/// A spawned task's future, boxed, so every task spawned as one is one future type to tokio.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// `task` as a [`Task`]: for `TaskTracker::spawn` and `Handle::spawn`.
pub fn task(task: impl Future<Output = ()> + Send + 'static) -> Task {
    Box::pin(task)
}

/// `tokio::spawn` of `task` as a [`Task`].
pub fn spawn_task(task: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(self::task(task))
}

/// Runs `task` on the current runtime and lets [`finish`] wait for it. Outside a runtime (nothing
/// could run it) the task is dropped.
pub fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        TASKS.spawn_on(self::task(task), &runtime);
    }
}

/// Waits up to `limit` for every task spawned so far; `false` when some were still running.
pub async fn finish(limit: Duration) -> bool {
    TASKS.close();
    let done = tokio::time::timeout(limit, TASKS.wait()).await.is_ok();
    // In-process servers (tests) may keep spawning after one of them shut down.
    TASKS.reopen();
    done
}
