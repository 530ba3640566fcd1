//! `mvgen serve` (also what `mvgen` does with no subcommand): logging, providers, storage, then the
//! HTTP server until SIGTERM or SIGINT (a second one cuts the drain short).

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use crate::api::AppState;
use crate::live_configs::{FlavorSource, LiveConfigs, StartError};
use crate::providers::{ProviderConfig, Providers};
use crate::server::{self, Settings};
use crate::serving;
use crate::storage::LocalStorage;
use crate::storage::url::Location;

pub fn serve(addr: Option<SocketAddr>, configs: Option<&Path>) -> ExitCode {
    let settings = match Settings::from_env(addr) {
        Ok(s) => s,
        Err(e) => return fail(&format!("invalid settings: {e}")),
    };
    init_logging(settings.log_json);
    let flavors = match configs.map(LiveConfigs::open).transpose() {
        Ok(None) => FlavorSource::Embedded,
        Ok(Some(live)) => FlavorSource::Live(live),
        Err(StartError::Unusable(e)) => return fail(&e),
        Err(StartError::Invalid(diags)) => {
            eprintln!("{diags}");
            eprintln!(
                "mvgen: --configs {}: does not compile; nothing to serve",
                configs.unwrap_or(Path::new("")).display()
            );
            return ExitCode::from(1);
        }
    };
    let provider_config = match ProviderConfig::from_env() {
        Ok(c) => c,
        Err(e) => return fail(&format!("invalid provider settings: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(settings, provider_config, flavors)) {
        Ok(drained) if drained.connections_cut == 0 => ExitCode::SUCCESS,
        // The drain deadline or a second signal cut connections: say so to the supervisor.
        Ok(_) => ExitCode::FAILURE,
        Err(e) => fail(&e),
    }
}

async fn run(
    settings: Settings,
    provider_config: ProviderConfig,
    flavors: FlavorSource,
) -> Result<serving::Drained, String> {
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
    let listener = serving::bind(settings.addr).map_err(|e| format!("cannot listen on {}: {e}", settings.addr))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    if let Location::Local(dir) = &settings.storage {
        match LocalStorage::new(dir).remove_stale_partials() {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed stale partial files left by an interrupted write"),
            Err(e) => tracing::warn!(error = %e, "could not clean up stale partial files"),
        }
    }
    let storage = crate::storage::url::open(&settings.storage)?;
    // A store that can't take a write fails here, before the first request would.
    storage.check().await.map_err(|e| {
        format!("storage {} is not usable (reachable and writable is required): {e}", storage.describe())
    })?;
    let outputs = storage.describe();
    let state = AppState {
        providers,
        storage,
        debug: settings.debug,
        strict_flavors: settings.strict_flavors,
        generations: crate::api::limits::GenerationSlots::new(settings.max_concurrent_generations),
        flavors,
    };
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
    let router = server::app(state, &settings);
    // With MVGEN_METRICS=false no recorder is installed at all, so nothing records.
    if let Some(handle) = settings.metrics.then(crate::telemetry::install).flatten() {
        tokio::spawn(crate::telemetry::upkeep(handle));
    }
    serving::serve(listener, router, settings.connections, serving::signals::listen())
        .await
        .map_err(|e| format!("server error: {e}"))
}

/// `RUST_LOG` filters (default `info`); `MVGEN_LOG_FORMAT=json` writes JSON lines.
fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log collectors and files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("mvgen: {message}");
    ExitCode::from(2)
}
