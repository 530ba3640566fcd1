//! The sync generation endpoints over the job engine, in the real binary: each answer names its
//! job (`X-Job-Id`), a failure answers today's error without a retry behind the caller's back, and
//! a client hanging up mid-render no longer cancels the paid prediction: the job finishes and its
//! video is stored and listed.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_upstream::{FakeFile, FakeReplicate, Outcome, PredictionPlan, Route, Scripted, TEST_REPLICATE_TOKEN};
use support::server_process::ServerProcess;

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let resp = client.get(url).send().await.expect("request");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// The real binary rendering videos on `replicate`, polling it every 50 ms, with `extra` settings.
fn start_with(replicate: &FakeReplicate, extra: &[(&str, &str)]) -> ServerProcess {
    let mut env = vec![
        ("REPLICATE_API_TOKEN", TEST_REPLICATE_TOKEN),
        ("REPLICATE_BASE_URL", replicate.base_url.as_str()),
        ("MV_REPLICATE_POLL_SECS", "0.05"),
    ];
    env.extend_from_slice(extra);
    ServerProcess::start(&env).expect("start mvgen")
}

fn start(replicate: &FakeReplicate) -> ServerProcess {
    start_with(replicate, &[])
}

/// Polls `what` until it holds, for at most 20 s.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_video_is_a_job_that_outlives_its_caller() {
    let replicate = FakeReplicate::start().await;
    let server = start(&replicate);
    let base = server.base.clone();
    let client = crate::support::http_client();
    let creates = || replicate.received_on(Route::Create).len();

    // A finished render: today's body and headers, plus the job that made it.
    replicate.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(FakeFile::mp4()) });
    let resp = client.post(format!("{base}/api/mv/generate_video")).json(&json!({"prompt": "p"})).send().await;
    let resp = resp.expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("x-config-flavor").and_then(|v| v.to_str().ok()), Some("default"));
    assert!(resp.headers().contains_key("x-config-flavor-hash"));
    let job_id = resp.headers().get("x-job-id").and_then(|v| v.to_str().ok()).expect("X-Job-Id").to_owned();
    let body: Value = resp.json().await.expect("json");
    let (status, job) = get(&client, format!("{base}/api/mv/jobs/{job_id}")).await;
    assert_eq!((status, job["status"].as_str(), job["kind"].as_str()), (200, Some("succeeded"), Some("video")));
    assert_eq!(job["output"], body, "the answer is the job's output");

    // A failed prediction: today's 502 with the upstream's message, from one create (a sync job is
    // not retried by the engine), and the job it was.
    replicate.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Fail("GPU lost".into()) });
    let before = creates();
    let resp = client.post(format!("{base}/api/mv/generate_video")).json(&json!({"prompt": "p"})).send().await;
    let resp = resp.expect("request");
    assert_eq!(resp.status(), 502);
    let failed_id = resp.headers().get("x-job-id").and_then(|v| v.to_str().ok()).expect("X-Job-Id").to_owned();
    let error: Value = resp.json().await.expect("json");
    assert_eq!(error["detail"]["error"], "UpstreamError", "{error}");
    assert!(error["detail"]["message"].as_str().is_some_and(|m| m.contains("GPU lost")), "{error}");
    assert_eq!(error["detail"]["details"]["provider"], "replicate", "{error}");
    assert_eq!(creates() - before, 1, "no retry behind the caller's back");
    let (_, failed) = get(&client, format!("{base}/api/mv/jobs/{failed_id}")).await;
    assert_eq!((failed["status"].as_str(), failed["attempts"].as_i64()), (Some("failed"), Some(1)), "{failed}");

    // A bad input is refused at once and queues nothing.
    let (_, listed_before) = get(&client, format!("{base}/api/mv/jobs")).await;
    let resp =
        client.post(format!("{base}/api/mv/generate_video")).json(&json!({"prompt": "x".repeat(20_001)})).send().await;
    let resp = resp.expect("request");
    assert_eq!(resp.status(), 400);
    assert!(!resp.headers().contains_key("x-job-id"));
    let (_, listed_after) = get(&client, format!("{base}/api/mv/jobs")).await;
    assert_eq!(listed_before["jobs"], listed_after["jobs"], "nothing was queued");

    // The caller hangs up mid-render.
    replicate.push_prediction(PredictionPlan::held(Outcome::Succeed(FakeFile::mp4())));
    let before = creates();
    let caller = {
        let (client, url) = (client.clone(), format!("{base}/api/mv/generate_video"));
        tokio::spawn(async move { client.post(url).json(&json!({"prompt": "a held render"})).send().await })
    };
    // The fake numbers its predictions `pred-1`, `pred-2`, ... in create order.
    let prediction = format!("pred-{}", before + 1);
    until("the held prediction to be polled", async || {
        (creates() > before && replicate.polls_of(&prediction) > 0).then_some(())
    })
    .await;
    caller.abort();
    assert!(caller.await.expect_err("aborted").is_cancelled());
    // Still polled after the hang-up, and never cancelled.
    let polls = replicate.polls_of(&prediction);
    until("more polls after the hang-up", async || (replicate.polls_of(&prediction) > polls + 2).then_some(())).await;
    replicate.finish(&prediction);

    let job = until("the abandoned job to succeed", async || {
        let (_, listed) = get(&client, format!("{base}/api/mv/jobs?kind=video&limit=1")).await;
        let job = listed["jobs"][0].clone();
        (job["status"] == "succeeded").then_some(job)
    })
    .await;
    assert_eq!(job["upstream"]["id"], prediction.as_str(), "{job}");
    let video_id = job["output"]["video_id"].as_str().expect("video_id");
    let (status, info) = get(&client, format!("{base}/api/mv/get_video/{video_id}/info")).await;
    assert_eq!(status, 200, "the video is stored: {info}");
    assert_eq!(creates() - before, 1, "exactly one create");
    assert!(replicate.cancelled().is_empty(), "the hang-up cancelled nothing: {:?}", replicate.cancelled());
}

/// A sync request's job has no retry after it: when its polling fails for good, the prediction it
/// abandons is cancelled upstream, as before jobs, instead of billing with nobody to collect it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_video_whose_polling_fails_cancels_its_prediction() {
    let replicate = FakeReplicate::start().await;
    let server = start(&replicate);
    replicate.push_prediction(PredictionPlan { polls_until_done: 5, outcome: Outcome::NeverFinish });
    replicate.push_response(Route::Poll, Scripted::json(404, FakeReplicate::problem_body(404, "Not found", "gone")));
    let client = crate::support::http_client();
    let resp = client.post(format!("{}/api/mv/generate_video", server.base)).json(&json!({"prompt": "p"})).send().await;
    assert_eq!(resp.expect("request").status(), 502);
    let cancelled = until("the abandoned prediction's cancel", async || {
        let cancelled = replicate.cancelled();
        (!cancelled.is_empty()).then_some(cancelled)
    })
    .await;
    assert_eq!(cancelled, ["pred-1"]);
}

/// The sync wait is bounded (`MVGEN_SYNC_WAIT`): past it the caller gets 504 `JobStillRunning`
/// with `Retry-After` and `X-Job-Id`, and the job goes on to its end, where the caller finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_wait_past_its_bound_answers_504_with_the_job_to_follow() {
    let replicate = FakeReplicate::start().await;
    let server = start_with(&replicate, &[("MVGEN_SYNC_WAIT", "1")]);
    replicate.push_prediction(PredictionPlan::held(Outcome::Succeed(FakeFile::mp4())));
    let client = crate::support::http_client();
    let started = Instant::now();
    let resp = client.post(format!("{}/api/mv/generate_video", server.base)).json(&json!({"prompt": "p"}));
    let resp = tokio::time::timeout(Duration::from_secs(15), resp.send()).await.expect("the wait is bounded");
    let resp = resp.expect("request");
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(10), "answered at the bound: {:?}", started.elapsed());
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("10"));
    let job_id = resp.headers().get("x-job-id").and_then(|v| v.to_str().ok()).expect("X-Job-Id").to_owned();
    let error: Value = resp.json().await.expect("json");
    assert_eq!(error["detail"]["error"], "JobStillRunning", "{error}");
    assert_eq!(error["detail"]["details"]["job_id"], job_id.as_str(), "{error}");
    assert_eq!(error["detail"]["details"]["status"], "processing", "{error}");

    replicate.finish("pred-1");
    let job = until("the job to succeed after the 504", async || {
        let (_, job) = get(&client, format!("{}/api/mv/jobs/{job_id}", server.base)).await;
        (job["status"] == "succeeded").then_some(job)
    })
    .await;
    assert!(job["output"]["video_id"].is_string(), "{job}");
    assert_eq!(replicate.received_on(Route::Create).len(), 1);
    assert!(replicate.cancelled().is_empty(), "the bound cancelled nothing: {:?}", replicate.cancelled());
}
