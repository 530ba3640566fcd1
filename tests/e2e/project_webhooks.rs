//! A project's outbound webhook (issue 26) through the real binary with mock providers: the
//! receiver on 127.0.0.1 (`tests/support/webhook_receiver.rs`) checks every Standard Webhooks
//! signature with its own HMAC code. A project made server-side tells `start`, `progress` and
//! `completed`; a canceled one ends `failed`; bad webhooks at create and PATCH are 400s naming the
//! field; a deleted project's pending delivery is still sent.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::client::Client;
use crate::support::server_process::ServerProcess;
use crate::support::webhook_receiver::{Answer, WebhookReceiver};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SONG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/media/songs/song.mp3");

fn env<'a>(scale: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("MV_PROVIDER", "mock"),
        ("MVGEN_WEBHOOK_SECRET", SECRET),
        ("MVGEN_WEBHOOK_RETRY_SCALE", scale),
        ("MVGEN_WEBHOOK_ALLOW_PRIVATE", "true"),
    ];
    env.extend_from_slice(extra);
    env
}

fn request(client: &Client, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = client.http.request(method, format!("{}{path}", client.base));
    if let Some(body) = body {
        request = request.json(body);
    }
    let (status, _, text) = client.send(request);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get(client: &Client, path: &str) -> (u16, Value) {
    request(client, reqwest::Method::GET, path, None)
}

/// Their create form (multipart, the song as the `audio` part) with `fields`.
fn create_form(client: &Client, fields: &[(&str, &str)]) -> (u16, Value) {
    let boundary = "mvgen-project-hooks-7d1e";
    let mut body = Vec::new();
    for (name, value) in fields {
        let part = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
        body.extend_from_slice(part.as_bytes());
    }
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"song.mp3\"\r\n\
         Content-Type: audio/mpeg\r\n\r\n"
    );
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(&std::fs::read(SONG).expect("song fixture"));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let request = client
        .http
        .post(format!("{}/api/mv/projects", client.base))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body);
    let (status, _, text) = client.send(request);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A JSON create naming a stored song (`upload_audio`), with `extra` fields.
fn create_json(client: &Client, extra: Value) -> (u16, Value) {
    let song = std::fs::read(SONG).expect("song fixture");
    let upload = client
        .http
        .post(format!("{}/api/mv/upload_audio", client.base))
        .header("content-type", "audio/mpeg")
        .body(song);
    let (status, _, text) = client.send(upload);
    assert_eq!(status, 200, "{text}");
    let audio: Value = serde_json::from_str(&text).expect("json");
    let mut body = json!({"mode": "music-video", "prompt": "a fox dances in the rain", "audioId": audio["audio_id"]});
    body.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
    request(client, reqwest::Method::POST, "/api/mv/projects", Some(&body))
}

fn get_until(client: &Client, path: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = get(client, path);
        if status == 200 && done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn deliveries(client: &Client, project: &str) -> Vec<Value> {
    let (status, body) = get(client, &format!("/api/mv/projects/{project}/deliveries"));
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().expect("a list").clone()
}

#[test]
fn a_project_made_server_side_tells_its_webhook_start_progress_and_completed() {
    let receiver = WebhookReceiver::start();
    let server = ServerProcess::start(&env("0.002", &[("MVGEN_PROJECT_PARALLEL", "2")])).expect("start mvgen");
    let client = Client::new(&server);
    let hook = receiver.url("/project");
    let fields = [
        ("mode", "music-video"),
        ("prompt", "a fox dances in the rain"),
        ("characterDescription", "a red fox"),
        // Six scenes asked for: the 2.9 s song alone would make one (tests/e2e/beat_cuts.rs).
        ("numberOfScenes", "6"),
        ("webhook", hook.as_str()),
        ("webhook_events_filter", "start,progress,completed"),
    ];
    let (status, created) = create_form(&client, &fields);
    assert_eq!(status, 201, "{created}");
    let id = created["projectId"].as_str().expect("id").to_owned();
    let (status, started) = request(&client, reqwest::Method::POST, &format!("/api/mv/projects/{id}/generate"), None);
    assert_eq!(status, 200, "{started}");
    let done = get_until(&client, &format!("/api/mv/projects/{id}"), Duration::from_secs(60), |p| {
        p["status"] == "completed" && p["finalOutputUrl"].is_string()
    });

    // Every delivery delivered, in the order the project reached them.
    let listed = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let listed = deliveries(&client, &id);
            if listed.iter().any(|d| d["event"] == "completed") && listed.iter().all(|d| d["status"] == "delivered") {
                break listed;
            }
            assert!(Instant::now() < deadline, "not all delivered: {listed:?}\n{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let events: Vec<&str> = listed.iter().map(|d| d["event"].as_str().expect("event")).collect();
    assert_eq!(events.first(), Some(&"start"), "{events:?}");
    assert_eq!(events.last(), Some(&"completed"), "{events:?}");
    let progress = events.iter().filter(|e| **e == "progress").count();
    // Scenes written, the character drawn, six clips (settled one by one or a few at once), the cut.
    assert!((4..=9).contains(&progress), "{progress} progress messages: {events:?}");
    assert_eq!(events.len(), progress + 2, "{events:?}");

    let got = receiver.wait_for("/project", listed.len(), Duration::from_secs(10));
    assert_eq!(got.len(), listed.len(), "one request per delivery: {got:?}");
    // The sender sends up to 16 at once, so they may arrive in any order: matched by id.
    let bodies: Vec<Value> = listed
        .iter()
        .map(|delivery| {
            let received = got.iter().find(|r| r.header("webhook-id") == delivery["id"]).expect("sent");
            assert!(received.signed_with(SECRET), "signed: {received:?}");
            received.json()
        })
        .collect();
    assert!(bodies.iter().all(|b| b["projectId"] == id.as_str()), "{bodies:?}");
    assert_eq!(bodies[0]["status"], "processing", "start: generation began: {}", bodies[0]);
    assert_eq!(bodies[1]["sceneCount"], 6, "the first step done is the scenes written: {}", bodies[1]);
    // Progress only moves forward: the clips made never go down.
    let made: Vec<u64> = bodies.iter().map(|b| b["completedScenes"].as_u64().expect("count")).collect();
    assert!(made.windows(2).all(|w| w[0] <= w[1]), "{made:?}");
    // The end: the project as GET shows it, with its final cut.
    assert_eq!(bodies.last().expect("completed"), &done, "the body is the project as GET shows it");
}

/// A canceled project ends `failed`: with the default filter only that end is told, at the URL a
/// PATCH gave it after it was created without one.
#[test]
fn a_canceled_project_tells_completed_once_at_the_webhook_a_patch_set() {
    let receiver = WebhookReceiver::start();
    let server = ServerProcess::start(&env("0.002", &[("MVGEN_WORKERS", "0")])).expect("start mvgen");
    let client = Client::new(&server);
    let (status, created) = create_json(&client, json!({}));
    assert_eq!(status, 201, "{created}");
    let id = created["projectId"].as_str().expect("id").to_owned();
    let path = format!("/api/mv/projects/{id}");
    let (status, patched) =
        request(&client, reqwest::Method::PATCH, &path, Some(&json!({"webhook": receiver.url("/patched")})));
    assert_eq!(status, 200, "{patched}");
    // No workers: generate only records the wish, which the default filter does not tell.
    let (status, _) = request(&client, reqwest::Method::POST, &format!("{path}/generate"), None);
    assert_eq!(status, 200);
    let (status, canceled) = request(&client, reqwest::Method::POST, &format!("{path}/cancel"), None);
    assert_eq!(status, 200, "{canceled}");

    let got = receiver.wait_for("/patched", 1, Duration::from_secs(20));
    assert_eq!(got.len(), 1, "{}", server.log());
    assert!(got[0].signed_with(SECRET));
    let body = got[0].json();
    assert_eq!((body["status"].as_str(), body["errorMessage"].as_str()), (Some("failed"), Some("canceled")), "{body}");
    std::thread::sleep(Duration::from_millis(500));
    let listed = deliveries(&client, &id);
    assert_eq!(listed.len(), 1, "only the end: {listed:?}");
    assert_eq!((listed[0]["event"].as_str(), listed[0]["status"].as_str()), (Some("completed"), Some("delivered")));
    assert_eq!(receiver.received("/patched").len(), 1, "nothing more");

    // Sent again by hand, with the same id.
    let delivery = listed[0]["id"].as_str().expect("id");
    let retry = format!("{path}/deliveries/{delivery}/retry");
    let (status, retried) = request(&client, reqwest::Method::POST, &retry, None);
    assert_eq!(status, 202, "{retried}");
    let again = receiver.wait_for("/patched", 2, Duration::from_secs(20));
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].header("webhook-id"), delivery);
    let (status, unknown) = request(&client, reqwest::Method::POST, &format!("{path}/deliveries/nope/retry"), None);
    assert_eq!((status, unknown["detail"]["details"].as_str()), (400, Some("delivery_id")), "{unknown}");
}

/// Refused webhooks at create (JSON and form) and PATCH: a 400 naming the field, nothing stored
/// or changed. This server does not allow private targets.
#[test]
fn bad_project_webhooks_are_refused_naming_the_field_and_nothing_is_stored() {
    let server =
        ServerProcess::start(&[("MV_PROVIDER", "mock"), ("MVGEN_WEBHOOK_SECRET", SECRET), ("MVGEN_WORKERS", "0")])
            .expect("start mvgen");
    let client = Client::new(&server);
    let field = |body: &Value| body["detail"]["details"].as_str().unwrap_or_default().to_owned();
    for (extra, named) in [
        (json!({"webhook": "https://127.0.0.1/hook"}), "webhook"),
        (json!({"webhook": "https://localhost/hook"}), "webhook"),
        (json!({"webhook": "https://10.0.0.8/hook"}), "webhook"),
        (json!({"webhook": "https://169.254.169.254/latest"}), "webhook"),
        (json!({"webhook": "http://8.8.8.8/hook"}), "webhook"),
        (
            json!({"webhook": "https://8.8.8.8/x", "webhook_events_filter": ["start", "output"]}),
            "webhook_events_filter[1]",
        ),
        (json!({"webhook": "https://8.8.8.8/x", "webhook_events_filter": []}), "webhook_events_filter"),
        (json!({"webhook_events_filter": ["completed"]}), "webhook_events_filter"),
    ] {
        let (status, body) = create_json(&client, extra.clone());
        assert_eq!((status, field(&body)), (400, named.to_owned()), "{extra}: {body}");
    }
    let form = [("mode", "music-video"), ("prompt", "a fox"), ("webhook", "https://[::1]/hook")];
    let (status, body) = create_form(&client, &form);
    assert_eq!((status, field(&body)), (400, "webhook".to_owned()), "{body}");
    let form = [
        ("mode", "music-video"),
        ("prompt", "a fox"),
        ("webhook", "https://8.8.8.8/x"),
        ("webhook_events_filter", "start,logs"),
    ];
    let (status, body) = create_form(&client, &form);
    assert_eq!((status, field(&body)), (400, "webhook_events_filter[1]".to_owned()), "{body}");
    let (_, listed) = get(&client, "/api/mv/projects");
    assert_eq!(listed["projects"], json!([]), "nothing stored");

    let (status, created) = create_json(&client, json!({"webhook": "https://8.8.8.8/hook"}));
    assert_eq!(status, 201, "a public target is fine: {created}");
    let path = format!("/api/mv/projects/{}", created["projectId"].as_str().expect("id"));
    let (_, before) = get(&client, &path);
    for (patch, named) in [
        (json!({"webhook": "https://127.0.0.1/hook", "status": "failed"}), "webhook"),
        (json!({"webhook_events_filter": ["finished"]}), "webhook_events_filter[0]"),
        (json!({"webhook": 7}), "webhook"),
        (json!({"webhook": null, "webhook_events_filter": ["start"]}), "webhook_events_filter"),
    ] {
        let (status, body) = request(&client, reqwest::Method::PATCH, &path, Some(&patch));
        assert_eq!((status, field(&body)), (400, named.to_owned()), "{patch}: {body}");
    }
    let (_, after) = get(&client, &path);
    assert_eq!((&after["version"], &after["status"]), (&before["version"], &before["status"]), "unchanged");

    // Webhooks off (no secret): refused saying so.
    drop(server);
    let off = ServerProcess::start(&[("MV_PROVIDER", "mock"), ("MVGEN_WORKERS", "0")]).expect("start mvgen");
    let client = Client::new(&off);
    let (status, body) = create_json(&client, json!({"webhook": "https://8.8.8.8/hook"}));
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"]["message"].as_str().is_some_and(|m| m.contains("MVGEN_WEBHOOK_SECRET")), "{body}");
}

/// Deleting a project does not drop what its webhook is owed: a delivery still pending (its first
/// attempt answered 503) is sent after the delete, with the same id; the listing is gone with it.
#[test]
fn a_deleted_projects_pending_delivery_is_still_sent() {
    let receiver = WebhookReceiver::start();
    receiver.push("/late", [Answer::status(503)]);
    // The second attempt 1 s after the first (5 s × 0.2): time to delete in between.
    let server = ServerProcess::start(&env("0.2", &[("MVGEN_WORKERS", "0")])).expect("start mvgen");
    let client = Client::new(&server);
    let (status, created) = create_json(&client, json!({"webhook": receiver.url("/late")}));
    assert_eq!(status, 201, "{created}");
    let id = created["projectId"].as_str().expect("id").to_owned();
    let path = format!("/api/mv/projects/{id}");
    let (status, _) = request(&client, reqwest::Method::POST, &format!("{path}/cancel"), None);
    assert_eq!(status, 200);
    let first = receiver.wait_for("/late", 1, Duration::from_secs(20));
    assert_eq!(first.len(), 1, "{}", server.log());
    let (status, deleted) = request(&client, reqwest::Method::DELETE, &path, None);
    assert_eq!(status, 200, "{deleted}");
    let (status, _) = get(&client, &format!("{path}/deliveries"));
    assert_eq!(status, 404, "the listing goes with the project");
    let both = receiver.wait_for("/late", 2, Duration::from_secs(20));
    assert_eq!(both.len(), 2, "the retry is sent after the delete: {}", server.log());
    assert_eq!(both[1].header("webhook-id"), first[0].header("webhook-id"));
    assert!(both[1].signed_with(SECRET));
    assert_eq!(both[1].json()["status"], "failed", "the state it told of, before the delete");
}

/// Retention (`MVGEN_JOB_RETENTION`) purges what a project's webhook was told once it ended, not
/// the project, and not a delivery still waiting for its retry.
#[test]
fn a_projects_ended_deliveries_are_purged_after_the_retention_and_pending_ones_kept() {
    let receiver = WebhookReceiver::start();
    receiver.push("/held", [Answer::status(503), Answer::status(503)]);
    // `/held` answers its first two attempts (5 s apart) 503: its third is due 5 minutes later.
    let server =
        ServerProcess::start(&env("1", &[("MVGEN_WORKERS", "0"), ("MVGEN_JOB_RETENTION", "1")])).expect("start mvgen");
    let client = Client::new(&server);
    let mut ids = Vec::new();
    for hook in ["/told", "/held"] {
        let (status, created) = create_json(&client, json!({"webhook": receiver.url(hook)}));
        assert_eq!(status, 201, "{created}");
        let id = created["projectId"].as_str().expect("id").to_owned();
        let (status, _) = request(&client, reqwest::Method::POST, &format!("/api/mv/projects/{id}/cancel"), None);
        assert_eq!(status, 200);
        ids.push(id);
    }
    assert_eq!(receiver.wait_for("/told", 1, Duration::from_secs(20)).len(), 1, "{}", server.log());
    assert_eq!(receiver.wait_for("/held", 1, Duration::from_secs(20)).len(), 1, "{}", server.log());

    let start = Instant::now();
    while !deliveries(&client, &ids[0]).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "never purged: {}", server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, project) = get(&client, &format!("/api/mv/projects/{}", ids[0]));
    assert_eq!((status, project["status"].as_str()), (200, Some("failed")), "the project stays: {project}");
    let held = deliveries(&client, &ids[1]);
    assert_eq!(held.len(), 1, "a pending delivery stays: {held:?}");
    assert_eq!(held[0]["status"].as_str(), Some("pending"), "{held:?}");
    assert!(held[0]["attempt_log"].as_array().is_some_and(|log| !log.is_empty()), "its attempts stay: {held:?}");
}
