//! What `POST /api/mv/create_scenes` costs mvgen itself, with the network and the scene model left
//! out: parsing the request body, choosing the flavor, rendering the scene prompt, and serializing
//! the answer. Each stage alone, then the three in a row.
//!
//! `cargo bench --bench api` (or `cargo bench-static --bench api`, on the shipping static build).
//! `MVGEN_BENCH_FLAVOR` names the flavor the body asks for (default `default`), so `bench/scale.sh`
//! can time choosing one flavor among 1000. The HTTP side (sockets, hyper, the Gemini client) is
//! measured by `bench/load.sh`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mvgen::api::extract::parse;
use mvgen::api::{CreateScenesBody, CreateScenesResponse, FlavorReport, OutputFiles, SceneOut, ScenesMetadata};
use mvgen::prompts::{self, SceneInputs};

/// The body `bench/load.sh` posts, naming `flavor` as the create page does.
fn body(flavor: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "idea": "a lighthouse keeper's last night before the light is automated",
        "character_description": "an old sailor with a grey beard and a yellow raincoat",
        "config_flavor": flavor,
    }))
    .expect("a JSON value serializes")
}

fn scene_inputs(body: CreateScenesBody) -> SceneInputs {
    SceneInputs {
        idea: body.idea,
        character_description: body.character_description,
        character_characteristics: body.character_characteristics,
        number_of_scenes: body.number_of_scenes.and_then(|n| u32::try_from(n).ok()),
        video_type: body.video_type,
        video_characteristics: body.video_characteristics,
        camera_angle: body.camera_angle,
    }
}

/// An answer shaped like the handler's, with scenes as long as a scene model writes them.
fn response(
    inputs: &SceneInputs,
    plan: &prompts::ScenePlan<'_>,
    chosen: &mvgen::flavor::Chosen,
) -> CreateScenesResponse {
    let scenes = (1..=plan.number_of_scenes)
        .map(|i| SceneOut {
            description: format!(
                "Scene {i}: {} stands at the rail as the beam sweeps the fog; slow push-in, sodium light, rain",
                inputs.character_description
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
            idea: inputs.idea.clone(),
            number_of_scenes: plan.number_of_scenes,
            parameters_used: plan.parameters(),
            config_flavor: FlavorReport::from(chosen),
            backend_used: "gemini".to_owned(),
            model_used: plan.model.to_owned(),
            is_mock: false,
            generation_timestamp: "2026-01-31T12:00:00.000Z".to_owned(),
            project_id: None,
        },
    }
}

fn create_scenes(c: &mut Criterion) {
    let flavor = std::env::var("MVGEN_BENCH_FLAVOR").unwrap_or_else(|_| "default".to_owned());
    let request = body(&flavor);
    let mut group = c.benchmark_group("create_scenes");

    group.bench_function("parse_request", |b| {
        b.iter(|| parse::<CreateScenesBody>(black_box(&request)).expect("valid body"));
    });

    let body = parse::<CreateScenesBody>(&request).expect("valid body");
    // The flavor lookup plus what the handler keeps of it (one small String).
    group.bench_function("choose_flavor", |b| {
        b.iter(|| mvgen::flavor::choose(black_box(body.config_flavor.as_deref())));
    });

    let chosen = mvgen::flavor::choose(body.config_flavor.as_deref());
    assert!(!chosen.fell_back(), "MVGEN_BENCH_FLAVOR={flavor} is not an embedded flavor");
    let inputs = scene_inputs(body);
    group.bench_function("scene_plan", |b| {
        b.iter(|| prompts::scene_plan(black_box(&chosen.flavor), black_box(&inputs)));
    });

    let plan = prompts::scene_plan(&chosen.flavor, &inputs);
    let answer = response(&inputs, &plan, &chosen);
    group.bench_function("serialize_response", |b| {
        b.iter(|| serde_json::to_vec(black_box(&answer)).expect("serializable"));
    });

    group.bench_function("parse_plan_serialize", |b| {
        b.iter(|| {
            let body = parse::<CreateScenesBody>(black_box(&request)).expect("valid body");
            let chosen = mvgen::flavor::choose(body.config_flavor.as_deref());
            let inputs = scene_inputs(body);
            let plan = prompts::scene_plan(&chosen.flavor, &inputs);
            serde_json::to_vec(&response(&inputs, &plan, &chosen)).expect("serializable")
        });
    });
    group.finish();
}

criterion_group!(benches, create_scenes);
criterion_main!(benches);
