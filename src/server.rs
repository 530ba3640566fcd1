//! The HTTP server: settings from the environment, the router (API, health, OpenAPI, create page,
//! auth, CORS, body limit) and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use subtle::ConstantTimeEq;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::{self, AppState, error::ApiError, extract::BODY_LIMIT};

/// Server settings, read once at startup.
#[derive(Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    pub debug: bool,
    pub strict_flavors: bool,
    pub output_dir: PathBuf,
    /// `API_KEY`: when non-empty, every `/api/*` request must present one of these.
    pub api_keys: Vec<String>,
    /// `CORS_ORIGINS`: browser origins allowed to call the API.
    pub cors_origins: Vec<String>,
    pub log_json: bool,
    /// `MVGEN_ACCESS_LOG`: one log line per request. Off by default: writing a line per request
    /// costs more CPU than serving a flavor list (see BENCHMARKS.md).
    pub access_log: bool,
    /// `MVGEN_METRICS` (on unless `false`): `GET /metrics` and the per-request counter layer.
    pub metrics: bool,
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
            .field("metrics", &self.metrics)
            .finish()
    }
}

/// The address used when nothing else is configured.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";

impl Settings {
    /// Reads the environment through `var`; `addr` (from `--addr`) wins over `MVGEN_ADDR` and `PORT`.
    pub fn from_vars(addr: Option<SocketAddr>, var: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let addr = match (addr, var("MVGEN_ADDR"), var("PORT")) {
            (Some(a), _, _) => a,
            (None, Some(a), _) => a.parse().map_err(|e| format!("MVGEN_ADDR={a:?}: {e}"))?,
            (None, None, Some(p)) => {
                let port: u16 = p.trim().parse().map_err(|e| format!("PORT={p:?}: {e}"))?;
                SocketAddr::from(([127, 0, 0, 1], port))
            }
            (None, None, None) => DEFAULT_ADDR.parse().map_err(|e| format!("{e}"))?,
        };
        let list = |name: &str| -> Vec<String> {
            var(name)
                .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                .unwrap_or_default()
        };
        let cors_origins = list("CORS_ORIGINS");
        for origin in &cors_origins {
            let valid = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && HeaderValue::from_str(origin).is_ok());
            if !valid {
                return Err(format!("CORS_ORIGINS: {origin:?} is not an origin such as https://studio.example or *"));
            }
        }
        Ok(Settings {
            addr,
            debug: truthy(var("MV_DEBUG_MODE")),
            strict_flavors: truthy(var("MV_STRICT_FLAVORS")),
            output_dir: var("MV_OUTPUT_DIR").map_or_else(|| PathBuf::from("mv-outputs"), PathBuf::from),
            api_keys: list("API_KEY"),
            cors_origins,
            log_json: var("MVGEN_LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json")),
            access_log: truthy(var("MVGEN_ACCESS_LOG")),
            metrics: !var("MVGEN_METRICS")
                .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "false" | "0" | "no")),
        })
    }

    pub fn from_env(addr: Option<SocketAddr>) -> Result<Settings, String> {
        Settings::from_vars(addr, |name| std::env::var(name).ok())
    }
}

/// `true`, `1` or `yes`, in any case.
fn truthy(value: Option<String>) -> bool {
    value.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// The whole application.
pub fn app(state: AppState, settings: &Settings) -> Router {
    let mut api = api::routes().route("/api/openapi.json", get(api::openapi::openapi_json));
    let metrics = settings.metrics && crate::telemetry::install().is_some();
    if metrics {
        api = api.route("/metrics", get(crate::telemetry::metrics_text));
    }
    // Without keys there is nothing to check; leaving the layer out spares every request a boxed
    // middleware call (measured in BENCHMARKS.md).
    if !settings.api_keys.is_empty() {
        api = api.layer(middleware::from_fn_with_state(Arc::new(settings.api_keys.clone()), require_api_key));
    }
    // Routes added after the key layer (health, the fallback) are not behind it.
    let mut router = api
        .route("/health", get(health))
        .merge(crate::page::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    if metrics {
        router = router.layer(crate::telemetry::RequestMetricsLayer);
    }
    let mut router = router.with_state(state);
    if !settings.cors_origins.is_empty() {
        router = router.layer(cors(&settings.cors_origins));
    }
    crate::request_id::layers(router, settings.access_log)
}

/// Liveness, for probes and `mvgen healthcheck`; open even when `API_KEY` is set.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "The server is up")))]
pub async fn health(State(flavors): State<crate::live_configs::FlavorSource>) -> impl IntoResponse {
    axum::Json(json!({ "status": "ok", "flavors": flavors.count() }))
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("no route for {method} {}", uri.path()),
        json!({ "path": uri.path() }),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!("{method} is not allowed on {}", uri.path()),
        json!({ "path": uri.path(), "method": method.as_str() }),
    )
}

/// `X-API-Key` header or `?api_key=`, compared in constant time against every configured key.
async fn require_api_key(State(keys): State<Arc<Vec<String>>>, request: Request, next: Next) -> Response {
    if keys.is_empty() || request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let from_header = request.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(String::from);
    let from_query = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("api_key=")).map(percent_decode));
    let presented = from_header.or(from_query).unwrap_or_default();
    // Check every key without stopping early, so timing says nothing about which one matched.
    let matched =
        keys.iter().fold(0u8, |acc, key| acc | u8::from(bool::from(key.as_bytes().ct_eq(presented.as_bytes()))));
    if matched == 1 {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "a valid API key is required: send it in the X-API-Key header",
        json!("x-api-key"),
    )
    .into_response()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Origins were checked by `Settings`; `*` allows any origin (no credentials are involved).
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-api-key"),
            header::RANGE,
            crate::request_id::HEADER,
        ])
        .expose_headers([
            header::HeaderName::from_static("x-config-flavor"),
            header::CONTENT_RANGE,
            crate::request_id::HEADER,
        ])
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_vars(None, |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
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
        assert_eq!(s.api_keys, vec!["k1", "k2"]);
        assert!(!format!("{s:?}").contains("k1"));
    }

    #[test]
    fn cors_origins_are_checked_and_star_means_any() {
        assert!(settings(&[("CORS_ORIGINS", "https://a.example, http://localhost:3000")]).is_ok());
        let star = settings(&[("CORS_ORIGINS", "*")]).expect("star");
        let _layer = cors(&star.cors_origins);
        let err = settings(&[("CORS_ORIGINS", "a.example")]).expect_err("no scheme");
        assert!(err.contains("CORS_ORIGINS"), "{err}");
        assert!(settings(&[("CORS_ORIGINS", "https://bad\norigin")]).is_err());
    }

    #[test]
    fn percent_decoding_of_query_keys() {
        assert_eq!(percent_decode("a%2Bb+c%zz"), "a+b c%zz");
        assert_eq!(percent_decode("end%"), "end%");
    }
}
