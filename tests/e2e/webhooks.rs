//! Outbound webhooks (issue 26) through the real binary with mock providers: a receiver on
//! 127.0.0.1 (`tests/support/webhook_receiver.rs`) checks each Standard Webhooks signature with its
//! own HMAC code, apart from mvgen's signing module (whose unit tests hold the specification's
//! test vector). Retries run on the spec's schedule shrunk by `MVGEN_WEBHOOK_RETRY_SCALE`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::client::Client;
use crate::support::server_process::ServerProcess;
use crate::support::webhook_receiver::{Answer, WebhookReceiver};

/// Two secrets: the current one, and the one being rotated to (`MVGEN_WEBHOOK_SECRET_NEXT`).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEXT_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The retry waits times 0.002: 0, 10 ms, 0.6 s, 3.6 s, …
const SCALE: &str = "0.002";

fn env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("MVGEN_WEBHOOK_SECRET", SECRET),
        ("MVGEN_WEBHOOK_SECRET_NEXT", NEXT_SECRET),
        ("MVGEN_WEBHOOK_RETRY_SCALE", SCALE),
        ("MVGEN_WEBHOOK_ALLOW_PRIVATE", "true"),
    ];
    env.extend_from_slice(extra);
    env
}

fn scenes_job(webhook: Value, filter: Option<Value>) -> Value {
    let mut body = json!({
        "kind": "scenes",
        "input": {"idea": "a lighthouse at dawn", "character_description": "a keeper"},
        "webhook": webhook,
    });
    if let Some(filter) = filter {
        body["webhook_events_filter"] = filter;
    }
    body
}

fn post(client: &Client, path: &str, body: &Value) -> (u16, Value) {
    let (status, _, text) = client.send(client.http.post(format!("{}{path}", client.base)).json(body));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get(client: &Client, path: &str) -> (u16, Value) {
    let (status, _, text) = client.send(client.http.get(format!("{}{path}", client.base)));
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn submit(client: &Client, body: &Value) -> String {
    let (status, job) = post(client, "/api/mv/jobs", body);
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().expect("a job id").to_owned()
}

/// Reads `path` until `done` holds (or 20 s pass, which fails).
fn get_until(client: &Client, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(client, path);
        if status == 200 && done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {status} {body}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn deliveries(client: &Client, job: &str) -> Vec<Value> {
    let (status, body) = get(client, &format!("/api/mv/jobs/{job}/deliveries"));
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().expect("a list").clone()
}

fn codes(delivery: &Value) -> Vec<Value> {
    delivery["attempt_log"].as_array().expect("attempts").iter().map(|a| a["code"].clone()).collect()
}

#[test]
fn a_delivery_failing_twice_is_retried_with_one_webhook_id_and_signed_with_both_secrets() {
    let receiver = WebhookReceiver::start();
    receiver.push("/hook", [Answer::status(500), Answer::status(503)]);
    let server = ServerProcess::start(&env(&[])).expect("start mvgen");
    let client = Client::new(&server);
    let job = submit(&client, &scenes_job(json!(receiver.url("/hook")), None));

    let got = receiver.wait_for("/hook", 3, Duration::from_secs(20));
    assert_eq!(got.len(), 3, "two failures then a success: {got:?}\n{}", server.log());
    let id = got[0].header("webhook-id");
    assert!(id.starts_with("msg_"), "{id}");
    for (n, request) in got.iter().enumerate() {
        assert_eq!(request.header("webhook-id"), id, "attempt {n}: the id is stable across retries");
        assert_eq!(request.header("content-type"), "application/json");
        assert!(request.signed_with(SECRET), "attempt {n}: signed with the current secret");
        assert!(request.signed_with(NEXT_SECRET), "attempt {n}: and with the next one while rotating");
        let timestamp: i64 = request.header("webhook-timestamp").parse().expect("unix seconds");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs() as i64;
        assert!((now - timestamp).abs() < 60, "a fresh timestamp: {timestamp}");
    }
    assert!(
        !got[0].signed_with("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="),
        "another secret does not verify"
    );
    // The retries kept the schedule: the third attempt 0.6 s after the second (5 min × 0.002).
    assert!(got[2].at - got[1].at >= Duration::from_millis(550), "{:?}", got[2].at - got[1].at);

    // The body is the job as GET shows it, once it ended.
    let (_, shown) = get(&client, &format!("/api/mv/jobs/{job}"));
    assert_eq!(got[2].json(), shown, "the body is the job as GET /jobs/{{id}} shows it");
    assert_eq!(shown["status"], "succeeded");

    let listed = deliveries(&client, &job);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let delivery = &listed[0];
    assert_eq!(delivery["id"], id);
    assert_eq!(delivery["event"], "completed");
    assert_eq!(delivery["status"], "delivered");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(codes(delivery), [json!(500), json!(503), json!(204)]);
    assert_eq!(delivery["next_attempt_at"], Value::Null);
}

#[test]
fn an_attempt_without_an_answer_in_10_seconds_is_cut_and_retried() {
    let receiver = WebhookReceiver::start();
    receiver.push("/slow", [Answer::after(Duration::from_secs(30), 204)]);
    let server = ServerProcess::start(&env(&[])).expect("start mvgen");
    let client = Client::new(&server);
    let job = submit(&client, &scenes_job(json!(receiver.url("/slow")), None));
    let path = format!("/api/mv/jobs/{job}/deliveries");
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let (_, listed) = get(&client, &path);
        if listed["deliveries"][0]["status"] == "delivered" {
            break listed;
        }
        assert!(Instant::now() < deadline, "not delivered: {listed}\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = listed["deliveries"][0]["attempt_log"].as_array().expect("attempts").clone();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["code"], Value::Null, "no answer: {:?}", log[0]);
    let took = log[0]["duration_ms"].as_i64().expect("duration");
    assert!((9_500..15_000).contains(&took), "cut after 10 s, not {took} ms");
    assert!(log[0]["error"].as_str().is_some_and(|e| e.contains("timed out") || e.contains("timeout")), "{:?}", log[0]);
    assert_eq!(log[1]["code"], 204);
    assert_eq!(receiver.received("/slow").len(), 2);
}

#[test]
fn a_410_stops_a_delivery_a_redirect_is_not_followed_and_a_retry_sends_it_again() {
    let receiver = WebhookReceiver::start();
    receiver.set_default("/gone", Answer::status(410));
    receiver.set_default("/moved", Answer::redirect("/elsewhere"));
    let server = ServerProcess::start(&env(&[])).expect("start mvgen");
    let client = Client::new(&server);
    let gone = submit(&client, &scenes_job(json!(receiver.url("/gone")), None));
    let moved = submit(&client, &scenes_job(json!(receiver.url("/moved")), None));

    // The redirect is an answer like any non-2xx: retried at 0, 10 ms, 0.6 s, and never followed.
    assert_eq!(receiver.wait_for("/moved", 3, Duration::from_secs(20)).len(), 3, "{}", server.log());
    let path = format!("/api/mv/jobs/{moved}/deliveries");
    let listed = get_until(&client, &path, |d| d["deliveries"][0]["attempts"].as_i64() >= Some(3));
    assert_eq!(listed["deliveries"][0]["status"], "pending");
    assert_eq!(listed["deliveries"][0]["last_code"], 302);
    assert!(receiver.received("/elsewhere").is_empty(), "a redirect is never followed");

    // A 410 stops it after one attempt, however long one waits.
    let path = format!("/api/mv/jobs/{gone}/deliveries");
    let listed = get_until(&client, &path, |d| d["deliveries"][0]["status"] == "gone");
    let delivery = &listed["deliveries"][0];
    assert_eq!((delivery["attempts"].clone(), codes(delivery)), (json!(1), vec![json!(410)]));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(receiver.received("/gone").len(), 1, "nothing after a 410");

    // Sent again by hand, with the same id, now to a receiver that takes it.
    receiver.set_default("/gone", Answer::status(200));
    let id = delivery["id"].as_str().expect("id").to_owned();
    let (status, retried) = post(&client, &format!("/api/mv/jobs/{gone}/deliveries/{id}/retry"), &json!({}));
    assert_eq!((status, &retried["status"]), (202, &json!("pending")), "{retried}");
    let again = receiver.wait_for("/gone", 2, Duration::from_secs(10));
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].header("webhook-id"), id);
    let listed = get_until(&client, &path, |d| d["deliveries"][0]["status"] == "delivered");
    assert_eq!(codes(&listed["deliveries"][0]), [json!(410), json!(200)]);

    // Retrying what does not exist, or a malformed id, names it.
    let (status, body) =
        post(&client, &format!("/api/mv/jobs/{gone}/deliveries/msg_{}/retry", "0".repeat(32)), &json!({}));
    assert_eq!((status, &body["detail"]["details"]), (404, &json!("delivery_id")), "{body}");
    let (status, body) = post(&client, &format!("/api/mv/jobs/{gone}/deliveries/nope/retry"), &json!({}));
    assert_eq!((status, &body["detail"]["error"]), (400, &json!("InvalidId")), "{body}");
}

#[test]
fn private_targets_and_bad_webhook_fields_are_refused_at_submit_and_nothing_is_stored() {
    let server = ServerProcess::start(&[("MVGEN_WEBHOOK_SECRET", SECRET)]).expect("start mvgen");
    let client = Client::new(&server);
    let refused = |body: &Value, path: &str, field: &str, says: &str| {
        let (status, answer) = post(&client, path, body);
        assert_eq!(status, 400, "{body} → {answer}");
        assert_eq!(answer["detail"]["details"], field, "{answer}");
        let message = answer["detail"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message:?} should say {says:?}");
    };
    for (url, says) in [
        ("https://127.0.0.1:8443/hook", "loopback"),
        ("https://localhost/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[::1]/hook", "loopback"),
        ("http://8.8.8.8/hook", "https"),
        ("ftp://8.8.8.8/hook", "https"),
        ("not a url", "absolute URL"),
    ] {
        refused(&scenes_job(json!(url), None), "/api/mv/jobs", "webhook", says);
    }
    refused(&scenes_job(json!(42), None), "/api/mv/jobs", "webhook", "URL");
    let ok_url = json!("https://8.8.8.8/hook");
    refused(
        &scenes_job(ok_url.clone(), Some(json!(["completed", "logs"]))),
        "/api/mv/jobs",
        "webhook_events_filter[1]",
        "logs",
    );
    refused(&scenes_job(ok_url.clone(), Some(json!([]))), "/api/mv/jobs", "webhook_events_filter", "at least one");
    // The sync routes take the same fields beside their own.
    let sync = json!({"idea": "x", "character_description": "y", "webhook": "https://169.254.169.254/"});
    refused(&sync, "/api/mv/create_scenes", "webhook", "link-local");
    let (_, listed) = get(&client, "/api/mv/jobs");
    assert_eq!(listed["jobs"], json!([]), "nothing refused was stored");

    // Without a secret nothing could be signed: a webhook is refused, saying why.
    let off = ServerProcess::start(&[]).expect("start mvgen");
    let client = Client::new(&off);
    let (status, answer) = post(&client, "/api/mv/jobs", &scenes_job(ok_url, None));
    assert_eq!(status, 400, "{answer}");
    assert!(answer["detail"]["message"].as_str().unwrap_or_default().contains("MVGEN_WEBHOOK_SECRET"), "{answer}");
}

#[test]
fn a_sync_request_with_start_and_completed_gets_both_in_order() {
    let receiver = WebhookReceiver::start();
    let server = ServerProcess::start(&env(&[])).expect("start mvgen");
    let client = Client::new(&server);
    let body = json!({
        "idea": "a lighthouse", "character_description": "a keeper",
        "webhook": receiver.url("/sync"), "webhook_events_filter": ["start", "completed"],
    });
    let (status, headers, text) =
        client.send(client.http.post(format!("{}/api/mv/create_scenes", client.base)).json(&body));
    assert_eq!(status, 200, "{text}");
    let job = headers.get("x-job-id").and_then(|v| v.to_str().ok()).expect("X-Job-Id").to_owned();
    let got = receiver.wait_for("/sync", 2, Duration::from_secs(20));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].json()["status"], "processing", "the start tells of the job as it started");
    assert_eq!(got[1].json()["status"], "succeeded");
    assert_ne!(got[0].header("webhook-id"), got[1].header("webhook-id"), "one id per message");
    let events: Vec<Value> = deliveries(&client, &job).iter().map(|d| d["event"].clone()).collect();
    assert_eq!(events, [json!("start"), json!("completed")]);
}

/// The job ends while its receiver is down; the process is SIGKILLed before any attempt
/// succeeded; a new process on the same database delivers it, with the same webhook-id.
#[test]
fn a_delivery_owed_when_the_process_is_killed_is_sent_after_a_restart() {
    let outputs = tempfile::tempdir().expect("temp dir");
    let out = outputs.path().to_str().expect("utf-8 path").to_owned();
    // A port nobody listens on yet: the first attempt is refused.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/late", parked.local_addr().expect("addr"));
    drop(parked);
    // 5 s × 0.5: the second attempt 2.5 s after the first, so the kill comes well before it.
    let vars = env(&[("MV_OUTPUT_DIR", &out), ("MVGEN_WEBHOOK_RETRY_SCALE", "0.5")]);
    let mut server = ServerProcess::start(&vars).expect("start mvgen");
    let client = Client::new(&server);
    let job = submit(&client, &scenes_job(json!(url), None));
    let path = format!("/api/mv/jobs/{job}/deliveries");
    let listed = get_until(&client, &path, |d| d["deliveries"][0]["attempts"] == 1);
    let delivery = listed["deliveries"][0].clone();
    assert_eq!((&delivery["status"], &delivery["last_code"]), (&json!("pending"), &Value::Null), "{delivery}");
    server.signal("KILL");
    assert!(server.wait_exit(Duration::from_secs(10)).is_some(), "SIGKILL ignored");
    drop(client);

    let listener = std::net::TcpListener::bind(url.trim_start_matches("http://").trim_end_matches("/late"))
        .expect("the receiver takes the port");
    let receiver = WebhookReceiver::on(listener);
    let restarted = ServerProcess::start(&vars).expect("restart mvgen");
    let got = receiver.wait_for("/late", 1, Duration::from_secs(20));
    assert_eq!(got.len(), 1, "delivered after the restart\n{}", restarted.log());
    assert_eq!(got[0].header("webhook-id"), delivery["id"].as_str().expect("id"));
    assert!(got[0].signed_with(SECRET));
    let client = Client::new(&restarted);
    let listed = get_until(&client, &path, |d| d["deliveries"][0]["status"] == "delivered");
    assert_eq!(listed["deliveries"][0]["attempts"], 2);
}

/// Two replicas on one PostgreSQL, both running senders: every job's delivery is sent exactly
/// once (one attempt each, never one by each replica), whichever replica ran the job.
#[test]
fn two_replicas_send_each_delivery_once_on_postgres() {
    let Some(pg) = crate::support::postgres::Postgres::start("two_replicas_send_each_delivery_once_on_postgres") else {
        return;
    };
    let receiver = WebhookReceiver::start();
    let vars = env(&[("MVGEN_DATABASE_URL", &pg.url)]);
    let a = ServerProcess::start(&vars).expect("start replica A");
    let b = ServerProcess::start(&vars).expect("start replica B");
    let (ca, cb) = (Client::new(&a), Client::new(&b));
    let jobs: Vec<String> = (0..20)
        .map(|n| submit(if n % 2 == 0 { &ca } else { &cb }, &scenes_job(json!(receiver.url("/pg")), None)))
        .collect();
    let got = receiver.wait_for("/pg", 20, Duration::from_secs(30));
    assert_eq!(got.len(), 20, "one message per job\n{}\n{}", a.log(), b.log());
    std::thread::sleep(Duration::from_millis(500));
    let got = receiver.received("/pg");
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (20, 20), "no attempt was sent twice");
    let mut told: Vec<String> = got.iter().map(|r| r.json()["id"].as_str().expect("job id").to_owned()).collect();
    told.sort_unstable();
    let mut submitted = jobs.clone();
    submitted.sort_unstable();
    assert_eq!(told, submitted, "each job told once");
    for job in &jobs {
        let listed = deliveries(&ca, job);
        assert_eq!((listed.len(), &listed[0]["attempts"]), (1, &json!(1)), "{listed:?}");
    }
}

/// A render through the real Replicate client asking only for `progress`: each progress step it
/// stores (the upstream's `starting`, `processing`, then downloading) is a message, in order,
/// and its end is not one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_steps_are_sent_when_asked_for_and_the_end_is_not() {
    use crate::support::fake_upstream::{FakeFile, FakeReplicate, Outcome, PredictionPlan, TEST_REPLICATE_TOKEN};
    let replicate = FakeReplicate::start().await;
    replicate.push_prediction(PredictionPlan { polls_until_done: 3, outcome: Outcome::Succeed(FakeFile::mp4()) });
    let receiver = WebhookReceiver::start();
    let vars = env(&[
        ("REPLICATE_API_TOKEN", TEST_REPLICATE_TOKEN),
        ("REPLICATE_BASE_URL", replicate.base_url.as_str()),
        ("MV_REPLICATE_POLL_SECS", "0.3"),
    ]);
    let server = tokio::task::block_in_place(|| ServerProcess::start(&vars)).expect("start mvgen");
    let http = crate::support::http_client();
    let body = json!({
        "kind": "video", "input": {"prompt": "a lighthouse"},
        "webhook": receiver.url("/progress"), "webhook_events_filter": ["progress"],
    });
    let answer = http.post(format!("{}/api/mv/jobs", server.base)).json(&body).send().await.expect("submit");
    assert_eq!(answer.status(), 202);
    let job = answer.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let shown: Value = http
            .get(format!("{}/api/mv/jobs/{job}", server.base))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if shown["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.received("/progress");
    assert!(got.len() >= 2, "a message per progress step: {got:?}");
    let stages: Vec<Value> = got.iter().map(|r| r.json()["progress"]["upstream_status"].clone()).collect();
    assert!(got.iter().all(|r| r.json()["status"] == "processing"), "no end message: {stages:?}");
    assert!(stages.contains(&json!("processing")), "{stages:?}");
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), got.len(), "one id per message");
    assert!(got.iter().all(|r| r.signed_with(SECRET)));
}
