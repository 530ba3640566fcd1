//! The steps a polled upstream run (a Replicate prediction, a Veo operation) takes through its
//! [`RunContext`], shared by both providers: save a new run's id before waiting on it (or cancel
//! the run when it cannot be saved), refuse a resumed id the upstream no longer knows, and report
//! the upstream's status once per change.

use std::future::Future;

use tracing::Instrument as _;

use super::{ProviderError, RunContext};

/// Progress stages, as a job shows them.
pub const CREATING: &str = "creating";
pub const RESUMING: &str = "resuming";
pub const WAITING: &str = "waiting";
pub const DOWNLOADING: &str = "downloading";

/// The run a call waits on: the id `ctx` saved for `provider` when there is one (resumed, so no
/// answer yet), else a new run from `start`, whose id (`id_of`) is saved before it is returned (see
/// [`save_or_cancel`]; `cancel` cancels it by id).
pub async fn resume_or_start<T, Cancelled: Future<Output = ()>>(
    ctx: RunContext<'_>,
    provider: &'static str,
    start: impl Future<Output = Result<T, ProviderError>>,
    id_of: impl Fn(&T) -> &str,
    cancel: impl FnOnce(String) -> Cancelled,
) -> Result<(String, Option<T>), ProviderError> {
    if let Some(id) = ctx.resume(provider) {
        ctx.progress(RESUMING, None);
        return Ok((id.to_owned(), None));
    }
    ctx.progress(CREATING, None);
    // The create and the save of its id, as one span (when traces are exported) naming the run.
    let span = crate::trace_context::span(|| {
        tracing::info_span!("upstream.create", upstream.provider = provider, upstream.id = tracing::field::Empty)
    });
    async {
        // Closed on return: by then the id is saved, or the create failed, or the run was cancelled.
        let _window = ctx.creating();
        let run = start.await?;
        let id = id_of(&run).to_owned();
        tracing::Span::current().record("upstream.id", id.as_str());
        save_or_cancel(ctx, provider, &id, cancel(id.clone())).await?;
        Ok((id, Some(run)))
    }
    .instrument(span)
    .await
}

/// The span of the wait on run `id` (polls, or a webhook's wake-up), when traces are exported.
pub fn poll_span(provider: &'static str, id: &str) -> tracing::Span {
    crate::trace_context::span(|| tracing::info_span!("upstream.poll", upstream.provider = provider, upstream.id = id))
}

/// The span of the request for run `id`'s output (its first bytes; the rest streams when stored,
/// `Output::store`'s span), when traces are exported.
pub fn download_span(provider: &'static str, id: &str) -> tracing::Span {
    crate::trace_context::span(|| {
        tracing::info_span!("upstream.download", upstream.provider = provider, upstream.id = id)
    })
}

/// Saves the run `id` just created on `provider`. When that fails nobody could resume the run after
/// a crash, and a retry would pay for a second one, so the run is cancelled (`cancel`, best effort)
/// and the call fails without waiting on it, with an error worth retrying (nothing ran to its end).
pub async fn save_or_cancel(
    ctx: RunContext<'_>,
    provider: &'static str,
    id: &str,
    cancel: impl Future<Output = ()>,
) -> Result<(), ProviderError> {
    let Err(reason) = ctx.started(provider, id).await else { return Ok(()) };
    tracing::warn!(provider, run = id, reason, "cannot save the id of a new upstream run; cancelling it");
    cancel.await;
    // No variant says "our own store failed"; `Unreachable` is the retryable one the caller maps to
    // a 502, and the message says what really happened.
    Err(ProviderError::Unreachable {
        provider,
        message: format!("the id of run {id} could not be saved ({reason}), so the run was cancelled"),
    })
}

/// A saved run the upstream answers 404 for (expired, deleted, or from another account). Creating a
/// new one instead would silently pay twice, so this fails the call for good.
pub fn gone(provider: &'static str, id: &str) -> ProviderError {
    ProviderError::RunFailed {
        provider,
        message: format!("the saved run {id} is unknown to {provider} (404); no new run was started"),
    }
}

/// Reports `waiting` with the upstream's status word whenever that word changes, so a run polled
/// every few seconds for minutes gives a handful of progress events, not hundreds.
pub struct StatusReporter<'a> {
    ctx: RunContext<'a>,
    last: Option<String>,
}

impl<'a> StatusReporter<'a> {
    pub fn new(ctx: RunContext<'a>) -> Self {
        StatusReporter { ctx, last: None }
    }

    pub fn waiting(&mut self, status: &str) {
        if self.last.as_deref() != Some(status) {
            self.ctx.progress(WAITING, Some(status));
            self.last = Some(status.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{BoxFuture, RunObserver, UpstreamRun};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[derive(Default)]
    struct Refusing(Mutex<Vec<(String, Option<String>)>>);

    impl RunObserver for Refusing {
        fn started<'a>(&'a self, _run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async { Err("database is locked".to_owned()) })
        }
        fn progress(&self, stage: &str, upstream_status: Option<&str>) {
            self.0.lock().unwrap().push((stage.to_owned(), upstream_status.map(str::to_owned)));
        }
    }

    #[tokio::test]
    async fn an_unsaved_run_is_cancelled_and_the_error_says_why() {
        let observer = Refusing::default();
        let cancelled = AtomicBool::new(false);
        let cancel = async { cancelled.store(true, Ordering::SeqCst) };
        let err = save_or_cancel(RunContext::new(&observer, &[]), "replicate", "p1", cancel).await.unwrap_err();
        assert!(cancelled.load(Ordering::SeqCst));
        assert!(
            matches!(&err, ProviderError::Unreachable { message, .. } if message.contains("p1") && message.contains("database is locked")),
            "{err:?}"
        );
        let saved = save_or_cancel(RunContext::detached(), "replicate", "p2", async { panic!("not cancelled") }).await;
        assert_eq!(saved, Ok(()));
    }

    /// Counts open create windows and notes whether the save ran inside one.
    #[derive(Default)]
    struct Window {
        open: AtomicUsize,
        saved_inside: AtomicBool,
    }

    impl RunObserver for Window {
        fn started<'a>(&'a self, _run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
            self.saved_inside.store(self.open.load(Ordering::SeqCst) == 1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
        fn progress(&self, _stage: &str, _upstream_status: Option<&str>) {}
        fn creating(&self, open: bool) {
            if open {
                self.open.fetch_add(1, Ordering::SeqCst);
            } else {
                self.open.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    #[tokio::test]
    async fn the_create_and_the_save_of_its_id_run_inside_one_window_closed_however_it_ends() {
        let window = Window::default();
        let ctx = RunContext::new(&window, &[]);
        let create = async {
            assert_eq!(window.open.load(Ordering::SeqCst), 1, "open while the create is in flight");
            Ok::<_, ProviderError>("p1".to_owned())
        };
        let (id, _) = resume_or_start(ctx, "replicate", create, String::as_str, |_| async {}).await.unwrap();
        assert_eq!((id.as_str(), window.saved_inside.load(Ordering::SeqCst)), ("p1", true));
        assert_eq!(window.open.load(Ordering::SeqCst), 0, "closed once saved");

        let failed = async { Err::<String, _>(gone("replicate", "p2")) };
        resume_or_start(ctx, "replicate", failed, String::as_str, |_| async {}).await.unwrap_err();
        assert_eq!(window.open.load(Ordering::SeqCst), 0, "closed by a failed create");
    }

    #[test]
    fn each_status_is_reported_once_per_change() {
        let observer = Refusing::default();
        let mut reporter = StatusReporter::new(RunContext::new(&observer, &[]));
        for status in ["starting", "starting", "processing", "processing", "starting"] {
            reporter.waiting(status);
        }
        let seen: Vec<_> =
            observer.0.lock().unwrap().iter().map(|(s, u)| format!("{s}:{}", u.as_deref().unwrap_or(""))).collect();
        assert_eq!(seen, ["waiting:starting", "waiting:processing", "waiting:starting"]);
    }
}
