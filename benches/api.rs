//! What `POST /api/mv/create_scenes` costs mvgen itself, with the network and the scene model left
//! out: parsing the request body, choosing the flavor, checking the body and rendering the scene
//! plan (`generation::scenes`), and serializing the answer. Each stage alone, then all in a row.
//!
//! `cargo bench --bench api` (or `cargo bench-static --bench api`, on the shipping static build).
//! `MVGEN_BENCH_FLAVOR` names the flavor the body asks for (default `default`), so `bench/scale.sh`
//! can time choosing one flavor among 1000. The HTTP side (sockets, hyper, the Gemini client) is
//! measured by `bench/load.sh`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mvgen::api::extract::parse;
use mvgen::api::{CreateScenesBody, CreateScenesResponse, FlavorReport, OutputFiles, SceneOut, ScenesMetadata};
use mvgen::generation::Generation;
use mvgen::generation::scenes::{Scenes, ScenesPlan};

/// The body `bench/load.sh` posts, naming `flavor` as the create page does.
fn body(flavor: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "idea": "a lighthouse keeper's last night before the light is automated",
        "character_description": "an old sailor with a grey beard and a yellow raincoat",
        "config_flavor": flavor,
    }))
    .expect("a JSON value serializes")
}

/// The body checked and normalised as the endpoint does it.
fn scenes(body: CreateScenesBody) -> Scenes {
    Scenes::validate(body).expect("a valid body")
}

/// An answer shaped like the handler's, with scenes as long as a scene model writes them.
fn response(plan: &ScenesPlan, chosen: &mvgen::flavor::Chosen) -> CreateScenesResponse {
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
    let valid = scenes(body);
    // A plan takes its request (it keeps the idea and description, moved): each iteration gets a
    // copy made outside the timing, and drops the plan inside it, as `iter` does.
    group.bench_function("scene_plan", |b| {
        b.iter_batched(
            || valid.clone(),
            |valid| {
                black_box(valid.plan(black_box(&chosen.flavor)));
            },
            BatchSize::SmallInput,
        );
    });

    let (plan, _) = valid.plan(&chosen.flavor);
    let answer = response(&plan, &chosen);
    group.bench_function("serialize_response", |b| {
        b.iter(|| serde_json::to_vec(black_box(&answer)).expect("serializable"));
    });

    group.bench_function("parse_plan_serialize", |b| {
        b.iter(|| {
            let body = parse::<CreateScenesBody>(black_box(&request)).expect("valid body");
            let chosen = mvgen::flavor::choose(body.config_flavor.as_deref());
            let (plan, _) = scenes(body).plan(&chosen.flavor);
            serde_json::to_vec(&response(&plan, &chosen)).expect("serializable")
        });
    });
    group.finish();
}

criterion_group!(benches, create_scenes);
criterion_main!(benches);
