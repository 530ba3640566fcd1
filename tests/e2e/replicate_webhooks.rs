//! Inbound Replicate webhooks (issue 26, point 2) through the real binary and Replicate client
//! against the fake, which calls back signed when a held prediction is finished: with
//! `MVGEN_PUBLIC_URL` set the create asks for a `completed` webhook, the webhook finishes the
//! waiting render at once (its poller wakes), and polling is only a slow backstop. The same render
//! without it waits for its next poll. Each run prints polls per render and finish-to-stored time
//! (`--nocapture`), the figures docs/deploy.md's capacity model uses.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::fake_upstream::{
    FakeFile, FakeReplicate, Outcome, PredictionPlan, Route, TEST_REPLICATE_TOKEN, send_signed,
};
use crate::support::server_process::ServerProcess;

/// How long each render runs upstream before the fake finishes it.
const HELD: Duration = Duration::from_millis(4500);

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A port nothing listens on now, for a server whose own URL must be known before it starts.
fn free_addr() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").to_string()
}

fn start(replicate: &FakeReplicate, addr: &str, extra: &[(&str, &str)]) -> ServerProcess {
    let mut env =
        vec![("REPLICATE_API_TOKEN", TEST_REPLICATE_TOKEN), ("REPLICATE_BASE_URL", replicate.base_url.as_str())];
    env.extend_from_slice(extra);
    tokio::task::block_in_place(|| ServerProcess::start_on(addr, &[], &env)).expect("start mvgen")
}

/// The API key every request of these tests carries (`API_KEY`, when the server has one).
const KEY: &str = "k-webhooks-need-no-key";

async fn job(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let answer = client.get(format!("{base}/api/mv/jobs/{id}")).header("x-api-key", KEY).send().await.expect("request");
    answer.json().await.expect("json")
}

/// One held video render: submitted, left running `held`, then finished upstream. Returns the
/// prediction's polls and the time from the finish to the job's `succeeded` (its video stored).
async fn render(replicate: &FakeReplicate, base: &str, held: Duration) -> (usize, Duration) {
    let client = crate::support::http_client();
    replicate.push_prediction(PredictionPlan::held(Outcome::Succeed(FakeFile::mp4())));
    let before = replicate.received_on(Route::Create).len();
    let submitted = client
        .post(format!("{base}/api/mv/jobs"))
        .header("x-api-key", KEY)
        .json(&json!({"kind": "video", "input": {"prompt": "a lighthouse at dawn"}}))
        .send()
        .await
        .expect("submit");
    assert_eq!(submitted.status(), 202);
    let id = submitted.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while replicate.received_on(Route::Create).len() == before {
        assert!(Instant::now() < deadline, "no create");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let prediction = job(&client, base, &id).await;
    let prediction = loop {
        let shown = job(&client, base, &id).await;
        if let Some(upstream) = shown["upstream"]["id"].as_str() {
            break upstream.to_owned();
        }
        assert!(Instant::now() < deadline, "no upstream run saved: {prediction}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(held).await;
    let finished = Instant::now();
    replicate.finish(&prediction);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = job(&client, base, &id).await;
        if shown["status"] == "succeeded" {
            return (replicate.polls_of(&prediction), finished.elapsed());
        }
        assert_ne!(shown["status"], "failed", "{shown}");
        assert!(Instant::now() < deadline, "not stored 60 s after the finish: {shown}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_finishes_the_render_at_once_and_polling_is_only_a_backstop() {
    let replicate = FakeReplicate::start().await;
    replicate.send_webhooks(SECRET);
    let addr = free_addr();
    let public = format!("http://{addr}");
    // The backstop poll at 60 s: a render stored within seconds of its finish was woken by the webhook.
    let server = start(
        &replicate,
        &addr,
        &[
            ("MVGEN_PUBLIC_URL", public.as_str()),
            ("REPLICATE_WEBHOOK_SECRET", SECRET),
            ("MV_REPLICATE_BACKSTOP_POLL_SECS", "60"),
            ("API_KEY", KEY),
        ],
    );
    let base = server.base.clone();
    let mut polls = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..2 {
        let (p, latency) = render(&replicate, &base, HELD).await;
        polls.push(p);
        latencies.push(latency);
    }
    let create = replicate.received_on(Route::Create).pop().expect("a create").json();
    assert_eq!(create["webhook"], format!("{public}/api/mv/webhooks/replicate"), "{create}");
    assert_eq!(create["webhook_events_filter"], json!(["completed"]));
    let sent = replicate.webhooks_sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|(_, status)| *status == 200), "verified without an API key: {sent:?}\n{}", server.log());
    for latency in &latencies {
        assert!(*latency < Duration::from_secs(20), "stored {latency:?} after the finish: not woken by the webhook");
    }
    assert!(polls.iter().all(|p| *p == 1), "one fetch, the one the webhook woke: {polls:?}");
    println!("with webhooks: polls per render {polls:?}, finish-to-stored {latencies:?}");

    // Forged, replayed and unsigned messages change nothing.
    let client = crate::support::http_client();
    let hook = format!("{base}/api/mv/webhooks/replicate");
    let forged = send_signed(
        &hook,
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "msg_x",
        &json!({"id": "pred-1", "status": "succeeded"}),
    )
    .await;
    assert_eq!(forged, 401);
    let body = json!({"id": "pred-1", "status": "succeeded"}).to_string();
    let old =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() - 301) as i64;
    let signature =
        mvgen::webhooks::signature::Secret::parse(SECRET).expect("secret").sign("msg_old", old, body.as_bytes());
    let replayed = client
        .post(&hook)
        .header("webhook-id", "msg_old")
        .header("webhook-timestamp", old.to_string())
        .header("webhook-signature", signature)
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(replayed.status(), 401);
    let answer: Value = replayed.json().await.expect("json");
    assert_eq!(answer["detail"]["error"], "WebhookSignatureInvalid", "{answer}");
    let unsigned = client.post(&hook).body(body).send().await.expect("send");
    assert_eq!(unsigned.status(), 400);
    // A signed end whose id no prediction has (a NUL, which PostgreSQL cannot compare, or 10 000
    // characters) is a 400 on both engines, before the jobs database is asked. Before: 200 here,
    // and a 503 on PostgreSQL that Replicate would retry for a day.
    for id in ["pred\u{0}1".to_owned(), "p".repeat(10_000)] {
        let status = send_signed(&hook, SECRET, "msg_odd", &json!({"id": id, "status": "succeeded"})).await;
        assert_eq!(status, 400, "{}", id.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_public_url_the_render_waits_for_its_next_poll() {
    let replicate = FakeReplicate::start().await;
    replicate.send_webhooks(SECRET);
    let addr = free_addr();
    let server = start(&replicate, &addr, &[]);
    let mut polls = Vec::new();
    let mut latencies = Vec::new();
    for _ in 0..2 {
        let (p, latency) = render(&replicate, &server.base, HELD).await;
        polls.push(p);
        latencies.push(latency);
    }
    let create = replicate.received_on(Route::Create).pop().expect("a create").json();
    assert_eq!(create.get("webhook"), None, "no webhook asked for: {create}");
    assert!(replicate.webhooks_sent().is_empty());
    // Polled every 2 s (the default) while held 4.5 s: three polls, the last after the finish.
    assert!(polls.iter().all(|p| *p >= 2), "{polls:?}");
    println!("polling only: polls per render {polls:?}, finish-to-stored {latencies:?}");
}

/// The webhook reaches replica A (API only), the render runs on replica B: A marks the run ended
/// in the shared database and B's waiting poller notices (through `pg_notify` on PostgreSQL, by
/// reading the run once a second on a shared SQLite file).
async fn a_webhook_to_one_replica_finishes_the_render_on_another(database_url: Option<&str>) {
    let replicate = FakeReplicate::start().await;
    replicate.send_webhooks(SECRET);
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let public = format!("http://{a_addr}");
    let shared = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}/jobs.db?mode=rwc", shared.path().display());
    let database = database_url.unwrap_or(&sqlite);
    let common = [
        ("MVGEN_DATABASE_URL", database),
        ("MVGEN_PUBLIC_URL", public.as_str()),
        ("REPLICATE_WEBHOOK_SECRET", SECRET),
        ("MV_REPLICATE_BACKSTOP_POLL_SECS", "60"),
    ];
    let a = start(&replicate, &a_addr, &[&common[..], &[("MVGEN_WORKERS", "0")]].concat());
    let _b = start(&replicate, &b_addr, &[&common[..], &[("MVGEN_WORKERS", "2")]].concat());
    let (polls, latency) = render(&replicate, &a.base, HELD).await;
    assert_eq!(replicate.webhooks_sent().len(), 1);
    assert!(a.log().contains("replicate webhook received"), "A received it");
    assert!(latency < Duration::from_secs(10), "stored {latency:?} after the finish: B was not woken");
    assert_eq!(polls, 1, "one fetch, the one the webhook woke");
    println!(
        "webhook on A, render on B ({}): finish-to-stored {latency:?}",
        if database_url.is_some() { "PostgreSQL" } else { "SQLite" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_one_replica_finishes_the_render_on_another_on_sqlite() {
    a_webhook_to_one_replica_finishes_the_render_on_another(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_one_replica_finishes_the_render_on_another_on_postgres() {
    let Some(pg) = crate::support::postgres::Postgres::start(
        "a_webhook_to_one_replica_finishes_the_render_on_another_on_postgres",
    ) else {
        return;
    };
    a_webhook_to_one_replica_finishes_the_render_on_another(Some(&pg.url)).await;
}
