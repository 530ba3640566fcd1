//! The ceiling `bench/load.sh` compares mvgen against: a bare axum server on the same runtime
//! setup (multi-threaded tokio), answering `GET /api/mv/get_config_flavors` with a small JSON
//! object serialized per request, and nothing else (no middleware, no state).
//!
//! `bare_axum 127.0.0.1:PORT [BODY_FILE]`: with `BODY_FILE`, its bytes are the answer instead
//! (as `application/json`, read once at start): `bench/all.sh` passes mvgen's own flavor list, so
//! the ceiling answers the very bytes mvgen does (issue 22's definition of the figure).

use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

#[derive(Serialize)]
struct Hello {
    message: &'static str,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8001".to_owned());
    let app = match std::env::args().nth(2) {
        Some(file) => {
            let body = Bytes::from(std::fs::read(file)?);
            let answer = move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            };
            Router::new().route("/api/mv/get_config_flavors", get(answer))
        }
        None => Router::new().route("/api/mv/get_config_flavors", get(|| async { Json(Hello { message: "hello" }) })),
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
