//! `mvgen worker`: job workers only, no HTTP (for replicas that render but serve nothing), and the
//! engine start both `serve` and `worker` share.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Outcome;
use crate::jobs::Generations;
use crate::jobs::{EngineConfig, JobPipeline, Jobs};
use crate::live_configs::FlavorSource;
use crate::providers::{ProviderConfig, Providers};
use crate::server::Settings;

/// Opens the jobs database (creating the output dir for the default SQLite file) and migrates it.
pub async fn open_jobs(settings: &Settings, pipeline: Arc<dyn JobPipeline>) -> anyhow::Result<Arc<Jobs>> {
    if settings.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.output_dir)
            .with_context(|| format!("cannot create {}", settings.output_dir.display()))?;
    }
    let config = EngineConfig {
        workers: settings.workers,
        stale_after: settings.job_stale_after,
        max_attempts: settings.job_max_attempts,
        sync_wait: settings.sync_wait,
        idempotency_ttl: settings.idempotency_ttl,
        max_takeovers: settings.job_max_takeovers,
        ..EngineConfig::default()
    };
    let jobs = Jobs::open(&settings.database_url, pipeline, config).await.map_err(anyhow::Error::msg)?;
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

pub fn worker() -> anyhow::Result<Outcome> {
    let settings = Settings::from_env(None).context("invalid settings")?;
    super::serve::init_logging(settings.log_json);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let provider_config = ProviderConfig::from_env().context("invalid provider settings")?;
    runtime.block_on(async {
        let providers = Providers::from_config(&provider_config)?;
        tracing::info!(providers = %providers.summary(), "providers ready");
        let state = super::serve::app_state(&settings, providers, FlavorSource::Embedded).await?;
        let jobs = open_jobs(&settings, Arc::new(Generations::new(state))).await?;
        let shutdown = CancellationToken::new();
        let workers = jobs.start_workers(shutdown.clone());
        tracing::info!(workers = settings.workers, "mvgen worker running; SIGTERM or SIGINT stops it");
        let mut signals = crate::serving::signals::listen();
        let signal = signals.recv().await.unwrap_or("end of signals");
        tracing::info!(signal, "stopping job workers");
        stop_workers(&jobs, shutdown, workers).await;
        Ok(Outcome::Success)
    })
}
