//! `POST /api/mv/projects`: a new project from their create form (multipart, the song as its
//! `audio` part, streamed into the store as `upload_audio` stores one) or a JSON body.

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::audio::{AudioLimit, MULTIPART_OVERHEAD, discard, multipart_error, multipart_io_error, store_song};
use super::super::extract::ValidJson;
use crate::api_keys::KeyScope;
use crate::error::{ApiError, ErrorKind};
use crate::jobs::Jobs;
use crate::jobs::engine::unavailable;
use crate::jobs::store::now_ms;
use crate::jobs::store::projects::ProjectRow;
use crate::projects;
use crate::projects::answer::{PinnedFlavor, ProjectCreated};
use crate::projects::words::{MODES, MUSIC_VIDEO, PENDING};
use crate::state::AppState;

/// The longest text field of a project (their UI's own bounds are smaller).
const MAX_TEXT_CHARS: usize = 20_000;

/// The fields of a new project, from a multipart form or a JSON body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewProject {
    /// `music-video` or `ad-creative` (required).
    mode: Option<String>,
    prompt: Option<String>,
    character_description: Option<String>,
    character_reference_image_id: Option<String>,
    product_description: Option<String>,
    product_reference_image_id: Option<String>,
    director_config: Option<String>,
    /// A song already uploaded (`upload_audio`), for JSON bodies.
    #[serde(alias = "audio_id")]
    audio_id: Option<String>,
    #[serde(alias = "config_flavor")]
    config_flavor: Option<String>,
    /// Scenes to make, 1..=32 (a number, or its digits in a form). Without it a song decides:
    /// as many as its length needs with the video model's clips, cut on its beats.
    #[serde(alias = "number_of_scenes")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 32)]
    number_of_scenes: Option<Value>,
    /// An https URL told of the project (`projects::hooks`), and which of `start`, `progress`,
    /// `completed` (default `["completed"]`); in a form, the filter as words or a JSON list.
    #[schema(value_type = Option<String>)]
    webhook: Option<Value>,
    #[serde(rename = "webhook_events_filter", alias = "webhookEventsFilter")]
    #[schema(value_type = Option<Vec<String>>)]
    webhook_events_filter: Option<Value>,
}

/// `POST /api/mv/projects`: multipart (their UI, the song as the `audio` part) or JSON (with an
/// `audioId` from `upload_audio`) → 201 `{projectId, status, message}`. Nothing is generated.
#[utoipa::path(
    post,
    path = "/api/mv/projects",
    tag = "projects",
    request_body(
        description = "Their create form as multipart/form-data (`mode`, `prompt`, `characterDescription`, \
                       `characterReferenceImageId`, `productDescription`, `productReferenceImageId`, `directorConfig`, \
                       `config_flavor`, and the song as the `audio` part), or the same fields as JSON with `audioId`",
        content((NewProject = "application/json"), (NewProject = "multipart/form-data")),
    ),
    responses(
        (status = 201, description = "Created (nothing is generated yet)", body = ProjectCreated,
            headers(("Location" = String, description = "The project's URL"))),
        super::ProjectErrors,
    )
)]
pub async fn create_project(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    scope: Option<Extension<KeyScope>>,
    request: Request,
) -> Result<Response, ApiError> {
    let limits = request.extensions().get::<AudioLimit>().copied().unwrap_or_default();
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (fields, song) = if crate::media::essence(content_type) == "multipart/form-data" {
        form(&state, request, limits).await?
    } else {
        let ValidJson(fields) = ValidJson::<NewProject>::from_request(request, &()).await?;
        (fields, None)
    };
    let song_id = song.clone();
    match create(&state, &jobs, scope.as_deref(), fields, song).await {
        Ok(response) => Ok(response),
        Err(e) => {
            // Refused after its song was stored: the song goes too.
            if let Some(id) = song_id {
                discard(&state, &id).await;
            }
            Err(e)
        }
    }
}

/// The largest text part of a create form: a JSON body's limit.
const MAX_TEXT_PART_BYTES: usize = 1024 * 1024;

/// Reads their create form: text fields, and the `audio` part streamed into the store as a song.
async fn form(
    state: &AppState,
    request: Request,
    limits: AudioLimit,
) -> Result<(NewProject, Option<String>), ApiError> {
    let limit = limits.max_bytes;
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ApiError::new(ErrorKind::InvalidBody, format!("multipart body: {e}"), json!("content-type")))?;
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit + MULTIPART_OVERHEAD));
    let raw = request.into_body().into_data_stream().map_err(std::io::Error::other);
    let mut multipart = multer::Multipart::with_constraints(raw, boundary, constraints);
    let mut fields = serde_json::Map::new();
    let mut song = None;
    let mut too_big: Option<String> = None;
    // A body that breaks after its song was stored (cut short, a malformed later part) refuses
    // the project, and the song goes with it.
    let read: Result<(), ApiError> = async {
        loop {
            let mut field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => return Ok(()),
                Err(e) => return Err(multipart_error(e, limit)),
            };
            let name = field.name().unwrap_or("").to_owned();
            match name.as_str() {
                "audio" if song.is_none() => {
                    let stream = field.map_err(multipart_io_error).boxed();
                    song = Some(store_song(state, stream, limits).await?.audio_id);
                }
                // Their product image: not used by a music video; read past.
                "images" | "audio" => while field.chunk().await.map_err(|e| multipart_error(e, limit))?.is_some() {},
                _ => {
                    // UTF-8 or refused: never decoded by a guess (a UTF-16 BOM, a Latin-1 byte).
                    // At most a JSON body's size is kept (a text field holds 20 000 characters);
                    // past it the part is read to its end and dropped, and refused (413) once the
                    // body has been read, so the caller gets the answer rather than a reset.
                    let mut bytes = Vec::new();
                    let mut over = false;
                    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
                        over |= bytes.len() + chunk.len() > MAX_TEXT_PART_BYTES;
                        if over {
                            bytes = Vec::new();
                        } else {
                            bytes.extend_from_slice(&chunk);
                        }
                    }
                    if over {
                        too_big.get_or_insert(name);
                        continue;
                    }
                    let text = String::from_utf8(bytes)
                        .map_err(|e| ApiError::invalid(&name, format!("not UTF-8 text ({e})")))?;
                    fields.insert(name, Value::String(text));
                }
            }
        }
    }
    .await;
    let read = read.and_then(|()| match too_big {
        Some(name) => Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("{name}: a form field of more than {MAX_TEXT_PART_BYTES} bytes"),
            json!({ "field": name, "limit_bytes": MAX_TEXT_PART_BYTES }),
        )),
        None => Ok(()),
    });
    let parsed = read.and_then(|()| {
        serde_json::from_value(Value::Object(fields))
            .map_err(|e| ApiError::new(ErrorKind::RequestValidationError, format!("project form: {e}"), Value::Null))
    });
    match parsed {
        Ok(fields) => Ok((fields, song)),
        Err(e) => {
            if let Some(id) = &song {
                discard(state, id).await;
            }
            Err(e)
        }
    }
}

async fn create(
    state: &AppState,
    jobs: &Jobs,
    scope: Option<&KeyScope>,
    fields: NewProject,
    song: Option<String>,
) -> Result<Response, ApiError> {
    let text = |name: &str, value: Option<String>| -> Result<Option<String>, ApiError> {
        let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if let Some(value) = &value {
            projects::no_nul(name, value)?;
        }
        if value.as_ref().is_some_and(|v| v.chars().count() > MAX_TEXT_CHARS) {
            return Err(ApiError::invalid(name, format!("at most {MAX_TEXT_CHARS} characters")));
        }
        Ok(value)
    };
    let mode = text("mode", fields.mode)?.ok_or_else(|| ApiError::invalid("mode", "Field required"))?;
    if !MODES.contains(&mode.as_str()) {
        return Err(ApiError::invalid("mode", format!("Invalid mode: expected one of {}", MODES.join(", "))));
    }
    let prompt = text("prompt", fields.prompt)?.ok_or_else(|| ApiError::invalid("prompt", "Field required"))?;
    let image = |name: &str, value: Option<String>| -> Result<Option<String>, ApiError> {
        text(name, value)?
            .map(|id| crate::storage::parse_id(&id).map(|id| id.to_string()))
            .transpose()
            .map_err(|_| ApiError::invalid(name, format!("Invalid {} format", name_words(name))))
    };
    let character_image_id = image("characterReferenceImageId", fields.character_reference_image_id)?;
    let product_image_id = image("productReferenceImageId", fields.product_reference_image_id)?;
    let audio_id = match (song, text("audioId", fields.audio_id)?) {
        (Some(id), _) => Some(id),
        (None, Some(id)) => {
            let id = crate::storage::parse_id(&id)
                .map_err(|_| {
                    ApiError::invalid("audioId", "Invalid audio ID format: expected an audio_id from upload_audio")
                })?
                .to_string();
            if state.storage.record(crate::storage::Collection::Audio, &id).await?.is_none() {
                return Err(ApiError::not_found(
                    format!("no song {id} (upload it with upload_audio)"),
                    json!("audioId"),
                ));
            }
            Some(id)
        }
        (None, None) => None,
    };
    if mode == MUSIC_VIDEO && audio_id.is_none() {
        return Err(ApiError::invalid("audio", "Audio file required for music-video mode"));
    }
    let scenes_asked = scene_count(fields.number_of_scenes)?;
    let director = text("directorConfig", fields.director_config)?;
    // The flavor: `config_flavor`, else their director select when it names a flavor. A project
    // pins it, so an unknown name is refused rather than quietly replaced by the default.
    let requested = text("config_flavor", fields.config_flavor)?;
    let chosen = match (&requested, &director) {
        (Some(name), _) => {
            let chosen = state.flavors.choose(Some(name));
            if chosen.fell_back() {
                let names = state.flavors.names();
                return Err(ApiError::new(
                    ErrorKind::UnknownFlavor,
                    format!(
                        "config_flavor: no flavor named {:?}; a project pins its flavor, so name one of: {}",
                        name.chars().take(80).collect::<String>(),
                        names.join(", ")
                    ),
                    json!({ "field": "config_flavor", "available": names }),
                ));
            }
            chosen
        }
        (None, Some(director)) => match state.flavors.choose(Some(director)) {
            chosen if !chosen.fell_back() => chosen,
            _ => state.flavors.choose(None),
        },
        (None, None) => state.flavors.choose(None),
    };
    let flavor = &*chosen.flavor;
    let hook = projects::hooks::at_create(fields.webhook, fields.webhook_events_filter, jobs.config().webhooks).await?;
    let now = now_ms();
    let row = ProjectRow {
        id: uuid::Uuid::new_v4().to_string(),
        status: PENDING.to_owned(),
        mode,
        concept_prompt: prompt,
        character_description: text("characterDescription", fields.character_description)?,
        character_image_id,
        product_description: text("productDescription", fields.product_description)?,
        product_image_id,
        director_config: director,
        audio_id,
        flavor_name: flavor.name.to_string(),
        flavor_hash: flavor.hash.to_string(),
        flavor_content: Some(crate::pinned_flavor::content(flavor).to_string()),
        api_key_scope: scope.map(|s| s.as_str().to_owned()),
        scenes_asked,
        webhook: hook.webhook,
        webhook_events: hook.webhook_events,
        created_at: now,
        updated_at: now,
        ..ProjectRow::default()
    };
    jobs.store().insert_project(&row).await.map_err(unavailable)?;
    tracing::info!(project = %row.id, flavor = %row.flavor_name, hash = %row.flavor_hash, "project created");
    let answer = ProjectCreated {
        project_id: row.id.clone(),
        status: PENDING.to_owned(),
        message: "Project created successfully".to_owned(),
        config_flavor: PinnedFlavor { name: row.flavor_name.clone(), hash: row.flavor_hash.clone() },
    };
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/mv/projects/{}", row.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `numberOfScenes` as a count: a whole number (or its digits, from a form) in 1..=32; blank or
/// null is none (the song decides).
fn scene_count(value: Option<Value>) -> Result<Option<i64>, ApiError> {
    let most = crate::projects::beat_plan::MAX_SCENES as i64;
    let n = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => return Ok(None),
        Some(Value::String(text)) => text.trim().parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        Some(_) => None,
    };
    match n {
        Some(n) if (1..=most).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::invalid("numberOfScenes", format!("a whole number from 1 to {most}"))),
    }
}

/// "characterReferenceImageId" → "character reference ID", for their messages.
fn name_words(field: &str) -> &'static str {
    if field.starts_with("product") { "product reference ID" } else { "character reference ID" }
}
