//! What a long upstream run reports while it runs, and what it may resume.
//!
//! A video takes minutes. A durable job must save the upstream's prediction (or operation) id
//! *before* waiting on it, so a worker that takes over a dead worker's job resumes polling that id
//! instead of paying for a second run; and it shows live progress. Providers receive a
//! `RunContext` on every image and video call: they ask it for a saved id to resume, tell it the
//! id of a run they started, and report their progress through it. The sync path and
//! `mvgen render` pass [`RunContext::detached`], which saves nothing and resumes nothing.

use serde::{Deserialize, Serialize};

use super::BoxFuture;

/// An upstream run as saved by a job: which provider, its id there, and which of a generation's
/// calls it belongs to (`slot`: the image index of a multi-image request, 0 otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamRun {
    pub provider: String,
    pub id: String,
    #[serde(default)]
    pub slot: u32,
}

/// Where a run reports to; a job store implements it.
pub trait RunObserver: Send + Sync {
    /// The upstream accepted `run`. Called before any wait on it. An error stops the run: waiting
    /// on an id nobody saved could cost a second run after a crash.
    fn started<'a>(&'a self, run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), String>>;

    /// A progress step: `stage` (e.g. `creating`, `waiting`, `downloading`) and the upstream's own
    /// status word when it has one (`starting`, `processing`, ...). Best effort, never fails a run.
    fn progress(&self, stage: &str, upstream_status: Option<&str>);

    /// Whether an upstream run abandoned by dropping its call is cancelled upstream; asked at the
    /// moment of the drop. A caller waiting on the answer wants it cancelled (nobody will fetch the
    /// result), so that is the default. A durable job answers `false` while its worker merely
    /// shuts down (another worker resumes the run) and `true` once the job was cancelled.
    fn cancel_on_drop(&self) -> bool {
        true
    }

    /// A call resumed `run`, one of the saved runs: that call owns it from now on (it cancels it
    /// when dropped, if `cancel_on_drop` says so), so nobody else needs to.
    fn resumed(&self, _run: &UpstreamRun) {}

    /// A create was sent and its id is not saved yet (`open`), or that step ended (`!open`): saved,
    /// or failed (and cancelled when it could not be saved). Dropping a call inside this window
    /// orphans a paid run nobody knows the id of, so an owner that stops a run (a cancel, a
    /// shutdown) lets the window close first; the create's own timeout bounds it.
    fn creating(&self, _open: bool) {}

    /// Resolves once the upstream has said (a signed webhook, received by any replica) that the
    /// run `id` on `provider` ended, so its poller fetches it now instead of after its interval.
    /// Only a hint: the fetch decides. The default never resolves (nothing receives webhooks).
    fn upstream_ended<'a>(&'a self, _provider: &'a str, _id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(std::future::pending())
    }
}

/// Observes nothing: the context of a request answered while the client waits.
struct Detached;

impl RunObserver for Detached {
    fn started<'a>(&'a self, _run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn progress(&self, _stage: &str, _upstream_status: Option<&str>) {}
}

/// The context one provider call runs in.
#[derive(Clone, Copy)]
pub struct RunContext<'a> {
    observer: &'a dyn RunObserver,
    saved: &'a [UpstreamRun],
    slot: u32,
    /// The job whose row will hold the run's answer, when a job engine runs it.
    job: Option<&'a str>,
}

impl RunContext<'static> {
    /// No observer and nothing to resume.
    pub fn detached() -> Self {
        RunContext { observer: &Detached, saved: &[], slot: 0, job: None }
    }
}

impl<'a> RunContext<'a> {
    /// A context reporting to `observer`, resuming the runs in `saved` (those a job saved before).
    pub fn new(observer: &'a dyn RunObserver, saved: &'a [UpstreamRun]) -> Self {
        RunContext { observer, saved, slot: 0, job: None }
    }

    /// The same context for a run of job `id`, whose answer the job's row will hold once it
    /// succeeds: what the answer is kept in can be that row rather than a file of its own.
    pub fn for_job(self, id: &'a str) -> Self {
        RunContext { job: Some(id), ..self }
    }

    /// The job whose row will hold this run's answer; `None` for a run outside the job engine.
    pub fn job_id(&self) -> Option<&'a str> {
        self.job
    }

    /// The same context for call number `slot` of a generation (each image of a multi-image
    /// request is its own upstream run).
    pub fn slot(self, slot: u32) -> Self {
        RunContext { slot, ..self }
    }

    /// The id of this slot's run on `provider`, if a previous attempt started one.
    pub fn resume(&self, provider: &str) -> Option<&'a str> {
        let run = self.saved.iter().find(|run| run.provider == provider && run.slot == self.slot)?;
        self.observer.resumed(run);
        Some(run.id.as_str())
    }

    /// Opens the create-and-save window (see [`RunObserver::creating`]) until the guard drops.
    pub fn creating(&self) -> Creating<'a> {
        self.observer.creating(true);
        Creating(self.observer)
    }

    /// Saves a run this call started on `provider`; to be awaited before waiting on it.
    pub async fn started(&self, provider: &str, id: &str) -> Result<(), String> {
        let run = UpstreamRun { provider: provider.to_owned(), id: id.to_owned(), slot: self.slot };
        self.observer.started(&run).await
    }

    /// Reports a progress step.
    pub fn progress(&self, stage: &str, upstream_status: Option<&str>) {
        self.observer.progress(stage, upstream_status);
    }

    /// Resolves once the upstream said run `id` ended (see [`RunObserver::upstream_ended`]).
    pub fn upstream_ended(&self, provider: &'a str, id: &'a str) -> BoxFuture<'a, ()> {
        self.observer.upstream_ended(provider, id)
    }

    /// Whether dropping the call now should cancel its upstream run (see
    /// [`RunObserver::cancel_on_drop`]).
    pub fn cancel_on_drop(&self) -> bool {
        self.observer.cancel_on_drop()
    }
}

/// An open create-and-save window; closes when dropped, however the step ended.
pub struct Creating<'a>(&'a dyn RunObserver);

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.0.creating(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<UpstreamRun>>);

    impl RunObserver for Recorder {
        fn started<'a>(&'a self, run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                self.0.lock().map_err(|e| e.to_string())?.push(run.clone());
                Ok(())
            })
        }
        fn progress(&self, _stage: &str, _upstream_status: Option<&str>) {}
    }

    #[tokio::test]
    async fn a_slot_resumes_only_its_own_run_and_saves_under_its_own_number() {
        let saved = [
            UpstreamRun { provider: "replicate".into(), id: "p0".into(), slot: 0 },
            UpstreamRun { provider: "replicate".into(), id: "p1".into(), slot: 1 },
        ];
        let recorder = Recorder::default();
        let ctx = RunContext::new(&recorder, &saved);
        assert_eq!(ctx.slot(1).resume("replicate"), Some("p1"));
        assert_eq!(ctx.slot(2).resume("replicate"), None);
        assert_eq!(ctx.resume("gemini"), None);
        ctx.slot(3).started("replicate", "p3").await.unwrap();
        assert_eq!(
            recorder.0.lock().unwrap()[0],
            UpstreamRun { provider: "replicate".into(), id: "p3".into(), slot: 3 }
        );
        assert_eq!(RunContext::detached().resume("replicate"), None);
    }
}
