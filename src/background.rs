//! Detached work the process must not abandon on exit: today, the cancel requests sent for upstream
//! predictions whose request was dropped (see `CancelOnDrop` in `providers::cancel`, used by the Replicate and Veo clients). A task spawned
//! plainly would be dropped with the runtime when `main` returns, and the prediction would run on,
//! billing, after a shutdown that cut it.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use tokio_util::task::TaskTracker;

static TASKS: LazyLock<TaskTracker> = LazyLock::new(TaskTracker::new);

/// Runs `task` on the current runtime and lets [`finish`] wait for it. Outside a runtime (nothing
/// could run it) the task is dropped.
pub fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        TASKS.spawn_on(task, &runtime);
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
