//! The `create_scenes` request the `api` and `allocations` benches share: its body, the checked
//! request, and an answer shaped like the handler's.

use mvgen::generation::FlavorReport;
use mvgen::generation::Generation;
use mvgen::generation::scenes::{CreateScenesBody, CreateScenesResponse, OutputFiles, SceneOut, ScenesMetadata};
use mvgen::generation::scenes::{Scenes, ScenesPlan};

/// The body `bench/load.sh` posts, naming `flavor` as the create page does.
pub fn body(flavor: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "idea": "a lighthouse keeper's last night before the light is automated",
        "character_description": "an old sailor with a grey beard and a yellow raincoat",
        "config_flavor": flavor,
    }))
    .expect("a JSON value serializes")
}

/// The body checked and normalised as the endpoint does it.
pub fn scenes(body: CreateScenesBody) -> Scenes {
    Scenes::validate(body).expect("a valid body")
}

/// An answer shaped like the handler's, with scenes as long as a scene model writes them.
pub fn response(plan: &ScenesPlan, chosen: &mvgen::flavor::Chosen) -> CreateScenesResponse {
    let scenes = (1..=plan.request.number_of_scenes)
        .map(|i| SceneOut {
            description: format!(
                "Scene {i}: {} stands at the rail as the beam sweeps the fog; slow push-in, sodium light, rain",
                plan.kept.brief.character_description
            ),
            negative_description: "no text, no watermark, no extra limbs, no modern objects".to_owned(),
        })
        .collect();
    CreateScenesResponse {
        scenes,
        output_files: OutputFiles {
            json: "/api/mv/get_scenes/3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d".to_owned(),
            markdown: "/api/mv/get_scenes/0e4f1a2b-8f0a-4d2b-9c51-3f2b6c1e3c4d".to_owned(),
        },
        metadata: ScenesMetadata {
            idea: plan.kept.brief.idea.clone(),
            number_of_scenes: plan.request.number_of_scenes,
            parameters_used: Scenes::parameters(plan),
            config_flavor: FlavorReport::from(chosen),
            backend_used: "gemini".to_owned(),
            model_used: plan.request.model.to_string(),
            is_mock: false,
            generation_timestamp: "2026-01-31T12:00:00.000Z".to_owned(),
            project_id: None,
        },
    }
}
