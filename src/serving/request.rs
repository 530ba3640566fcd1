//! One request on a watched connection: put a deadline on the body, and tell the watchdog when the
//! request starts and when its answer has been written.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, header};
use axum::response::IntoResponse;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use serde_json::json;
use tokio::time::{Instant, Sleep};
use tower::Service;

use super::slot::{PROBES, Slot};
use super::watchdog::ConnState;
use crate::error::{ApiError, ErrorKind};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request on a connection holding `slot`. Under the cap it is served; in the reserve a probe
/// is answered and the connection then closes, and anything else waits briefly for a place under
/// the cap or is told to come back (see `slot`).
pub(super) async fn handle_in(
    slot: Arc<Slot>,
    request: Request<Incoming>,
    router: Router,
    state: Arc<ConnState>,
    body_timeout: Duration,
) -> Result<Response<Answer>, Infallible> {
    if !slot.in_reserve() {
        return handle(request, router, state, body_timeout).await;
    }
    if PROBES.contains(&request.uri().path()) {
        let mut answer = handle(request, router, state, body_timeout).await?;
        answer.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(answer);
    }
    // In flight while it waits, so the watchdog's head timeout does not close it meanwhile.
    let in_flight = InFlight::start(state.clone());
    if slot.move_under_cap().await {
        drop(in_flight);
        return handle(request, router, state, body_timeout).await;
    }
    state.answer_started();
    // `retry_after_seconds` becomes the `Retry-After` header (`ApiError::into_response`).
    let busy = ApiError::new(
        ErrorKind::TooManyConnections,
        "the server holds as many connections as it serves at once; retry shortly".to_owned(),
        json!({ "retry_after_seconds": 1 }),
    );
    Ok(Answer::wrap(closing(busy.into_response()), in_flight))
}

async fn handle(
    request: Request<Incoming>,
    mut router: Router,
    state: Arc<ConnState>,
    body_timeout: Duration,
) -> Result<Response<Answer>, Infallible> {
    let in_flight = InFlight::start(state.clone());
    // An oversized `Content-Length` is refused inside the router (`extract::RefuseDeclaredOversize`),
    // under CORS and auth, still before the body is read: hyper sends `100 Continue` only then.
    // Most requests (GETs) have no body: they skip the wrapper and its timer.
    let request = if request.body().is_end_stream() {
        request.map(Body::new)
    } else {
        let deadline = Instant::now() + body_timeout;
        request.map(|body| Body::new(DeadlineBody { body, deadline, sleep: None, state: state.clone() }))
    };
    let response = match router.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let response = if state.body_timed_out.swap(false, Relaxed) {
        // The router's answer is replaced, but not its CORS headers: a browser must see the 408.
        let mut timed_out = closing(body_timeout_error(body_timeout).into_response());
        for (name, value) in response.headers() {
            if name.as_str().starts_with("access-control-") || name == header::VARY {
                timed_out.headers_mut().append(name, value.clone());
            }
        }
        timed_out
    } else if state.closing() {
        closing(response)
    } else {
        response
    };
    // From here on only the answer is written: a client that stops reading it is timed out.
    state.answer_started();
    Ok(Answer::wrap(response, in_flight))
}

/// The rest of the body is never read, so the connection cannot carry another request.
fn closing(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn body_timeout_error(timeout: Duration) -> ApiError {
    ApiError::new(
        ErrorKind::RequestTimeout,
        format!("the request body did not arrive within {} s", timeout.as_secs_f64()),
        json!({ "timeout_seconds": timeout.as_secs_f64() }),
    )
}

/// Marks the request in flight until dropped, which hyper does once the answer is written out.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn start(state: Arc<ConnState>) -> Self {
        state.request_started();
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The answer's body, carrying the request's [`InFlight`] mark until hyper is done with it.
pub(super) struct Answer {
    body: Body,
    _in_flight: InFlight,
}

impl Answer {
    fn wrap(response: Response<Body>, in_flight: InFlight) -> Response<Answer> {
        response.map(|body| Answer { body, _in_flight: in_flight })
    }
}

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails once its deadline passes, flagging the connection so the answer is
/// a 408 whatever the handler made of the error.
struct DeadlineBody {
    body: Incoming,
    deadline: Instant,
    /// Armed on the first read that has to wait.
    sleep: Option<Pin<Box<Sleep>>>,
    state: Arc<ConnState>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
        }
        let deadline = this.deadline;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.state.body_timed_out.store(true, Relaxed);
            return Poll::Ready(Some(Err("request body deadline passed".into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
