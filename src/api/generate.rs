//! The generation endpoints (`POST create_scenes`, `generate_character_reference`,
//! `generate_video`): one named handler each over [`respond`], which plans the request through
//! [`crate::generation::driver`], runs it as a job (submit, then wait) and answers with the
//! `X-Config-Flavor`, `X-Config-Flavor-Hash` and `X-Job-Id` headers.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::extract::HookedJson;
use crate::api_keys::KeyScope;
use crate::error::{self, ApiError, ErrorKind};
use crate::generation::character::{Character, CharacterReferenceBody, CharacterReferenceResponse};
use crate::generation::driver;
use crate::generation::final_cut::{FinalCut, StitchVideosBody, StitchVideosResponse};
use crate::generation::scenes::{CreateScenesBody, CreateScenesResponse, Scenes};
use crate::generation::stored;
use crate::generation::video::{GenerateVideoBody, GenerateVideoResponse, Video};
use crate::generation::{FlavorReport, Generation};
use crate::jobs::Jobs;
use crate::jobs::engine::unavailable;
use crate::jobs::state::JobStatus;
use crate::jobs::store::StoreError;
use crate::jobs::store::rows::JobRow;
use crate::providers::RunContext;
use crate::state::AppState;
use crate::webhooks::target::{self, Requested};

/// A generation endpoint's OpenAPI operation around its handler: the endpoints differ only in
/// their path, body, answer, what a 200 means, and any answer of their own.
macro_rules! generation_endpoint {
    ($path:literal, $body:ty => $answer:ty, $done:literal $(, $extra:tt)*; $handler:item) => {
        #[utoipa::path(
            post,
            path = $path,
            tag = "generation",
            request_body = $body,
            responses(
                (status = 200, description = $done, body = $answer,
                    headers(
                        ("X-Config-Flavor" = String, description = "The flavor used"),
                        ("X-Config-Flavor-Hash" = String, description = "The content hash of the flavor used"),
                        ("X-Job-Id" = String, description = "The job that ran the generation (`GET /api/mv/jobs/{id}`); \
                            also on its error answers. A caller who hangs up does not stop it: its result is kept"),
                    )),
                $($extra,)*
                error::GenerationErrors,
            )
        )]
        $handler
    };
}

generation_endpoint! { "/api/mv/create_scenes", CreateScenesBody => CreateScenesResponse, "Scenes written";
pub async fn create_scenes(
    State(state): State<Arc<AppState>>,
    jobs: Option<Extension<Arc<Jobs>>>,
    scope: Option<Extension<KeyScope>>,
    HookedJson(body, webhook): HookedJson<CreateScenesBody>,
) -> Result<Response, ApiError> {
    respond::<Scenes>(&state, jobs.as_deref(), scope.as_deref(), body, webhook).await
}
}

generation_endpoint! { "/api/mv/generate_character_reference", CharacterReferenceBody => CharacterReferenceResponse,
    "Images generated and stored";
pub async fn generate_character_reference(
    State(state): State<Arc<AppState>>,
    jobs: Option<Extension<Arc<Jobs>>>,
    scope: Option<Extension<KeyScope>>,
    HookedJson(body, webhook): HookedJson<CharacterReferenceBody>,
) -> Result<Response, ApiError> {
    respond::<Character>(&state, jobs.as_deref(), scope.as_deref(), body, webhook).await
}
}

generation_endpoint! { "/api/mv/generate_video", GenerateVideoBody => GenerateVideoResponse, "Video generated and stored";
pub async fn generate_video(
    State(state): State<Arc<AppState>>,
    jobs: Option<Extension<Arc<Jobs>>>,
    scope: Option<Extension<KeyScope>>,
    HookedJson(body, webhook): HookedJson<GenerateVideoBody>,
) -> Result<Response, ApiError> {
    respond::<Video>(&state, jobs.as_deref(), scope.as_deref(), body, webhook).await
}
}

generation_endpoint! { "/api/mv/stitch-videos", StitchVideosBody => StitchVideosResponse,
    "The clips (and the song) cut into one stored video",
    (status = 404, description = "A clip named is not stored (`details.field` names it)", body = crate::error::ErrorBody);
pub async fn stitch_videos(
    State(state): State<Arc<AppState>>,
    jobs: Option<Extension<Arc<Jobs>>>,
    scope: Option<Extension<KeyScope>>,
    HookedJson(body, webhook): HookedJson<StitchVideosBody>,
) -> Result<Response, ApiError> {
    respond::<FinalCut>(&state, jobs.as_deref(), scope.as_deref(), body, webhook).await
}
}

/// A sync endpoint of kind `G`: plan (validate, choose the flavor, take a generation slot), run,
/// answer; `webhook`, the job's, from the body beside the kind's fields. With a job engine the run is a job (submit and wait, `X-Job-Id` on the answer): a
/// caller who hangs up no longer stops it, and its result is kept. Without one (the in-process
/// test app) the request runs the plan itself, the same steps.
async fn respond<G: Generation>(
    state: &AppState,
    jobs: Option<&Arc<Jobs>>,
    scope: Option<&KeyScope>,
    input: G::Input,
    webhook: Option<Requested>,
) -> Result<Response, ApiError> {
    // Checked before any slot is taken or anything stored: a refused webhook costs nothing.
    let webhook = match (webhook, jobs) {
        (None, _) => None,
        (Some(requested), Some(jobs)) => Some(target::check(requested, jobs.config().webhooks).await?),
        (Some(_), None) => {
            return Err(ApiError::new(
                ErrorKind::ValidationError,
                "webhook: this server runs generations without the job engine, which sends webhooks",
                json!("webhook"),
            ));
        }
    };
    let (planned, slot) = driver::plan_now::<G>(state, input)?;
    let Some(jobs) = jobs else {
        let answer = driver::run(state, &planned, RunContext::detached()).await?;
        return Ok(with_flavor(&planned.flavor, answer));
    };
    let stored = stored::to_store(state, planned).await?;
    // The slot moves to the job's run: it is held while the generation runs, not while we wait.
    let id = jobs.submit_now(G::KIND, &stored, slot, scope.map(KeyScope::as_str), webhook.as_ref()).await?;
    let mut response = match jobs.finished(&id).await {
        Ok(Some(job)) if !job.status.is_final() && jobs.sync_waits_cut() => {
            // Shutdown's drain is about to cut this request: the job goes on (released to the
            // queue at exit, then on any replica) and the caller follows it by its id. 503, not
            // the sync wait's 504: this replica is going away, the job is not slow.
            let mut response = ApiError::new(
                ErrorKind::JobStillRunning,
                format!(
                    "this replica is shutting down and job {id} is still {}; it goes on: follow it at \
                     /api/mv/jobs/{id}",
                    job.status
                ),
                json!({ "job_id": id, "status": job.status, "retry_after_seconds": 5 }),
            )
            .into_response();
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
        Ok(Some(job)) => answer(&id, job)?,
        Ok(None) => return Err(ApiError::internal(format!("job {id} is gone"))),
        Err(e @ StoreError::Unreadable { .. }) => return Err(unavailable(e)),
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
fn answer(id: &str, job: JobRow) -> Result<Response, ApiError> {
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
