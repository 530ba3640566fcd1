//! A `JobPipeline` that behaves like a slow upstream, for the job engine's tests: it resumes a
//! saved prediction id (`ctx.resume("fake")`) or creates one and saves it (`ctx.started`) before
//! polling, reports progress, and counts creates per prompt so a test can prove a takeover never
//! created twice. Predictions finish on the upstream's clock whether anyone polls or not.
//!
//! Input: `{"prompt": "...", "render_ms": 300, "fail": "caller" | "upstream" | "upstream_once",
//! "project_id": "...", "sequence": 1, "plan_ms": 0}` (`plan_ms` slows the submit down). A missing prompt is a 422 and an empty one a 400, as the
//! sync endpoints answer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mvgen::error::{ApiError, ErrorKind};
use mvgen::generation::Kind;
use mvgen::generation::stored::StoredPlan;
use mvgen::jobs::JobPipeline;
use mvgen::providers::{BoxFuture, RunContext};
use serde_json::{Value, json};

#[derive(Default)]
pub struct FakeUpstream {
    /// prediction id -> (prompt, done at)
    predictions: Mutex<HashMap<String, (String, Instant)>>,
    creates: Mutex<HashMap<String, usize>>,
    failed_once: Mutex<HashSet<String>>,
    /// Runs dropped before they finished (a cancel or a shutdown).
    pub dropped: AtomicUsize,
    /// Saved prediction ids the engine cancelled through `JobPipeline::cancel_run`, in order.
    cancelled: Mutex<Vec<String>>,
    pub runs: AtomicUsize,
}

impl FakeUpstream {
    pub fn creates(&self, prompt: &str) -> usize {
        self.creates.lock().unwrap().get(prompt).copied().unwrap_or(0)
    }

    pub fn total_creates(&self) -> usize {
        self.creates.lock().unwrap().values().sum()
    }

    pub fn create_counts(&self) -> HashMap<String, usize> {
        self.creates.lock().unwrap().clone()
    }

    /// Starts a prediction (counted as a create) and returns its id.
    pub fn create(&self, prompt: &str, render: Duration) -> String {
        let id = format!("pred-{}", uuid::Uuid::new_v4());
        self.predictions.lock().unwrap().insert(id.clone(), (prompt.to_owned(), Instant::now() + render));
        *self.creates.lock().unwrap().entry(prompt.to_owned()).or_default() += 1;
        id
    }

    /// The ids cancelled through `JobPipeline::cancel_run` (not by a dropped run), in order.
    pub fn cancelled(&self) -> Vec<String> {
        self.cancelled.lock().unwrap().clone()
    }

    /// `Some(done)` for a known prediction.
    fn poll(&self, id: &str) -> Option<bool> {
        self.predictions.lock().unwrap().get(id).map(|(_, at)| Instant::now() >= *at)
    }
}

pub struct FakePipeline {
    pub upstream: Arc<FakeUpstream>,
}

impl FakePipeline {
    pub fn new() -> (Arc<FakePipeline>, Arc<FakeUpstream>) {
        let upstream = Arc::new(FakeUpstream::default());
        (Arc::new(FakePipeline { upstream: upstream.clone() }), upstream)
    }
}

struct DropCount<'a>(&'a AtomicUsize, bool);

impl Drop for DropCount<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn upstream_error(message: &str) -> ApiError {
    ApiError::new(ErrorKind::UpstreamError, message, json!({ "provider": "fake" }))
}

impl JobPipeline for FakePipeline {
    fn plan<'a>(&'a self, _kind: Kind, input: Value) -> BoxFuture<'a, Result<StoredPlan, ApiError>> {
        Box::pin(async move {
            if let Some(ms) = input.get("plan_ms").and_then(Value::as_u64) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let prompt = match input.get("prompt") {
                Some(Value::String(p)) if p.trim().is_empty() => {
                    return Err(ApiError::invalid("prompt", "must not be empty"));
                }
                Some(Value::String(p)) => p.clone(),
                _ => return Err(ApiError::body_mismatch("prompt", "prompt: a string is required")),
            };
            Ok(StoredPlan {
                plan: json!({
                    "prompt": prompt,
                    "render_ms": input.get("render_ms").and_then(Value::as_u64).unwrap_or(50),
                    "fail": input.get("fail").cloned().unwrap_or(Value::Null),
                }),
                config_flavor: json!({ "requested": null, "used": "default" }),
                project_id: input.get("project_id").and_then(Value::as_str).map(String::from),
                sequence: input.get("sequence").and_then(Value::as_u64).map(|n| n as u32),
            })
        })
    }

    fn run<'a>(&'a self, kind: Kind, plan: &'a Value, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move {
            self.upstream.runs.fetch_add(1, Ordering::SeqCst);
            let mut guard = DropCount(&self.upstream.dropped, false);
            let prompt = plan["prompt"].as_str().unwrap_or_default().to_owned();
            match plan["fail"].as_str() {
                Some("caller") => {
                    guard.1 = true;
                    return Err(ApiError::new(ErrorKind::ContentRefused, "refused", Value::Null));
                }
                Some("upstream") => {
                    guard.1 = true;
                    return Err(upstream_error("the fake upstream failed"));
                }
                Some("upstream_once") if self.upstream.failed_once.lock().unwrap().insert(prompt.clone()) => {
                    guard.1 = true;
                    return Err(upstream_error("the fake upstream failed once"));
                }
                _ => {}
            }
            let id = match ctx.resume("fake") {
                Some(id) => id.to_owned(),
                None => {
                    ctx.progress("creating", None);
                    let render = Duration::from_millis(plan["render_ms"].as_u64().unwrap_or(50));
                    let id = self.upstream.create(&prompt, render);
                    ctx.started("fake", &id).await.map_err(ApiError::internal)?;
                    id
                }
            };
            loop {
                match self.upstream.poll(&id) {
                    None => return Err(upstream_error("unknown prediction")),
                    Some(true) => break,
                    Some(false) => ctx.progress("waiting", Some("processing")),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            guard.1 = true;
            Ok(json!({ "kind": kind, "prompt": prompt, "prediction": id }))
        })
    }

    fn cancel_run<'a>(&'a self, run: &'a mvgen::providers::UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if run.provider != "fake" || self.upstream.poll(&run.id).is_none() {
                return Err(format!("unknown run {run:?}"));
            }
            self.upstream.cancelled.lock().unwrap().push(run.id.clone());
            Ok(())
        })
    }
}
