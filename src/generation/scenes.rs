//! Scenes: an idea in, scene descriptions out, written by the scene model with the flavor's prompt
//! and parameters, and kept for `get_scenes`.
//!
//! Where they are kept: a run of a job (every run on a server, sync or queued) keeps them in the
//! job's own row, its answer, and `output_files` name the job's id; nothing else is written, so a
//! request pays for no file of its own. When the job is purged (`MVGEN_JOB_RETENTION`) the purge
//! first writes them to the store under that same id ([`kept_in_job`]), so the URL stays readable
//! for as long as a file would. A run outside the job engine (the in-process test app) stores a file,
//! as every run did before 2026-12-06; `get_scenes` reads either.

use serde::{Deserialize, Serialize};

use super::inputs::{self, in_range, optional, required};
use super::{Generation, Kind, Plan, Run};
use crate::error::ApiError;
use crate::model::{Flavor, NUMBER_OF_SCENES};
use crate::prompts::{self, Consumed, Rendered, SceneInputs, SceneParameters};
use crate::providers::{BoxFuture, Scene, SceneBrief, SceneRequest};
use crate::storage::Collection;

/// What to write scenes for. Optional values default to the flavor's. Strings are stripped of
/// surrounding whitespace; an optional string that is null, empty or blank is not given.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScenesBody {
    /// The video idea (required, not blank).
    #[schema(max_length = 20000, min_length = 1, pattern = r"\S")]
    pub idea: String,
    /// Who the main character is (required, not blank).
    #[schema(max_length = 20000, min_length = 1, pattern = r"\S")]
    pub character_description: String,
    #[schema(max_length = 20000)]
    pub character_characteristics: Option<String>,
    /// 1..=32.
    #[schema(minimum = 1, maximum = 32)]
    pub number_of_scenes: Option<i64>,
    #[schema(max_length = 20000)]
    pub video_type: Option<String>,
    #[schema(max_length = 20000)]
    pub video_characteristics: Option<String>,
    #[schema(max_length = 20000)]
    pub camera_angle: Option<String>,
    /// The config flavor to use; unknown names fall back to default.
    #[schema(max_length = 20000)]
    pub config_flavor: Option<String>,
    /// A project UUID; echoed in `metadata.project_id` (mvgen keeps no project store).
    pub project_id: Option<String>,
}

body!(
    CreateScenesBody: idea,
    character_description,
    character_characteristics,
    video_type,
    video_characteristics,
    camera_angle,
    config_flavor,
);

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreateScenesResponse {
    pub scenes: Vec<SceneOut>,
    /// The same scenes, stored for this request only (fresh ids every time).
    pub output_files: OutputFiles,
    pub metadata: ScenesMetadata,
}

/// Where the stored scenes can be fetched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutputFiles {
    /// `/api/mv/get_scenes/{id}`: `{"scenes": [...], "metadata": {...}}`.
    pub json: String,
    /// `/api/mv/get_scenes/{id}/markdown`: the same scenes as Markdown.
    pub markdown: String,
}

/// One scene.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SceneOut {
    pub description: String,
    pub negative_description: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScenesMetadata {
    pub idea: String,
    pub number_of_scenes: u32,
    /// The values actually used, after flavor defaults and request overrides.
    #[schema(value_type = Object)]
    pub parameters_used: SceneParameters,
    pub config_flavor: super::FlavorReport,
    pub backend_used: String,
    pub model_used: String,
    pub is_mock: bool,
    /// When the scenes were written, RFC 3339 in UTC.
    pub generation_timestamp: String,
    /// The request's `project_id`, canonical UUID form, or null.
    pub project_id: Option<String>,
}

/// A valid scenes request.
#[derive(Debug, Clone, Default)]
pub struct Scenes {
    pub inputs: SceneInputs,
    pub project_id: Option<String>,
}

/// What the scene writer is sent, and what the answer reports of it.
pub type ScenesPlan = Plan<SceneRequest, ScenesKept>;

/// What a scenes answer needs besides the request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenesKept {
    /// What the prompt was rendered from: the mock writes its scenes from it, the answer reports
    /// the idea.
    pub brief: SceneBrief,
    pub project_id: Option<String>,
}

impl Generation for Scenes {
    const KIND: Kind = Kind::Scenes;
    type Input = CreateScenesBody;
    type Request = SceneRequest;
    type Kept = ScenesKept;
    type Parameters = SceneParameters;
    type Answer = CreateScenesResponse;

    fn validate(body: CreateScenesBody) -> Result<Self, ApiError> {
        let inputs = SceneInputs {
            idea: required("idea", body.idea)?,
            character_description: required("character_description", body.character_description)?,
            character_characteristics: optional(body.character_characteristics),
            number_of_scenes: in_range("number_of_scenes", body.number_of_scenes, NUMBER_OF_SCENES)?,
            video_type: optional(body.video_type),
            video_characteristics: optional(body.video_characteristics),
            camera_angle: optional(body.camera_angle),
        };
        Ok(Scenes { inputs, project_id: inputs::project_id(body.project_id)? })
    }

    fn plan<'f>(self, flavor: &'f Flavor) -> (ScenesPlan, Vec<Consumed<'f>>) {
        let Rendered { request, brief, consumed } = prompts::scene_plan(flavor, self.inputs);
        (Plan { request, kept: ScenesKept { brief, project_id: self.project_id } }, consumed)
    }

    fn parameters(plan: &ScenesPlan) -> SceneParameters {
        SceneParameters::of(&plan.request, &plan.kept.brief)
    }

    fn prompt(request: &SceneRequest) -> &str {
        &request.prompt
    }

    fn project(plan: &ScenesPlan) -> (Option<String>, Option<u32>) {
        (plan.kept.project_id.clone(), None)
    }

    fn run<'a>(plan: &'a ScenesPlan, run: Run<'a>) -> BoxFuture<'a, Result<CreateScenesResponse, ApiError>> {
        Box::pin(async move {
            let writer = &run.state.providers.scenes;
            let written = writer.write_scenes_from(&plan.request, &plan.kept.brief);
            let scenes = run.call::<Self, _>(writer.backend(), written).await?;
            let metadata = ScenesMetadata {
                idea: plan.kept.brief.idea.clone(),
                number_of_scenes: plan.request.number_of_scenes,
                parameters_used: Self::parameters(plan),
                config_flavor: run.flavor.clone(),
                backend_used: writer.backend().to_string(),
                model_used: plan.request.model.to_string(),
                is_mock: writer.is_mock(),
                generation_timestamp: inputs::timestamp(),
                project_id: plan.kept.project_id.clone(),
            };
            let output_files = match run.ctx.job_id() {
                // The job's row holds this answer once it succeeds: `get_scenes` reads it there.
                Some(job) => OutputFiles::of(job),
                None => store_scenes(run, &scenes, &metadata).await?,
            };
            Ok(CreateScenesResponse {
                scenes: scenes
                    .into_iter()
                    .map(|s| SceneOut { description: s.description, negative_description: s.negative_description })
                    .collect(),
                output_files,
                metadata,
            })
        })
    }
}

/// Stores this request's scenes under a fresh id (the service mvgen replaces wrote fixed file
/// names, so concurrent requests overwrote each other's). One JSON file; the Markdown view is
/// rendered from it when asked for, so a request pays for one write.
async fn store_scenes(run: Run<'_>, scenes: &[Scene], metadata: &ScenesMetadata) -> Result<OutputFiles, ApiError> {
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "scenes": scenes, "metadata": metadata }))
        .map_err(|e| ApiError::internal(format!("the scenes could not be serialized: {e}")))?;
    let id = run.state.storage.put(Collection::Scenes, "application/json", &json).await?;
    Ok(OutputFiles::of(&id))
}

impl OutputFiles {
    /// The URLs of the scenes kept under `id`.
    fn of(id: &str) -> OutputFiles {
        OutputFiles { json: json_url(id), markdown: format!("{}/markdown", json_url(id)) }
    }
}

fn json_url(id: &str) -> String {
    format!("/api/mv/get_scenes/{id}")
}

/// The scenes document `get_scenes/{id}` answers (`{"scenes": [...], "metadata": {...}}`, as the
/// file [`store_scenes`] writes), taken from the answer `output` of job `id`, when that answer keeps
/// its scenes in the job's row: its `output_files` name the job itself. `None` for any other
/// answer: another kind's, or scenes a build before 2026-12-06 stored as a file of their own.
pub fn kept_in_job(id: &str, output: &serde_json::Value) -> Option<Vec<u8>> {
    if output.pointer("/output_files/json")?.as_str()? != json_url(id) {
        return None;
    }
    let document = serde_json::json!({ "scenes": output.get("scenes")?, "metadata": output.get("metadata")? });
    serde_json::to_vec_pretty(&document).ok()
}

/// The parts of a stored scenes file the Markdown view shows.
#[derive(serde::Deserialize)]
struct StoredScenes {
    scenes: Vec<Scene>,
    metadata: StoredMetadata,
}

#[derive(serde::Deserialize)]
struct StoredMetadata {
    idea: String,
    model_used: String,
    generation_timestamp: String,
    config_flavor: StoredFlavor,
}

#[derive(serde::Deserialize)]
struct StoredFlavor {
    used: String,
}

/// A stored scenes file as a Markdown document for people: the idea as the title, one section per
/// scene. `None` when the file is not one create_scenes wrote.
pub fn markdown(stored: &[u8]) -> Option<String> {
    let StoredScenes { scenes, metadata } = serde_json::from_slice(stored).ok()?;
    let mut out = format!(
        "# Scenes: {}\n\n{} scenes, flavor `{}`, written by {} at {}.\n",
        metadata.idea,
        scenes.len(),
        metadata.config_flavor.used,
        metadata.model_used,
        metadata.generation_timestamp
    );
    for (i, scene) in scenes.iter().enumerate() {
        out.push_str(&format!(
            "\n## Scene {}\n\n{}\n\n**Avoid:** {}\n",
            i + 1,
            scene.description,
            scene.negative_description
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A job's answer gives its scenes document only when its `output_files` name that job: an
    /// answer whose scenes are a file under another id (an older build's) is left to the store.
    #[test]
    fn only_an_answer_naming_its_own_job_keeps_its_scenes_in_the_row() {
        let job = "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d";
        let answer = |id: &str| {
            let files = OutputFiles::of(id);
            json!({ "scenes": [{ "description": "d", "negative_description": "n" }], "metadata": { "idea": "i" },
                    "output_files": { "json": files.json, "markdown": files.markdown } })
        };
        let document = kept_in_job(job, &answer(job)).expect("kept in the row");
        let document: serde_json::Value = serde_json::from_slice(&document).expect("JSON");
        assert_eq!(document, json!({ "scenes": answer(job)["scenes"], "metadata": { "idea": "i" } }));
        assert_eq!(kept_in_job(job, &answer("0e4f1a2b-8f0a-4d2b-9c51-3f2b6c1e3c4d")), None);
        assert_eq!(kept_in_job(job, &json!({ "video_id": job })), None, "not a scenes answer");
    }
}
