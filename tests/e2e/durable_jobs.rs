//! Durable jobs through the real `mvgen` binary, with the real Gemini and Replicate clients against
//! the fakes on 127.0.0.1: a process SIGKILLed mid-video (embedded SQLite) and restarted; two
//! `mvgen serve` replicas on one PostgreSQL, one killed mid-render and taken over by the other;
//! 200 mixed jobs across two replicas, each run exactly once; the database lost while a job runs.
//!
//! The engine's own tests (tests/engines/) prove the same rules in-process with a
//! test pipeline; these prove them for the program a user runs, where a crash is a real SIGKILL and
//! a paid prediction is a create the fake Replicate counts.
//!
//! The tests without PostgreSQL print a skip line under plain `cargo test` and fail under
//! `CI=true` (`support::postgres`).

use crate::support;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::fake_upstream::{
    FakeFile, FakeGemini, FakeReplicate, Outcome, PredictionPlan, Route, TEST_GEMINI_KEY, TEST_REPLICATE_TOKEN,
};
use support::postgres::Postgres;
use support::server_process::ServerProcess;

/// How long any one wait may take before the test fails (a hang guard, not a speed target).
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// The fake upstreams one test's binaries talk to.
pub(crate) struct Fakes {
    pub(crate) gemini: FakeGemini,
    pub(crate) replicate: FakeReplicate,
}

impl Fakes {
    /// Gemini answers with as many scenes as the default flavor asks for.
    pub(crate) async fn start() -> Fakes {
        let gemini = FakeGemini::start().await;
        gemini.set_default_scenes(scenes_per_job());
        Fakes { gemini, replicate: FakeReplicate::start().await }
    }

    /// Fakes whose first prediction is a video held until `FakeReplicate::finish`, and the bytes
    /// that video will serve.
    pub(crate) async fn with_held_video(tag: &str) -> (Fakes, Vec<u8>) {
        let fakes = Fakes::start().await;
        let served = clip(tag);
        fakes.replicate.push_prediction(held_video(&served));
        (fakes, served)
    }

    /// The binary's environment: the real clients on the fakes with tiny poll intervals and
    /// backoff, a 1 s stale limit (the smallest `MVGEN_JOB_STALE_AFTER` takes), then `extra`
    /// (which wins).
    pub(crate) fn env<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("GEMINI_API_KEY", TEST_GEMINI_KEY),
            ("GEMINI_BASE_URL", self.gemini.base_url.as_str()),
            ("REPLICATE_API_TOKEN", TEST_REPLICATE_TOKEN),
            ("REPLICATE_BASE_URL", self.replicate.base_url.as_str()),
            ("MV_REPLICATE_POLL_SECS", "0.05"),
            ("MV_GEMINI_POLL_SECS", "0.05"),
            ("MV_RETRY_BASE_DELAY_SECS", "0.01"),
            ("MV_RETRY_MAX_DELAY_SECS", "0.05"),
            ("MVGEN_JOB_STALE_AFTER", "1"),
        ];
        env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        env.extend_from_slice(extra);
        env
    }

    /// Every prediction asked of the fake Replicate: each one is paid for.
    pub(crate) fn creates(&self) -> usize {
        self.replicate.received_on(Route::Create).len()
    }
}

/// The default flavor's `number_of_scenes`.
fn scenes_per_job() -> u32 {
    mvgen::flavor::lookup("default").expect("default flavor").parameters.number_of_scenes.value
}

/// A playable clip whose bytes are this test's own (trailing bytes after the MP4 boxes), so a
/// stored copy can only have come from the fake's file.
fn clip(tag: &str) -> Vec<u8> {
    let mut bytes = mvgen::providers::mock::MOCK_CLIP.to_vec();
    bytes.extend_from_slice(format!("fake replicate output {tag}").as_bytes());
    bytes
}

/// A video prediction that stays `processing` until `FakeReplicate::finish`, then serves `bytes`.
fn held_video(bytes: &[u8]) -> PredictionPlan {
    PredictionPlan::held(Outcome::Succeed(FakeFile::new("out.mp4", Some("video/mp4"), bytes.to_vec())))
}

/// `mvgen serve` with `env` (its startup blocks this worker thread briefly).
pub(crate) fn start(env: &[(&str, &str)]) -> ServerProcess {
    tokio::task::block_in_place(|| ServerProcess::start(env).expect("start mvgen"))
}

pub(crate) fn kill(server: &mut ServerProcess) {
    server.signal("KILL");
    assert!(tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(10))).is_some(), "SIGKILL ignored");
}

pub(crate) fn http() -> reqwest::Client {
    crate::support::http_client_builder().timeout(Duration::from_secs(30)).build().expect("client")
}

pub(crate) async fn submit(base: &str, kind: &str, input: Value) -> String {
    let response =
        http().post(format!("{base}/api/mv/jobs")).json(&json!({ "kind": kind, "input": input })).send().await;
    let response = response.expect("submit");
    let status = response.status();
    let job: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    job["id"].as_str().expect("job id").to_owned()
}

async fn job(base: &str, id: &str) -> (StatusCode, Value) {
    let response = http().get(format!("{base}/api/mv/jobs/{id}")).send().await.expect("get job");
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

/// Polls the job on `base` until `done` holds.
pub(crate) async fn wait_job(base: &str, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, job) = job(base, id).await;
        if status == StatusCode::OK && done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id}: never {what}: {status} {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn finished(job: &Value) -> bool {
    matches!(job["status"].as_str(), Some("succeeded" | "failed" | "canceled"))
}

/// The bytes `url` (a path on `base`) serves.
pub(crate) async fn download(base: &str, url: &str) -> Vec<u8> {
    let response = http().get(format!("{base}{url}")).send().await.expect("download");
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.bytes().await.expect("body").to_vec()
}

/// One Server-Sent Event: `(id, event name, data)`.
pub(crate) type SseEvent = (i64, String, Value);

/// Reads a job's event stream to its end in the background; what arrived so far is in `seen`.
struct Follow {
    seen: Arc<Mutex<Vec<SseEvent>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Follow {
    async fn open(base: &str, id: &str) -> Follow {
        // No overall timeout: the stream lives as long as the job runs.
        let response = crate::support::http_client().get(format!("{base}/api/mv/jobs/{id}/events")).send().await;
        let mut response = response.expect("events");
        assert_eq!(response.status(), StatusCode::OK);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let reader = tokio::spawn(async move {
            let mut buffer = String::new();
            while let Some(chunk) = response.chunk().await.expect("event stream broke") {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if let Some(event) = parse_event(&block) {
                        into.lock().expect("events").push(event);
                    }
                }
            }
        });
        Follow { seen, reader }
    }

    fn names(&self) -> Vec<String> {
        self.seen.lock().expect("events").iter().map(|(_, name, _)| name.clone()).collect()
    }

    /// Waits for the stream to end (after the job's final event) and returns every event.
    async fn ended(self) -> Vec<SseEvent> {
        tokio::time::timeout(PATIENCE, self.reader).await.expect("the event stream never ended").expect("reader");
        self.seen.lock().expect("events").clone()
    }
}

/// `None` for a keep-alive comment.
fn parse_event(block: &str) -> Option<SseEvent> {
    let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_owned()));
    let id = field("id:")?.parse().expect("numeric event id");
    let data = serde_json::from_str(&field("data:")?).expect("JSON event data");
    Some((id, field("event:")?, data))
}

/// All of a job's events, read from the start of a stream that has already ended.
pub(crate) async fn all_events(base: &str, id: &str) -> Vec<SseEvent> {
    Follow::open(base, id).await.ended().await
}

/// Kill -9 of the only process while its video job waits on a held prediction; a restart on the
/// same output dir (and so the same embedded SQLite file) takes the job over once its heartbeat is
/// stale, resumes polling the saved prediction, and stores the video the fake served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_survives_sigkill_of_the_embedded_sqlite_process_with_one_create() {
    let (fakes, served) = Fakes::with_held_video("sigkill").await;
    let outputs = tempfile::tempdir().expect("temp dir");
    let outputs_dir = outputs.path().to_str().expect("utf-8 temp path");
    let env = fakes.env(&[("MV_OUTPUT_DIR", outputs_dir)]);

    let mut first = start(&env);
    let id = submit(&first.base, "video", json!({ "prompt": "A lighthouse beam sweeps the storm." })).await;
    let running = wait_job(&first.base, &id, "saved its prediction", |j| !j["upstream"].is_null()).await;
    assert_eq!(running["upstream"]["provider"], "replicate", "{running}");
    let prediction = running["upstream"]["id"].as_str().expect("prediction id").to_owned();
    wait_for("polled the prediction", || fakes.replicate.polls_of(&prediction) > 0).await;
    kill(&mut first);
    assert!(
        std::fs::read_dir(outputs.path()).expect("outputs").any(|e| e.is_ok_and(|e| e.file_name() == "jobs.db")),
        "the jobs database is the embedded file beside the outputs"
    );
    let polls_before_restart = fakes.replicate.polls_of(&prediction);

    let second = start(&env);
    let resumed = wait_job(&second.base, &id, "taken over", |j| j["takeovers"] == 1).await;
    assert_eq!(resumed["upstream"]["id"], prediction.as_str(), "{resumed}");
    wait_for("resumed polling the saved prediction", || fakes.replicate.polls_of(&prediction) > polls_before_restart)
        .await;
    fakes.replicate.finish(&prediction);

    let done = wait_job(&second.base, &id, "finished", finished).await;
    let counts = (done["status"].as_str(), done["attempts"].as_i64(), done["takeovers"].as_i64());
    assert_eq!(counts, (Some("succeeded"), Some(1), Some(1)), "a takeover is not an attempt: {done}");
    let output = &done["output"];
    assert_eq!(output["metadata"]["backend_used"], "replicate", "{output}");
    assert_eq!(output["metadata"]["is_mock"], false, "{output}");
    let stored = download(&second.base, output["video_url"].as_str().expect("video_url")).await;
    assert!(
        stored == served,
        "the stored video is byte-identical to the fake's ({} vs {} bytes)",
        stored.len(),
        served.len()
    );
    assert_eq!(fakes.creates(), 1, "one paid prediction across the crash");
    assert!(fakes.replicate.cancelled().is_empty(), "the prediction was never cancelled");
}

/// Replica A renders a video and is SIGKILLed; replica B, whose event stream for that job was open
/// across the kill, takes it over after the stale limit and finishes it with no second create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_render_is_taken_over_by_the_other_with_one_create() {
    let Some(pg) = Postgres::start("a_replica_killed_mid_render_is_taken_over_by_the_other_with_one_create") else {
        return;
    };
    let (fakes, served) = Fakes::with_held_video("takeover").await;
    // One output dir for both, as replicas share one store.
    let outputs = tempfile::tempdir().expect("temp dir");
    let outputs_dir = outputs.path().to_str().expect("utf-8 temp path");
    let env = fakes.env(&[("MVGEN_DATABASE_URL", &pg.url), ("MV_OUTPUT_DIR", outputs_dir)]);

    // A starts alone, so its worker is the one that claims the job.
    let mut a = start(&env);
    let id = submit(&a.base, "video", json!({ "prompt": "Two drummers trade fills at dawn." })).await;
    let running = wait_job(&a.base, &id, "saved its prediction on A", |j| !j["upstream"].is_null()).await;
    let prediction = running["upstream"]["id"].as_str().expect("prediction id").to_owned();
    wait_for("A polled the prediction", || fakes.replicate.polls_of(&prediction) > 0).await;

    let b = start(&env);
    let watching = Follow::open(&b.base, &id).await;
    wait_for("B's stream showed A's saved prediction and its progress", || {
        let names = watching.names();
        names.iter().any(|n| n == "upstream") && names.iter().any(|n| n == "progress")
    })
    .await;
    kill(&mut a);
    let polls_at_kill = fakes.replicate.polls_of(&prediction);

    wait_job(&b.base, &id, "taken over by B", |j| j["takeovers"] == 1).await;
    wait_for("B resumed polling the saved prediction", || fakes.replicate.polls_of(&prediction) > polls_at_kill).await;
    assert!(!watching.names().iter().any(|n| n == "succeeded"), "not finished before the prediction was");
    fakes.replicate.finish(&prediction);
    let events = watching.ended().await;

    let names: Vec<&str> = events.iter().map(|(_, name, _)| name.as_str()).collect();
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "event ids increase: {events:?}");
    let claims: Vec<(i64, i64)> = events
        .iter()
        .filter(|(_, name, _)| name == "processing")
        .filter_map(|(_, _, d)| Some((d["attempts"].as_i64()?, d["takeovers"].as_i64()?)))
        .collect();
    assert_eq!(claims, [(1, 0), (1, 1)], "A's claim, then B's takeover in the same attempt: {names:?}");
    let saved = events.iter().find(|(_, name, _)| name == "upstream").expect("upstream event");
    assert_eq!(saved.2["id"], prediction.as_str());
    let takeover = events.iter().position(|(_, n, d)| n == "processing" && d["takeovers"] == 1).expect("takeover");
    // Progress is throttled (the latest step wins), so which stages show depends on timing; that
    // there is progress on both sides of the takeover does not.
    assert!(events[..takeover].iter().any(|(_, n, _)| n == "progress"), "A's progress reached B's stream: {names:?}");
    assert!(events[takeover..].iter().any(|(_, n, _)| n == "progress"), "B's progress after the takeover: {names:?}");
    assert_eq!(names.iter().filter(|n| **n == "upstream").count(), 1, "one prediction saved: {names:?}");
    assert_eq!(names.last(), Some(&"succeeded"), "{names:?}");

    let done = wait_job(&b.base, &id, "finished", finished).await;
    let counts = (done["status"].as_str(), done["attempts"].as_i64(), done["takeovers"].as_i64());
    assert_eq!(counts, (Some("succeeded"), Some(1), Some(1)), "a takeover is not an attempt: {done}");
    let stored = download(&b.base, done["output"]["video_url"].as_str().expect("video_url")).await;
    assert!(stored == served, "B stored the fake's video byte for byte");
    assert_eq!(fakes.creates(), 1, "one paid prediction across the takeover");
    drop(pg);
}

/// 200 jobs of all three kinds submitted across two replicas on one PostgreSQL, through the real
/// clients on fast fakes: every job succeeds exactly once (one claim, one terminal event, one
/// upstream call carrying its marker), none is lost from the listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_mixed_jobs_across_two_replicas_each_run_exactly_once() {
    const JOBS: usize = 200;
    let Some(pg) = Postgres::start("two_hundred_mixed_jobs_across_two_replicas_each_run_exactly_once") else {
        return;
    };
    let fakes = Fakes::start().await;
    let outputs = tempfile::tempdir().expect("temp dir");
    let outputs_dir = outputs.path().to_str().expect("utf-8 temp path");
    // A stale limit no healthy heartbeat misses on a loaded machine: any second claim is a bug.
    let env = fakes.env(&[
        ("MVGEN_DATABASE_URL", &pg.url),
        ("MV_OUTPUT_DIR", outputs_dir),
        ("MVGEN_JOB_STALE_AFTER", "60"),
        ("MVGEN_WORKERS", "4"),
        ("RUST_LOG", "warn"),
    ]);
    let (a, b) = (start(&env), start(&env));
    let started = Instant::now();

    let marker = |n: usize| format!("[job {n:03}]");
    let kind = |n: usize| ["scenes", "character_reference", "video"][n % 3];
    let mut submitting = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..8 {
        let (next, bases) = (next.clone(), [a.base.clone(), b.base.clone()]);
        submitting.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= JOBS {
                    return ids;
                }
                let tag = marker(n);
                let input = match kind(n) {
                    "scenes" => {
                        json!({ "idea": format!("a street parade {tag}"), "character_description": "a drummer" })
                    }
                    "character_reference" => {
                        json!({ "character_description": format!("a drummer in red {tag}"), "num_images": 1 })
                    }
                    _ => json!({ "prompt": format!("The drummer marches past {tag}") }),
                };
                ids.push((n, submit(&bases[n % 2], kind(n), input).await));
            }
        });
    }
    let mut ids: BTreeMap<usize, String> = BTreeMap::new();
    while let Some(batch) = submitting.join_next().await {
        ids.extend(batch.expect("submitter"));
    }
    assert_eq!(ids.len(), JOBS);
    let submitted = started.elapsed();

    // Every job finishes, read from either replica.
    let mut jobs = BTreeMap::new();
    for (n, id) in &ids {
        let base = if n % 3 == 0 { &b.base } else { &a.base };
        jobs.insert(*n, wait_job(base, id, "finished", finished).await);
    }
    let finished_after = started.elapsed();
    // A bound on the whole run (each wait above has its own), not a speed target: a loaded two-core
    // machine finishes in well under a minute.
    assert!(finished_after < Duration::from_secs(180), "{JOBS} jobs took {finished_after:?}");

    let gemini_bodies: Vec<String> =
        fakes.gemini.received().iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    let replicate_prompts: Vec<String> = fakes
        .replicate
        .received_on(Route::Create)
        .iter()
        .map(|r| r.json()["input"]["prompt"].as_str().unwrap_or_default().to_owned())
        .collect();
    for (n, job) in &jobs {
        let tag = marker(*n);
        assert_eq!((job["status"].as_str(), job["attempts"].as_i64()), (Some("succeeded"), Some(1)), "job {n}: {job}");
        assert_eq!(job["kind"], kind(*n));
        let output = &job["output"];
        assert_eq!(output["metadata"]["is_mock"], false, "job {n}: {output}");
        match kind(*n) {
            "scenes" => assert_eq!(
                output["scenes"].as_array().map(Vec::len),
                Some(scenes_per_job() as usize),
                "job {n}: {output}"
            ),
            "character_reference" => assert_eq!(output["images"].as_array().map(Vec::len), Some(1), "job {n}"),
            _ => assert!(output["video_url"].is_string(), "job {n}: {output}"),
        }
        let calls = gemini_bodies.iter().filter(|b| b.contains(&tag)).count()
            + replicate_prompts.iter().filter(|p| p.contains(&tag)).count();
        assert_eq!(calls, 1, "job {n} reached its upstream exactly once");
    }
    let paid = (0..JOBS).filter(|n| kind(*n) != "scenes").count();
    assert_eq!(fakes.creates(), paid, "no other prediction was paid for");

    // One claim and one final event per job, as its event stream tells it (read 8 at a time).
    let streams = futures_util::stream::iter(ids.iter().map(|(n, id)| {
        let base = if n % 2 == 0 { b.base.clone() } else { a.base.clone() };
        async move { (*n, all_events(&base, id).await) }
    }));
    let mut streams = std::pin::pin!(streams.buffer_unordered(8));
    while let Some((n, events)) = streams.next().await {
        let names: Vec<String> = events.into_iter().map(|(_, name, _)| name).collect();
        let count = |what: &str| names.iter().filter(|n| *n == what).count();
        assert_eq!((count("processing"), count("succeeded")), (1, 1), "job {n}: {names:?}");
        let others = count("failed") + count("canceled") + count("retrying") + count("released");
        assert_eq!(others, 0, "job {n}: {names:?}");
    }
    eprintln!(
        "{JOBS} mixed jobs on two replicas: submitted in {submitted:.1?}, all finished after {finished_after:.1?}, \
         events checked after {:.1?}",
        started.elapsed()
    );
    // The listing holds exactly these jobs, each once.
    let mut listed = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
        let page: Value = http()
            .get(format!("{}/api/mv/jobs?limit=100{query}", a.base))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("page");
        for job in page["jobs"].as_array().expect("jobs") {
            assert_eq!(job["status"], "succeeded", "{job}");
            assert!(listed.insert(job["id"].as_str().expect("id").to_owned()), "listed twice: {job}");
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed, ids.values().cloned().collect::<HashSet<_>>(), "no job lost, none added");
    drop(pg);
}

/// The database goes away while a replica renders: a submission answers 503 with Retry-After and
/// stores nothing; the prediction finishing during the outage is kept in memory and stored once
/// the database is back; a job queued before the outage runs after it; one create each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_rides_out_a_lost_database_and_loses_nothing() {
    let Some(pg) = Postgres::start("a_replica_rides_out_a_lost_database_and_loses_nothing") else {
        return;
    };
    let (fakes, served) = Fakes::with_held_video("outage").await;
    // One worker: the second job waits in the queue through the outage. A stale limit longer than
    // the outage, so the job keeps its one claim.
    let env = fakes.env(&[("MVGEN_DATABASE_URL", &pg.url), ("MVGEN_WORKERS", "1"), ("MVGEN_JOB_STALE_AFTER", "60")]);
    let server = start(&env);
    let video = submit(&server.base, "video", json!({ "prompt": "The harbour lights go out one by one." })).await;
    let running = wait_job(&server.base, &video, "saved its prediction", |j| !j["upstream"].is_null()).await;
    let prediction = running["upstream"]["id"].as_str().expect("prediction id").to_owned();
    let queued =
        submit(&server.base, "scenes", json!({ "idea": "a blackout [queued]", "character_description": "a keeper" }))
            .await;

    pg.stop();
    let refused = http()
        .post(format!("{}/api/mv/jobs", server.base))
        .json(&json!({ "kind": "scenes", "input": { "idea": "during the outage", "character_description": "c" } }))
        .send()
        .await
        .expect("submit during the outage");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().get("retry-after").is_some(), "503 says when to retry");
    let body: Value = refused.json().await.expect("error body");
    assert_eq!(body["detail"]["error"], "DatabaseUnavailable", "{body}");
    // The video finishes upstream while the database is away: downloaded, then held until stored.
    fakes.replicate.finish(&prediction);
    wait_for("the finished video was downloaded", || {
        fakes.replicate.received_on(Route::File).iter().any(|r| r.path.contains(&prediction))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.start_again();

    let done = wait_job(&server.base, &video, "finished", finished).await;
    assert_eq!((done["status"].as_str(), done["attempts"].as_i64()), (Some("succeeded"), Some(1)), "{done}");
    let stored = download(&server.base, done["output"]["video_url"].as_str().expect("video_url")).await;
    assert!(stored == served, "the video finished during the outage is stored");
    let after = wait_job(&server.base, &queued, "finished", finished).await;
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(fakes.creates(), 1, "one paid prediction");
    let outage_calls =
        fakes.gemini.received().iter().filter(|r| String::from_utf8_lossy(&r.body).contains("outage")).count();
    assert_eq!(outage_calls, 0, "the refused submission never ran");
    let queued_calls =
        fakes.gemini.received().iter().filter(|r| String::from_utf8_lossy(&r.body).contains("[queued]")).count();
    assert_eq!(queued_calls, 1, "the queued job ran once");
}
