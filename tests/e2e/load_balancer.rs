//! The load balancer recipe of docs/deploy.md, run: Debian's nginx started from
//! docs/nginx/mvgen.conf itself (only the replicas' addresses and the listen port replaced) in
//! front of two `mvgen serve` replicas on one PostgreSQL, and a rolling restart under load done as
//! the page says: take a replica out (`down`, reload), SIGTERM it, wait for its exit, start it
//! again, wait for its `/readyz`, put it back (reload); then the other. Every answer a client gets
//! meanwhile is a 2xx, except a sync video cut by the drain, which is the documented 503
//! `JobStillRunning` with `X-Job-Id`, sent once upstream (nginx does not resubmit the POST) and
//! finished afterwards. Every job submitted during the restart succeeds.
//!
//! Without nginx or PostgreSQL the test prints a skip line; under `CI=true` it fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::durable_jobs::{Fakes, PATIENCE, finished, wait_for, wait_job};
use crate::support::fake_upstream::{FakeFile, Outcome, PredictionPlan, Route};
use crate::support::nginx::{Nginx, free_port};
use crate::support::postgres::Postgres;
use crate::support::server_process::ServerProcess;

/// The recipe as committed, read when the test runs: the operators' file, not a copy of it.
const SITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/nginx/mvgen.conf");

/// The recipe's placeholders, each replaced exactly once.
const REPLICA_A: &str = "10.0.0.11:8000";
const REPLICA_B: &str = "10.0.0.12:8000";
const LISTEN: &str = "listen 80;";

/// The site file for these replicas and port; `out` names a replica taken out (`down`), as
/// docs/deploy.md says to do it.
fn site(port: u16, replicas: [&str; 2], out: Option<&str>) -> String {
    let mut text = std::fs::read_to_string(SITE).expect("docs/nginx/mvgen.conf");
    for (from, to) in [(REPLICA_A, replicas[0]), (REPLICA_B, replicas[1])] {
        let taken_out = out == Some(to);
        let line = format!("server {from} ");
        assert_eq!(text.matches(&line).count(), 1, "docs/nginx/mvgen.conf names {from} on one server line");
        text = text.replace(&line, &format!("server {to} {}", if taken_out { "down " } else { "" }));
    }
    assert_eq!(text.matches(LISTEN).count(), 1, "docs/nginx/mvgen.conf has one `{LISTEN}`");
    text.replace(LISTEN, &format!("listen 127.0.0.1:{port};"))
}

/// A client that opens a connection per request: a pooled connection nginx closes on reload
/// (its old worker drops idle client connections) would be this client's race, not the recipe's.
fn client() -> reqwest::Client {
    crate::support::http_client_builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// What one load request got.
#[derive(Debug)]
struct Answer {
    what: &'static str,
    status: Result<u16, String>,
    took: Duration,
}

/// One client in a loop until `stop`: `what` sends a request and names it; every answer is kept.
async fn load(
    stop: Arc<AtomicBool>,
    mut send: impl AsyncFnMut(u32) -> (&'static str, Result<reqwest::Response, reqwest::Error>),
) -> (Vec<Answer>, Vec<String>) {
    let (mut answers, mut job_ids) = (Vec::new(), Vec::new());
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let started = Instant::now();
        let (what, sent) = send(round).await;
        let status = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if what == "submit" && status == 202 {
                    job_ids.push(body["id"].as_str().expect("job id").to_owned());
                }
                Ok(status)
            }
            Err(e) => Err(e.to_string()),
        };
        answers.push(Answer { what, status, took: started.elapsed() });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (answers, job_ids)
}

fn start_replica(addr: &str, env: &[(&str, &str)]) -> ServerProcess {
    tokio::task::block_in_place(|| ServerProcess::start_on(addr, &[], env).expect("start mvgen"))
}

async fn ready(base: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = client().get(format!("{base}/readyz")).send().await;
        if answer.is_ok_and(|r| r.status() == StatusCode::OK) {
            return;
        }
        assert!(Instant::now() < deadline, "{base} never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_the_documented_nginx_fails_no_request() {
    let test = "a_rolling_restart_behind_the_documented_nginx_fails_no_request";
    let Some(pg) = Postgres::start(test) else { return };
    let fakes = Fakes::start().await;
    // The sync video the first drain cuts: held upstream until the test finishes it.
    fakes.replicate.push_prediction(PredictionPlan::held(Outcome::Succeed(FakeFile::mp4())));
    let outputs = tempfile::tempdir().expect("outputs");
    let outputs_dir = outputs.path().to_str().expect("utf-8").to_owned();
    let env = fakes.env(&[
        ("MVGEN_DATABASE_URL", pg.url.as_str()),
        // One store for both replicas (they share a machine here; s3:// across machines).
        ("MV_OUTPUT_DIR", outputs_dir.as_str()),
        // A short drain so the held sync video is answered within the test's minute.
        ("MVGEN_DRAIN_TIMEOUT_SECS", "3"),
    ]);

    // Each replica first binds a port of its own choosing; its restart reuses it.
    let a = start_replica("127.0.0.1:0", &env);
    let b = start_replica("127.0.0.1:0", &env);
    let addr = |server: &ServerProcess| server.base.trim_start_matches("http://").to_owned();
    let addrs = [addr(&a), addr(&b)];
    let port = free_port();
    let Some(mut nginx) = Nginx::start(test, &site(port, [&addrs[0], &addrs[1]], None), port) else { return };
    let lb = nginx.base.clone();
    ready(&lb).await;

    // Through nginx, nginx's own limits answer in mvgen's JSON shape, and /metrics is not public.
    let too_big = client().post(format!("{lb}/api/mv/jobs")).body(vec![b' '; 3 << 20]).send().await.expect("POST");
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = too_big.json().await.expect("a JSON 413");
    assert_eq!(body["detail"]["error"], "PayloadTooLarge", "{body}");
    let metrics = client().get(format!("{lb}/metrics")).send().await.expect("GET /metrics");
    assert_eq!(metrics.status(), StatusCode::NOT_FOUND, "metrics are scraped per replica, not through nginx");

    // A sync video waiting on its job when its replica drains.
    let video = {
        let url = format!("{lb}/api/mv/generate_video");
        tokio::spawn(async move { client().post(url).json(&json!({"prompt": "a held render"})).send().await })
    };
    wait_for("the held video's create", || fakes.replicate.received_on(Route::Create).len() == 1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let getter = tokio::spawn(load(stop.clone(), {
        let lb = lb.clone();
        async move |round| {
            let path = ["/health", "/api/mv/get_config_flavors", "/api/mv/jobs?limit=5"][round as usize % 3];
            ("get", client().get(format!("{lb}{path}")).send().await)
        }
    }));
    let submitter = tokio::spawn(load(stop.clone(), {
        let lb = lb.clone();
        async move |round| {
            let input = json!({"idea": format!("a lighthouse, take {round}"), "character_description": "a keeper"});
            (
                "submit",
                client()
                    .post(format!("{lb}/api/mv/jobs"))
                    .json(&json!({"kind": "scenes", "input": input}))
                    .send()
                    .await,
            )
        }
    }));
    let sync = tokio::spawn(load(stop.clone(), {
        let lb = lb.clone();
        async move |_| {
            let body = json!({"idea": "a lighthouse", "character_description": "a keeper"});
            ("create_scenes", client().post(format!("{lb}/api/mv/create_scenes")).json(&body).send().await)
        }
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The rolling restart, one replica after the other, as docs/deploy.md says.
    let started = Instant::now();
    let mut exits = Vec::new();
    let mut replicas = [Some(a), Some(b)];
    for (i, addr) in addrs.iter().enumerate() {
        let addr = addr.as_str();
        tokio::task::block_in_place(|| nginx.reload(&site(port, [&addrs[0], &addrs[1]], Some(addr))));
        let old = replicas[i].take().expect("running replica");
        let (status, log) = tokio::task::block_in_place(|| old.terminate());
        exits.push((status, log));
        let new = start_replica(addr, &env);
        ready(&new.base).await;
        replicas[i] = Some(new);
        tokio::task::block_in_place(|| nginx.reload(&site(port, [&addrs[0], &addrs[1]], None)));
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let mut answers = Vec::new();
    let mut job_ids = Vec::new();
    for client in [getter, submitter, sync] {
        let (got, ids) = client.await.expect("load client");
        answers.extend(got);
        job_ids.extend(ids);
    }
    let failed: Vec<&Answer> = answers.iter().filter(|a| !matches!(a.status, Ok(200..=299))).collect();
    assert!(failed.is_empty(), "requests failed during the rolling restart: {failed:?}\nnginx:\n{}", nginx.log());
    for (status, log) in &exits {
        assert!(status.success(), "a replica's drain cut requests ({status}):\n{log}");
    }
    let count = |what: &str| answers.iter().filter(|a| a.what == what).count();
    let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
    eprintln!(
        "rolling restart of 2 replicas behind nginx: {took:?}; {} requests ({} GET, {} submissions, {} sync create_scenes), none failed, slowest {slowest:?}",
        answers.len(),
        count("get"),
        count("submit"),
        count("create_scenes")
    );
    assert!(count("get") > 0 && count("submit") > 0 && count("create_scenes") > 0, "the load ran: {answers:?}");

    // The held sync video: answered once, by its draining replica, with its job to follow.
    let video = video.await.expect("video task").expect("the sync video got an answer");
    assert_eq!(video.status(), StatusCode::SERVICE_UNAVAILABLE, "the drain's answer, not a resent POST's");
    let job_id = video.headers().get("x-job-id").and_then(|v| v.to_str().ok()).expect("X-Job-Id").to_owned();
    let error: Value = video.json().await.expect("json");
    assert_eq!(error["detail"]["error"], "JobStillRunning", "{error}");
    fakes.replicate.finish("pred-1");
    let job = wait_job(&lb, &job_id, "finished after the restart", finished).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(fakes.creates(), 1, "nginx did not resend the sync POST: one paid render");

    // Every job submitted during the restart ran to success.
    for id in &job_ids {
        let job = wait_job(&lb, id, "finished", finished).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
}
