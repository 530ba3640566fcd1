//! `mvgen worker`: job workers only, no HTTP (for replicas that render but serve nothing).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::{Outcome, lifecycle};
use crate::jobs::Generations;
use crate::live_configs::FlavorSource;
use crate::providers::{ProviderConfig, Providers};
use crate::server::Settings;

/// Runs the job workers until SIGTERM or SIGINT, then releases their running jobs to the queue.
/// With `metrics_addr` (or `MVGEN_METRICS_ADDR`) it also serves `/metrics` there.
pub fn worker(metrics_addr: Option<SocketAddr>) -> anyhow::Result<Outcome> {
    let settings = Settings::from_env(None).context("invalid settings")?;
    let metrics_addr = match metrics_addr {
        Some(addr) => Some(addr),
        None => metrics_addr_from_env().context("invalid settings")?,
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let exporting = lifecycle::init_logging(settings.log_json, runtime.handle())?;
    let provider_config = ProviderConfig::from_env().context("invalid provider settings")?;
    let outcome = runtime.block_on(async {
        let providers = Providers::from_config(&provider_config)?;
        tracing::info!(providers = %providers.summary(), "providers ready");
        let state = lifecycle::app_state(&settings, providers, FlavorSource::Embedded).await?;
        let jobs = lifecycle::open_jobs(
            &settings,
            Arc::new(Generations::new(state.clone())),
            lifecycle::application_name("worker", None),
        )
        .await?;
        let shutdown = CancellationToken::new();
        // Before the workers start, so the queue gauges are recorded from their first read.
        let metrics = match metrics_addr {
            Some(addr) => Some(serve_metrics(addr, &settings, shutdown.clone()).await?),
            None => None,
        };
        let workers = jobs.start_workers(shutdown.clone());
        let projects = super::serve::drive_projects(&settings, &state, &jobs, &shutdown);
        let webhooks = lifecycle::start_webhooks(&jobs, &settings, shutdown.clone())?;
        tracing::info!(workers = settings.workers, "mvgen worker running; SIGTERM or SIGINT stops it");
        let mut signals = crate::serving::signals::listen();
        let signal = signals.recv().await.unwrap_or("end of signals");
        tracing::info!(signal, "stopping job workers");
        lifecycle::stop_workers(&jobs, shutdown, workers).await;
        if let Some(projects) = projects {
            let _ = projects.await;
        }
        if let Some(webhooks) = webhooks {
            let _ = webhooks.await;
        }
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        Ok(Outcome::Success)
    });
    lifecycle::stop_exporting(exporting);
    outcome
}

/// `MVGEN_METRICS_ADDR`, when set: an address like `0.0.0.0:9100`.
fn metrics_addr_from_env() -> anyhow::Result<Option<SocketAddr>> {
    match std::env::var("MVGEN_METRICS_ADDR") {
        Ok(value) => value
            .parse()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("MVGEN_METRICS_ADDR={value:?}: expected an address like 0.0.0.0:9100 ({e})")),
        Err(_) => Ok(None),
    }
}

/// Binds `addr` (failing the start when it cannot) and serves the metrics app there until
/// `shutdown`; the task ends once the server has closed.
async fn serve_metrics(
    addr: SocketAddr,
    settings: &Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    if let Some(handle) = crate::telemetry::install() {
        crate::background::spawn_task(crate::telemetry::upkeep(handle));
    }
    let app = crate::server::metrics_app(settings);
    tracing::info!("mvgen worker metrics on http://{local}/metrics");
    Ok(crate::background::spawn_task(async move {
        // The server's own connection handling (header and idle timeouts, a connection cap).
        let stopped = async move { shutdown.cancelled().await };
        if let Err(e) = crate::server::serve(listener, app, stopped).await {
            tracing::warn!(error = %e, "the metrics server stopped");
        }
    }))
}
