//! What `mvgen serve` and `mvgen worker` both start and stop: logging, the state the handlers and
//! job workers share, the jobs engine, and the workers' stop. Each command's own flow stays in its
//! module; both stand on this one and neither on the other.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::jobs::store::Schema;
use crate::jobs::{EngineConfig, JobPipeline, Jobs};
use crate::live_configs::FlavorSource;
use crate::providers::Providers;
use crate::server::Settings;
use crate::state::AppState;
use crate::storage::local::LocalStorage;
use crate::storage::url::Location;
use crate::trace_export::Exporting;

/// Opens the jobs database (creating the output dir for the default SQLite file) and migrates it,
/// or checks it is current (`MVGEN_MIGRATE_ON_START=false`). `name` names this process in
/// PostgreSQL's `pg_stat_activity` (see [`application_name`]).
pub(super) async fn open_jobs(
    settings: &Settings,
    pipeline: Arc<dyn JobPipeline>,
    name: String,
) -> anyhow::Result<Arc<Jobs>> {
    create_sqlite_dir(settings)?;
    let config = EngineConfig {
        workers: settings.workers,
        stale_after: settings.job_stale_after,
        max_attempts: settings.job_max_attempts,
        sync_wait: settings.sync_wait,
        idempotency_ttl: settings.idempotency_ttl,
        max_takeovers: settings.job_max_takeovers,
        retention: settings.job_retention,
        max_queued: settings.max_queued_jobs,
        max_queued_per_key: settings.max_queued_per_key,
        schema: if settings.migrate_on_start { Schema::Migrate } else { Schema::Require },
        application_name: Some(name),
        webhooks: settings.webhooks.policy(),
        render_project: Some(crate::projects::hooks::webhook_body),
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

/// The default SQLite file's directory, created on first start (the file itself SQLite creates).
pub(super) fn create_sqlite_dir(settings: &Settings) -> anyhow::Result<()> {
    if settings.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.output_dir)
            .with_context(|| format!("cannot create {}", settings.output_dir.display()))?;
    }
    Ok(())
}

/// `mvgen <command>@<host name>[:<port>]`, e.g. `mvgen serve@web-7f9c:8000` or
/// `mvgen worker@render-2`: what a DBA sees in `pg_stat_activity.application_name` to find the
/// process behind a connection. The host is the kernel's host name (a pod's name in Kubernetes),
/// or `unknown`; the port is the one `serve` listens on, which tells apart two on one host.
pub(super) fn application_name(command: &str, port: Option<u16>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "unknown" } else { &host };
    match port {
        Some(port) => format!("mvgen {command}@{host}:{port}"),
        None => format!("mvgen {command}@{host}"),
    }
}

/// Starts this process's webhook sender (none while webhooks are off); it stops at `shutdown`.
pub(super) fn start_webhooks(
    jobs: &Arc<Jobs>,
    settings: &Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    crate::webhooks::sender::start(jobs, &settings.webhooks, shutdown).map_err(anyhow::Error::msg)
}

/// Stops the workers: they claim nothing more and release running jobs to the queue (another
/// replica, or this one after a restart, resumes them); then closes the database.
pub(super) async fn stop_workers(jobs: &Jobs, shutdown: CancellationToken, workers: TaskTracker) {
    shutdown.cancel();
    if tokio::time::timeout(Duration::from_secs(10), workers.wait()).await.is_err() {
        tracing::warn!("job workers did not stop in 10 s; their jobs will be taken over once stale");
    }
    jobs.close().await;
}

/// What the handlers and the job workers share, its store checked (see [`unchecked_app_state`]
/// and [`check_storage`]).
pub(super) async fn app_state(
    settings: &Settings,
    providers: Providers,
    flavors: FlavorSource,
) -> anyhow::Result<AppState> {
    let state = unchecked_app_state(settings, providers, flavors)?;
    check_storage(&state).await?;
    Ok(state)
}

/// What the handlers and the job workers share, its store not yet checked; also cleans up
/// partial files an interrupted write left behind (no write is running yet).
pub(super) fn unchecked_app_state(
    settings: &Settings,
    providers: Providers,
    flavors: FlavorSource,
) -> anyhow::Result<AppState> {
    if let Location::Local(dir) = &settings.storage {
        match LocalStorage::new(dir).remove_stale_partials() {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed stale partial files left by an interrupted write"),
            Err(e) => tracing::warn!(error = %e, "could not clean up stale partial files"),
        }
    }
    let storage =
        crate::storage::url::open(&settings.storage, &settings.storage_options).map_err(anyhow::Error::msg)?;
    Ok(AppState {
        providers,
        storage,
        debug: settings.debug,
        strict_flavors: settings.strict_flavors,
        generations: crate::limits::GenerationSlots::new(settings.max_concurrent_generations),
        flavors,
    })
}

/// A store that can't take a write fails here, before the first request would.
pub(super) async fn check_storage(state: &AppState) -> anyhow::Result<()> {
    state.storage.check().await.map_err(|e| {
        anyhow!("storage {} is not usable (reachable and writable is required): {e}", state.storage.describe())
    })
}

/// `RUST_LOG` filters (default `info`); `MVGEN_LOG_FORMAT=json` writes JSON lines. With an OTLP
/// endpoint configured (`crate::trace_export`) the same spans are also exported, their requests
/// run on `runtime`; the returned exporter must be shut down on exit to send the last spans.
pub(super) fn init_logging(json: bool, runtime: &tokio::runtime::Handle) -> anyhow::Result<Option<Exporting>> {
    use crate::log_fields::WithRequest;
    use crate::request_id::LogContext;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let exporting = crate::trace_export::start(runtime.clone()).map_err(|e| anyhow!("invalid settings: {e}"))?;
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    // Colours only on a terminal: log collectors and files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    // A request span only when something needs one (`request_id::LogContext`): exported traces,
    // and coloured text (its context is not spliced in). Otherwise the log's event format writes
    // the same `request{request_id=…}` into the lines logged while a request is handled, and only
    // when the filter would have kept the span.
    let context = if exporting.is_some() || (ansi && !json) {
        LogContext::Span
    } else if filter.would_enable(crate::request_id::SPAN_TARGET, &tracing::Level::INFO) {
        LogContext::Written
    } else {
        LogContext::Dropped
    };
    // `None` when not configured: the subscriber then has no OpenTelemetry layer at all.
    let otel = exporting.as_ref().map(Exporting::layer);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    if json {
        registry.with(fmt.json().map_event_format(WithRequest::json)).init();
    } else {
        // `DefaultFields`' text, with each request span's id written in one piece.
        registry.with(fmt.fmt_fields(crate::log_fields::Fields).map_event_format(WithRequest::text)).init();
    }
    crate::request_id::set_log_context(context);
    if exporting.is_some() {
        let endpoint = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
            .iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
            .unwrap_or_default();
        tracing::info!(endpoint = %endpoint, "trace export on: spans go over OTLP/HTTP (protobuf) to {endpoint}");
    }
    Ok(exporting)
}

/// Flushes the trace exporter, if any, off the runtime's threads (its export runs on them).
pub(super) fn stop_exporting(exporting: Option<Exporting>) {
    if let Some(exporting) = exporting {
        exporting.shutdown();
    }
}

/// `RUST_LOG` as a list of `level` and `target=level` directives (`warn,mvgen::jobs=debug`): the
/// longest matching target wins. A `Targets` filter rather than `EnvFilter`: the span and field
/// directives only `EnvFilter` knows need a regex engine, a quarter of a megabyte of the binary
/// (BENCHMARKS.md), and nobody filters mvgen's logs by span. Unset, blank or unparsable: `info`,
/// as before (a typo must not silence the log).
fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::Targets;
    let filter = rust_log
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| v.trim().parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    // sqlx logs every PostgreSQL NOTICE at info. The only one mvgen's SQL causes is sqlx's own
    // `CREATE TABLE IF NOT EXISTS _sqlx_migrations` ("relation … already exists, skipping") on
    // each start that migrates an existing schema: noise in every rolling deploy's log. Raised to
    // warn (PostgreSQL's WARNINGs still show), unless RUST_LOG says what it wants of sqlx.
    if rust_log.is_some_and(|v| v.contains("sqlx")) {
        filter
    } else {
        filter.with_target("sqlx::postgres::notice", tracing::Level::WARN)
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_is_a_list_of_target_levels_and_defaults_to_info() {
        let filter = log_filter(Some("warn,mvgen::jobs=debug,sqlx=off"));
        assert!(filter.would_enable("mvgen::jobs::engine", &Level::DEBUG), "the longest target wins");
        assert!(!filter.would_enable("mvgen::server", &Level::INFO));
        assert!(filter.would_enable("mvgen::server", &Level::WARN));
        assert!(!filter.would_enable("sqlx::query", &Level::ERROR));
        for unset in [None, Some(""), Some("  "), Some("mvgen=loud")] {
            let filter = log_filter(unset);
            assert!(
                filter.would_enable("mvgen", &Level::INFO) && !filter.would_enable("mvgen", &Level::DEBUG),
                "{unset:?}"
            );
        }
        assert!(!log_filter(Some("off")).would_enable("mvgen", &Level::ERROR));
        // PostgreSQL's NOTICEs (sqlx's own migrations table, on every start) only at warn, unless
        // RUST_LOG names sqlx.
        assert!(!log_filter(None).would_enable("sqlx::postgres::notice", &Level::INFO));
        assert!(log_filter(None).would_enable("sqlx::postgres::notice", &Level::WARN));
        assert!(log_filter(Some("info,sqlx=info")).would_enable("sqlx::postgres::notice", &Level::INFO));
    }
}
