//! `GET /api/openapi.json`: the API described from the handlers' own types and annotations
//! (utoipa's derive below), so the spec can't drift from the code. The document is derived when
//! the code changes, not at every start: `openapi.json` beside this file is the derived document,
//! committed, and a test fails when it differs from what the code derives (run
//! `MVGEN_WRITE_OPENAPI=1 cargo test --lib openapi` and commit the result). build.rs compacts it
//! into the binary and lists its route templates for `/metrics`, so the server neither links
//! utoipa's document builder nor runs it (it cost every start a few hundred KiB of code paged in
//! and a millisecond: BENCHMARKS.md, issue 22). The embedded flavor names are filled in when the
//! document is first asked for, so generated clients offer them for `config_flavor`.

use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::OpenApi;

use super::{audio, deliveries, files, flavors, generate, jobs, projects, replicate_webhook, upload};
use crate::error;
use crate::generation::FlavorReport;
use crate::state::AppState;

/// The committed document (`openapi.json`), compacted by build.rs: what the code derived.
const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// Every path template of the document, in its order (build.rs), which `/metrics` counts by.
pub static ROUTES: &[&str] = include!(concat!(env!("OUT_DIR"), "/openapi_routes.rs"));

#[derive(OpenApi)]
#[openapi(
    info(title = "mvgen", description = "Music-video generation API with per-request config flavors"),
    paths(
        super::health::health,
        crate::api::readiness::readyz,
        crate::telemetry::metrics_text,
        generate::create_scenes,
        generate::generate_character_reference,
        generate::generate_video,
        generate::stitch_videos,
        flavors::get_config_flavors,
        files::get_character_reference,
        files::get_video,
        files::get_video_info,
        files::get_scenes,
        files::get_scenes_markdown,
        audio::upload_audio,
        audio::get_audio,
        audio::get_audio_info,
        jobs::submit_job,
        jobs::get_job,
        jobs::list_jobs,
        jobs::cancel_job,
        jobs::job_events,
        upload::upload_character_reference,
        projects::create::create_project,
        projects::list_projects,
        projects::get_project,
        projects::patch_project,
        projects::delete_project,
        projects::scenes::reorder_scenes,
        projects::scenes::patch_scene,
        projects::scenes::delete_scene,
        projects::scenes::trim_scene,
        projects::scenes::add_scene,
        projects::scenes::upload_video,
        projects::making::compose,
        projects::making::final_video,
        projects::making::generate,
        projects::making::cancel,
        projects::making::events,
        projects::get_director_configs,
        generate::generate_scene_video,
        deliveries::list_deliveries,
        deliveries::retry_delivery,
        deliveries::list_project_deliveries,
        deliveries::retry_project_delivery,
        replicate_webhook::receive,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, error::UnauthorizedBody, FlavorReport))
)]
pub struct ApiDoc;

/// The OpenAPI document as the code derives it, without flavor names: what `openapi.json` must be.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document this server serves: every request body's `config_flavor` lists the embedded flavor
/// names as `examples`, and with `MV_STRICT_FLAVORS` (where any other name is a 400) as its `enum`.
pub fn spec_json(strict_flavors: bool) -> Value {
    // The committed document parses: `the_committed_document_is_the_one_the_code_derives` reads it.
    let mut doc: Value = serde_json::from_str(DOCUMENT).expect("the committed OpenAPI document is JSON");
    add_webhook_fields(&mut doc);
    let names: Vec<Value> = crate::flavor::names().iter().map(|n| Value::from(*n)).collect();
    let schemas = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut);
    for schema in schemas.into_iter().flat_map(|s| s.values_mut()) {
        let Some(field) = schema.pointer_mut("/properties/config_flavor").and_then(Value::as_object_mut) else {
            continue;
        };
        // Response metadata refers to `FlavorReport`; only the plain string fields of request bodies
        // name a flavor to use.
        if field.contains_key("$ref") {
            continue;
        }
        field.insert("examples".into(), Value::Array(names.clone()));
        if strict_flavors {
            let mut allowed = names.clone();
            // The field is optional and may be null or "" (both mean the default flavor, as the
            // service mvgen replaces took them); an enum must say so too.
            allowed.push(Value::from(""));
            if field.get("type").and_then(Value::as_array).is_some_and(|t| t.iter().any(|t| t == "null")) {
                allowed.push(Value::Null);
            }
            field.insert("enum".into(), Value::Array(allowed));
        }
    }
    doc
}

/// The bodies that take `webhook` and `webhook_events_filter` beside their own fields: the sync
/// generation routes, whose `HookedJson` extractor takes the two off before the body (which denies
/// unknown fields) is parsed, so the body types cannot declare them themselves.
const HOOKED_BODIES: [&str; 4] =
    ["CreateScenesBody", "CharacterReferenceBody", "GenerateVideoBody", "StitchVideosBody"];

/// Copies the two webhook fields, as the jobs envelope (`SubmitJobBody`) declares them, into each
/// of [`HOOKED_BODIES`]: one declaration, so the routes cannot be documented differently.
fn add_webhook_fields(doc: &mut Value) {
    let fields: Vec<(String, Value)> = ["webhook", "webhook_events_filter"]
        .iter()
        .filter_map(|f| {
            let pointer = format!("/components/schemas/SubmitJobBody/properties/{f}");
            Some((f.to_string(), doc.pointer(&pointer)?.clone()))
        })
        .collect();
    for body in HOOKED_BODIES {
        let properties =
            doc.pointer_mut(&format!("/components/schemas/{body}/properties")).and_then(Value::as_object_mut);
        if let Some(properties) = properties {
            properties.extend(fields.iter().cloned());
        }
    }
}

/// Both variants are built once: the flavor table and the setting never change while serving.
pub async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    static LENIENT: LazyLock<Bytes> = LazyLock::new(|| spec_json(false).to_string().into());
    static STRICT: LazyLock<Bytes> = LazyLock::new(|| spec_json(true).to_string().into());
    let body = if state.strict_flavors { STRICT.clone() } else { LENIENT.clone() };
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::character::NUM_IMAGES;
    use crate::model::{NUMBER_OF_SCENES, VIDEO_DURATION};

    /// utoipa takes only literals for `minimum`/`maximum`, so the bodies restate the ranges the
    /// handlers, `mvgen render` and the configs schema share; this keeps the two from drifting.
    #[test]
    fn documented_ranges_are_the_ones_enforced() {
        let doc = spec_json(false);
        for (schema, field, (min, max)) in [
            ("CreateScenesBody", "number_of_scenes", NUMBER_OF_SCENES),
            ("GenerateVideoBody", "duration", VIDEO_DURATION),
            ("CharacterReferenceBody", "num_images", NUM_IMAGES),
        ] {
            let property = &doc["components"]["schemas"][schema]["properties"][field];
            assert_eq!((&property["minimum"], &property["maximum"]), (&min.into(), &max.into()), "{schema}.{field}");
        }
    }

    /// The file committed beside this module.
    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/openapi.json");

    /// The served document is the committed one, so it must be what the code derives today: a
    /// handler, body or annotation changed without the document fails here. With
    /// `MVGEN_WRITE_OPENAPI=1` the test writes the derived document instead (then commit it).
    #[test]
    fn the_committed_document_is_the_one_the_code_derives() {
        let derived = spec().to_pretty_json().expect("the OpenAPI document serializes") + "\n";
        if std::env::var_os("MVGEN_WRITE_OPENAPI").is_some() {
            std::fs::write(COMMITTED, &derived).expect("write src/api/openapi.json");
            return;
        }
        let committed = std::fs::read_to_string(COMMITTED).expect("src/api/openapi.json");
        if committed != derived {
            let diff = similar::TextDiff::from_lines(&committed, &derived)
                .unified_diff()
                .context_radius(3)
                .header("src/api/openapi.json (committed)", "derived from the code")
                .to_string();
            panic!(
                "src/api/openapi.json is not what the code derives; run `MVGEN_WRITE_OPENAPI=1 cargo test --lib \
                 openapi` and commit it:\n{diff}"
            );
        }
        // And what build.rs embedded is that same document, compacted.
        let embedded: Value = serde_json::from_str(DOCUMENT).expect("embedded document");
        assert_eq!(embedded, serde_json::to_value(spec()).expect("derived document"));
    }

    /// `/metrics` counts by the document's path templates, every one of them.
    #[test]
    fn the_route_list_is_every_path_of_the_document() {
        let derived: Vec<String> = spec().paths.paths.into_keys().collect();
        assert_eq!(ROUTES, derived.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
