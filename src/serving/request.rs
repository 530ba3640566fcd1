//! One request on a watched connection: put a deadline on the body, and tell the watchdog when the
//! request starts and when its answer has been written.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, header};
use axum::response::IntoResponse;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use serde_json::json;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use super::HttpService;
use super::slot::{PROBES, Slot};
use super::watchdog::ConnState;
use crate::error::{ApiError, ErrorKind};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request on a connection holding `slot`, served by the connection's own copy of the app
/// (`stack`). Under the cap it is served; in the reserve a probe is answered and the connection
/// then closes, and anything else waits briefly for a place under the cap or is told to come back
/// (see `slot`).
///
/// On the usual path (under the cap, the app ready, as a router always is) the app is called
/// here, before the returned future is first polled: the connection's copy is borrowed for the
/// call and no clone of the app is made per request. A clone of the whole stack per request
/// (what serving a `Router` did, through its boxed fallback) copied CORS's lists each time.
pub(super) fn handle_in<S: HttpService>(
    slot: &Arc<Slot>,
    request: Request<Incoming>,
    stack: &Mutex<S>,
    state: &Arc<ConnState>,
    body_timeout: Duration,
) -> impl Future<Output = Result<Response<Answer>, Infallible>> + Send + use<S> {
    // The lock is never contended: HTTP/1.1 serves one request of a connection at a time. A poisoned
    // lock only means a call panicked; the stack itself is still whole.
    let mut app = stack.lock().unwrap_or_else(PoisonError::into_inner);
    let start = if slot.in_reserve() {
        Start::Later(Box::new(Later { slot: slot.clone(), request, app: app.clone() }))
    } else {
        match app.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => {
                let (request, in_flight) = begin(request, state, body_timeout);
                Start::Called { answer: app.call(request), in_flight }
            }
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => Start::Later(Box::new(Later { slot: slot.clone(), request, app: app.clone() })),
        }
    };
    drop(app);
    let state = state.clone();
    async move {
        match start {
            Start::Called { answer, in_flight } => Ok(finish(answer.await, in_flight, &state, body_timeout)),
            Start::Later(later) => {
                let Later { slot, request, app } = *later;
                serve_later(slot, request, app, state, body_timeout).await
            }
        }
    }
}

/// Where a request stands once `handle_in` returns.
enum Start<S: HttpService> {
    /// The app was called; its answer is coming.
    Called { answer: S::Future, in_flight: InFlight },
    /// In the reserve, or the app was not ready: served from a copy of the app, after waiting.
    /// Boxed: the rare path should not make every request's future this large.
    Later(Box<Later<S>>),
}

struct Later<S> {
    slot: Arc<Slot>,
    request: Request<Incoming>,
    app: S,
}

async fn serve_later<S: HttpService>(
    slot: Arc<Slot>,
    request: Request<Incoming>,
    app: S,
    state: Arc<ConnState>,
    body_timeout: Duration,
) -> Result<Response<Answer>, Infallible> {
    if !slot.in_reserve() {
        return Ok(handle(request, app, &state, body_timeout).await);
    }
    if PROBES.contains(&request.uri().path()) {
        let mut answer = handle(request, app, &state, body_timeout).await;
        answer.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(answer);
    }
    // In flight while it waits, so the watchdog's head timeout does not close it meanwhile.
    let in_flight = InFlight::start(state.clone());
    if slot.move_under_cap().await {
        drop(in_flight);
        return Ok(handle(request, app, &state, body_timeout).await);
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

/// Serves `request` with `app` once it is ready.
async fn handle<S: HttpService>(
    request: Request<Incoming>,
    app: S,
    state: &Arc<ConnState>,
    body_timeout: Duration,
) -> Response<Answer> {
    let (request, in_flight) = begin(request, state, body_timeout);
    finish(app.oneshot(request).await, in_flight, state, body_timeout)
}

/// Marks the request in flight and gives its body a deadline.
fn begin(request: Request<Incoming>, state: &Arc<ConnState>, body_timeout: Duration) -> (Request<Body>, InFlight) {
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
    (request, in_flight)
}

/// The app's answer as it goes out: a 408 if the body missed its deadline, `Connection: close`
/// while draining.
fn finish(
    response: Result<Response<Body>, Infallible>,
    in_flight: InFlight,
    state: &ConnState,
    body_timeout: Duration,
) -> Response<Answer> {
    let response = match response {
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
    Answer::wrap(response, in_flight)
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
