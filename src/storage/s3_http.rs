//! The HTTP client `object_store` talks to S3 through: mvgen's own reqwest build (HTTP/1.1 and
//! rustls with Mozilla's roots compiled in, `crate::tls`), plugged in as an `HttpConnector`.
//!
//! Why not `object_store`'s `reqwest` feature: it turns on reqwest's `http2`, which links h2 and
//! hyper's HTTP/2 client (and, through feature unification, its server) into the binary, the
//! largest crate mvgen did not use (BENCHMARKS.md, "Binary size"). S3 and its clones answer
//! HTTP/1.1, which is what the providers' client speaks too.
//!
//! What `object_store`'s own connector did that matters here is done the same way: its error
//! kinds (which decide what its retries retry), `allow_http`, the connect timeout, no compression
//! (none is linked), and a connection pool per store.

use std::error::Error as _;
use std::time::Duration;

use http_body_util::BodyExt as _;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
};
use object_store::{ClientConfigKey, ClientOptions};

/// Builds a reqwest client for each set of client options `object_store` asks for (the store's,
/// and a metadata client's when credentials come from an instance's metadata endpoint).
#[derive(Debug, Default)]
pub struct Connector;

impl HttpConnector for Connector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let value = |key| options.get_config_value(&key);
        let allow_http = value(ClientConfigKey::AllowHttp).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let tls =
            crate::tls::client_config().map_err(|e| object_store::Error::Generic { store: "S3", source: e.into() })?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("mvgen/", env!("CARGO_PKG_VERSION")))
            .https_only(!allow_http)
            // The static binary may run where there is no CA store at all (as for the providers).
            .tls_backend_preconfigured(tls);
        if let Some(timeout) = value(ClientConfigKey::ConnectTimeout).as_deref().and_then(duration) {
            builder = builder.connect_timeout(timeout);
        }
        let client = builder.build().map_err(|e| object_store::Error::Generic { store: "S3", source: Box::new(e) })?;
        Ok(HttpClient::new(Client(client)))
    }
}

/// A duration as `object_store` writes one (`humantime`, e.g. `5s`); an unparsable one is ignored,
/// as its own connector would have failed on it.
fn duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

#[derive(Debug)]
struct Client(reqwest::Client);

#[async_trait::async_trait]
impl HttpService for Client {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;
        let mut outgoing = reqwest::Request::new(parts.method, url);
        *outgoing.headers_mut() = parts.headers;
        // Bytes in one piece stay one reusable body with its length; a multi-chunk payload is
        // sent as it is, its exact length still known from its size hint.
        *outgoing.body_mut() = Some(match body.as_bytes() {
            Some(bytes) => reqwest::Body::from(bytes.clone()),
            None => reqwest::Body::wrap(body),
        });
        let response = self.0.execute(outgoing).await.map_err(http_error)?;
        let (parts, body) = axum::http::Response::<reqwest::Body>::from(response).into_parts();
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body.map_err(http_error))))
    }
}

/// A reqwest error as the kind `object_store` retries on: what its own connector decided, so a
/// reset or a timeout is retried within the deadline exactly as before.
fn http_error(e: reqwest::Error) -> HttpError {
    let mut kind = if e.is_timeout() {
        HttpErrorKind::Timeout
    } else if e.is_connect() {
        HttpErrorKind::Connect
    } else if e.is_decode() {
        HttpErrorKind::Decode
    } else {
        HttpErrorKind::Unknown
    };
    let mut source = e.source();
    while let (HttpErrorKind::Unknown, Some(cause)) = (kind, source) {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            if hyper.is_closed() || hyper.is_incomplete_message() || hyper.is_body_write_aborted() {
                kind = HttpErrorKind::Request;
            } else if hyper.is_timeout() {
                kind = HttpErrorKind::Timeout;
            }
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                TimedOut => kind = HttpErrorKind::Timeout,
                ConnectionAborted | ConnectionReset | BrokenPipe | UnexpectedEof => kind = HttpErrorKind::Interrupted,
                _ => {}
            }
        }
        source = cause.source();
    }
    HttpError::new(kind, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::client::HttpRequestBody;

    #[test]
    fn durations_are_read_as_object_store_writes_them() {
        let options = ClientOptions::new().with_connect_timeout(Duration::from_millis(2500));
        let written = options.get_config_value(&ClientConfigKey::ConnectTimeout).expect("set");
        assert_eq!(duration(&written), Some(Duration::from_millis(2500)));
        assert_eq!(duration("soon"), None);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_which_object_store_retries() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let options = ClientOptions::new().with_allow_http(true);
        let client = Connector.connect(&options).expect("client");
        let request = axum::http::Request::get(format!("http://127.0.0.1:{port}/bucket"))
            .body(HttpRequestBody::empty())
            .expect("request");
        let err = client.execute(request).await.expect_err("refused");
        assert_eq!(err.kind(), HttpErrorKind::Connect, "{err}");
        let https_only = Connector.connect(&ClientOptions::new()).expect("client");
        let request = axum::http::Request::get(format!("http://127.0.0.1:{port}/bucket"))
            .body(HttpRequestBody::empty())
            .expect("request");
        assert!(https_only.execute(request).await.is_err(), "plain http is refused unless allowed");
    }
}
