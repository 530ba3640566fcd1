//! `GET /metrics` and request ids, through the real binary: counters move for real generations
//! (mock and a failing fake Gemini) and fallbacks, the text is valid Prometheus exposition with
//! bounded labels, the endpoint is keyed like the API, and request ids are kept or replaced, echoed,
//! put in error bodies and in every JSON log line of the request.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use support::client::Client;
use support::fake_upstream::{FakeGemini, Scripted};
use support::server_process::ServerProcess;

type Samples = BTreeMap<String, f64>;

/// Parses Prometheus text exposition strictly enough to catch a broken payload: `# HELP` / `# TYPE`
/// comments, `name{label="value",...} number` samples, every sample of a declared family, every
/// label value properly quoted. Returns `name{labels}` → value.
fn parse_exposition(text: &str) -> Samples {
    let mut declared = BTreeSet::new();
    let mut samples = Samples::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, what) = (parts.next(), parts.next(), parts.next());
            assert!(matches!(kind, Some("HELP" | "TYPE")), "unknown comment: {line}");
            let name = name.unwrap_or_else(|| panic!("comment without a name: {line}"));
            if kind == Some("TYPE") {
                assert!(matches!(what, Some("counter" | "gauge" | "histogram" | "summary")), "type: {line}");
                declared.insert(name.to_string());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value.parse::<f64>().is_ok(), "value is not a number: {line}");
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name: {line}"
        );
        let family =
            ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).filter(|f| declared.contains(*f));
        assert!(declared.contains(name) || family.is_some(), "sample of an undeclared family: {line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner =
                labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).unwrap_or_else(|| panic!("labels: {line}"));
            for pair in split_labels(inner) {
                let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("label: {line}"));
                assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "label name: {line}");
                assert!(value.len() >= 2 && value.starts_with('"') && value.ends_with('"'), "label value: {line}");
            }
        }
        samples.insert(series.to_string(), value.parse().unwrap_or_default());
    }
    samples
}

/// `a="x",b="y,z"` → [`a="x"`, `b="y,z"`] (commas inside quotes stay).
fn split_labels(inner: &str) -> Vec<String> {
    let (mut out, mut current, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in inner.chars() {
        match c {
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => {
                if c == '"' && !escaped {
                    quoted = !quoted;
                }
                escaped = c == '\\' && !escaped;
                current.push(c);
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A GET of the flavor list with `id` as the raw `X-Request-Id` bytes; the whole answer as text.
fn raw_get(base: &str, id: &[u8]) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let mut request =
        b"GET /api/mv/get_config_flavors HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: ".to_vec();
    request.extend_from_slice(id);
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// `GET /metrics`, with the content type checked on a 200.
trait Metrics {
    fn metrics(&self, key: Option<&str>) -> (u16, String);
}

impl Metrics for Client {
    fn metrics(&self, key: Option<&str>) -> (u16, String) {
        let mut request = self.http.get(format!("{}/metrics", self.base));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        let (status, headers, text) = self.send(request);
        if status == 200 {
            let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert!(ct.starts_with("text/plain; version=0.0.4"), "content type {ct}");
        }
        (status, text)
    }
}

#[test]
fn metrics_count_generations_and_fallbacks_with_bounded_labels() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start");
    let client = Client::new(&server);
    assert_eq!(client.scenes("mv1").0, 200);

    // 1000 different unknown names: each falls back to default, none becomes a label value.
    let names: Vec<String> = (0..1000).map(|i| format!("no-such-flavor-{i:04}")).collect();
    client.rt.block_on(async {
        for chunk in names.chunks(50) {
            let sends = chunk.iter().map(|name| {
                let body = json!({"idea": "x", "character_description": "y", "config_flavor": name});
                client.http.post(format!("{}/api/mv/create_scenes", client.base)).json(&body).send()
            });
            for resp in futures_util::future::join_all(sends).await {
                assert_eq!(resp.expect("POST").status(), 200);
            }
        }
    });
    let (status, _, _) = client.send(client.http.get(format!("{}/api/mv/get_video/not-an-id!", client.base)));
    assert_eq!(status, 400);
    let (status, _, _) = client.send(client.http.get(format!("{}/some/raw/path/123", client.base)));
    assert_eq!(status, 404);

    let (status, text) = client.metrics(None);
    assert_eq!(status, 200);
    let samples = parse_exposition(&text);
    let get = |series: &str| samples.get(series).copied().unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(get(r#"mvgen_generations_total{kind="scenes",flavor="mv1",backend="mock",outcome="ok"}"#), 1.0);
    assert_eq!(get(r#"mvgen_generations_total{kind="scenes",flavor="default",backend="mock",outcome="ok"}"#), 1000.0);
    assert_eq!(get(r#"mvgen_flavor_fallbacks_total{outcome="default_used"}"#), 1000.0);
    assert_eq!(get(r#"mvgen_http_requests_total{route="/api/mv/create_scenes",status="200"}"#), 1001.0);
    assert_eq!(get(r#"mvgen_http_requests_total{route="/api/mv/get_video/{id}",status="400"}"#), 1.0);
    assert_eq!(get(r#"mvgen_http_requests_total{route="unmatched",status="404"}"#), 1.0);
    assert_eq!(get(r#"mvgen_generations_in_flight{kind="scenes"}"#), 0.0);
    assert_eq!(get(r#"mvgen_upstream_duration_seconds_count{provider="mock",kind="scenes"}"#), 1001.0);
    assert!(samples.contains_key(r#"mvgen_upstream_duration_seconds_bucket{provider="mock",kind="scenes",le="+Inf"}"#));
    assert!(!text.contains("no-such-flavor") && !text.contains("/some/raw/path"), "unbounded label values:\n{text}");
    assert!(samples.len() < 60, "{} series after 1000 distinct flavor names:\n{text}", samples.len());
}

/// Every request is counted under the template the router served it from, whichever kind of route
/// that is: the page and its assets (not in the OpenAPI document), a job route with its id, a HEAD
/// under its GET route, a wrong method (405) under the route whose path it matched; a path no
/// route matches as `unmatched`.
#[test]
fn requests_are_counted_under_the_template_of_the_route_that_served_them() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start");
    let client = Client::new(&server);
    let unknown_job = "/api/mv/jobs/0e4f1a2b-8f0a-4d2b-9c51-3f2b6c1e3c4d";
    let cases = [
        (reqwest::Method::GET, "/", "/", 200),
        (reqwest::Method::GET, "/create", "/create", 200),
        (reqwest::Method::GET, "/assets/no-such-file.js", "/assets/{file}", 404),
        (reqwest::Method::GET, unknown_job, "/api/mv/jobs/{id}", 404),
        (reqwest::Method::HEAD, "/health", "/health", 200),
        (reqwest::Method::POST, "/api/mv/get_config_flavors", "/api/mv/get_config_flavors", 405),
        (reqwest::Method::DELETE, "/api/mv/jobs", "/api/mv/jobs", 405),
        (reqwest::Method::GET, "/api/mv/get_config_flavors/more", "unmatched", 404),
        (reqwest::Method::GET, "/assets/a/b", "unmatched", 404),
    ];
    for (method, path, _, status) in &cases {
        let (got, _, body) = client.send(client.http.request(method.clone(), format!("{}{path}", client.base)));
        assert_eq!(got, *status, "{method} {path}: {body}");
    }
    let (status, text) = client.metrics(None);
    assert_eq!(status, 200);
    let samples = parse_exposition(&text);
    for (method, path, route, status) in &cases {
        let series = format!(r#"mvgen_http_requests_total{{route="{route}",status="{status}"}}"#);
        assert!(samples.get(&series).is_some_and(|n| *n >= 1.0), "{method} {path}: no {series} in:\n{text}");
    }
    let unmatched = samples.get(r#"mvgen_http_requests_total{route="unmatched",status="404"}"#);
    assert_eq!(unmatched, Some(&2.0), "only the two paths no route matches:\n{text}");
}

#[test]
fn a_failed_upstream_generation_is_counted_with_its_backend_and_outcome() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let gemini = rt.block_on(FakeGemini::start());
    gemini.push_response(Scripted::json(400, FakeGemini::error_body(400, "INVALID_ARGUMENT", "bad prompt")));
    let server =
        ServerProcess::start(&[("GEMINI_API_KEY", "k"), ("GEMINI_BASE_URL", &gemini.base_url)]).expect("start");
    let client = Client::new(&server);
    let (status, body) = client.scenes("mv1");
    assert_eq!(status, 502, "{body}");
    let samples = parse_exposition(&client.metrics(None).1);
    let series = r#"mvgen_generations_total{kind="scenes",flavor="mv1",backend="gemini",outcome="upstream_error"}"#;
    assert_eq!(samples.get(series), Some(&1.0), "{samples:#?}");
    assert_eq!(samples.get(r#"mvgen_http_requests_total{route="/api/mv/create_scenes",status="502"}"#), Some(&1.0));
    drop(rt);
}

#[test]
fn metrics_need_the_api_key_when_one_is_set_and_can_be_switched_off() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock"), ("API_KEY", "sesame")]).expect("start");
    let client = Client::new(&server);
    let (status, body) = client.metrics(None);
    assert_eq!(status, 401, "{body}");
    assert!(serde_json::from_str::<Value>(&body).is_ok_and(|b| b["detail"]["error"] == "Unauthorized"), "{body}");
    assert_eq!(client.metrics(Some("wrong")).0, 401);
    let (status, text) = client.metrics(Some("sesame"));
    assert_eq!(status, 200);
    assert!(parse_exposition(&text).keys().any(|k| k.contains(r#"route="/metrics",status="401""#)), "{text}");

    let off = ServerProcess::start(&[("MV_PROVIDER", "mock"), ("MVGEN_METRICS", "false")]).expect("start");
    assert_eq!(Client::new(&off).metrics(None).0, 404);
}

#[test]
fn request_ids_are_kept_or_replaced_and_reach_headers_error_bodies_and_log_lines() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock"), ("MVGEN_LOG_FORMAT", "json")]).expect("start");
    let client = Client::new(&server);
    let flavors = format!("{}/api/mv/get_config_flavors", client.base);
    let id_of = |headers: &reqwest::header::HeaderMap| {
        let all: Vec<_> =
            headers.get_all("x-request-id").iter().map(|v| v.to_str().expect("ascii").to_string()).collect();
        assert_eq!(all.len(), 1, "exactly one X-Request-Id: {all:?}");
        all[0].clone()
    };
    let is_uuid = |id: &str| uuid::Uuid::parse_str(id).is_ok();

    // A plain incoming id is kept.
    let (_, headers, _) = client.send(client.http.get(&flavors).header("x-request-id", "trace-abc.123"));
    assert_eq!(id_of(&headers), "trace-abc.123");
    let longest = "x".repeat(128);
    let (_, headers, _) = client.send(client.http.get(&flavors).header("x-request-id", &longest));
    assert_eq!(id_of(&headers), longest);

    // None, oversized, spaces, control or non-ASCII bytes: a fresh UUID, the bad value never echoed.
    let (_, headers, _) = client.send(client.http.get(&flavors));
    assert!(is_uuid(&id_of(&headers)));
    let (_, headers, _) = client.send(client.http.get(&flavors).header("x-request-id", "y".repeat(129)));
    assert!(is_uuid(&id_of(&headers)));
    for bad in [&b"has space"[..], b"tab\there", b"caf\xc3\xa9"] {
        let value = reqwest::header::HeaderValue::from_bytes(bad).expect("header value");
        let (_, headers, _) = client.send(client.http.get(&flavors).header("x-request-id", value));
        assert!(is_uuid(&id_of(&headers)), "{bad:?} was not replaced");
    }

    // Control bytes no client library sends, written raw: never echoed (hyper may refuse the request).
    let raw = raw_get(&client.base, b"ctl\x01\x1b[31mred");
    assert!(!raw.contains("ctl") && !raw.contains("red"), "echoed: {raw}");

    // Error bodies carry it, next to the unchanged shape.
    let (status, headers, body) =
        client.send(client.http.get(format!("{}/nope", client.base)).header("x-request-id", "err-1"));
    assert_eq!(status, 404);
    assert_eq!(id_of(&headers), "err-1");
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["detail"]["request_id"], "err-1");
    assert_eq!(body["detail"]["error"], "NotFound");
    let (status, headers, body) = client.send(
        client
            .http
            .post(format!("{}/api/mv/create_scenes", client.base))
            .json(&json!({"idea": " ", "character_description": "y"})),
    );
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["detail"]["request_id"].as_str(), Some(id_of(&headers).as_str()));

    // A request that logs (a flavor fallback): its JSON log line names the request's id.
    let body = json!({"idea": "x", "character_description": "y", "config_flavor": "gone"});
    let url = format!("{}/api/mv/create_scenes", client.base);
    let (status, _, _) = client.send(client.http.post(url).json(&body).header("x-request-id", "log-me-42"));
    assert_eq!(status, 200);
    let log = server.log();
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("unknown config flavor")))
        .unwrap_or_else(|| panic!("no fallback warning in:\n{log}"));
    assert_eq!(line["span"]["request_id"], "log-me-42", "{line}");
    assert!(!log.contains("yyyyyyyyyy") && !log.contains("tab\there"), "a refused id reached the log");
}

/// The default (text) log writes the request span's id as it always has, `request{request_id=…}`
/// on every line of the request: kept from the caller, or the fresh one the answer carries. (Since
/// issue 22 the id is written by `log_fields`, not tracing-subscriber's `DefaultFields`.)
#[test]
fn text_log_lines_carry_the_request_id_in_the_request_span() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start");
    let client = Client::new(&server);
    let url = format!("{}/api/mv/create_scenes", client.base);
    let body = json!({"idea": "x", "character_description": "y", "config_flavor": "gone"});
    let (status, _, _) = client.send(client.http.post(&url).json(&body).header("x-request-id", "log-me-42"));
    assert_eq!(status, 200);
    let (status, headers, _) = client.send(client.http.post(&url).json(&body));
    assert_eq!(status, 200);
    let fresh = headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("an id").to_owned();
    let log = server.log();
    let fallbacks: Vec<&str> = log.lines().filter(|l| l.contains("unknown config flavor")).collect();
    assert_eq!(fallbacks.len(), 2, "{log}");
    assert!(fallbacks[0].contains(" request{request_id=log-me-42}: "), "{}", fallbacks[0]);
    assert!(fallbacks[1].contains(&format!(" request{{request_id={fresh}}}: ")), "{}", fallbacks[1]);
}
