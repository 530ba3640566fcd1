//! Making a project's video: compose, the final video, `generate` (the whole video server-side,
//! `projects::drive`), cancel, and the project's event stream.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::super::extract::ValidPath;
use crate::error::{ApiError, ErrorKind};
use crate::jobs::Jobs;
use crate::jobs::store::projects::{Bind, Edit};
use crate::projects::answer::ProjectResponse;
use crate::projects::answer::{ComposeStarted, FinalVideo};
use crate::projects::words::{COMPOSING, DRIVE_WHOLE, FAILED, PENDING, PROCESSING};
use crate::projects::{self, drive};
use crate::state::AppState;

use super::{busy, if_match, project_answer, stale};

/// `POST /api/mv/projects/{id}/compose` (body `{}`): the final cut as a job, from every scene's
/// clip in `displaySequence` order with its trims, the song looped to the video's length and
/// replacing the clips' audio. `finalOutputUrl` is set when it is done.
#[utoipa::path(
    post, path = "/api/mv/projects/{id}/compose", tag = "projects",
    params(("id" = String, Path, description = "The project id (a UUID)"), ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the project changed since")), request_body(description = "`{}`", content((Object = "application/json"))),
    responses((status = 200, description = "Composing started", body = ComposeStarted), super::ProjectErrors)
)]
pub async fn compose(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let expected = if_match(&headers)?;
    // Started only at the version read: of two composes asked at once, one starts the cut and the
    // other reads the project again (and finds it composing).
    let mut tries = 0;
    let job = loop {
        let project = projects::load(&state, &jobs, &id).await?;
        let total = project.scenes.len();
        let with_clip = project.scenes.iter().filter(|s| s.video_id.is_some() && s.video_job_id.is_none()).count();
        if total == 0 || with_clip < total {
            return Err(ApiError::new(
                ErrorKind::ValidationError,
                "Cannot compose video: not all scenes are completed",
                json!({ "details": format!("Completed: {with_clip}/{total}") }),
            ));
        }
        if project.row.status == COMPOSING && project.row.final_job_id.is_some() {
            return Err(busy(format!(
                "project {id} is already composing (job {})",
                project.row.final_job_id.unwrap_or_default()
            )));
        }
        if let Some(expected) = expected
            && expected != project.row.version
        {
            return Err(stale(&project));
        }
        match drive::compose(&state, &jobs, &project, Some(project.row.version)).await {
            Err(e) if e.kind == ErrorKind::PreconditionFailed && expected.is_none() && tries < 8 => tries += 1,
            Err(e) if e.kind == ErrorKind::PreconditionFailed => return Err(stale(&project)),
            started => break started?,
        }
    };
    let answer = ComposeStarted {
        job_id: job,
        project_id: id,
        status: COMPOSING.into(),
        message: "Video composition started".into(),
    };
    Ok(Json(answer).into_response())
}

/// `GET /api/mv/projects/{id}/final-video`.
#[utoipa::path(
    get, path = "/api/mv/projects/{id}/final-video", tag = "projects", params(("id" = String, Path, description = "The project id (a UUID)")),
    responses((status = 200, description = "The final cut", body = FinalVideo), super::ProjectErrors)
)]
pub async fn final_video(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let project = projects::load(&state, &jobs, &id).await?;
    let Some(video) = project.row.final_video_id else {
        return Err(ApiError::not_found("Final video not yet available", json!({ "project_id": id })));
    };
    Ok(Json(FinalVideo { project_id: id, video_url: format!("/api/mv/get_video/{video}"), video_id: video })
        .into_response())
}

/// `POST /api/mv/projects/{id}/generate`: makes the whole video server-side (`projects::drive`):
/// the scenes if there are none, the character reference if none, every scene without its clip
/// (failed ones again), then the final cut, cut again from the clips as they are now (a remux
/// costs about a copy). Answers at once with the project, `processing`.
#[utoipa::path(
    post, path = "/api/mv/projects/{id}/generate", tag = "projects", params(("id" = String, Path, description = "The project id (a UUID)"), ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the project changed since")),
    responses((status = 200, description = "Being made: the project, `processing`", body = ProjectResponse), super::ProjectErrors)
)]
pub async fn generate(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    // Checked and written at one version, so of `generate`s asked at once one starts it and the
    // others see it started (409), as a later one does.
    super::change_as_read(&state, &jobs, &id, if_match(&headers)?, |project| {
        if project.row.drive == DRIVE_WHOLE {
            return Err(busy(format!("project {id} is already being generated")));
        }
        if project.row.status == COMPOSING {
            return Err(busy(format!("Project is in '{COMPOSING}' status")));
        }
        let mut edits = vec![Edit::Project(vec![
            ("drive", DRIVE_WHOLE.into()),
            ("status", PROCESSING.into()),
            ("error_message", Bind::none()),
            ("final_video_id", Bind::none()),
        ])];
        // Failed scenes are rendered again; the others keep their clips.
        let failed = project.scenes.iter().filter(|s| s.status == FAILED && s.video_id.is_none());
        edits.extend(failed.map(|s| Edit::Scene {
            sequence: s.sequence,
            sets: vec![("status", PENDING.into()), ("error_message", Bind::none())],
            only_if_job: None,
        }));
        Ok((edits, ()))
    })
    .await?;
    drive::poke();
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(project_answer(&project))
}

/// `POST /api/mv/projects/{id}/cancel`: stops making it (the drive, and every job it waits for);
/// the project ends `failed`, "canceled". Clips already made are kept.
#[utoipa::path(
    post, path = "/api/mv/projects/{id}/cancel", tag = "projects", params(("id" = String, Path, description = "The project id (a UUID)"), ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the project changed since")),
    responses((status = 200, description = "Stopped: the project, `failed`", body = ProjectResponse), super::ProjectErrors)
)]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let project = projects::load(&state, &jobs, &id).await?;
    projects::change(&jobs, &id, if_match(&headers)?, &[projects::canceled()]).await?;
    for job in project.waits_for() {
        if let Err(e) = jobs.cancel(job).await {
            tracing::warn!(project = %id, job, error = %e, "a canceled project's job could not be canceled");
        }
    }
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(project_answer(&project))
}

/// `GET /api/mv/projects/{id}/events`: Server-Sent Events, one `project` event (the whole project,
/// as `GET` answers it; its id is the version) whenever the project changes. A client that
/// reconnects with `Last-Event-ID` gets the current project if it changed since. Read again on
/// every job event this process hears of, and every second.
#[utoipa::path(
    get, path = "/api/mv/projects/{id}/events", tag = "projects",
    params(("id" = String, Path, description = "The project id (a UUID)"), ("Last-Event-ID" = Option<String>, Header, description = "The last event id read: resume after it")),
    responses((status = 200, description = "Server-Sent Events: `project` events (the project as GET answers it)", content_type = "text/event-stream", body = String), super::ProjectErrors)
)]
pub async fn events(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let id = projects::parse_id(&id)?;
    let after = crate::api::jobs::last_event_id(&headers)?;
    projects::load(&state, &jobs, &id).await?;
    let wake = jobs.subscribe();
    let stream = futures_util::stream::unfold(
        (state, jobs, id, after, wake),
        |(state, jobs, id, mut after, mut wake)| async move {
            loop {
                match projects::load(&state, &jobs, &id).await {
                    Ok(project) if project.row.version > after => {
                        after = project.row.version;
                        let data = serde_json::to_string(&ProjectResponse::from(&project)).unwrap_or_default();
                        let event = Event::default().id(after.to_string()).event("project").data(data);
                        return Some((Ok::<_, std::convert::Infallible>(event), (state, jobs, id, after, wake)));
                    }
                    Ok(_) => {}
                    // Deleted: the stream ends.
                    Err(e) if e.kind == ErrorKind::NotFound => return None,
                    Err(e) => {
                        tracing::debug!(project = %id, error = %e.message, "project events: a read failed; trying again")
                    }
                }
                // A draining replica ends its streams; the client reconnects elsewhere.
                let draining = jobs.draining().clone();
                if draining.is_cancelled() {
                    return None;
                }
                tokio::select! {
                    _ = wake.recv() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = draining.cancelled() => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}
