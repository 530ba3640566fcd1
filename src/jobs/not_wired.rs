//! The binary's pipeline until the generation pipeline (issue 11) implements [`JobPipeline`]: every
//! submission is refused with 503 `NotWired`, so nothing is queued that no worker could run.
//! This is the one place to replace when the real pipeline is wired.

use axum::http::StatusCode;
use serde_json::Value;

use super::pipeline::{JobPipeline, Planned};
use crate::api::error::ApiError;
use crate::providers::{BoxFuture, RunContext};

pub struct NotWired;

fn not_wired() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "NotWired",
        "jobs are not wired to the generation pipeline in this build; use the sync endpoints",
        Value::Null,
    )
}

impl JobPipeline for NotWired {
    fn plan<'a>(&'a self, _kind: &'a str, _input: Value) -> BoxFuture<'a, Result<Planned, ApiError>> {
        Box::pin(async { Err(not_wired()) })
    }

    fn run<'a>(
        &'a self,
        _kind: &'a str,
        _plan: &'a Value,
        _ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async { Err(not_wired()) })
    }
}
