//! An instant Gemini for `bench/load.sh`: every `POST .../models/{model}:generateContent` gets the
//! same 200 answer in the shape of `shared/reference/providers.md`, built once at startup, so the
//! load test measures mvgen's side of the Gemini path and not a model.
//!
//! `fake_gemini 127.0.0.1:PORT [SCENES]`. SCENES (default 6, the default flavor's) must match what
//! mvgen asks for: its Gemini client rejects an answer with a different number of scenes.

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use serde_json::json;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8002".to_owned());
    let scenes: u32 = args.next().map_or(Ok(6), |n| n.parse()).expect("SCENES must be a whole number");
    let answer = Bytes::from(answer(scenes));
    let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
        let answer = answer.clone();
        async move {
            // Reading the body keeps the connection reusable; its content does not matter here.
            drop(body);
            if uri.path().ends_with(":generateContent") {
                ([(header::CONTENT_TYPE, "application/json")], answer).into_response()
            } else {
                StatusCode::NOT_FOUND.into_response()
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}

/// A one-candidate answer whose text is `{"scenes": [...]}`, with scenes as long as a model writes.
fn answer(scenes: u32) -> Vec<u8> {
    let scenes: Vec<_> = (1..=scenes)
        .map(|i| {
            json!({
                "description": format!(
                    "Scene {i}: the old sailor climbs the spiral stairs as the beam sweeps the fog; slow push-in, \
                     warm lamp light against blue night, rain on the glass"
                ),
                "negative_description": "no text, no watermark, no extra limbs, no modern objects",
            })
        })
        .collect();
    let text = json!({ "scenes": scenes }).to_string();
    let body = json!({
        "candidates": [{
            "content": {"role": "model", "parts": [{"text": text}]},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 412, "candidatesTokenCount": 380, "totalTokenCount": 792},
        "modelVersion": "gemini-2.5-flash"
    });
    serde_json::to_vec(&body).expect("a JSON value serializes")
}
