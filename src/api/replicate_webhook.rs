//! `POST /api/mv/webhooks/replicate`: Replicate's `completed` webhook for a prediction mvgen
//! created with `MVGEN_PUBLIC_URL` set (issue 26, point 2).
//!
//! Replicate signs it as the Standard Webhooks specification says, with the account's secret
//! (`REPLICATE_WEBHOOK_SECRET`). A message whose signature does not verify, or whose timestamp is
//! more than 5 minutes from now (a replay of an old message), is refused with 401 and changes
//! nothing. A verified one marks the saved run ended in the jobs database and wakes the worker
//! waiting on it, on whichever replica it runs, which then fetches the prediction with its own
//! token: the webhook's body is a hint, never taken as the result. Duplicates change nothing.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorKind};
use crate::jobs::Jobs;
use crate::jobs::engine::unavailable;
use crate::jobs::store::now_ms;
use crate::webhooks::signature::Secret;

/// The provider name runs are saved under (`providers::replicate`).
const PROVIDER: &str = "replicate";

/// How far a message's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The secret the route checks with; `None`: not configured, and every message is refused.
#[derive(Clone)]
pub struct Verifier(pub Option<Arc<Secret>>);

/// The longest prediction id taken; Replicate's are 26 characters.
const MAX_PREDICTION_ID: usize = 256;

fn refused(message: String) -> ApiError {
    ApiError::new(ErrorKind::WebhookSignatureInvalid, message, json!("webhook-signature"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::new(ErrorKind::ValidationError, format!("the {name} header is missing"), json!(name)))
}

/// Checks the message's signature and age (see the module doc).
pub fn verify(secret: &Secret, headers: &HeaderMap, body: &[u8], now_secs: i64) -> Result<(), ApiError> {
    let id = header(headers, "webhook-id")?;
    let timestamp = header(headers, "webhook-timestamp")?;
    let signature = header(headers, "webhook-signature")?;
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| {
        ApiError::new(
            ErrorKind::ValidationError,
            "webhook-timestamp: expected Unix seconds",
            json!("webhook-timestamp"),
        )
    })?;
    if (now_secs - timestamp).abs() > TOLERANCE_SECS {
        return Err(refused(format!(
            "webhook-timestamp {timestamp} is more than {TOLERANCE_SECS} s from now: an old message replayed, or a skewed clock"
        )));
    }
    if !secret.verifies(id, timestamp, body, signature) {
        return Err(refused("the webhook signature does not verify with REPLICATE_WEBHOOK_SECRET".into()));
    }
    Ok(())
}

/// Receive a signed Replicate webhook.
#[utoipa::path(
    post,
    path = "/api/mv/webhooks/replicate",
    tag = "jobs",
    request_body(content = Value, description = "The prediction, as Replicate sends it"),
    params(
        ("webhook-id" = String, Header, description = "Standard Webhooks message id"),
        ("webhook-timestamp" = String, Header, description = "Unix seconds; more than 5 minutes away is refused"),
        ("webhook-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256>`, space-separated"),
    ),
    responses(
        (status = 200, description = "Verified: `{\"received\": true, \"jobs\": [...]}` (the jobs waiting on it)"),
        (status = 400, description = "A header or the body is missing or malformed", body = crate::error::ErrorBody),
        (status = 401, description = "The signature does not verify, or the message is too old", body = crate::error::ErrorBody),
        (status = 503, description = "The jobs database is unavailable; Replicate retries", body = crate::error::ErrorBody),
    )
)]
pub async fn receive(
    State(jobs): State<Arc<Jobs>>,
    Extension(verifier): Extension<Verifier>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(secret) = verifier.0 else {
        return Err(refused("this server has no REPLICATE_WEBHOOK_SECRET to check webhooks with".into()));
    };
    verify(&secret, &headers, &body, now_ms() / 1000)?;
    let prediction: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorKind::InvalidJson, format!("the body is not JSON: {e}"), json!("body")))?;
    let id = prediction["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::new(ErrorKind::ValidationError, "the body has no prediction `id`", json!("id")))?;
    // No prediction has such an id; refused alike on both engines (PostgreSQL cannot compare a
    // NUL, which would answer 503 and have Replicate retry it for a day).
    if id.len() > MAX_PREDICTION_ID || id.contains('\0') {
        return Err(ApiError::new(
            ErrorKind::ValidationError,
            format!("the prediction `id` is no prediction's (over {MAX_PREDICTION_ID} bytes, or holding a NUL)"),
            json!("id"),
        ));
    }
    let status = prediction["status"].as_str().unwrap_or_default();
    // Only an end is news: `completed` is all creates ask for, but any event might be sent.
    if !matches!(status, "succeeded" | "failed" | "canceled" | "aborted") {
        return Ok(axum::Json(json!({ "received": true, "jobs": [] })).into_response());
    }
    let waiting = jobs.upstream_ended(PROVIDER, id).await.map_err(unavailable)?;
    tracing::info!(prediction = id, status, jobs = ?waiting, "replicate webhook received");
    Ok(axum::Json(json!({ "received": true, "jobs": waiting })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
        h.insert("webhook-signature", signature.parse().unwrap());
        h
    }

    #[test]
    fn a_signed_fresh_message_verifies_and_a_replayed_or_forged_one_does_not() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"id":"p1","status":"succeeded"}"#;
        let now = 1_700_000_000;
        let signed = secret.sign("msg_1", now, body);
        assert!(verify(&secret, &headers("msg_1", now, &signed), body, now).is_ok());
        assert!(verify(&secret, &headers("msg_1", now, &signed), body, now + TOLERANCE_SECS).is_ok());
        let old = verify(&secret, &headers("msg_1", now, &signed), body, now + TOLERANCE_SECS + 1).unwrap_err();
        assert_eq!(old.kind, ErrorKind::WebhookSignatureInvalid);
        let forged = verify(&secret, &headers("msg_1", now, &signed), br#"{"id":"p2"}"#, now).unwrap_err();
        assert_eq!(forged.kind, ErrorKind::WebhookSignatureInvalid);
        let mut missing = headers("msg_1", now, &signed);
        missing.remove("webhook-id");
        assert_eq!(verify(&secret, &missing, body, now).unwrap_err().kind, ErrorKind::ValidationError);
    }
}
