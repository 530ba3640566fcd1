//! OpenTelemetry traces through the real binary (issue 26, point 3): spans exported over
//! OTLP/HTTP to a fake collector on 127.0.0.1 (`support::otlp_receiver`, which decodes the
//! protobuf with the protocol's own types). A sync generation sent with a W3C `traceparent` is one
//! trace: the caller's parent, the request span, and the job's spans carrying its attributes. A job
//! taken over by another replica after a SIGKILL continues the trace its first replica started.
//! With the variables unset (or `OTEL_SDK_DISABLED=true`), nothing is exported.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fake_upstream::{FakeFile, FakeReplicate, Outcome, PredictionPlan, TEST_REPLICATE_TOKEN};
use support::otlp_receiver::{OtlpReceiver, Span};
use support::postgres::Postgres;
use support::server_process::ServerProcess;

use crate::durable_jobs::{Fakes, finished, kill, start, submit, wait_for, wait_job};

/// A hang guard for spans to arrive, not a speed target.
const PATIENCE: Duration = Duration::from_secs(30);

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The export settings a test's binary runs with: its collector, its name, a short batch delay.
fn otel_env<'a>(receiver: &'a str, service: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver),
        ("OTEL_SERVICE_NAME", service),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn sync_video_server(replicate: &FakeReplicate, extra: &[(&str, &str)]) -> ServerProcess {
    let mut env = vec![
        ("REPLICATE_API_TOKEN", TEST_REPLICATE_TOKEN),
        ("REPLICATE_BASE_URL", replicate.base_url.as_str()),
        ("MV_REPLICATE_POLL_SECS", "0.05"),
    ];
    env.extend_from_slice(extra);
    tokio::task::block_in_place(|| ServerProcess::start(&env).expect("start mvgen"))
}

/// POSTs a sync video with the caller's `traceparent`; the job id, flavor hash and job.
async fn sync_video(base: &str) -> (String, String, Value) {
    let client = crate::support::http_client();
    let resp = client
        .post(format!("{base}/api/mv/generate_video"))
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({ "prompt": "A drummer under neon rain." }))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).expect(name).to_owned();
    let (id, hash) = (header("x-job-id"), header("x-config-flavor-hash"));
    let job: Value =
        client.get(format!("{base}/api/mv/jobs/{id}")).send().await.expect("job").json().await.expect("json");
    (id, hash, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_generation_with_a_traceparent_is_one_trace_with_the_jobs_spans() {
    let receiver = OtlpReceiver::start();
    let replicate = FakeReplicate::start().await;
    replicate.push_prediction(PredictionPlan { polls_until_done: 2, outcome: Outcome::Succeed(FakeFile::mp4()) });
    let endpoint = receiver.endpoint();
    let server = sync_video_server(&replicate, &otel_env(&endpoint, "mvgen-traced"));
    let (id, hash, job) = sync_video(&server.base).await;
    let prediction = job["upstream"]["id"].as_str().expect("the job's prediction").to_owned();

    let wanted = ["request", "job.submit", "job.run", "upstream.create", "upstream.poll", "upstream.download"];
    let spans = receiver.wait_for(PATIENCE, |spans| {
        wanted.iter().all(|name| !named(spans, name).is_empty()) && !named(spans, "output.store").is_empty()
    });
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    for name in wanted.iter().chain(&["output.store", "job.store"]) {
        assert!(names.contains(name), "no {name} span among {names:?}");
    }
    // One trace, the caller's: every span of the job is in it, and the request is its child.
    let request = named(&spans, "request")
        .into_iter()
        .find(|s| s.attr("path") == "/api/mv/generate_video" || s.trace_id == CALLER_TRACE)
        .expect("the generation's request span");
    assert_eq!((request.trace_id.as_str(), request.parent_span_id.as_str()), (CALLER_TRACE, CALLER_SPAN));
    let job_spans: Vec<&Span> = spans.iter().filter(|s| s.attr("job.id") == id).collect();
    assert!(job_spans.len() >= 3, "submit, claim, run and store name the job: {job_spans:?}");
    for span in spans.iter().filter(|s| s.name != "request") {
        assert_eq!(span.trace_id, CALLER_TRACE, "{} is in the caller's trace", span.name);
        assert_eq!(span.service, "mvgen-traced", "OTEL_SERVICE_NAME names the process");
    }
    let submit = named(&spans, "job.submit")[0];
    assert_eq!(submit.parent_span_id, request.span_id, "the submit is the request's child");
    let run = named(&spans, "job.run")[0];
    assert_eq!(run.parent_span_id, request.span_id, "the sync run continues the request");
    for (key, value) in [
        ("job.id", id.as_str()),
        ("job.kind", "video"),
        ("config_flavor", "default"),
        ("config_flavor.hash", hash.as_str()),
        ("upstream.provider", "replicate"),
        ("upstream.id", prediction.as_str()),
    ] {
        assert_eq!(run.attr(key), value, "job.run's {key}: {run:?}");
    }
    assert_eq!((submit.attr("job.kind"), submit.attr("config_flavor.hash")), ("video", hash.as_str()));
    for name in ["upstream.create", "upstream.poll", "upstream.download"] {
        let span = named(&spans, name)[0];
        assert_eq!((span.attr("upstream.provider"), span.attr("upstream.id")), ("replicate", prediction.as_str()));
        assert_eq!(span.parent_span_id, run.span_id, "{name} is a step of the job's run");
    }
    drop(server);
}

/// A job submitted with a W3C `tracestate` keeps it: stored with the job, its worker's spans
/// carry it and its calls to Replicate send it on beside a `traceparent` in the caller's trace.
/// A malformed `tracestate` is dropped and the job runs all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_tracestate_is_stored_and_passed_on_and_a_malformed_one_dropped() {
    let receiver = OtlpReceiver::start();
    let replicate = FakeReplicate::start().await;
    let endpoint = receiver.endpoint();
    let server = sync_video_server(&replicate, &otel_env(&endpoint, "mvgen-state"));
    let client = crate::support::http_client();
    const STATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    for (trace, sent, kept) in
        [(CALLER_TRACE, STATE, STATE), ("0af7651916cd43dd8448eb211c80319c", "congo=t61rcWkgMzE,Bad Key=1", "")]
    {
        replicate.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(FakeFile::mp4()) });
        let resp = client
            .post(format!("{}/api/mv/jobs", server.base))
            .header("traceparent", format!("00-{trace}-{CALLER_SPAN}-01"))
            .header("tracestate", sent)
            .json(&json!({ "kind": "video", "input": { "prompt": "A drummer under neon rain." } }))
            .send()
            .await
            .expect("submit");
        assert_eq!(resp.status(), 202, "a malformed tracestate never fails the request");
        let job: Value = resp.json().await.expect("json");
        let id = job["id"].as_str().expect("id").to_owned();
        let done = wait_job(&server.base, &id, "finished", finished).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let prediction = done["upstream"]["id"].as_str().expect("prediction").to_owned();

        // The worker's run, parented on the stored context, carries its tracestate.
        let of_job = |spans: &[Span]| spans.iter().any(|s| s.name == "job.run" && s.attr("job.id") == id);
        let spans = tokio::task::block_in_place(|| receiver.wait_for(PATIENCE, of_job));
        let run = spans.iter().find(|s| s.name == "job.run" && s.attr("job.id") == id).expect("job.run");
        assert_eq!((run.trace_id.as_str(), run.trace_state.as_str()), (trace, kept), "{run:?}");
        // Replicate was told of the same trace, with the same tracestate.
        let create = replicate.received_on(support::fake_upstream::Route::Create).pop().expect("the job's create");
        let poll = replicate
            .received_on(support::fake_upstream::Route::Poll)
            .into_iter()
            .rfind(|r| r.path.ends_with(&prediction))
            .expect("a poll of the job's prediction");
        for call in [&create, &poll] {
            let traceparent = call.header("traceparent").unwrap_or_default();
            assert!(traceparent.starts_with(&format!("00-{trace}-")), "{} {traceparent:?}", call.path);
            assert_eq!(call.header("tracestate").unwrap_or_default(), kept, "{} {:?}", call.path, call.headers);
        }
    }
    drop(server);
}

/// The job's spans on both replicas of one PostgreSQL are one trace: B, taking the job over after
/// A was SIGKILLed mid-render, parents its run on the context A stored with the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_taken_over_by_another_replica_continues_the_same_trace() {
    let Some(pg) = Postgres::start("a_job_taken_over_by_another_replica_continues_the_same_trace") else {
        return;
    };
    let receiver = OtlpReceiver::start();
    let endpoint = receiver.endpoint();
    let (fakes, _served) = Fakes::with_held_video("traced takeover").await;
    let outputs = tempfile::tempdir().expect("temp dir");
    let outputs_dir = outputs.path().to_str().expect("utf-8 temp path");
    let common = fakes.env(&[("MVGEN_DATABASE_URL", &pg.url), ("MV_OUTPUT_DIR", outputs_dir)]);
    let with = |service| [common.clone(), otel_env(&endpoint, service).to_vec()].concat();

    let mut a = start(&with("mvgen-a"));
    let id = submit(&a.base, "video", json!({ "prompt": "Two drummers trade fills at dawn." })).await;
    let running = wait_job(&a.base, &id, "saved its prediction on A", |j| !j["upstream"].is_null()).await;
    let prediction = running["upstream"]["id"].as_str().expect("prediction id").to_owned();
    wait_for("A polled the prediction", || fakes.replicate.polls_of(&prediction) > 0).await;
    // A's ended spans (the submit, the claim, the create) are exported before A dies.
    let of_a = |spans: &[Span]| {
        spans
            .iter()
            .any(|s| s.service == "mvgen-a" && s.name == "upstream.create" && s.attr("upstream.id") == prediction)
            && spans.iter().any(|s| s.service == "mvgen-a" && s.name == "job.submit" && s.attr("job.id") == id)
    };
    let spans = tokio::task::block_in_place(|| receiver.wait_for(PATIENCE, of_a));
    assert!(of_a(&spans), "A exported its submit and create spans: {spans:?}");

    let b = start(&with("mvgen-b"));
    kill(&mut a);
    wait_job(&b.base, &id, "taken over by B", |j| j["takeovers"] == 1).await;
    let polls_at_takeover = fakes.replicate.polls_of(&prediction);
    wait_for("B resumed polling", || fakes.replicate.polls_of(&prediction) > polls_at_takeover).await;
    fakes.replicate.finish(&prediction);
    let done = wait_job(&b.base, &id, "finished", finished).await;
    assert_eq!(done["status"], "succeeded", "{done}");

    let b_run =
        |spans: &[Span]| spans.iter().any(|s| s.service == "mvgen-b" && s.name == "job.run" && s.attr("job.id") == id);
    let spans = tokio::task::block_in_place(|| receiver.wait_for(PATIENCE, b_run));
    assert!(b_run(&spans), "B exported the run it took over: {spans:?}");
    let submit = spans.iter().find(|s| s.name == "job.submit" && s.attr("job.id") == id).expect("A's submit");
    let run = spans.iter().find(|s| s.service == "mvgen-b" && s.name == "job.run").expect("B's run");
    assert_eq!(run.trace_id, submit.trace_id, "B's run is in A's trace");
    assert_eq!(run.parent_span_id, submit.span_id, "B parents its run on the context stored with the job");
    assert_eq!((run.attr("job.taken_over"), run.attr("upstream.id")), ("true", prediction.as_str()));
    let by_b: Vec<&Span> = spans.iter().filter(|s| s.service == "mvgen-b" && s.trace_id == submit.trace_id).collect();
    for name in ["job.claim", "job.run", "upstream.poll", "upstream.download", "output.store", "job.store"] {
        assert!(by_b.iter().any(|s| s.name == name), "B's {name} in the job's trace: {by_b:?}");
    }
    let job_traces: std::collections::BTreeSet<&str> =
        spans.iter().filter(|s| s.attr("job.id") == id).map(|s| s.trace_id.as_str()).collect();
    assert_eq!(job_traces.len(), 1, "every span naming the job is in one trace: {job_traces:?}");
    drop(b);
    drop(pg);
}

/// Off by default: without an endpoint nothing is built (no startup line, no export), and
/// `OTEL_SDK_DISABLED=true` keeps it off even with one pointing at a live collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_exported() {
    let receiver = OtlpReceiver::start();
    let endpoint = receiver.endpoint();
    let replicate = FakeReplicate::start().await;
    let unset = [("OTEL_SERVICE_NAME", "mvgen-off"), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let disabled: Vec<(&str, &str)> =
        [otel_env(&endpoint, "mvgen-off").to_vec(), vec![("OTEL_SDK_DISABLED", "true")]].concat();
    for env in [&unset[..], &disabled[..]] {
        replicate.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(FakeFile::mp4()) });
        let server = sync_video_server(&replicate, env);
        let (_, _, job) = sync_video(&server.base).await;
        assert_eq!(job["status"], "succeeded");
        // Longer than the batch delay: an exporter would have sent by now.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let log = server.log();
        assert!(!log.contains("trace export"), "no exporter was built: {log}");
        assert_eq!(receiver.requests(), 0, "nothing was sent");
    }
    // The same binary does export when the endpoint is set: the receiver above was reachable.
    replicate.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(FakeFile::mp4()) });
    let server = sync_video_server(&replicate, &otel_env(&endpoint, "mvgen-on"));
    sync_video(&server.base).await;
    assert!(server.log().contains("trace export"), "the startup line says where spans go");
    let spans = tokio::task::block_in_place(|| receiver.wait_for(PATIENCE, |s| !s.is_empty()));
    assert!(spans.iter().all(|s| s.service == "mvgen-on"), "{spans:?}");
}
