//! The HTTP server: settings from the environment, and the middleware around the routes
//! (`api::routes`: API, health, OpenAPI, create page): auth, CORS, body limit, metrics, request ids.
//! Connections and shutdown are run by [`crate::serving`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use axum::Router;

use axum::http::{HeaderValue, Method};
use axum::response::Response;
use serde_json::json;
use tower::util::{Either, MapResponse};

use crate::api;
use crate::api::extract::RefuseOversize;
use crate::api_keys::{ApiKey, ApiKeys};
use crate::error::{ApiError, ErrorKind};
use crate::key_check::{KeyCheck, KeyCheckLayer};
use crate::state::AppState;
use crate::telemetry::{RequestMetrics, RouteNames};

/// Server settings, read once at startup.
#[derive(Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub debug: bool,
    pub strict_flavors: bool,
    pub output_dir: PathBuf,
    /// `API_KEY`: when non-empty, every `/api/*` request must present one of these (an entry
    /// `hash:<sha256 hex>` matches a key by its digest, see `api_keys`).
    pub api_keys: Vec<String>,
    /// `CORS_ORIGINS`: browser origins allowed to call the API; unset means
    /// [`DEFAULT_CORS_ORIGINS`], `none` means CORS off (an empty list).
    pub cors_origins: Vec<String>,
    pub log_json: bool,
    /// `MVGEN_ACCESS_LOG`: one log line per request. Off by default: writing a line per request
    /// costs more CPU than serving a flavor list (see BENCHMARKS.md).
    pub access_log: bool,
    /// `MV_MAX_CONCURRENT_GENERATIONS`: generation requests running at once; past it a 503.
    pub max_concurrent_generations: usize,
    /// Connection timeouts, cap and shutdown drain (`MVGEN_*_TIMEOUT_SECS`, `MVGEN_MAX_CONNECTIONS`).
    pub connections: crate::serving::Limits,
    /// `MVGEN_METRICS` (on unless `false`): `GET /metrics` and the per-request counter layer.
    pub metrics: bool,
    /// `MVGEN_DATABASE_URL`: the jobs database; by default an SQLite file beside the outputs
    /// (`sqlite://<MV_OUTPUT_DIR>/jobs.db`), `postgres://…` for replicas sharing one queue.
    pub database_url: String,
    /// `MVGEN_WORKERS`: jobs this process runs at once (`mvgen serve` and `mvgen worker`).
    pub workers: usize,
    /// `MVGEN_PROJECT_PARALLEL`: scene videos one project made server-side renders at once.
    pub project_parallel: usize,
    /// `MVGEN_JOB_STALE_AFTER` (seconds): a running job whose heartbeat is older is taken over.
    pub job_stale_after: std::time::Duration,
    /// `MVGEN_JOB_MAX_ATTEMPTS`: claims of a job before a retryable failure is final.
    pub job_max_attempts: u32,
    /// `MVGEN_JOB_MAX_TAKEOVERS`: takeovers (its worker died) after which a job is failed.
    pub job_max_takeovers: u32,
    /// `MVGEN_IDEMPOTENCY_TTL` (seconds): how long an `Idempotency-Key` replays its first answer.
    pub idempotency_ttl: std::time::Duration,
    /// `MVGEN_SYNC_WAIT` (seconds): how long a sync generation waits for its job before a 504
    /// naming the job, which goes on.
    pub sync_wait: std::time::Duration,
    /// `MVGEN_JOB_RETENTION` (seconds): finished jobs older than this are purged.
    pub job_retention: std::time::Duration,
    /// `MVGEN_MAX_QUEUED_JOBS`: queued jobs past which a submission is refused (503 `QueueFull`).
    pub max_queued_jobs: u64,
    /// `MVGEN_MAX_QUEUED_PER_KEY`: the same, per API key (when `API_KEY` is set).
    pub max_queued_per_key: u64,
    /// `MVGEN_STORAGE_URL`: where outputs are kept (`file://…`, default `MV_OUTPUT_DIR`; `s3://…`).
    pub storage: crate::storage::url::Location,
    /// `MVGEN_STORAGE_TIMEOUT` and `MVGEN_STORAGE_PUBLIC_URL`, for an `s3://` store.
    pub storage_options: crate::storage::object::Options,
    /// `MVGEN_MIGRATE_ON_START` (default true): `serve` and `worker` apply missing migrations at
    /// start; false: they refuse an older schema and say to run `mvgen migrate`.
    pub migrate_on_start: bool,
    /// `MV_MAX_AUDIO_BYTES`: the largest song `upload_audio` stores.
    pub max_audio_bytes: u64,
    /// `MVGEN_WEBHOOK_*`: outbound webhooks (secrets, retry scale, private targets).
    pub webhooks: crate::webhooks::Settings,
    /// `MV_MAX_SONG_SECONDS`: how much of a song the beat analysis reads.
    pub max_song_seconds: u32,
}

impl std::fmt::Debug for Settings {
    // Keys must never reach a log line, even through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("debug", &self.debug)
            .field("strict_flavors", &self.strict_flavors)
            .field("output_dir", &self.output_dir)
            .field("api_keys", &format_args!("[{} redacted]", self.api_keys.len()))
            .field("cors_origins", &self.cors_origins)
            .field("log_json", &self.log_json)
            .field("access_log", &self.access_log)
            .field("max_concurrent_generations", &self.max_concurrent_generations)
            .field("connections", &self.connections)
            .field("metrics", &self.metrics)
            .field("database_url", &crate::jobs::store::redact(&self.database_url))
            .field("workers", &self.workers)
            .field("project_parallel", &self.project_parallel)
            .field("job_stale_after", &self.job_stale_after)
            .field("job_max_attempts", &self.job_max_attempts)
            .field("sync_wait", &self.sync_wait)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("job_max_takeovers", &self.job_max_takeovers)
            .field("job_retention", &self.job_retention)
            .field("max_queued_jobs", &self.max_queued_jobs)
            .field("max_queued_per_key", &self.max_queued_per_key)
            .field("storage", &self.storage)
            .field("storage_options", &self.storage_options)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("max_audio_bytes", &self.max_audio_bytes)
            .field("webhooks", &self.webhooks)
            .field("max_song_seconds", &self.max_song_seconds)
            .finish()
    }
}

/// Generations running at once by default: each may hold a downloaded video (up to
/// `MV_MAX_VIDEO_BYTES`) in memory, and real renders take minutes. 64 still serves a client
/// keeping 64 connections busy with scene requests (tests/e2e/mixed_flavors.rs) without a 503.
pub const DEFAULT_MAX_CONCURRENT_GENERATIONS: usize = 64;

/// Jobs one process runs at once by default (`MVGEN_WORKERS`).
pub const DEFAULT_WORKERS: usize = 4;

/// A day in seconds: the longest most duration settings may be.
const DAY: u64 = 24 * 60 * 60;

/// The largest queue limit (`MVGEN_MAX_QUEUED_JOBS`, `MVGEN_MAX_QUEUED_PER_KEY`).
const MAX_QUEUE_LIMIT: u64 = 1_000_000;

/// The address used when nothing else is configured.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";

/// The origins allowed when `CORS_ORIGINS` is unset: the Next.js dev server of the front end the
/// service mvgen replaces allowed by default, so that front end works against mvgen unchanged.
pub const DEFAULT_CORS_ORIGINS: [&str; 2] = ["http://localhost:3000", "http://localhost:3001"];

impl Settings {
    /// Reads the environment through `var`; `addr` (from `--addr`) wins over `MVGEN_ADDR` and `PORT`.
    pub fn from_vars(addr: Option<SocketAddr>, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let addr = match (addr, var("MVGEN_ADDR"), var("PORT")) {
            (Some(a), _, _) => a,
            (None, Some(a), _) => a.parse().with_context(|| format!("MVGEN_ADDR={a:?}"))?,
            (None, None, Some(p)) => {
                let port: u16 = p.trim().parse().with_context(|| format!("PORT={p:?}"))?;
                SocketAddr::from(([127, 0, 0, 1], port))
            }
            (None, None, None) => DEFAULT_ADDR.parse()?,
        };
        let list = |name: &str| -> Vec<String> {
            var(name)
                .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                .unwrap_or_default()
        };
        let cors_origins = match var("CORS_ORIGINS") {
            Some(v) if v.trim().eq_ignore_ascii_case("none") => Vec::new(),
            Some(v) if !v.trim().is_empty() => list("CORS_ORIGINS"),
            _ => DEFAULT_CORS_ORIGINS.map(String::from).to_vec(),
        };
        for origin in &cors_origins {
            let valid = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && HeaderValue::from_str(origin).is_ok());
            if !valid {
                bail!("CORS_ORIGINS: {origin:?} is not an origin such as https://studio.example or *");
            }
        }
        let api_keys = list("API_KEY");
        // `API_KEY=" , "` would otherwise parse to no keys and leave the API open while the operator
        // believes it is locked: a set but keyless value is a mistake, not a request for no auth.
        if var("API_KEY").is_some() && api_keys.is_empty() {
            bail!(
                "API_KEY is set but holds no key: give at least one key (comma-separated), or unset API_KEY to \
                 run without authentication"
            );
        }
        for entry in &api_keys {
            ApiKey::parse(entry).map_err(|e| anyhow!("API_KEY: {e}"))?;
        }
        let output_dir = var("MV_OUTPUT_DIR").map_or_else(|| PathBuf::from("mv-outputs"), PathBuf::from);
        // A whole-number setting and the bounds it can be honoured within; each call below says why.
        let whole = |name: &str, default: u64, bounds: std::ops::RangeInclusive<u64>| -> anyhow::Result<u64> {
            match var(name) {
                None => Ok(default),
                Some(v) => v.trim().parse().ok().filter(|n| bounds.contains(n)).ok_or_else(|| {
                    anyhow!("{name}={v:?}: expected a whole number from {} to {}", bounds.start(), bounds.end())
                }),
            }
        };
        let secs = |name: &str, default: u64, bounds: std::ops::RangeInclusive<u64>| {
            whole(name, default, bounds).map(std::time::Duration::from_secs)
        };
        let storage =
            crate::storage::url::parse(var("MVGEN_STORAGE_URL").as_deref(), &output_dir).map_err(anyhow::Error::msg)?;
        Ok(Settings {
            // At most 4 GiB: a song is streamed to the store, never held, but a bigger "song" is
            // an hours-long recording or a mistake, and the final cut reads it through twice.
            max_audio_bytes: whole("MV_MAX_AUDIO_BYTES", crate::limits::DEFAULT_MAX_AUDIO_BYTES, 1..=4 << 30)?,
            webhooks: crate::webhooks::Settings::from_vars(&var)?,
            // At most 24 hours: the analysis holds ~86 envelope values a second (a day is 30 MB).
            max_song_seconds: whole(
                "MV_MAX_SONG_SECONDS",
                u64::from(crate::media::beats::DEFAULT_MAX_SONG_SECONDS),
                1..=86_400,
            )
            .map(|secs| secs as u32)?,
            addr,
            debug: truthy(var("MV_DEBUG_MODE")),
            strict_flavors: truthy(var("MV_STRICT_FLAVORS")),
            database_url: var("MVGEN_DATABASE_URL")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", output_dir.join("jobs.db").display())),
            // At most 1024: each worker holds a running job (a paid upstream run and its heartbeat);
            // more is a typo, not a fleet (several processes share one queue for that).
            workers: whole("MVGEN_WORKERS", DEFAULT_WORKERS as u64, 0..=1024)? as usize,
            project_parallel: whole("MVGEN_PROJECT_PARALLEL", 4, 1..=32)? as usize,
            // At least 1 s (heartbeats are a third of it); at most a day: past that a dead worker's
            // job waits days, and the value in milliseconds must stay far inside the i64 the
            // staleness cut-off is computed in (u64::MAX wrapped it, and workers stole live jobs).
            job_stale_after: secs("MVGEN_JOB_STALE_AFTER", 60, 1..=DAY)?,
            // Each try may pay for a prediction; 100 tries of a backoff capped at 60 s already
            // retry for over an hour and a half.
            job_max_attempts: whole("MVGEN_JOB_MAX_ATTEMPTS", 3, 1..=100)? as u32,
            // At most a day, as long as the longest provider deadline (MV_VIDEO_DEADLINE_SECS);
            // a client waiting longer should follow the job by its id.
            sync_wait: secs("MVGEN_SYNC_WAIT", 1200, 1..=DAY)?,
            // At most 30 days: longer is no retry window any client keeps, and the expiry is
            // computed in i64 milliseconds (a huge value wrapped and turned replay off).
            idempotency_ttl: secs("MVGEN_IDEMPOTENCY_TTL", 24 * 3600, 1..=30 * DAY)?,
            // At most 1000: a job that crashed its worker that often is a fault, not bad luck.
            job_max_takeovers: whole("MVGEN_JOB_MAX_TAKEOVERS", 10, 0..=1000)? as u32,
            // At least 1 s (a test's; the purge runs at most once a second); at most 10 years:
            // longer is "never", which a growing table cannot honour, and the cut-off stays far
            // inside the i64 milliseconds it is computed in.
            job_retention: secs("MVGEN_JOB_RETENTION", 7 * DAY, 1..=3650 * DAY)?,
            // At least 1; at most a million: the queued count (read at most every 100 ms per
            // process, `jobs::engine::quota`) walks one index entry per queued job up to the limit,
            // about 0.1 s at a million; a larger bound would let that read hold a connection long.
            max_queued_jobs: whole("MVGEN_MAX_QUEUED_JOBS", 10_000, 1..=MAX_QUEUE_LIMIT)?,
            max_queued_per_key: whole("MVGEN_MAX_QUEUED_PER_KEY", 1_000, 1..=MAX_QUEUE_LIMIT)?,
            output_dir,
            api_keys,
            cors_origins,
            log_json: var("MVGEN_LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json")),
            access_log: truthy(var("MVGEN_ACCESS_LOG")),
            // At most 1 Mi: each generation holds a connection, and Linux's default fd ceiling
            // (nr_open) is 1 Mi; far larger would also panic tokio's semaphore.
            max_concurrent_generations: whole(
                "MV_MAX_CONCURRENT_GENERATIONS",
                DEFAULT_MAX_CONCURRENT_GENERATIONS as u64,
                1..=1 << 20,
            )? as usize,
            connections: crate::serving::Limits::from_vars(&var)?,
            metrics: !var("MVGEN_METRICS")
                .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "false" | "0" | "no")),
            storage,
            storage_options: crate::storage::object::Options {
                // At least 0.1 s (a store on the same network answers a HEAD in milliseconds); at
                // most an hour: a deadline past that is none, and a hung store would hold each
                // request that long. Each part of an upload (5 MiB) must arrive within it.
                timeout: crate::providers::config::secs_setting(
                    &var,
                    "MVGEN_STORAGE_TIMEOUT",
                    crate::storage::object::DEFAULT_TIMEOUT,
                    std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(3600),
                )?,
                public_url: var("MVGEN_STORAGE_PUBLIC_URL")
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| crate::storage::url::public_url(&v))
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
            },
            // Default true: one command starts a fresh deployment, as before. A typo must not
            // silently pick either side (false lets a DDL-less replica refuse to start), so only
            // the usual words are accepted.
            migrate_on_start: match var("MVGEN_MIGRATE_ON_START") {
                None => true,
                Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => bail!("MVGEN_MIGRATE_ON_START={v:?}: expected true or false"),
                },
            },
        })
    }

    pub fn from_env(addr: Option<SocketAddr>) -> anyhow::Result<Settings> {
        Settings::from_vars(addr, |name| std::env::var(name).ok())
    }
}

/// `true`, `1` or `yes`, in any case.
fn truthy(value: Option<String>) -> bool {
    value.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// The whole application, as `serve` runs it: the request-id service around CORS (when on)
/// around [`Api`]. A tower service, so tests drive it with `oneshot` as they would a router.
pub type App = crate::request_id::RequestIds<Either<crate::cors::CorsHeaders<Api>, Api>>;

/// The router inside the request metrics (when on), the API key check (when keys are set), the
/// 5xx log and the oversize check: plain services around it, in that order from outside.
pub type Api = Either<RequestMetrics<Checked>, Checked>;
type Checked = Either<KeyCheck<Logged>, Logged>;
type Logged = MapResponse<RefuseOversize<Router>, fn(Response) -> Response>;

/// The whole application.
pub fn app(state: AppState, settings: &Settings) -> App {
    app_with_jobs(state, settings, None)
}

/// The application with the job routes (`/api/mv/jobs`) when an engine is given.
///
/// Each `Router::layer` call wraps every route in one more boxed service, and axum clones a
/// route's whole chain of boxes on every call (one allocation per box, at every level): with eight
/// levels a flavor-list GET made 110 heap allocations, bare axum 16 (BENCHMARKS.md, issue 22). So
/// no layer goes on the router's routes (beyond the extensions a few handlers read): every
/// middleware wraps the router from outside, as a plain service (no router, no box: each
/// connection keeps one copy of the whole, `serving::conn`). The request metrics, which need the
/// matched route, match the path themselves against the router's templates
/// ([`crate::telemetry::RouteNames`]).
pub fn app_with_jobs(state: AppState, settings: &Settings, jobs: Option<Arc<crate::jobs::Jobs>>) -> App {
    let metrics = settings.metrics && crate::telemetry::install().is_some();
    let songs = api::AudioLimit { max_bytes: settings.max_audio_bytes, max_song_seconds: settings.max_song_seconds };
    let api::Routed { router, templates } =
        api::routes(jobs, metrics, songs, settings.webhooks.replicate_secret.clone());
    if metrics {
        let listed = api::openapi::ROUTES.iter().chain(&templates);
        crate::telemetry::count_routes(listed.map(|route| (*route).to_owned()));
    }
    let router = router.fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(Arc::new(state));
    let api = tower::ServiceBuilder::new()
        // Outside the key check, so refused (401) calls are counted too.
        .option_layer(metrics.then(|| crate::telemetry::RequestMetricsLayer(RouteNames::new(&templates))))
        // Around the fallbacks too, so an unknown `/api/*` path or a wrong method is a 401 like
        // any other keyless call: without a key nobody learns which API routes exist. Without
        // keys there is nothing to check, and the layer is left out.
        .option_layer(
            (!settings.api_keys.is_empty()).then(|| KeyCheckLayer::new(ApiKeys::from_entries(&settings.api_keys))),
        )
        // Inside the request-id span, so a logged fault carries the request's id.
        .layer(tower::util::MapResponseLayer::new(crate::error::log_server_errors as fn(Response) -> Response))
        .layer(api::extract::RefuseDeclaredOversize)
        .service(router);
    let api = if settings.cors_origins.is_empty() {
        Either::Right(api)
    } else {
        Either::Left(crate::cors::around(&settings.cors_origins, api))
    };
    crate::request_id::around(api, settings.access_log)
}

/// What `mvgen worker --metrics-addr` serves: `GET /metrics` (behind `API_KEY` as on `serve`) and
/// `GET /health`, so a process without the API can still be scraped and probed.
pub fn metrics_app(settings: &Settings) -> Router {
    crate::telemetry::install();
    let mut router = Router::new()
        .route("/metrics", axum::routing::get(crate::telemetry::metrics_text))
        .route("/health", axum::routing::get(|| async { axum::Json(json!({ "status": "ok" })) }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    if !settings.api_keys.is_empty() {
        router = router.layer(KeyCheckLayer::new(ApiKeys::from_entries(&settings.api_keys)));
    }
    router
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no route for {method} {}", uri.path()), json!({ "path": uri.path() }))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
        json!({ "path": uri.path(), "method": method.as_str() }),
    )
}

/// Serves `app` (an [`App`] or any router) on `listener` with the default connection limits until
/// `shutdown` resolves, then drains (see [`crate::serving::serve`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: impl crate::serving::HttpService,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let signals = crate::serving::signals::from_future(shutdown);
    crate::serving::serve(listener, app, crate::serving::Limits::default(), signals).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_vars(None, |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn address_precedence_and_defaults() {
        assert_eq!(settings(&[]).expect("defaults").addr.to_string(), DEFAULT_ADDR);
        assert_eq!(settings(&[("PORT", "9001")]).expect("port").addr.to_string(), "127.0.0.1:9001");
        let s = settings(&[("PORT", "9001"), ("MVGEN_ADDR", "0.0.0.0:7000")]).expect("addr");
        assert_eq!(s.addr.to_string(), "0.0.0.0:7000");
        assert!(settings(&[("PORT", "high")]).is_err());
    }

    #[test]
    fn flags_lists_and_redaction() {
        let s = settings(&[("MV_DEBUG_MODE", "YES"), ("API_KEY", " k1, ,k2 "), ("MV_STRICT_FLAVORS", "0")])
            .expect("settings");
        assert!(s.debug && !s.strict_flavors && s.metrics, "metrics are on by default");
        assert!(!settings(&[("MVGEN_METRICS", " False ")]).expect("off").metrics);
        assert!(settings(&[]).expect("default").migrate_on_start);
        assert!(!settings(&[("MVGEN_MIGRATE_ON_START", "false")]).expect("off").migrate_on_start);
        let typo = settings(&[("MVGEN_MIGRATE_ON_START", "flase")]).expect_err("refused").to_string();
        assert_eq!(typo, "MVGEN_MIGRATE_ON_START=\"flase\": expected true or false");
        assert_eq!(s.api_keys, vec!["k1", "k2"]);
        assert!(!format!("{s:?}").contains("k1"));
    }

    #[test]
    fn cors_defaults_to_the_next_dev_server_and_none_turns_it_off() {
        let unset = settings(&[]).expect("defaults");
        assert_eq!(unset.cors_origins, ["http://localhost:3000", "http://localhost:3001"]);
        assert_eq!(settings(&[("CORS_ORIGINS", "  ")]).expect("blank").cors_origins, unset.cors_origins);
        assert!(settings(&[("CORS_ORIGINS", "None")]).expect("none").cors_origins.is_empty());
        let own = settings(&[("CORS_ORIGINS", "https://a.example")]).expect("own");
        assert_eq!(own.cors_origins, ["https://a.example"], "a configured list replaces the defaults");
    }

    #[test]
    fn malformed_hash_keys_are_a_startup_error() {
        let err = settings(&[("API_KEY", "k1,hash:abc")]).expect_err("short hash");
        assert!(err.starts_with("API_KEY:") && !err.contains("k1"), "{err}");
        let ok = settings(&[("API_KEY", &format!("hash:{}", "ab".repeat(32)))]).expect("valid hash");
        assert_eq!(ok.api_keys.len(), 1);
    }

    #[test]
    fn an_api_key_setting_without_a_key_is_refused() {
        for empty in ["", " ", " , ", ",,"] {
            let err = settings(&[("API_KEY", empty)]).expect_err("no key");
            assert!(err.contains("API_KEY is set but holds no key"), "{err}");
        }
        assert!(settings(&[]).expect("unset").api_keys.is_empty());
    }

    #[test]
    fn generation_cap_is_a_positive_number() {
        assert_eq!(settings(&[]).expect("default").max_concurrent_generations, DEFAULT_MAX_CONCURRENT_GENERATIONS);
        assert_eq!(settings(&[("MV_MAX_CONCURRENT_GENERATIONS", " 3 ")]).expect("3").max_concurrent_generations, 3);
        for bad in ["0", "-1", "many"] {
            assert!(settings(&[("MV_MAX_CONCURRENT_GENERATIONS", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn cors_origins_are_checked_and_star_means_any() {
        assert!(settings(&[("CORS_ORIGINS", "https://a.example, http://localhost:3000")]).is_ok());
        let star = settings(&[("CORS_ORIGINS", "*")]).expect("star");
        let _cors = crate::cors::around(
            &star.cors_origins,
            tower::service_fn(|_: axum::extract::Request| async {
                Ok::<_, std::convert::Infallible>(Response::new(axum::body::Body::empty()))
            }),
        );
        let err = settings(&[("CORS_ORIGINS", "a.example")]).expect_err("no scheme");
        assert!(err.contains("CORS_ORIGINS"), "{err}");
        assert!(settings(&[("CORS_ORIGINS", "https://bad\norigin")]).is_err());
    }

    #[test]
    fn job_settings_default_to_an_sqlite_file_beside_the_outputs() {
        let s = settings(&[("MV_OUTPUT_DIR", "/data/out")]).expect("defaults");
        assert_eq!(s.database_url, "sqlite:///data/out/jobs.db?mode=rwc");
        assert_eq!((s.workers, s.job_stale_after.as_secs(), s.job_max_attempts), (DEFAULT_WORKERS, 60, 3));
        let bounds = (s.job_max_takeovers, s.sync_wait.as_secs(), s.idempotency_ttl.as_secs());
        assert_eq!(bounds, (10, 1200, 86_400));
        let kept = (s.job_retention.as_secs(), s.max_queued_jobs, s.max_queued_per_key);
        assert_eq!(kept, (7 * 86_400, 10_000, 1_000));
        assert_eq!(
            s.storage_options,
            crate::storage::object::Options { timeout: std::time::Duration::from_secs(5), public_url: None }
        );
        let public = settings(&[("MVGEN_STORAGE_PUBLIC_URL", "https://media.example.com/")]).expect("public url");
        assert_eq!(public.storage_options.public_url.as_deref(), Some("https://media.example.com"));
        let err = settings(&[("MVGEN_STORAGE_PUBLIC_URL", "media.example.com")]).expect_err("not a URL");
        assert!(err.starts_with("MVGEN_STORAGE_PUBLIC_URL=\"media.example.com\": "), "{err}");
        let pg = settings(&[("MVGEN_DATABASE_URL", "postgres://u:pw@db/mv"), ("MVGEN_WORKERS", "0")]).expect("pg");
        assert_eq!((pg.database_url.as_str(), pg.workers), ("postgres://u:pw@db/mv", 0));
        assert!(!format!("{pg:?}").contains("pw"), "the password never reaches a log line");
        for (name, bad) in [
            ("MVGEN_WORKERS", "-1"),
            ("MVGEN_JOB_STALE_AFTER", "0"),
            ("MVGEN_JOB_MAX_ATTEMPTS", "x"),
            ("MVGEN_SYNC_WAIT", "0"),
            ("MVGEN_IDEMPOTENCY_TTL", "0"),
            ("MVGEN_JOB_MAX_TAKEOVERS", "-1"),
            ("MVGEN_JOB_RETENTION", "0"),
            ("MVGEN_MAX_QUEUED_JOBS", "0"),
            ("MVGEN_MAX_QUEUED_PER_KEY", "0"),
        ] {
            let err = settings(&[(name, bad)]).expect_err(bad);
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn counts_and_durations_refuse_values_they_cannot_honour() {
        // u64::MAX seconds wrapped the staleness cut-off: workers stole each other's live jobs.
        let err = settings(&[("MVGEN_JOB_STALE_AFTER", "18446744073709551615")]).expect_err("huge stale-after");
        assert_eq!(err, "MVGEN_JOB_STALE_AFTER=\"18446744073709551615\": expected a whole number from 1 to 86400");
        for (name, bad) in [
            ("MVGEN_WORKERS", "1025"),
            ("MVGEN_JOB_MAX_ATTEMPTS", "101"),
            ("MVGEN_JOB_MAX_ATTEMPTS", "4294967296"),
            ("MVGEN_JOB_MAX_TAKEOVERS", "1001"),
            ("MVGEN_SYNC_WAIT", "86401"),
            // A huge TTL wrapped the expiry and turned replay off.
            ("MVGEN_IDEMPOTENCY_TTL", "2592001"),
            ("MVGEN_IDEMPOTENCY_TTL", "18446744073709551615"),
            ("MV_MAX_CONCURRENT_GENERATIONS", "18446744073709551615"),
            ("MVGEN_MAX_CONNECTIONS", "18446744073709551615"),
            ("MVGEN_HEADER_TIMEOUT_SECS", "0.000001"),
            ("MVGEN_JOB_RETENTION", "315360001"),
            ("MVGEN_JOB_RETENTION", "18446744073709551615"),
            ("MVGEN_MAX_QUEUED_JOBS", "1000001"),
            ("MVGEN_MAX_QUEUED_PER_KEY", "1000001"),
            ("MVGEN_STORAGE_TIMEOUT", "0.09"),
            ("MVGEN_STORAGE_TIMEOUT", "3600.5"),
            ("MVGEN_STORAGE_TIMEOUT", "x"),
            ("MV_MAX_AUDIO_BYTES", "0"),
            ("MV_MAX_AUDIO_BYTES", "4294967297"),
            ("MV_MAX_SONG_SECONDS", "0"),
            ("MV_MAX_SONG_SECONDS", "86401"),
        ] {
            let err = settings(&[(name, bad)]).expect_err(bad);
            assert!(err.starts_with(&format!("{name}={bad:?}: expected ")), "{err}");
        }
        // The bounds themselves are accepted.
        let s = settings(&[
            ("MVGEN_WORKERS", "1024"),
            ("MVGEN_JOB_STALE_AFTER", "86400"),
            ("MVGEN_JOB_MAX_ATTEMPTS", "100"),
            ("MVGEN_JOB_MAX_TAKEOVERS", "1000"),
            ("MVGEN_SYNC_WAIT", "86400"),
            ("MVGEN_IDEMPOTENCY_TTL", "2592000"),
            ("MV_MAX_CONCURRENT_GENERATIONS", "1048576"),
            ("MVGEN_JOB_RETENTION", "315360000"),
            ("MVGEN_MAX_QUEUED_JOBS", "1000000"),
            ("MVGEN_MAX_QUEUED_PER_KEY", "1000000"),
            ("MVGEN_STORAGE_TIMEOUT", "3600"),
            ("MV_MAX_AUDIO_BYTES", "4294967296"),
            ("MV_MAX_SONG_SECONDS", "86400"),
        ])
        .expect("bounds");
        assert_eq!(s.max_audio_bytes, 4 << 30);
        assert_eq!(settings(&[]).expect("defaults").max_audio_bytes, 50 << 20);
        assert_eq!(s.max_song_seconds, 86_400);
        assert_eq!(settings(&[]).expect("defaults").max_song_seconds, 900);
        assert_eq!(s.storage_options.timeout.as_secs(), 3600);
        let queue = (s.job_retention.as_secs(), s.max_queued_jobs, s.max_queued_per_key);
        assert_eq!(queue, (315_360_000, 1_000_000, 1_000_000));
        let low = settings(&[
            ("MVGEN_JOB_RETENTION", "1"),
            ("MVGEN_MAX_QUEUED_JOBS", "1"),
            ("MVGEN_MAX_QUEUED_PER_KEY", "1"),
            ("MVGEN_STORAGE_TIMEOUT", "0.1"),
        ])
        .expect("lower bounds");
        assert_eq!(low.storage_options.timeout.as_millis(), 100);
        assert_eq!((low.job_retention.as_secs(), low.max_queued_jobs, low.max_queued_per_key), (1, 1, 1));
        assert_eq!((s.workers, s.job_stale_after.as_secs(), s.job_max_attempts), (1024, 86_400, 100));
        let rest = (s.job_max_takeovers, s.sync_wait.as_secs(), s.idempotency_ttl.as_secs());
        assert_eq!(rest, (1000, 86_400, 2_592_000));
        assert_eq!(s.max_concurrent_generations, 1 << 20);
    }
}
