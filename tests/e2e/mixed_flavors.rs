//! Mixed-flavor load against the real binary: create_scenes requests over 64 connections with
//! random flavors (unknown ones included), through the real Gemini client to a fake Gemini that
//! checks every prompt it receives against its own request's flavor. Expect no cross-talk and no
//! errors: 1000 requests in every `cargo test`; with `MVGEN_LOAD_TEST=1`, also 10 000 (after
//! 2 000 of warm-up) and resident memory after the run within 10% of what it was after warm-up.

use crate::support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use mvgen::prompts::{SceneInputs, scene_plan};
use serde_json::{Value, json};
use support::server_process::ServerProcess;

const FLAVORS: [&str; 5] = ["default", "mv1", "example", "no-such-flavor", "MV1"];
const CONNECTIONS: usize = 64;
const WARM_UP: usize = 2_000;
const REQUESTS: usize = 10_000;

#[test]
fn a_thousand_parallel_mixed_flavor_requests_never_mix() {
    let run = mixed_flavor_run(0, 1_000);
    assert_eq!(run.errors, 0, "requests failed");
    assert_eq!(run.checked, 1_000, "every request reached the fake");
    assert_eq!(run.mismatched, 0, "a prompt carried another flavor's config");
}

/// The load run: about a minute in a debug build, so only with `MVGEN_LOAD_TEST=1`.
#[test]
fn ten_thousand_mixed_flavor_requests_never_mix_and_do_not_grow_memory() {
    if std::env::var("MVGEN_LOAD_TEST").as_deref() != Ok("1") {
        eprintln!("load test skipped: set MVGEN_LOAD_TEST=1 to send 10 000 mixed-flavor requests");
        return;
    }
    let Run { errors, checked, mismatched, rss_warm, rss_after } = mixed_flavor_run(WARM_UP, REQUESTS);
    assert_eq!(errors, 0, "requests failed");
    assert_eq!(checked, WARM_UP + REQUESTS, "every request reached the fake");
    assert_eq!(mismatched, 0, "a prompt carried another flavor's config");
    let growth = rss_after as f64 / rss_warm as f64;
    assert!(growth <= 1.10, "RSS grew from {rss_warm} KiB to {rss_after} KiB ({growth:.3}x)");
    eprintln!("mixed flavors: RSS after warm-up {rss_warm} KiB, after {REQUESTS} requests {rss_after} KiB");
}

/// What one run against a fresh fake and a fresh `mvgen` saw.
struct Run {
    errors: usize,
    checked: usize,
    mismatched: usize,
    /// The server's resident memory after the warm-up and after the measured requests.
    rss_warm: u64,
    rss_after: u64,
}

/// `warm_up` requests, then `requests` more, to a real `mvgen` whose Gemini is a checking fake.
fn mixed_flavor_run(warm_up: usize, requests: usize) -> Run {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let fake = CheckingGemini::start().await;
        let server = ServerProcess::start(&[
            ("GEMINI_API_KEY", "load-test-key"),
            ("GEMINI_BASE_URL", &fake.base_url),
            ("RUST_LOG", "error"),
        ])
        .expect("start mvgen");
        let client = crate::support::http_client_builder().pool_max_idle_per_host(CONNECTIONS).build().expect("client");

        let errors = Arc::new(AtomicUsize::new(0));
        run(&client, &server.base, 0, warm_up, &errors).await;
        let rss_warm = rss_kib(server.pid());
        run(&client, &server.base, warm_up, requests, &errors).await;
        let rss_after = rss_kib(server.pid());
        Run {
            errors: errors.load(Ordering::Relaxed),
            checked: fake.checked.load(Ordering::Relaxed),
            mismatched: fake.mismatched.load(Ordering::Relaxed),
            rss_warm,
            rss_after,
        }
    })
}

/// Sends requests `from..from + count`, `CONNECTIONS` at a time, each with a pseudo-random flavor.
async fn run(client: &reqwest::Client, base: &str, from: usize, count: usize, errors: &Arc<AtomicUsize>) {
    let next = Arc::new(AtomicUsize::new(from));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (client, base, next, errors) = (client.clone(), base.to_string(), next.clone(), errors.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= from + count {
                    break;
                }
                let flavor = FLAVORS[pick(i)];
                let body =
                    json!({"idea": idea(i, flavor), "character_description": "a runner", "config_flavor": flavor});
                let ok = match client.post(format!("{base}/api/mv/create_scenes")).json(&body).send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let used =
                            resp.json::<Value>().await.ok().map(|v| v["metadata"]["config_flavor"]["used"].clone());
                        used == Some(json!(expected_flavor(flavor)))
                    }
                    _ => false,
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

/// A fixed pseudo-random sequence (splitmix-style), so a failure can be replayed.
fn pick(i: usize) -> usize {
    let mut x = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((x ^ (x >> 31)) % FLAVORS.len() as u64) as usize
}

fn idea(i: usize, flavor: &str) -> String {
    format!("load-{i}|{flavor}|end")
}

fn expected_flavor(requested: &'static str) -> &'static str {
    if mvgen::flavor::lookup(requested).is_some() { requested } else { "default" }
}

/// A fake Gemini that knows, from the idea in each prompt, which flavor the request named, renders
/// that flavor's prompt itself, and counts any difference as cross-talk.
struct CheckingGemini {
    base_url: String,
    checked: Arc<AtomicUsize>,
    mismatched: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Counters {
    checked: Arc<AtomicUsize>,
    mismatched: Arc<AtomicUsize>,
}

impl CheckingGemini {
    async fn start() -> Self {
        let counters = Counters { checked: Arc::default(), mismatched: Arc::default() };
        let app = axum::Router::new().route("/v1beta/models/{model}", post(answer)).with_state(counters.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        CheckingGemini { base_url, checked: counters.checked, mismatched: counters.mismatched }
    }
}

async fn answer(State(counters): State<Counters>, Json(body): Json<Value>) -> Json<Value> {
    let prompt = body["contents"][0]["parts"][0]["text"].as_str().unwrap_or_default().to_string();
    let requested = prompt.split("load-").nth(1).and_then(|rest| rest.split('|').nth(1)).unwrap_or("?").to_string();
    let idea_text = prompt
        .split("load-")
        .nth(1)
        .and_then(|rest| rest.split("|end").next())
        .map(|s| format!("load-{s}|end"))
        .unwrap_or_default();
    let flavor = mvgen::flavor::lookup(&requested).unwrap_or_else(mvgen::flavor::default);
    let expected = scene_plan(
        flavor,
        SceneInputs { idea: idea_text, character_description: "a runner".into(), ..Default::default() },
    );
    counters.checked.fetch_add(1, Ordering::Relaxed);
    if expected.prompt != prompt {
        counters.mismatched.fetch_add(1, Ordering::Relaxed);
    }
    let n = flavor.parameters.number_of_scenes.value;
    let scenes: Vec<Value> =
        (0..n).map(|i| json!({"description": format!("scene {i}"), "negative_description": "none"})).collect();
    let text = json!({ "scenes": scenes }).to_string();
    Json(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}],
        "modelVersion": "fake"
    }))
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let fields: HashMap<&str, &str> = status.lines().filter_map(|l| l.split_once(':')).collect();
    fields.get("VmRSS").and_then(|v| v.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}
