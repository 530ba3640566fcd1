//! CORS for the browser front end (`MVGEN_CORS_ORIGINS`): tower-http's `Cors` answers preflights
//! and sets `Access-Control-Allow-Origin`; the two headers that never depend on the request are
//! written here, once, as static values.
//!
//! tower-http builds a header map per request for what it adds, and on every answer but a
//! preflight that map holds at least `Access-Control-Expose-Headers` (two allocations of the
//! flavor-list GET's ~23), and it joins its `Vary` list into a new value each time (two more).
//! [`CorsHeaders`] appends the same `Vary` and sets the same `Access-Control-Expose-Headers` as
//! constants instead, so a request without an `Origin` costs CORS no allocation (BENCHMARKS.md,
//! issue 22). Such a request (not a preflight, no `Origin`) does not go through tower-http at all:
//! with a list of origins it adds nothing to its answer, and its per-request header map, origin
//! future and response future were ~900 instructions of a flavor-list GET's ~25k.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::{HeaderValue, Method, Request, Response, header};
use futures_util::future::Either;
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

/// tower-http's default `Vary` list, as one value.
const VARY: HeaderValue =
    HeaderValue::from_static("origin, access-control-request-method, access-control-request-headers");

/// The headers a page may read from an answer, as tower-http would join them (by commas).
const EXPOSE: HeaderValue = HeaderValue::from_static("x-config-flavor,x-config-flavor-hash,content-range,x-request-id");

/// CORS around `inner` for these origins (checked by `Settings`; `*` allows any origin: no
/// credentials are involved).
pub fn around<S>(origins: &[String], inner: S) -> CorsHeaders<S> {
    let any_origin = origins.iter().any(|o| o == "*");
    CorsHeaders { inner: tower::Layer::layer(&layer(origins), inner), any_origin }
}

/// tower-http's part: the allowed origins, and a preflight's methods and headers. `Vary` and the
/// exposed headers are left to [`CorsHeaders`].
fn layer(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .vary([])
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::HeaderName::from_static("x-api-key"),
            // The create page sends one with every job it submits (a retry then replays, not repeats).
            header::HeaderName::from_static("idempotency-key"),
            header::RANGE,
            crate::request_id::HEADER,
        ])
}

/// CORS around `S`: tower-http's `Cors` for preflights and requests with an `Origin`, and CORS's
/// constant headers on every answer: `Vary`, beside any `Vary` of the handler's, and, on anything
/// but an `OPTIONS` (which tower-http answers as a preflight), `Access-Control-Expose-Headers`.
#[derive(Debug, Clone)]
pub struct CorsHeaders<S> {
    inner: Cors<S>,
    /// `*` is allowed: tower-http then answers `Access-Control-Allow-Origin: *` with or without an
    /// `Origin`, so no request may bypass it.
    any_origin: bool,
}

impl<S, B, R> tower::Service<Request<B>> for CorsHeaders<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = WithHeaders<Either<tower_http::cors::ResponseFuture<S::Future>, S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let preflight = request.method() == Method::OPTIONS;
        // Not a preflight and no `Origin` (a same-origin page, curl, another server, a probe):
        // tower-http would add nothing (no allowed origin to echo, no credentials, no private
        // network, `Vary` and the exposed headers left to us), so the request skips it.
        let inner = if preflight || self.any_origin || request.headers().contains_key(header::ORIGIN) {
            Either::Left(self.inner.call(request))
        } else {
            Either::Right(self.inner.get_mut().call(request))
        };
        WithHeaders { inner, preflight }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, given the constant headers when it is ready.
    pub struct WithHeaders<F> {
        #[pin]
        inner: F,
        preflight: bool,
    }
}

impl<F, R, E> Future for WithHeaders<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if let Ok(response) = &mut result {
            let headers = response.headers_mut();
            headers.append(header::VARY, VARY);
            if !*this.preflight {
                // `insert`, as tower-http did: its value replaced a handler's.
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE);
            }
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constant is what tower-http would have written for the same list.
    #[test]
    fn exposed_headers_are_tower_https_join_of_the_list() {
        use tower::ServiceExt as _;
        let exposed = CorsLayer::new().allow_origin(AllowOrigin::any()).expose_headers([
            header::HeaderName::from_static("x-config-flavor"),
            header::HeaderName::from_static("x-config-flavor-hash"),
            header::CONTENT_RANGE,
            crate::request_id::HEADER,
        ]);
        let service = tower::Layer::layer(
            &exposed,
            tower::service_fn(|_: Request<()>| async { Ok::<_, std::convert::Infallible>(Response::new(())) }),
        );
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let response =
            runtime.block_on(service.oneshot(Request::get("/").body(()).expect("request"))).expect("infallible");
        assert_eq!(response.headers().get(header::ACCESS_CONTROL_EXPOSE_HEADERS), Some(&EXPOSE));
    }
}
