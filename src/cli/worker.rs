//! `mvgen worker`: job workers only, no HTTP (for replicas that render but serve nothing).

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::{Outcome, lifecycle};
use crate::jobs::Generations;
use crate::live_configs::FlavorSource;
use crate::providers::{ProviderConfig, Providers};
use crate::server::Settings;

/// Runs the job workers until SIGTERM or SIGINT, then releases their running jobs to the queue.
pub fn worker() -> anyhow::Result<Outcome> {
    let settings = Settings::from_env(None).context("invalid settings")?;
    lifecycle::init_logging(settings.log_json);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let provider_config = ProviderConfig::from_env().context("invalid provider settings")?;
    runtime.block_on(async {
        let providers = Providers::from_config(&provider_config)?;
        tracing::info!(providers = %providers.summary(), "providers ready");
        let state = lifecycle::app_state(&settings, providers, FlavorSource::Embedded).await?;
        let jobs = lifecycle::open_jobs(
            &settings,
            Arc::new(Generations::new(state)),
            lifecycle::application_name("worker", None),
        )
        .await?;
        let shutdown = CancellationToken::new();
        let workers = jobs.start_workers(shutdown.clone());
        tracing::info!(workers = settings.workers, "mvgen worker running; SIGTERM or SIGINT stops it");
        let mut signals = crate::serving::signals::listen();
        let signal = signals.recv().await.unwrap_or("end of signals");
        tracing::info!(signal, "stopping job workers");
        lifecycle::stop_workers(&jobs, shutdown, workers).await;
        Ok(Outcome::Success)
    })
}
