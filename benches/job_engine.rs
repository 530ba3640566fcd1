//! The job engine's figures, side by side in one run (BENCHMARKS.md): job submissions/s on SQLite
//! and PostgreSQL (without and with an `Idempotency-Key`) against the sync mock path (`create_scenes` with the mock providers), p50/p99
//! from a job finishing to its SSE event reaching a client, RSS with 1000 open SSE streams, and
//! the embedded database's cold start.
//!
//! `cargo bench --bench job_engine` (PostgreSQL from Debian's package; without it those rows are skipped).
//! Everything runs in this one process over 127.0.0.1 with an instant pipeline, so the figures are
//! the engine's and the HTTP layer's own cost, not a model's.

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mvgen::error::ApiError;
use mvgen::generation::Kind;
use mvgen::generation::stored::StoredPlan;
use mvgen::jobs::{EngineConfig, JobPipeline, Jobs};
use mvgen::providers::{BoxFuture, Providers, RunContext};
use mvgen::server::{Settings, app_with_jobs};
use mvgen::state::AppState;
use mvgen::storage::local::LocalStorage;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const CLIENTS: usize = 32;
const WINDOW: Duration = Duration::from_secs(3);

/// Plans by echoing the input; runs at once, noting when each job finished.
#[derive(Default)]
struct Instant_ {
    finished: Mutex<HashMap<String, Instant>>,
}

impl JobPipeline for Instant_ {
    fn plan<'a>(&'a self, _kind: Kind, input: Value) -> BoxFuture<'a, Result<StoredPlan, ApiError>> {
        Box::pin(async move {
            Ok(StoredPlan {
                plan: input,
                config_flavor: json!({ "used": "default" }),
                project_id: None,
                sequence: None,
            })
        })
    }

    fn run<'a>(&'a self, _kind: Kind, plan: &'a Value, _ctx: RunContext<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            let prompt = plan["prompt"].as_str().unwrap_or_default().to_owned();
            self.finished.lock().unwrap().insert(prompt, Instant::now());
            Ok(json!({ "ok": true }))
        })
    }
}

struct Server {
    base: String,
    jobs: Arc<Jobs>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn server(url: &str, pipeline: Arc<Instant_>, workers: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::from_vars(None, |_| None).unwrap();
    settings.output_dir = dir.path().join("outputs");
    let config = EngineConfig { workers, ..EngineConfig::default() };
    let jobs = Jobs::open(url, pipeline, config).await.expect("open");
    let shutdown = CancellationToken::new();
    let _ = jobs.start_workers(shutdown.clone());
    let state = AppState {
        providers: Providers::mock(),
        storage: Arc::new(LocalStorage::new(&settings.output_dir)),
        debug: false,
        strict_flavors: false,
        generations: mvgen::limits::GenerationSlots::new(1024),
        flavors: Default::default(),
    };
    let router = app_with_jobs(state, &settings, Some(jobs.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = shutdown.clone();
    tokio::spawn(mvgen::server::serve(listener, router, async move { stop.cancelled().await }));
    Server { base, jobs, shutdown, _dir: dir }
}

/// Requests/s of `CLIENTS` clients posting `body` to `path` for `WINDOW`; `keyed`: each request
/// with an `Idempotency-Key` of its own, as the create page sends.
async fn rate(client: &reqwest::Client, url: String, body: Value, expect: u16, keyed: bool) -> f64 {
    let deadline = Instant::now() + WINDOW;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let mut body = body.clone();
                if let Some(input) = body.get_mut("input") {
                    input["prompt"] = json!(format!("c{c}-{n}"));
                }
                let mut request = client.post(&url).json(&body);
                if keyed {
                    request = request.header("idempotency-key", format!("bench-{c}-{n}-{}", uuid::Uuid::new_v4()));
                }
                let response = request.send().await.expect("send");
                assert_eq!(response.status().as_u16(), expect, "{}", response.text().await.unwrap_or_default());
                let _ = response.bytes().await;
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn scenes_body() -> Value {
    json!({ "idea": "a lighthouse keeper's last night", "character_description": "an old keeper in a yellow coat" })
}

async fn submissions(client: &reqwest::Client, name: &str, url: &str) -> f64 {
    let s = server(url, Arc::default(), 0).await;
    let url_jobs = format!("{}/api/mv/jobs", s.base);
    let body = json!({ "kind": "scenes", "input": { "prompt": "" } });
    let jobs = rate(client, url_jobs.clone(), body.clone(), 202, false).await;
    println!("submissions/s  {name:<8} {jobs:>8.0}");
    let keyed = rate(client, url_jobs, body, 202, true).await;
    println!("submissions/s  {name:<8} {keyed:>8.0}  each with an Idempotency-Key ({:.2} of unkeyed)", keyed / jobs);
    s.shutdown.cancel();
    s.jobs.close().await;
    jobs
}

/// Submits a `scenes` job; its id.
async fn submit(client: &reqwest::Client, base: &str, prompt: &str) -> String {
    let job: Value = client
        .post(format!("{base}/api/mv/jobs"))
        .json(&json!({ "kind": "scenes", "input": { "prompt": prompt } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    job["id"].as_str().unwrap().to_owned()
}

/// Latency from the pipeline returning to the `succeeded` event arriving on an open stream.
async fn event_latency(client: &reqwest::Client, name: &str, url: &str) {
    let pipeline = Arc::new(Instant_::default());
    let s = server(url, pipeline.clone(), 4).await;
    let mut latencies = Vec::new();
    for round in 0..20 {
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (client, base, pipeline) = (client.clone(), s.base.clone(), pipeline.clone());
            tasks.push(tokio::spawn(async move {
                let prompt = format!("{round}-{i}");
                let id = submit(&client, &base, &prompt).await;
                let mut stream = client.get(format!("{base}/api/mv/jobs/{id}/events")).send().await.unwrap();
                let mut text = String::new();
                while let Some(chunk) = stream.chunk().await.unwrap() {
                    text.push_str(&String::from_utf8_lossy(&chunk));
                    if text.contains("event: succeeded") {
                        let arrived = Instant::now();
                        let finished = pipeline.finished.lock().unwrap()[&prompt];
                        return arrived.saturating_duration_since(finished);
                    }
                }
                panic!("stream ended without succeeded: {text}");
            }));
        }
        for task in tasks {
            latencies.push(task.await.unwrap());
        }
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "event latency  {name:<8} p50 {:>6.1} ms  p99 {:>6.1} ms  ({} jobs)",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.len()
    );
    s.shutdown.cancel();
    s.jobs.close().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

/// 1000 SSE streams on queued jobs (no workers), from raw sockets that cost the client side
/// almost nothing: the RSS growth is the server's.
async fn rss_with_streams(client: &reqwest::Client, url: &str) {
    const STREAMS: usize = 1000;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let s = server(url, Arc::default(), 0).await;
    let mut ids = Vec::new();
    for i in 0..STREAMS {
        ids.push(submit(client, &s.base, &format!("rss {i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib();
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut sockets = Vec::new();
    for id in &ids {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let request =
            format!("GET /api/mv/jobs/{id}/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let mut seen = String::new();
        while !seen.contains("event: queued") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream closed: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = rss_kib();
    println!(
        "rss            sqlite   {} open SSE streams: +{:.1} MiB (process {:.1} -> {:.1} MiB)",
        sockets.len(),
        (after.saturating_sub(before)) as f64 / 1024.0,
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    drop(sockets);
    s.shutdown.cancel();
    s.jobs.close().await;
}

async fn cold_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
    let start = Instant::now();
    let jobs = Jobs::open(&url, Arc::new(Instant_::default()), EngineConfig::default()).await.unwrap();
    let fresh = start.elapsed();
    jobs.submit(Kind::Scenes, json!({ "prompt": "first" }), None, None).await.map_err(|e| e.message).unwrap();
    let first = start.elapsed();
    jobs.close().await;
    let start = Instant::now();
    let jobs = Jobs::open(&url, Arc::new(Instant_::default()), EngineConfig::default()).await.unwrap();
    let reopen = start.elapsed();
    jobs.close().await;
    println!(
        "cold start     sqlite   create+migrate {:.1} ms, + first job stored {:.1} ms, reopen {:.1} ms",
        fresh.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        reopen.as_secs_f64() * 1e3
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        mvgen::tls::install_crypto_provider();
        let client = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
        let db = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}?mode=rwc", db.path().join("jobs.db").display());
        let pg = postgres::Postgres::start("jobs bench (PostgreSQL rows)");

        let sync = {
            let s = server(&sqlite, Arc::default(), 0).await;
            let sync = rate(&client, format!("{}/api/mv/create_scenes", s.base), scenes_body(), 200, false).await;
            s.shutdown.cancel();
            s.jobs.close().await;
            sync
        };
        println!("requests/s     sync mock create_scenes {sync:>8.0}");
        let on_sqlite = submissions(&client, "sqlite", &sqlite).await;
        println!("               ratio sqlite/sync {:.2}", on_sqlite / sync);
        if let Some(pg) = &pg {
            let on_pg = submissions(&client, "postgres", &pg.url).await;
            println!("               ratio postgres/sync {:.2}", on_pg / sync);
        }
        event_latency(&client, "sqlite", &sqlite).await;
        if let Some(pg) = &pg {
            event_latency(&client, "postgres", &pg.url).await;
        }
        rss_with_streams(&client, &format!("sqlite://{}?mode=rwc", db.path().join("rss.db").display())).await;
        cold_start().await;
    });
}
