//! Runs any [`Generation`]: for an HTTP request while the client waits ([`respond`]), or planned
//! now and run later by the job engine ([`Pipeline`]). Both take the same steps in the same order,
//! so a job is validated, planned and answered exactly as the sync endpoint is.

use std::sync::Arc;

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use clap::{Args, FromArgMatches};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::inputs::optional;
use super::{Body, Generation, Plan, Run};
use crate::debug_log;
use crate::error::{ApiError, ErrorKind};
use crate::flavor::Chosen;
use crate::jobs::state::JobStatus;
use crate::jobs::{JobPipeline, Jobs, Planned};
use crate::limits::bounded_texts;
use crate::model::Flavor;
use crate::providers::{BoxFuture, RunContext};
use crate::state::AppState;

/// The sync endpoint of kind `G`: validate, choose the flavor, take a generation slot, plan, run,
/// answer with the `X-Config-Flavor` headers. With a job engine the run is a job (submit and wait,
/// `X-Job-Id` on the answer): a caller who hangs up no longer stops it, and its result is kept.
/// Without one (the in-process test app) the request runs the plan itself, the same steps.
pub async fn respond<G: Generation>(
    state: &AppState,
    jobs: Option<&Arc<Jobs>>,
    input: G::Input,
) -> Result<Response, ApiError> {
    let (request, requested) = validate::<G>(input)?;
    let chosen = choose_flavor(state, requested.as_deref())?;
    // Taken once the request is known to be valid: at the cap a bad request still gets its 4xx.
    let slot = state.generations.take()?;
    let plan = plan(state, request, &chosen);
    let report = FlavorReport::from(&chosen);
    let Some(jobs) = jobs else {
        let answer = G::run(&plan, Run { state, flavor: &report, ctx: RunContext::detached() }).await?;
        return Ok(with_flavor(&report, answer));
    };
    let planned = planned::<G>(report, plan)?;
    // The slot moves to the job's run: it is held while the generation runs, not while we wait.
    let id = jobs.submit_now(G::KIND, &planned, slot).await?;
    let mut response = match jobs.finished(&id).await {
        Ok(Some(job)) => answer(&id, job)?,
        Ok(None) => return Err(ApiError::internal(format!("job {id} is gone"))),
        // Stored, but the database was unreadable for the whole wait: the job is kept, and the
        // caller may retry or follow it by its id.
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "jobs database unreadable for the whole sync wait");
            ApiError::new(
                ErrorKind::DatabaseUnavailable,
                format!(
                    "the jobs database was unreachable for the whole sync wait; job {id} is kept: \
                     follow it at /api/mv/jobs/{id}"
                ),
                json!({ "job_id": id, "retry_after_seconds": 5 }),
            )
            .into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-job-id", value);
    }
    Ok(response)
}

/// The sync answer for job `id` as the wait left it: its output, its stored error, or where to
/// follow it.
fn answer(id: &str, job: crate::jobs::store::rows::JobRow) -> Result<Response, ApiError> {
    Ok(match job.status {
        JobStatus::Succeeded => {
            let report = FlavorReport::deserialize(&job.config_flavor)
                .map_err(|e| ApiError::internal(format!("job {id}: its flavor report: {e}")))?;
            let output = job.output.ok_or_else(|| ApiError::internal(format!("job {id} succeeded with no output")))?;
            with_flavor(&report, output)
        }
        // Waited `MVGEN_SYNC_WAIT`: the job goes on; the caller follows it by its id.
        JobStatus::Queued | JobStatus::Processing => ApiError::new(
            ErrorKind::JobStillRunning,
            format!("job {id} is still {} after the sync wait; follow it at /api/mv/jobs/{id}", job.status),
            json!({ "job_id": id, "status": job.status, "retry_after_seconds": 10 }),
        )
        .into_response(),
        // The stored kind, message and details: the answer the run itself would have given.
        JobStatus::Failed => {
            job.api_error().unwrap_or_else(|| ApiError::internal(format!("job {id} failed"))).into_response()
        }
        JobStatus::Canceled => ApiError::new(
            ErrorKind::JobCanceled,
            format!("job {id} was canceled before it finished"),
            json!({ "job_id": id }),
        )
        .into_response(),
    })
}

/// A body's text fields bounded in length, then its values checked; with the flavor it names.
fn validate<G: Generation>(input: G::Input) -> Result<(G, Option<String>), ApiError> {
    bounded_texts(&input.texts())?;
    let requested = optional(input.config_flavor().map(str::to_owned));
    Ok((G::validate(input)?, requested))
}

/// Which flavor served a request, as reported in `metadata.config_flavor`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlavorReport {
    /// The flavor the request named, or null.
    pub requested: Option<String>,
    /// The flavor actually used.
    pub used: String,
    /// The content hash of the flavor used (12 hex digits): equal hashes, equal settings.
    pub hash: String,
    /// True when the requested flavor does not exist and the default was used.
    pub fallback: bool,
    /// Why it fell back.
    pub reason: Option<String>,
}

impl From<&Chosen> for FlavorReport {
    fn from(c: &Chosen) -> Self {
        FlavorReport {
            requested: c.requested.clone(),
            used: c.flavor.name.to_string(),
            hash: c.flavor.hash.to_string(),
            fallback: c.fell_back(),
            reason: c.fallback_reason.clone(),
        }
    }
}

/// Chooses the request's flavor: logs a fallback, refuses it in strict mode.
fn choose_flavor(state: &AppState, requested: Option<&str>) -> Result<Chosen, ApiError> {
    let chosen = state.flavors.choose(requested);
    if let Some(reason) = &chosen.fallback_reason {
        crate::telemetry::flavor_fallback(state.strict_flavors);
        if state.strict_flavors {
            return Err(ApiError::new(
                ErrorKind::UnknownFlavor,
                reason.clone(),
                json!({ "field": "config_flavor", "available": state.flavors.names() }),
            ));
        }
        tracing::warn!(used = %chosen.flavor.name, "unknown config flavor: {reason}");
    }
    if state.debug {
        debug_log::chosen(&chosen);
    }
    Ok(chosen)
}

/// The plan for the chosen flavor, logged value by value in debug mode.
fn plan<G: Generation>(state: &AppState, request: G, chosen: &Chosen) -> PlanOf<G> {
    let (plan, consumed) = request.plan(&chosen.flavor);
    if state.debug {
        debug_log::plan(chosen, G::KIND, &consumed, G::prompt(&plan.request));
    }
    plan
}

/// A JSON answer carrying `X-Config-Flavor: <used>` and `X-Config-Flavor-Hash: <its hash>`.
fn with_flavor<T: Serialize>(report: &FlavorReport, body: T) -> Response {
    let mut response = axum::Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&report.used) {
        response.headers_mut().insert("x-config-flavor", value);
    }
    if let Ok(value) = HeaderValue::from_str(&report.hash) {
        response.headers_mut().insert("x-config-flavor-hash", value);
    }
    response
}

/// The plan of kind `G`.
type PlanOf<G> = Plan<<G as Generation>::Request, <G as Generation>::Kept>;

/// The generation pipeline as the job engine sees it, over the same state the endpoints use.
#[derive(Clone)]
pub struct Pipeline {
    state: AppState,
    kinds: &'static [Kind],
    names: Vec<&'static str>,
}

impl Pipeline {
    /// `kinds` is the route table's list (`api::KINDS`), handed in by whoever wires the server
    /// (the pipeline is below the HTTP edge and does not import it), so jobs take exactly the
    /// kinds the endpoints serve.
    pub fn new(state: AppState, kinds: &'static [Kind]) -> Self {
        Pipeline { state, kinds, names: kinds.iter().map(|k| k.name).collect() }
    }

    fn kind(&self, name: &str) -> Result<&'static Kind, ApiError> {
        let kinds = self.kinds;
        kinds.iter().find(|k| k.name == name).ok_or_else(|| {
            ApiError::invalid("kind", format!("expected one of {}, got {name:?}", self.names.join(", ")))
        })
    }
}

/// A stored plan: the kind's plan and the flavor it was made with.
#[derive(Serialize, Deserialize)]
struct Stored<P> {
    config_flavor: FlavorReport,
    plan: P,
}

/// One kind as the job engine reaches it, by name: an entry of the route table's `api::KINDS`.
pub struct Kind {
    name: &'static str,
    plan: fn(&AppState, Value) -> Result<Planned, ApiError>,
    run: for<'a> fn(&'a AppState, &'a Value, RunContext<'a>) -> BoxFuture<'a, Result<Value, ApiError>>,
    /// Its `mvgen render` subcommand and what renders a parse of it (`cli::render`).
    pub command: &'static str,
    pub render: Render,
}

/// `mvgen render`'s side of a kind: its subcommand with the body's arguments, and the prompt and
/// parameters a parse of them renders for a flavor.
pub struct Render {
    pub subcommand: fn() -> clap::Command,
    pub plan: fn(&Flavor, &clap::ArgMatches) -> Result<Rendering, String>,
}

/// What `mvgen render` prints: the prompt, byte for byte, and the parameters sent with it.
pub type Rendering = (String, Value);

impl Kind {
    pub const fn of<G: Generation>() -> Kind {
        Kind {
            name: G::KIND,
            plan: plan_job::<G>,
            run: run_job::<G>,
            command: G::COMMAND,
            render: Render { subcommand: subcommand::<G>, plan: render::<G> },
        }
    }
}

/// The kind's subcommand, as clap derives one for a `Variant(Body)` with a one-line doc comment.
fn subcommand<G: Generation>() -> clap::Command {
    G::Input::augment_args(clap::Command::new(G::COMMAND)).about(G::RENDERS).long_about(None)
}

/// The prompt and parameters sent upstream for the parsed arguments, through the server's own
/// validation and plan (strings stripped; an empty optional one is not given).
fn render<G: Generation>(flavor: &Flavor, args: &clap::ArgMatches) -> Result<Rendering, String> {
    let body = G::Input::from_arg_matches(args).map_err(|e| e.to_string())?;
    let (plan, _) = G::validate(body).map_err(|e| e.message)?.plan(flavor);
    let parameters = serde_json::to_value(G::parameters(&plan)).map_err(|e| e.to_string())?;
    Ok((G::prompt(&plan.request).to_string(), parameters))
}

/// Validates `input` as the sync endpoint's body (the same parser, so the same 4xx), chooses the
/// flavor and plans. No generation slot: nothing runs yet.
fn plan_job<G: Generation>(state: &AppState, input: Value) -> Result<Planned, ApiError> {
    let bytes = serde_json::to_vec(&input).map_err(|e| ApiError::internal(format!("the input: {e}")))?;
    let (request, requested) = validate::<G>(crate::json_body::parse::<G::Input>(&bytes)?)?;
    let chosen = choose_flavor(state, requested.as_deref())?;
    let plan = plan(state, request, &chosen);
    planned::<G>(FlavorReport::from(&chosen), plan)
}

/// A kind's plan as the job engine stores it. The stored plan also carries the `parameters` its
/// answer will report: a reader of the job (`GET /api/mv/jobs/{id}`) sees them before it runs,
/// and builds before 2026-12-02 require the field when they run a plan (replicas of two builds
/// share one database during a rolling deploy). This build derives them again when it answers
/// and ignores the stored copy.
fn planned<G: Generation>(config_flavor: FlavorReport, plan: PlanOf<G>) -> Result<Planned, ApiError> {
    let (project_id, sequence) = G::project(&plan);
    let unserialisable = |e: serde_json::Error| ApiError::internal(format!("the plan could not be serialised: {e}"));
    let parameters = serde_json::to_value(G::parameters(&plan)).map_err(unserialisable)?;
    let stored = Stored { config_flavor, plan };
    let mut plan = serde_json::to_value(&stored).map_err(unserialisable)?;
    plan["plan"]["parameters"] = parameters;
    Ok(Planned {
        config_flavor: serde_json::to_value(&stored.config_flavor).map_err(unserialisable)?,
        plan,
        project_id,
        sequence,
    })
}

/// Runs a stored plan of kind `G` and answers as the sync endpoint does.
fn run_job<'a, G: Generation>(
    state: &'a AppState,
    plan: &'a Value,
    ctx: RunContext<'a>,
) -> BoxFuture<'a, Result<Value, ApiError>> {
    Box::pin(async move {
        let stored = Stored::<PlanOf<G>>::deserialize(plan)
            .map_err(|e| ApiError::internal(format!("the stored plan is not a {} plan: {e}", G::KIND)))?;
        let answer = G::run(&stored.plan, Run { state, flavor: &stored.config_flavor, ctx }).await?;
        serde_json::to_value(answer).map_err(|e| ApiError::internal(format!("the answer: {e}")))
    })
}

impl JobPipeline for Pipeline {
    fn kinds(&self) -> &[&'static str] {
        &self.names
    }

    fn plan<'a>(&'a self, kind: &'a str, input: Value) -> BoxFuture<'a, Result<Planned, ApiError>> {
        Box::pin(async move { (self.kind(kind)?.plan)(&self.state, input) })
    }

    fn run<'a>(
        &'a self,
        kind: &'a str,
        plan: &'a Value,
        ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(async move { (self.kind(kind)?.run)(&self.state, plan, ctx).await })
    }

    fn cancel_run<'a>(&'a self, run: &'a crate::providers::UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.state.providers.cancel_run(run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::scenes::Scenes;

    /// A stored plan reads in this build and in the builds before 2026-12-02, whose `Plan` had a
    /// required `parameters` field (their shape below): replicas of both share one database during
    /// a rolling deploy. Both report the same `parameters_used`.
    #[test]
    fn a_stored_plan_reads_in_this_build_and_the_previous_one() {
        #[derive(Deserialize)]
        struct PreviousPlan {
            #[allow(dead_code)]
            request: Value,
            parameters: Value,
            #[allow(dead_code)]
            kept: Value,
        }
        let chosen = crate::flavor::choose(None);
        let body = serde_json::from_value(json!({"idea": "a storm", "character_description": "a keeper"}))
            .expect("a scenes body");
        let (plan, _) = validate::<Scenes>(body).expect("valid").0.plan(&chosen.flavor);
        let parameters = serde_json::to_value(Scenes::parameters(&plan)).expect("serialisable");
        let stored = planned::<Scenes>(FlavorReport::from(&chosen), plan).expect("stored").plan;
        let previous = Stored::<PreviousPlan>::deserialize(&stored).expect("the previous build reads it");
        assert_eq!(previous.plan.parameters, parameters);
        let read = Stored::<PlanOf<Scenes>>::deserialize(&stored).expect("this build reads it");
        assert_eq!(serde_json::to_value(Scenes::parameters(&read.plan)).ok(), Some(parameters));
    }
}
