//! The `API_KEY` check in front of the API: `X-API-Key` header or `?api_key=`, compared in constant
//! time against every configured key ([`ApiKeys`]).
//!
//! A plain tower service rather than `middleware::from_fn`, which boxes the rest of the stack and
//! its future per request; so it can wrap the router from outside, with the request metrics and
//! the other checks, and no route carries a layer (BENCHMARKS.md, issue 22).

use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use futures_util::future::Either;

use crate::api_keys::ApiKeys;

/// Wraps a service in [`KeyCheck`] with these keys.
#[derive(Clone)]
pub struct KeyCheckLayer(Arc<ApiKeys>);

impl KeyCheckLayer {
    pub fn new(keys: ApiKeys) -> Self {
        KeyCheckLayer(Arc::new(keys))
    }
}

impl<S> tower::Layer<S> for KeyCheckLayer {
    type Service = KeyCheck<S>;

    fn layer(&self, inner: S) -> KeyCheck<S> {
        KeyCheck { inner, keys: self.0.clone() }
    }
}

/// Only `/api`, `/api/*` and `/metrics` are guarded: health and the create page stay open. An empty
/// header counts as absent: the create page of the service mvgen replaces sends `X-API-Key: ''`
/// when it has no key, and that must not hide a valid `?api_key=`. The key's
/// [`crate::api_keys::KeyScope`] rides on the request as an extension, for the job handlers
/// (idempotency keys and queue quotas are per API key).
#[derive(Clone)]
pub struct KeyCheck<S> {
    inner: S,
    keys: Arc<ApiKeys>,
}

impl<S> tower::Service<Request> for KeyCheck<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let path = request.uri().path();
        // Replicate's webhooks carry no API key: their Standard Webhooks signature is checked instead.
        let guarded = (path == "/api" || path.starts_with("/api/") || path == "/metrics")
            && path != crate::providers::config::REPLICATE_WEBHOOK_PATH;
        if self.keys.is_empty() || !guarded || request.method() == Method::OPTIONS {
            return Either::Right(self.inner.call(request));
        }
        let from_header = request
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from);
        let from_query = request.uri().query().and_then(query_api_key).filter(|v| !v.is_empty());
        match from_header.or(from_query).map(|presented| self.keys.identify(&presented)) {
            Some(Some(scope)) => {
                request.extensions_mut().insert(scope);
                Either::Right(self.inner.call(request))
            }
            Some(None) => Either::Left(ready(Ok(crate::error::unauthorized("Invalid API key")))),
            None => Either::Left(ready(Ok(crate::error::unauthorized(
                "API key missing. Provide X-API-Key header or ?api_key=YOUR_KEY",
            )))),
        }
    }
}

/// The first `api_key` of a query string, decoded as a form value (`+` is a space; a `%` not
/// followed by two hex digits stays as it is).
fn query_api_key(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "api_key").map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_of_query_keys() {
        assert_eq!(query_api_key("api_key=a%2Bb+c%zz").as_deref(), Some("a+b c%zz"));
        assert_eq!(query_api_key("x=1&api_key=end%").as_deref(), Some("end%"));
        assert_eq!(query_api_key("x=1"), None);
    }
}
