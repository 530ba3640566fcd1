//! `GET /metrics`: Prometheus text exposition of what the server does, through the `metrics` facade
//! and `metrics-exporter-prometheus` (its recorder only; the text is served by our own route, so
//! it sits behind the API key like the rest of the API).
//!
//! Every label has a bounded set of values: routes are matched templates (never raw paths),
//! flavors are names from the served table (never the requested name: that set is unbounded, so a
//! fallback is counted without it), backends, kinds and outcomes are fixed words.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mvgen_http_requests_total` | counter | `route`, `status` |
//! | `mvgen_generations_total` | counter | `kind`, `flavor`, `backend`, `outcome` |
//! | `mvgen_generations_in_flight` | gauge | `kind` |
//! | `mvgen_upstream_duration_seconds` | histogram | `provider`, `kind` |
//! | `mvgen_flavor_fallbacks_total` | counter | `outcome` (`default_used` / `refused`) |
//! | `mvgen_jobs` | gauge | `status` (`queued`, `processing`): the shared queue as this process last read it |
//! | `mvgen_jobs_oldest_queued_age_seconds` | gauge | |
//! | `mvgen_job_claims_total` | counter | `takeover` (`true` when the claim took a job from a dead worker) |
//! | `mvgen_job_tries_ended_total` | counter | `outcome` (`succeeded`, `failed`, `canceled`, `retry`, `released`), `code` (error kind, or `none`) |
//! | `mvgen_storage_failures_total` | counter | `kind` (`StorageUnavailable`, `StorageError`) |

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use metrics::Counter;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::providers::ProviderError;

const REQUESTS: &str = "mvgen_http_requests_total";
const GENERATIONS: &str = "mvgen_generations_total";
const IN_FLIGHT: &str = "mvgen_generations_in_flight";
const UPSTREAM_SECONDS: &str = "mvgen_upstream_duration_seconds";
const FALLBACKS: &str = "mvgen_flavor_fallbacks_total";
const JOBS: &str = "mvgen_jobs";
const OLDEST_QUEUED: &str = "mvgen_jobs_oldest_queued_age_seconds";
const CLAIMS: &str = "mvgen_job_claims_total";
const TRIES_ENDED: &str = "mvgen_job_tries_ended_total";
/// Counted in `error.rs`, where a store failure becomes an answer (`error` sits below telemetry).
const STORAGE_FAILURES: &str = crate::error::STORAGE_FAILURES_METRIC;

/// Upstream calls take from milliseconds (the mock) to minutes (a video render).
const UPSTREAM_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// The label for requests no route matched (the 404 fallback): never the raw path.
const UNMATCHED: &str = "unmatched";

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle). `None` when
/// another recorder was installed first, e.g. by an embedding program.
pub fn install() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(UPSTREAM_SECONDS.into()), UPSTREAM_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().map_err(|e| tracing::warn!("metrics are off: {e}")).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(REQUESTS, "HTTP requests by matched route template and status");
    metrics::describe_counter!(GENERATIONS, "Upstream generations by kind, flavor used, backend and outcome");
    metrics::describe_gauge!(IN_FLIGHT, "Upstream generations running now");
    metrics::describe_histogram!(
        UPSTREAM_SECONDS,
        metrics::Unit::Seconds,
        "Upstream call latency by provider and kind"
    );
    metrics::describe_counter!(
        FALLBACKS,
        "Requests whose config flavor does not exist (the requested name is not a label)"
    );
    metrics::describe_gauge!(JOBS, "Jobs in the shared queue by status, as this process last read it (every 5 s)");
    metrics::describe_gauge!(
        OLDEST_QUEUED,
        metrics::Unit::Seconds,
        "Age of the oldest queued job (0 when none), as this process last read it"
    );
    metrics::describe_counter!(CLAIMS, "Jobs claimed by this process's workers; takeover=true: from a dead worker");
    metrics::describe_counter!(TRIES_ENDED, "Job tries this process ended, by outcome and error kind");
    metrics::describe_counter!(STORAGE_FAILURES, "Store operations that failed (unavailable, or an I/O error)");
}

/// Whether metrics are recorded in this process (a recorder is installed): the queue's
/// periodic read is skipped when nobody can scrape it.
pub fn recording() -> bool {
    RECORDER.get().is_some_and(Option::is_some)
}

// ---- Jobs ----------------------------------------------------------------------------------------

/// A worker of this process claimed a job.
pub fn job_claimed(takeover: bool) {
    metrics::counter!(CLAIMS, "takeover" => if takeover { "true" } else { "false" }).increment(1);
}

/// A job's try ended here: `outcome` is a fixed word, `code` an error kind's name (a fixed set).
pub fn job_try_ended(outcome: &'static str, code: Option<String>) {
    metrics::counter!(TRIES_ENDED, "outcome" => outcome, "code" => code.unwrap_or_else(|| "none".into())).increment(1);
}

/// The queue as last read: jobs queued and processing, and the oldest queued job's age.
pub fn queue_depth(queued: i64, processing: i64, oldest_queued_secs: f64) {
    metrics::gauge!(JOBS, "status" => "queued").set(queued as f64);
    metrics::gauge!(JOBS, "status" => "processing").set(processing as f64);
    metrics::gauge!(OLDEST_QUEUED).set(oldest_queued_secs);
}

/// Drains histogram samples into their buckets, so memory stays flat between scrapes.
pub async fn upkeep(handle: &'static PrometheusHandle) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

/// Prometheus metrics: requests by route and status, generations, flavor fallbacks, upstream latency.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, description = "A valid API key is required", body = crate::error::ErrorBody),
    )
)]
pub async fn metrics_text() -> axum::response::Response {
    let body = install().map(PrometheusHandle::render).unwrap_or_default();
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))], body)
        .into_response()
}

/// A request for an unknown flavor: counted without its name.
pub fn flavor_fallback(refused: bool) {
    metrics::counter!(FALLBACKS, "outcome" => if refused { "refused" } else { "default_used" }).increment(1);
}

/// Runs one upstream generation and records it: in flight while it runs (also when the request
/// is cancelled), its latency, and its outcome.
pub async fn generation<T>(
    kind: &'static str,
    flavor: &str,
    backend: &'static str,
    call: impl Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    let in_flight = metrics::gauge!(IN_FLIGHT, "kind" => kind);
    in_flight.increment(1.0);
    struct Done(metrics::Gauge);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.decrement(1.0);
        }
    }
    let _done = Done(in_flight);
    let started = Instant::now();
    let result = call.await;
    metrics::histogram!(UPSTREAM_SECONDS, "provider" => backend, "kind" => kind).record(started.elapsed());
    let outcome = result.as_ref().map_or_else(outcome, |_| "ok");
    metrics::counter!(GENERATIONS, "kind" => kind, "flavor" => flavor.to_string(), "backend" => backend, "outcome" => outcome)
        .increment(1);
    result
}

fn outcome(e: &ProviderError) -> &'static str {
    match e {
        ProviderError::Timeout { .. } => "timeout",
        ProviderError::RateLimited { .. } => "rate_limited",
        ProviderError::Refused { .. } => "refused",
        ProviderError::Unreachable { .. } => "unreachable",
        ProviderError::Upstream { .. } | ProviderError::Malformed { .. } | ProviderError::RunFailed { .. } => {
            "upstream_error"
        }
    }
}

// ---- Requests by route and status ----------------------------------------------------------------

/// The statuses this server answers; each (route, status) pair among these gets a counter handle
/// registered on first use and kept, so counting a request is an index and an atomic add. Any
/// other pair takes the registry's slower path (still one series per template and status).
const STATUSES: [u16; 16] = [200, 204, 206, 304, 400, 401, 404, 405, 413, 415, 416, 422, 500, 502, 503, 504];

/// One route's counter handles, one per status of [`STATUSES`], registered on first use.
type StatusCounters = [OnceLock<Counter>; STATUSES.len()];

/// Counter handles per route template (and for `unmatched`). Built once and never changed, so a
/// [`RouteNames`] keeps `'static` references into it: counting a request neither hashes its
/// template (SipHash over the path was ~230 instructions of a flavor-list GET) nor clones a handle.
struct RouteCounters {
    routes: HashMap<Box<str>, StatusCounters>,
}

static ROUTES: OnceLock<RouteCounters> = OnceLock::new();

/// The route templates requests are counted by (the server passes the OpenAPI document's paths
/// and the router's: telemetry sits below the API and reads neither itself). The first call wins; a
/// route given to none takes the registry's slower path, as an unlisted status does.
pub fn count_routes(templates: impl IntoIterator<Item = String>) {
    ROUTES.get_or_init(|| {
        let routes = templates
            .into_iter()
            .chain([UNMATCHED.to_owned()])
            .map(|p| (p.into_boxed_str(), std::array::from_fn(|_| OnceLock::new())))
            .collect();
        RouteCounters { routes }
    });
}

/// The counter handles of `template`, if [`count_routes`] listed it.
fn counters_of(template: &str) -> Option<&'static StatusCounters> {
    ROUTES.get()?.routes.get(template)
}

/// A route as requests are counted by it: its template, and its handles when they were listed.
#[derive(Clone, Copy)]
struct Route {
    template: &'static str,
    counters: Option<&'static StatusCounters>,
}

impl Route {
    fn new(template: &'static str) -> Self {
        Route { template, counters: counters_of(template) }
    }
}

fn count_request(route: Route, status: StatusCode) {
    let code = status.as_u16();
    let slot = STATUSES.iter().position(|s| *s == code).and_then(|i| Some(&route.counters?[i]));
    match slot {
        Some(slot) => slot.get_or_init(|| register(route.template, status)).increment(1),
        None => register(route.template, status).increment(1),
    }
}

fn register(route: &str, status: StatusCode) -> Counter {
    metrics::counter!(REQUESTS, "route" => route.to_string(), "status" => status.as_str().to_string())
}

/// The route templates a request's path is matched against, with the matcher axum routes by
/// (`matchit`, the version axum pins), so a request is labelled with the template axum serves it
/// from. Matching outside the router, rather than reading axum's `MatchedPath` inside it, keeps
/// the router's routes free of layers: `Router::layer` wrapped each route in one more boxed
/// level, which axum clones per request (BENCHMARKS.md, issue 22).
///
/// A path that is exactly a template without parameters (most requests: the flavor list, health
/// probes, job submissions) is found without matchit, among the static templates of its length:
/// matchit would give it the same route (a static route wins over a parameter), and its tree walk
/// was ~460 instructions of a flavor-list GET, a second match after axum's.
#[derive(Clone)]
pub struct RouteNames {
    matcher: Arc<matchit::Router<Route>>,
    /// The templates without parameters, by length: `exact[n]` holds those of `n` bytes.
    exact: Arc<[Box<[Route]>]>,
    unmatched: Route,
}

impl RouteNames {
    /// `templates`: every template the router serves (`api::Routed`). One that matchit refuses
    /// (axum, with the same matcher, would have refused it first) is left out, so its requests
    /// count as unmatched. Call after [`count_routes`], whose handles it keeps.
    pub fn new(templates: &[&'static str]) -> Self {
        let mut matcher = matchit::Router::new();
        let mut exact: Vec<Vec<Route>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for template in templates.iter().copied().filter(|t| seen.insert(*t)) {
            let route = Route::new(template);
            if let Err(e) = matcher.insert(template, route) {
                tracing::warn!(route = template, error = %e, "route left out of the request metrics");
                continue;
            }
            // `{` (a parameter, or an escaped brace) and `*` (a catch-all) are matchit's only
            // special characters: without them the template matches exactly its own text.
            if !template.contains(['{', '}', '*']) {
                if exact.len() <= template.len() {
                    exact.resize_with(template.len() + 1, Vec::new);
                }
                exact[template.len()].push(route);
            }
        }
        let exact = exact.into_iter().map(Vec::into_boxed_slice).collect();
        RouteNames { matcher: Arc::new(matcher), exact, unmatched: Route::new(UNMATCHED) }
    }

    /// The route `path` is counted under: its template's, or `unmatched`.
    fn route(&self, path: &str) -> Route {
        let same_length = self.exact.get(path.len()).map_or(&[][..], |routes| &routes[..]);
        if let Some(route) = same_length.iter().find(|route| route.template == path) {
            return *route;
        }
        self.matcher.at(path).map_or(self.unmatched, |matched| *matched.value)
    }
}

/// Counts every request by route template (see [`RouteNames`]) and status; a path no route
/// matches (the 404 fallback) counts as `unmatched`. Wraps the router from outside.
#[derive(Clone)]
pub struct RequestMetricsLayer(pub RouteNames);

impl<S> tower::Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics { inner, routes: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct RequestMetrics<S> {
    inner: S,
    routes: RouteNames,
}

impl<S, B, R> tower::Service<Request<B>> for RequestMetrics<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = self.routes.route(request.uri().path());
        Counted { inner: self.inner.call(request), route }
    }
}

pin_project_lite::pin_project! {
    /// The inner response future; counts the response when it is ready.
    pub struct Counted<F> {
        #[pin]
        inner: F,
        route: Route,
    }
}

impl<F, R, E> Future for Counted<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            count_request(*this.route, response.status());
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact lookup of templates without parameters counts every path under the template
    /// matchit (axum's matcher) gives it, static routes beside parameters and catch-alls included.
    #[test]
    fn a_path_is_counted_under_the_template_matchit_gives_it() {
        let templates = [
            "/health",
            "/api/mv/jobs",
            "/api/mv/jobs/{id}",
            "/api/mv/jobs/stats",
            "/api/mv/jobs/{id}/events",
            "/api/mv/files/{*path}",
            "/api/mv/files/index",
            "/a{{b}}",
        ];
        let names = RouteNames::new(&templates);
        let exact: Vec<&str> = names.exact.iter().flat_map(|routes| routes.iter()).map(|r| r.template).collect();
        assert_eq!(exact.len(), 4, "{exact:?}");
        assert!(exact.iter().all(|t| !t.contains('{')), "{exact:?}");
        for path in [
            "/health",
            "/health/",
            "/api/mv/jobs",
            "/api/mv/jobs/stats",
            "/api/mv/jobs/7",
            "/api/mv/jobs/{id}",
            "/api/mv/jobs/7/events",
            "/api/mv/files/index",
            "/api/mv/files/a/b",
            "/a{b}",
            "/nope",
            "/",
            "",
        ] {
            let matchit = names.matcher.at(path).map_or(UNMATCHED, |m| m.value.template);
            assert_eq!(names.route(path).template, matchit, "{path:?}");
        }
        assert_eq!(names.route("/api/mv/jobs/stats").template, "/api/mv/jobs/stats");
        assert_eq!(names.route("/api/mv/jobs/7").template, "/api/mv/jobs/{id}");
    }
}
