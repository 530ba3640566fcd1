//! `mvgen serve` (also what `mvgen` does with no subcommand): logging, providers, storage, then the
//! HTTP server until SIGTERM or SIGINT (a second one cuts the drain short).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};

use super::{NegativeAnswer, Outcome, lifecycle};
use crate::jobs::Generations;
use crate::live_configs::{FlavorSource, LiveConfigs, StartError};
use crate::providers::{ProviderConfig, Providers};
use crate::server::{self, Settings};
use crate::serving;

/// How long before the drain's deadline sync requests still waiting on their job are answered:
/// time to read the job and write the answer before the connections are cut.
const SYNC_ANSWER_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves until a signal. A drain that had to cut requests is a negative answer (exit 1), for the
/// supervisor; anything that stops the server from starting is an error.
pub fn serve(addr: Option<SocketAddr>, configs: Option<&Path>) -> anyhow::Result<Outcome> {
    let settings = Settings::from_env(addr).context("invalid settings")?;
    // Before logging: the trace exporter, when configured, sends its spans on this runtime.
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let exporting = lifecycle::init_logging(settings.log_json, runtime.handle())?;
    // The metrics recorder's clock (quanta) calibrates itself against the system clock the first
    // time one is made in the process: at least 500 rounds of a 1 µs busy loop, which on the
    // main thread, when the recorder is installed, was a third of a fresh start's instructions
    // (callgrind; BENCHMARKS.md, issue 22), spent before the first request could be served. Made
    // here on a thread of its own, the calibration runs beside the database's creation, and
    // `server::app_with_jobs` installs the recorder with it done (or waits for it). Only the
    // clock: the recorder itself is still installed there, on the main thread, before the router
    // exists, so no request goes uncounted. Should the thread not start, the install calibrates
    // as before.
    if settings.metrics {
        let _ = std::thread::Builder::new().name("mvgen-clock".into()).spawn(|| drop(quanta::Clock::new()));
    }
    let flavors = match configs {
        None => FlavorSource::Embedded,
        Some(dir) => FlavorSource::Live(open_configs(dir)?),
    };
    let provider_config = ProviderConfig::from_env().context("invalid provider settings")?;
    let drained = runtime.block_on(run(settings, provider_config, flavors));
    lifecycle::stop_exporting(exporting);
    let drained = drained?;
    // The drain deadline or a second signal cut connections: say so to the supervisor.
    Ok(if drained.connections_cut == 0 { Outcome::Success } else { Outcome::Negative })
}

/// `--configs DIR`: unusable is an error (exit 2); a tree that does not compile prints its
/// diagnostics and is a negative answer (exit 1), as with `mvgen check`.
fn open_configs(dir: &Path) -> anyhow::Result<Arc<LiveConfigs>> {
    LiveConfigs::open(dir).map_err(|e| match e {
        StartError::Unusable(why) => anyhow!(why),
        StartError::Invalid(diags) => {
            eprintln!("{diags}");
            NegativeAnswer(format!("--configs {}: does not compile; nothing to serve", dir.display())).into()
        }
    })
}

async fn run(
    settings: Settings,
    provider_config: ProviderConfig,
    flavors: FlavorSource,
) -> anyhow::Result<serving::Drained> {
    let providers = Providers::from_config(&provider_config)?;
    tracing::info!(providers = %providers.summary(), "providers ready");
    let names = flavors.names();
    if let FlavorSource::Live(live) = &flavors {
        live.watch()?;
        tracing::info!(
            dir = %live.dir().display(),
            flavors = %names.join(", "),
            "live configs: serving flavors compiled from {}, recompiled on every change (not the embedded ones)",
            live.dir().display()
        );
    }
    if settings.debug {
        let source = if matches!(flavors, FlavorSource::Live(_)) { "live" } else { "embedded" };
        tracing::info!(count = names.len(), flavors = %names.join(", "), "debug mode: {source} config flavors");
    }
    let listener = serving::bind(settings.addr).with_context(|| format!("cannot listen on {}", settings.addr))?;
    let local = listener.local_addr()?;
    let state = lifecycle::unchecked_app_state(&settings, providers, flavors)?;
    let pipeline = Arc::new(Generations::new(state.clone()));
    let name = lifecycle::application_name("serve", Some(local.port()));
    // The store's check (directories, a probe write) and the jobs database's opening (on a fresh
    // output dir its creation, with two fsyncs) both wait mostly on the disk: run side by side,
    // a start waits for the longer, not the sum (BENCHMARKS.md, issue 22). Neither serves a
    // request before both are done; a store that fails is reported first, as when it was
    // checked first.
    let (checked, jobs) =
        tokio::join!(lifecycle::check_storage(&state), lifecycle::open_jobs(&settings, pipeline, name));
    checked?;
    let jobs = jobs?;
    let job_shutdown = tokio_util::sync::CancellationToken::new();
    let workers = jobs.start_workers(job_shutdown.clone());
    let projects = drive_projects(&settings, &state, &jobs, &job_shutdown);
    let webhooks = lifecycle::start_webhooks(&jobs, &settings, job_shutdown.clone())?;
    let outputs = state.storage.describe();
    // Whether auth is on, never the keys themselves.
    match settings.api_keys.len() {
        0 if local.ip().is_loopback() => tracing::info!("API key auth is off: API_KEY is not set, /api/* is open"),
        0 => tracing::warn!("API key auth is off: API_KEY is not set, /api/* is open to anyone who can reach {local}"),
        n => tracing::info!(keys = n, "API key auth is on: /api/* needs X-API-Key"),
    }
    tracing::info!("mvgen listening on http://{local} ({} flavors, outputs in {outputs})", names.len(),);
    if settings.cors_origins.is_empty() {
        tracing::info!("CORS off (CORS_ORIGINS=none)");
    } else {
        tracing::info!(origins = %settings.cors_origins.join(", "), "CORS allows these browser origins");
    }
    let router = server::app_with_jobs(state, &settings, Some(jobs.clone()));
    // With MVGEN_METRICS=false no recorder is installed at all, so nothing records.
    if let Some(handle) = settings.metrics.then(crate::telemetry::install).flatten() {
        crate::background::spawn_task(crate::telemetry::upkeep(handle));
    }
    // Event streams never end by themselves while a job runs: on the first signal they end, so
    // the drain is not held open to its deadline (clients reconnect with Last-Event-ID elsewhere).
    // Sync requests still waiting on their job when the drain's deadline nears are answered
    // (503 `JobStillRunning`, `X-Job-Id`) rather than cut without a word.
    let mut first_signal = serving::signals::listen();
    let streams = jobs.clone();
    let answer_by = settings.connections.drain_timeout.saturating_sub(SYNC_ANSWER_MARGIN);
    crate::background::spawn_task(async move {
        if first_signal.recv().await.is_some() {
            streams.end_streams();
            tokio::time::sleep(answer_by).await;
            streams.answer_sync_waiters();
        }
    });
    let served = serving::serve(listener, router, settings.connections, serving::signals::listen()).await;
    lifecycle::stop_workers(&jobs, job_shutdown, workers).await;
    if let Some(projects) = projects {
        let _ = projects.await;
    }
    if let Some(webhooks) = webhooks {
        let _ = webhooks.await;
    }
    served.context("server error")
}

/// The projects being made server-side, advanced by a process that runs job workers (an API-only
/// replica, `MVGEN_WORKERS=0`, leaves them to the others).
pub(super) fn drive_projects(
    settings: &Settings,
    state: &crate::state::AppState,
    jobs: &Arc<crate::jobs::Jobs>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    (settings.workers > 0).then(|| {
        crate::projects::drive::start(state.clone(), jobs.clone(), settings.project_parallel, shutdown.clone())
    })
}
