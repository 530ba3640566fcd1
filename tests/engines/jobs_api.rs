//! `/api/mv/jobs` through a real socket: submit, read, list, SSE with reconnects, cancel,
//! idempotency and bad inputs on SQLite; replicas sharing PostgreSQL (skipped without it, failing
//! under CI=true); the binary refusing to start without its database.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mvgen::jobs::{EngineConfig, Generations, JobPipeline, Jobs};
use mvgen::server::{Settings, app_with_jobs};
use mvgen::state::AppState;
use mvgen::storage::local::LocalStorage;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::job_pipeline::FakePipeline;
use support::postgres::Postgres;
use tokio_util::sync::CancellationToken;

/// One replica: an engine, its workers and the HTTP app on 127.0.0.1.
struct Replica {
    base: String,
    jobs: Arc<Jobs>,
    shutdown: CancellationToken,
    workers: tokio_util::task::TaskTracker,
    http: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

fn config(workers: usize) -> EngineConfig {
    EngineConfig {
        workers,
        stale_after: Duration::from_millis(600),
        max_attempts: 3,
        poll: Duration::from_millis(50),
        progress_every: Duration::from_millis(20),
        ..EngineConfig::default()
    }
}

impl Replica {
    async fn start(url: &str, pipeline: Arc<FakePipeline>, config: EngineConfig) -> Replica {
        Replica::start_with(url, |_| pipeline, config).await
    }

    /// A replica whose jobs are planned by the real generations (the sync endpoints' parsers).
    async fn generating(url: &str, config: EngineConfig) -> Replica {
        Replica::start_with(url, |state| Arc::new(Generations::new(state.clone())), config).await
    }

    async fn start_with(
        url: &str,
        pipeline: impl FnOnce(&AppState) -> Arc<dyn JobPipeline>,
        config: EngineConfig,
    ) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::from_vars(None, |_| None).unwrap();
        settings.output_dir = dir.path().join("outputs");
        let state = support::mock_app_state(Arc::new(LocalStorage::new(&settings.output_dir)));
        let jobs = Jobs::open(url, pipeline(&state), config).await.expect("open the jobs database");
        let shutdown = CancellationToken::new();
        let workers = jobs.start_workers(shutdown.clone());
        let router = app_with_jobs(state, &settings, Some(jobs.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (http, stop) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(mvgen::server::serve(listener, router, async move {
            let _ = stop.await;
        }));
        Replica { base, jobs, shutdown, workers, http, _dir: dir }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.workers.wait().await;
        let _ = self.http.send(());
        self.jobs.close().await;
    }
}

/// One client for the whole binary: building one loads the root certificates, which costs more
/// than a request here.
fn client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| crate::support::http_client_builder().timeout(Duration::from_secs(30)).build().unwrap())
        .clone()
}

async fn post(
    base: &str,
    path: &str,
    body: &Value,
    key: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client().post(format!("{base}{path}")).json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("send");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

async fn get(base: &str, path: &str) -> (StatusCode, Value) {
    let response = client().get(format!("{base}{path}")).send().await.expect("send");
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

async fn submit(base: &str, kind: &str, input: Value) -> String {
    let (status, _, job) = post(base, "/api/mv/jobs", &json!({ "kind": kind, "input": input }), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    job["id"].as_str().unwrap().to_owned()
}

async fn wait_status(base: &str, id: &str, done: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, job) = get(base, &format!("/api/mv/jobs/{id}")).await;
        if status == StatusCode::OK && done.contains(&job["status"].as_str().unwrap_or_default()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} never reached {done:?}: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Reads an SSE stream: `(id, event, data)` per event until the stream ends or `stop` says so.
async fn read_events(
    base: &str,
    id: &str,
    last_event_id: Option<i64>,
    stop: impl Fn(&str) -> bool,
) -> (Vec<(i64, String, Value)>, bool) {
    let mut request = client().get(format!("{base}/api/mv/jobs/{id}/events"));
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last.to_string());
    }
    let mut response = request.send().await.expect("events");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (mut events, mut buffer) = (Vec::new(), String::new());
    loop {
        let Some(chunk) = response.chunk().await.expect("chunk") else {
            return (events, true);
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field =
                |name: &str| block.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_owned()));
            let (Some(event_id), Some(event), Some(data)) = (field("id:"), field("event:"), field("data:")) else {
                continue; // a keep-alive comment
            };
            events.push((event_id.parse().unwrap(), event.clone(), serde_json::from_str(&data).unwrap()));
            if stop(&event) {
                return (events, false);
            }
        }
    }
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display())
}

/// Two projects' ids, as the jobs below name them.
const PROJECT_A: &str = "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d";
const PROJECT_B: &str = "9d1c7e2a-5b3f-4a6e-8c0d-1e2f3a4b5c6d";

#[tokio::test]
async fn submit_read_and_list_jobs_newest_first_with_a_cursor() {
    let db = tempfile::tempdir().unwrap();
    let (pipeline, upstream) = FakePipeline::new();
    let replica = Replica::start(&sqlite(&db), pipeline, config(2)).await;
    let base = replica.base.clone();
    let body = json!({ "kind": "video", "input": { "prompt": "first", "project_id": PROJECT_A, "sequence": 3 } });
    let (status, headers, job) = post(&base, "/api/mv/jobs", &body, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/api/mv/jobs/{id}"));
    assert_eq!(job["urls"]["events"], format!("/api/mv/jobs/{id}/events"));
    assert_eq!(
        (job["kind"].as_str(), job["project_id"].as_str(), job["sequence"].as_i64()),
        (Some("video"), Some(PROJECT_A), Some(3))
    );
    assert_eq!(job["plan"]["prompt"], "first", "the plan is rendered at submit");
    let done = wait_status(&base, id, &["succeeded"]).await;
    assert_eq!(done["output"]["prompt"], "first");
    assert_eq!(done["upstream"]["provider"], "fake");
    assert_eq!(done["attempts"], 1);
    assert!(done["completed_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{done}");
    assert!(done["progress"]["elapsed_seconds"].as_f64().is_some());
    assert!(done["error"].is_null());

    let mut scenes = Vec::new();
    for n in 0..4 {
        scenes.push(submit(&base, "scenes", json!({ "prompt": format!("s{n}"), "project_id": PROJECT_B })).await);
    }
    for id in &scenes {
        wait_status(&base, id, &["succeeded"]).await;
    }
    // A project id is a UUID, matched however it is written (Swift's `uuidString` is upper case);
    // before, any text was taken and an upper-case id listed nothing.
    let (status, page) = get(&base, &format!("/api/mv/jobs?project_id={}&limit=3", PROJECT_B.to_uppercase())).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // List items carry no plan (`GET /api/mv/jobs/{id}` has it); a succeeded job's output names
    // its prompt as well.
    assert!(page["jobs"].as_array().unwrap().iter().all(|j| j.get("plan").is_none()), "{page}");
    let prompts: Vec<&str> =
        page["jobs"].as_array().unwrap().iter().map(|j| j["output"]["prompt"].as_str().unwrap()).collect();
    assert_eq!(prompts, ["s3", "s2", "s1"], "newest first");
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let (_, next) = get(&base, &format!("/api/mv/jobs?project_id={PROJECT_B}&limit=3&cursor={cursor}")).await;
    let rest: Vec<&str> =
        next["jobs"].as_array().unwrap().iter().map(|j| j["output"]["prompt"].as_str().unwrap()).collect();
    assert_eq!(rest, ["s0"]);
    assert!(next["next_cursor"].is_null());
    let (_, videos) = get(&base, "/api/mv/jobs?kind=video&status=succeeded").await;
    assert_eq!(videos["jobs"].as_array().unwrap().len(), 1);
    for (query, field) in [
        ("status=done", "status"),
        ("kind=gif", "kind"),
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("cursor=x", "cursor"),
        ("sort=asc", "sort"),
        ("project_id=p2", "project_id"),
    ] {
        let (status, err) = get(&base, &format!("/api/mv/jobs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {err}");
        assert_eq!(err["detail"]["details"], field, "{query}: {err}");
    }
    assert_eq!(upstream.total_creates(), 5);
    replica.stop().await;
}

#[tokio::test]
async fn bad_kinds_inputs_and_ids_are_4xx_and_never_queued() {
    let db = tempfile::tempdir().unwrap();
    let (pipeline, _) = FakePipeline::new();
    let replica = Replica::start(&sqlite(&db), pipeline, config(0)).await;
    let base = replica.base.clone();
    let cases = [
        (json!({ "kind": "gif", "input": { "prompt": "x" } }), StatusCode::BAD_REQUEST, json!("kind")),
        (json!({ "kind": "video", "input": { "prompt": " " } }), StatusCode::BAD_REQUEST, json!("prompt")),
        (json!({ "kind": "video", "input": {} }), StatusCode::UNPROCESSABLE_ENTITY, json!("prompt")),
        (json!({ "input": { "prompt": "x" } }), StatusCode::UNPROCESSABLE_ENTITY, json!("kind")),
    ];
    for (body, status, field) in cases {
        let (got, _, err) = post(&base, "/api/mv/jobs", &body, None).await;
        assert_eq!(got, status, "{body}: {err}");
        assert_eq!(err["detail"]["details"], field, "{body}: {err}");
    }
    let response = client().post(format!("{base}/api/mv/jobs")).body("kind=video").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (_, list) = get(&base, "/api/mv/jobs").await;
    assert_eq!(list["jobs"], json!([]), "nothing was queued");
    for path in ["/api/mv/jobs/not-a-uuid", "/api/mv/jobs/123/events"] {
        let (status, err) = get(&base, path).await;
        assert_eq!((status, err["detail"]["error"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidId")), "{path}");
    }
    let unknown = uuid::Uuid::new_v4();
    for path in [format!("/api/mv/jobs/{unknown}"), format!("/api/mv/jobs/{unknown}/events")] {
        let (status, err) = get(&base, &path).await;
        assert_eq!((status, err["detail"]["error"].as_str()), (StatusCode::NOT_FOUND, Some("NotFound")), "{path}");
    }
    let (status, _, _) = post(&base, &format!("/api/mv/jobs/{unknown}/cancel"), &json!({}), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    replica.stop().await;
}

#[tokio::test]
async fn idempotency_keys_replay_conflict_and_refuse_another_body() {
    let db = tempfile::tempdir().unwrap();
    let (pipeline, _) = FakePipeline::new();
    let replica = Replica::start(&sqlite(&db), pipeline, config(0)).await;
    let base = replica.base.clone();
    let body = json!({ "kind": "scenes", "input": { "prompt": "once" } });
    let (s1, h1, first) = post(&base, "/api/mv/jobs", &body, Some("key-1")).await;
    let (s2, h2, again) = post(&base, "/api/mv/jobs", &body, Some("key-1")).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first["id"], again["id"], "replayed, not a second job");
    assert_eq!(h1["location"], h2["location"]);
    let other = json!({ "kind": "scenes", "input": { "prompt": "twice" } });
    let (status, _, err) = post(&base, "/api/mv/jobs", &other, Some("key-1")).await;
    assert_eq!(
        (status, err["detail"]["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("IdempotencyKeyReused"))
    );

    // A slow submit holds its key: the same key meanwhile is a 409.
    let slow = json!({ "kind": "scenes", "input": { "prompt": "slow", "plan_ms": 800 } });
    let first = tokio::spawn({
        let (base, slow) = (base.clone(), slow.clone());
        async move { post(&base, "/api/mv/jobs", &slow, Some("key-2")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, err) = post(&base, "/api/mv/jobs", &slow, Some("key-2")).await;
    assert_eq!((status, err["detail"]["error"].as_str()), (StatusCode::CONFLICT, Some("IdempotencyKeyInUse")), "{err}");
    let (status, _, made) = first.await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, _, replay) = post(&base, "/api/mv/jobs", &slow, Some("key-2")).await;
    assert_eq!(replay["id"], made["id"]);

    // A refused body does not burn its key.
    let bad = json!({ "kind": "scenes", "input": { "prompt": "" } });
    let (status, _, _) = post(&base, "/api/mv/jobs", &bad, Some("key-3")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let good = json!({ "kind": "scenes", "input": { "prompt": "fixed" } });
    let (status, _, _) = post(&base, "/api/mv/jobs", &good, Some("key-3")).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Two keys on one request name no one submission: a 400, nothing stored, neither key used.
    // Before, the first was taken and the second ignored (a 202 replaying key-1's job here).
    let response = client()
        .post(format!("{base}/api/mv/jobs"))
        .header("idempotency-key", "key-1")
        .header("idempotency-key", "key-4")
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = response.status();
    let err: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!((status, err["detail"]["error"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidIdempotencyKey")));
    assert_eq!(err["detail"]["details"], "idempotency-key", "{err}");
    let (status, _, fresh) = post(&base, "/api/mv/jobs", &other, Some("key-4")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "key-4 is unused: {fresh}");
    let (_, list) = get(&base, "/api/mv/jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 4);
    replica.stop().await;
}

#[tokio::test]
async fn events_stream_resumes_after_last_event_id_and_ends_after_the_final_event() {
    let db = tempfile::tempdir().unwrap();
    let (pipeline, _) = FakePipeline::new();
    let replica = Replica::start(&sqlite(&db), pipeline, config(1)).await;
    let base = replica.base.clone();
    let id = submit(&base, "video", json!({ "prompt": "watched", "render_ms": 700 })).await;
    let (first, ended) = read_events(&base, &id, None, |event| event == "upstream").await;
    assert!(!ended);
    assert_eq!(first.first().map(|e| e.1.as_str()), Some("queued"));
    assert!(first.iter().all(|e| e.2["job_id"] == id.as_str()));
    let last = first.last().unwrap().0;
    let (rest, ended) = read_events(&base, &id, Some(last), |_| false).await;
    assert!(ended, "the stream ends after the final event");
    assert!(rest.iter().all(|e| e.0 > last), "only what was missed");
    let ids: Vec<i64> = first.iter().chain(&rest).map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing ids: {ids:?}");
    let kinds: Vec<&str> = rest.iter().map(|e| e.1.as_str()).collect();
    assert!(kinds.contains(&"progress"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"succeeded"));
    let waiting = rest.iter().find(|e| e.1 == "progress" && e.2["stage"] == "waiting").expect("a waiting step");
    assert_eq!(waiting.2["upstream_status"], "processing");

    // After the end, a reconnect gets nothing more and ends at once; from the start, everything.
    let final_id = rest.last().unwrap().0;
    let (none, ended) = read_events(&base, &id, Some(final_id), |_| false).await;
    assert!(ended && none.is_empty());
    let (all, _) = read_events(&base, &id, None, |_| false).await;
    assert_eq!(all.len(), first.len() + rest.len());
    let (status, err) = {
        let response = client()
            .get(format!("{base}/api/mv/jobs/{id}/events"))
            .header("last-event-id", "yesterday")
            .send()
            .await
            .unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };
    assert_eq!((status, &err["detail"]["details"]), (StatusCode::BAD_REQUEST, &json!("last-event-id")));
    replica.stop().await;
}

#[tokio::test]
async fn cancel_queued_running_and_finished_jobs() {
    let db = tempfile::tempdir().unwrap();
    let url = sqlite(&db);
    let (pipeline, upstream) = FakePipeline::new();
    let idle = Replica::start(&url, pipeline.clone(), config(0)).await;
    let queued = submit(&idle.base, "video", json!({ "prompt": "q" })).await;
    let (status, _, job) = post(&idle.base, &format!("/api/mv/jobs/{queued}/cancel"), &json!({}), None).await;
    assert_eq!((status, job["status"].as_str()), (StatusCode::ACCEPTED, Some("canceled")));
    let (status, _, err) = post(&idle.base, &format!("/api/mv/jobs/{queued}/cancel"), &json!({}), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["detail"]["details"]["status"], "canceled");
    idle.stop().await;

    let replica = Replica::start(&url, pipeline, config(1)).await;
    let base = replica.base.clone();
    let running = submit(&base, "video", json!({ "prompt": "r", "render_ms": 30_000 })).await;
    let (events, _) = read_events(&base, &running, None, |e| e == "upstream").await;
    let (status, _, job) = post(&base, &format!("/api/mv/jobs/{running}/cancel"), &json!({}), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(job["cancel_requested"], true);
    let (rest, ended) = read_events(&base, &running, Some(events.last().unwrap().0), |_| false).await;
    assert!(ended);
    assert_eq!(rest.last().map(|e| e.1.as_str()), Some("canceled"));
    let done = submit(&base, "scenes", json!({ "prompt": "d" })).await;
    wait_status(&base, &done, &["succeeded"]).await;
    let (status, _, err) = post(&base, &format!("/api/mv/jobs/{done}/cancel"), &json!({}), None).await;
    assert_eq!((status, &err["detail"]["details"]["status"]), (StatusCode::CONFLICT, &json!("succeeded")));
    assert_eq!(upstream.creates("q"), 0);
    replica.stop().await;
}

#[tokio::test]
async fn event_streams_end_when_the_server_drains() {
    let db = tempfile::tempdir().unwrap();
    let (pipeline, _) = FakePipeline::new();
    let replica = Replica::start(&sqlite(&db), pipeline, config(0)).await;
    let id = submit(&replica.base, "video", json!({ "prompt": "waits forever" })).await;
    let reader = tokio::spawn({
        let (base, id) = (replica.base.clone(), id.clone());
        async move { read_events(&base, &id, None, |_| false).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!reader.is_finished(), "a queued job's stream stays open");
    replica.jobs.end_streams();
    let (events, ended) = tokio::time::timeout(Duration::from_secs(5), reader).await.expect("ended").unwrap();
    assert!(ended);
    assert_eq!(events.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(), ["queued"], "no final event: it still runs");
    replica.stop().await;
}

#[test]
fn the_binary_refuses_to_start_without_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mvgen"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_clear()
        .env("MV_OUTPUT_DIR", dir.path())
        .env("MVGEN_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mvgen: cannot open the jobs database postgres://nobody@127.0.0.1:1/none"), "{stderr}");
    assert!(stderr.contains("refused"), "says why: {stderr}");
}

/// Two replicas on one PostgreSQL: events of a job submitted on A and run anywhere reach a stream
/// on B; a replica killed mid-render is taken over with one create; 200 mixed jobs, none lost or
/// run twice; the database lost meanwhile answers 503 and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_postgres_queue() {
    let Some(pg) = Postgres::start("replicas_share_one_postgres_queue") else { return };
    let (pipeline, upstream) = FakePipeline::new();
    // A first replica dies mid-render (its runtime dropped); A or B takes the job over.
    let crashed = crash_mid_render(&pg.url, pipeline.clone()).await;
    let a = Replica::start(&pg.url, pipeline.clone(), config(3)).await;
    let b = Replica::start(&pg.url, pipeline.clone(), config(3)).await;
    let job = wait_status(&b.base, &crashed, &["succeeded", "failed"]).await;
    let counts = (job["status"].as_str(), job["attempts"].as_i64(), job["takeovers"].as_i64());
    assert_eq!(counts, (Some("succeeded"), Some(1), Some(1)), "a takeover is not an attempt: {job}");
    assert_eq!(upstream.creates("crash"), 1, "the takeover resumed the saved prediction");

    let watched = submit(&a.base, "video", json!({ "prompt": "watched on b", "render_ms": 400 })).await;
    let (events, ended) = read_events(&b.base, &watched, None, |_| false).await;
    assert!(ended);
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("succeeded"), "{events:?}");

    let mut ids = Vec::new();
    for n in 0..200 {
        let base = if n % 2 == 0 { &a.base } else { &b.base };
        let kind = ["scenes", "character_reference", "video"][n % 3];
        let fail = if n % 10 == 0 { json!("caller") } else { Value::Null };
        let input = json!({ "prompt": format!("mixed {n}"), "render_ms": 20 + (n % 5) * 20, "fail": fail });
        ids.push((n, submit(base, kind, input).await));
    }
    for (n, id) in &ids {
        let job = wait_status(&a.base, id, &["succeeded", "failed", "canceled"]).await;
        let expected = if n % 10 == 0 { "failed" } else { "succeeded" };
        assert_eq!(job["status"], expected, "{job}");
        assert_eq!(job["attempts"], 1, "run once: {job}");
    }
    let counts = upstream.create_counts();
    for (n, _) in &ids {
        let expected = usize::from(n % 10 != 0);
        assert_eq!(counts.get(&format!("mixed {n}")).copied().unwrap_or(0), expected, "job {n}");
    }

    // The database goes away: submit answers 503 with Retry-After; a job submitted before is
    // finished once it is back.
    let before = submit(&a.base, "video", json!({ "prompt": "outage", "render_ms": 1500 })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.stop();
    let response = client()
        .post(format!("{}/api/mv/jobs", a.base))
        .json(&json!({ "kind": "scenes", "input": { "prompt": "during" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    let err: Value = response.json().await.unwrap();
    assert_eq!(err["detail"]["error"], "DatabaseUnavailable");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    pg.start_again();
    let job = wait_status(&a.base, &before, &["succeeded", "failed"]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(upstream.creates("outage"), 1);
    a.stop().await;
    b.stop().await;
}

/// Runs a replica on a runtime of its own until `crash` saved its upstream run, then drops the
/// runtime: the job is left `processing` with a heartbeat that goes stale.
async fn crash_mid_render(url: &str, pipeline: Arc<FakePipeline>) -> String {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let id = runtime.block_on(async {
            let replica = Replica::start(&url, pipeline, config(1)).await;
            let id = submit(&replica.base, "video", json!({ "prompt": "crash", "render_ms": 1500 })).await;
            let (_, _) = read_events(&replica.base, &id, None, |e| e == "upstream").await;
            std::mem::forget(replica);
            id
        });
        runtime.shutdown_background();
        id
    })
    .await
    .unwrap()
}

/// Keys per the IETF draft: a replay sends the first answer as it was sent (not the job as it is
/// now); a key left pending by a submission that crashed before storing its job is free again
/// after the lease (a live one is still a 409); an expired key is forgotten.
async fn idempotency_keys_replay_the_first_answer_recover_and_expire(url: &str) {
    use sqlx::Connection;
    let (pipeline, _) = FakePipeline::new();
    let replica = Replica::start(url, pipeline, config(1)).await;
    let base = replica.base.clone();
    let body = json!({ "kind": "scenes", "input": { "prompt": "first answer" } });
    let (status, first_headers, first) = post(&base, "/api/mv/jobs", &body, Some("first")).await;
    assert_eq!((status, first["status"].as_str()), (StatusCode::ACCEPTED, Some("queued")), "{first}");
    let id = first["id"].as_str().expect("id").to_owned();
    wait_status(&base, &id, &["succeeded"]).await;
    let (status, headers, again) = post(&base, "/api/mv/jobs", &body, Some("first")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again, first, "the first answer, not the job as it is now");
    assert_eq!(headers["location"], first_headers["location"]);

    let mut db = sqlx::AnyConnection::connect(url).await.expect("connect");
    let pending = "INSERT INTO idempotency (key, fingerprint, job_id, created_at) VALUES ($1, $2, NULL, $3)";
    // The server's fingerprint of `body`: SHA-256 of its kind and input as JSON, in hex.
    let fingerprint: String = {
        use sha2::Digest;
        let canonical = json!({ "kind": body["kind"], "input": body["input"] }).to_string();
        sha2::Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    };
    let now = mvgen::jobs::store::now_ms();
    // Left by a submission that crashed ten minutes ago, between storing its key and its job.
    sqlx::query(pending)
        .bind("crashed")
        .bind(&fingerprint)
        .bind(now - 600_000)
        .execute(&mut db)
        .await
        .expect("stuck key");
    let (status, _, made) = post(&base, "/api/mv/jobs", &body, Some("crashed")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "a stuck key is recovered: {made}");
    assert_ne!(made["id"], first["id"]);
    // A submission in flight right now keeps its key.
    sqlx::query(pending).bind("in-flight").bind(&fingerprint).bind(now).execute(&mut db).await.expect("live key");
    let (status, _, err) = post(&base, "/api/mv/jobs", &body, Some("in-flight")).await;
    assert_eq!((status, err["detail"]["error"].as_str()), (StatusCode::CONFLICT, Some("IdempotencyKeyInUse")));

    // A day and an hour later the first key has expired: another body makes a new job.
    sqlx::query("UPDATE idempotency SET created_at = created_at - 90000000 WHERE key = 'first'")
        .execute(&mut db)
        .await
        .expect("age the key");
    let other = json!({ "kind": "scenes", "input": { "prompt": "a new day" } });
    let (status, _, fresh) = post(&base, "/api/mv/jobs", &other, Some("first")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "an expired key is forgotten: {fresh}");
    assert_ne!(fresh["id"], first["id"]);
    db.close().await.expect("close");
    replica.stop().await;
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer_recover_and_expire_on_sqlite() {
    let db = tempfile::tempdir().unwrap();
    idempotency_keys_replay_the_first_answer_recover_and_expire(&sqlite(&db)).await;
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer_recover_and_expire_on_postgres() {
    let Some(pg) = Postgres::start("idempotency_keys_replay_the_first_answer_recover_and_expire_on_postgres") else {
        return;
    };
    idempotency_keys_replay_the_first_answer_recover_and_expire(&pg.url).await;
}

/// A job row this build cannot read (a status a newer build wrote, say) is a fault naming the job
/// and the word: 500, never a guessed status, and not a 503 "retry shortly" (retrying will not
/// make it readable).
#[tokio::test]
async fn an_unreadable_job_row_is_a_fault_naming_the_job() {
    use sqlx::Connection;
    let db = tempfile::tempdir().unwrap();
    let url = sqlite(&db);
    let (pipeline, _) = FakePipeline::new();
    let replica = Replica::start(&url, pipeline, config(0)).await;
    let (status, _, job) =
        post(&replica.base, "/api/mv/jobs", &json!({ "kind": "scenes", "input": { "prompt": "p" } }), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().expect("id").to_owned();
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::query("UPDATE jobs SET status = 'paused' WHERE id = $1").bind(&id).execute(&mut conn).await.expect("status");
    conn.close().await.expect("close");
    for path in [format!("/api/mv/jobs/{id}"), "/api/mv/jobs".to_owned()] {
        let (status, err) = get(&replica.base, &path).await;
        assert_eq!(
            (status, err["detail"]["error"].as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, Some("InternalError")),
            "{path}: {err}"
        );
        let message = err["detail"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&id) && message.contains("\"paused\""), "{path}: {message}");
    }
    replica.stop().await;
}

/// The envelope `{"kind", "input"}` is as strict as the sync bodies: a field it does not know (a
/// `config_flavor` meant for the input, say) is a 400 naming it, not silently ignored, and nothing
/// is queued.
#[tokio::test]
async fn unknown_envelope_fields_are_400_naming_them_and_never_queued() {
    let db = tempfile::tempdir().unwrap();
    let (pipeline, _) = FakePipeline::new();
    let replica = Replica::start(&sqlite(&db), pipeline, config(0)).await;
    let base = replica.base.clone();
    let cases = [
        (json!({ "kind": "scenes", "input": { "prompt": "x" }, "config_flavor": "cinematic" }), "config_flavor"),
        (json!({ "kind": "scenes", "input": { "prompt": "x" }, "inputs": {} }), "inputs"),
    ];
    for (body, field) in cases {
        let (status, _, err) = post(&base, "/api/mv/jobs", &body, Some("envelope")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert_eq!(err["detail"]["details"], field, "{body}: {err}");
        assert!(err["detail"]["message"].as_str().is_some_and(|m| m.contains(field)), "{err}");
    }
    let (_, list) = get(&base, "/api/mv/jobs").await;
    assert_eq!(list["jobs"], json!([]), "nothing was queued");
    replica.stop().await;
}

/// Submits each `(kind, input, field)` as a job and to its sync endpoint: both a 400 naming the
/// field, and no job stored (the sync request's neither: no `X-Job-Id`, an empty listing).
async fn refused_at_submit_and_no_job_stored(base: &str, cases: &[(&str, Value, &str)]) {
    for (kind, input, field) in cases {
        let body = json!({ "kind": kind, "input": input });
        let (status, _, err) = post(base, "/api/mv/jobs", &body, None).await;
        assert_eq!((status, &err["detail"]["details"]), (StatusCode::BAD_REQUEST, &json!(field)), "{body}: {err}");
        let path = match *kind {
            "video" => "/api/mv/generate_video",
            "scenes" => "/api/mv/create_scenes",
            _ => "/api/mv/generate_character_reference",
        };
        let (status, headers, err) = post(base, path, input, None).await;
        assert_eq!((status, &err["detail"]["details"]), (StatusCode::BAD_REQUEST, &json!(field)), "{path}: {err}");
        assert!(headers.get("x-job-id").is_none(), "{path}: no job for a refused input");
    }
    let (status, list) = get(base, "/api/mv/jobs").await;
    assert_eq!((status, &list["jobs"]), (StatusCode::OK, &json!([])), "no job was stored");
}

fn video_with(key: &str, value: Value) -> Value {
    let mut input = json!({ "prompt": "The captain climbs the mast." });
    input[key] = value;
    input
}

/// A `character_reference_id` that is not an id is refused at submit, as the README promises (it
/// used to be queued and fail only when the job ran), and a sync request refused for it stores no
/// job. Run by the real generations, so the sync endpoints' parsers.
async fn malformed_reference_ids_are_refused_at_submit(url: &str) {
    let replica = Replica::generating(url, config(0)).await;
    let cases = ["not-an-id", "../../etc/passwd", "3F2B6C1E-8F0A-4D2B-9C51-0E4F1A2B3C4D"]
        .map(|id| ("video", video_with("character_reference_id", json!(id)), "character_reference_id"));
    refused_at_submit_and_no_job_stored(&replica.base, &cases).await;
    replica.stop().await;
}

#[tokio::test]
async fn malformed_reference_ids_are_refused_at_submit_on_sqlite() {
    let db = tempfile::tempdir().unwrap();
    malformed_reference_ids_are_refused_at_submit(&sqlite(&db)).await;
}

#[tokio::test]
async fn malformed_reference_ids_are_refused_at_submit_on_postgres() {
    let Some(pg) = Postgres::start("malformed_reference_ids_are_refused_at_submit_on_postgres") else {
        return;
    };
    malformed_reference_ids_are_refused_at_submit(&pg.url).await;
}

/// A replayed idempotent answer is the first one byte for byte: same key order, same spacing.
#[tokio::test]
async fn a_replayed_answer_is_the_first_byte_for_byte() {
    let db = tempfile::tempdir().unwrap();
    let (pipeline, _) = FakePipeline::new();
    let replica = Replica::start(&sqlite(&db), pipeline, config(0)).await;
    let base = replica.base.clone();
    let body = json!({ "kind": "scenes", "input": { "prompt": "byte for byte" } });
    let send = || async {
        let response = client()
            .post(format!("{base}/api/mv/jobs"))
            .header("idempotency-key", "bytes")
            .json(&body)
            .send()
            .await
            .expect("send");
        let content_type = response.headers().get("content-type").cloned();
        (response.status(), content_type, response.bytes().await.expect("body"))
    };
    let (first_status, first_type, first) = send().await;
    let (again_status, again_type, again) = send().await;
    assert_eq!((first_status, again_status), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first_type, again_type);
    assert_eq!(String::from_utf8_lossy(&again), String::from_utf8_lossy(&first));
    replica.stop().await;
}

/// A NUL byte in a listing's query value is a 400 naming the parameter on both engines
/// (PostgreSQL cannot compare text holding one: it answered 503).
async fn nul_bytes_in_query_values_are_400(url: &str) {
    let replica = Replica::generating(url, config(0)).await;
    for (query, field) in [("project_id=a%00b", "project_id"), ("status=%00", "status"), ("kind=video%00", "kind")] {
        let (status, err) = get(&replica.base, &format!("/api/mv/jobs?{query}")).await;
        assert_eq!((status, &err["detail"]["details"]), (StatusCode::BAD_REQUEST, &json!(field)), "{query}: {err}");
    }
    replica.stop().await;
}

#[tokio::test]
async fn nul_bytes_in_query_values_are_400_on_sqlite() {
    let db = tempfile::tempdir().unwrap();
    nul_bytes_in_query_values_are_400(&sqlite(&db)).await;
}

#[tokio::test]
async fn nul_bytes_in_query_values_are_400_on_postgres() {
    let Some(pg) = Postgres::start("nul_bytes_in_query_values_are_400_on_postgres") else {
        return;
    };
    nul_bytes_in_query_values_are_400(&pg.url).await;
}

/// A NUL byte in a text of any kind's input (the flavor's name too) is a 400 naming the field on
/// both engines, to a job as to the sync endpoint, and nothing is stored: no real prompt holds one,
/// and PostgreSQL cannot hold one in text.
async fn nul_bytes_in_texts_are_400(url: &str) {
    let replica = Replica::generating(url, config(0)).await;
    let cases = [
        ("video", video_with("prompt", json!("a\u{0}b")), "prompt"),
        ("video", video_with("negative_prompt", json!("\u{0}")), "negative_prompt"),
        ("video", video_with("config_flavor", json!("default\u{0}")), "config_flavor"),
        ("scenes", json!({ "idea": "a storm\u{0}", "character_description": "a captain" }), "idea"),
        ("character_reference", json!({ "character_description": "a\u{0}captain" }), "character_description"),
    ];
    refused_at_submit_and_no_job_stored(&replica.base, &cases).await;
    replica.stop().await;
}

#[tokio::test]
async fn nul_bytes_in_texts_are_400_on_sqlite() {
    let db = tempfile::tempdir().unwrap();
    nul_bytes_in_texts_are_400(&sqlite(&db)).await;
}

#[tokio::test]
async fn nul_bytes_in_texts_are_400_on_postgres() {
    let Some(pg) = Postgres::start("nul_bytes_in_texts_are_400_on_postgres") else {
        return;
    };
    nul_bytes_in_texts_are_400(&pg.url).await;
}
