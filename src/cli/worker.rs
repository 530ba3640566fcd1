//! `mvgen worker`: job workers only, no HTTP (for replicas that render but serve nothing), and the
//! engine start both `serve` and `worker` share.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::jobs::{EngineConfig, JobPipeline, Jobs};
use crate::server::Settings;

/// The pipeline jobs run. Until the generation pipeline implements `JobPipeline` this is the
/// placeholder that refuses every submission with 503 (`jobs::not_wired`): the one line to change.
pub fn pipeline() -> Arc<dyn JobPipeline> {
    Arc::new(crate::jobs::not_wired::NotWired)
}

/// Opens the jobs database (creating the output dir for the default SQLite file) and migrates it.
pub async fn open_jobs(settings: &Settings, pipeline: Arc<dyn JobPipeline>) -> Result<Arc<Jobs>, String> {
    if settings.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.output_dir)
            .map_err(|e| format!("cannot create {}: {e}", settings.output_dir.display()))?;
    }
    let config = EngineConfig {
        workers: settings.workers,
        stale_after: settings.job_stale_after,
        max_attempts: settings.job_max_attempts,
        ..EngineConfig::default()
    };
    let jobs = Jobs::open(&settings.database_url, pipeline, config).await?;
    tracing::info!(
        database = %crate::jobs::store::redact(&settings.database_url),
        workers = settings.workers,
        "jobs database ready"
    );
    Ok(jobs)
}

/// Stops the workers: they claim nothing more and release running jobs to the queue (another
/// replica, or this one after a restart, resumes them); then closes the database.
pub async fn stop_workers(jobs: &Jobs, shutdown: CancellationToken, workers: TaskTracker) {
    shutdown.cancel();
    if tokio::time::timeout(Duration::from_secs(10), workers.wait()).await.is_err() {
        tracing::warn!("job workers did not stop in 10 s; their jobs will be taken over once stale");
    }
    jobs.close().await;
}

pub fn worker() -> ExitCode {
    let settings = match Settings::from_env(None) {
        Ok(s) => s,
        Err(e) => return super::serve::fail(&format!("invalid settings: {e}")),
    };
    super::serve::init_logging(settings.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return super::serve::fail(&format!("cannot start the async runtime: {e}")),
    };
    let result: Result<(), String> = runtime.block_on(async {
        let jobs = open_jobs(&settings, pipeline()).await?;
        let shutdown = CancellationToken::new();
        let workers = jobs.start_workers(shutdown.clone());
        tracing::info!(workers = settings.workers, "mvgen worker running; SIGTERM or SIGINT stops it");
        let mut signals = crate::serving::signals::listen();
        let signal = signals.recv().await.unwrap_or("end of signals");
        tracing::info!(signal, "stopping job workers");
        stop_workers(&jobs, shutdown, workers).await;
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::serve::fail(&e),
    }
}
