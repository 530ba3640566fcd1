//! What `POST /api/mv/create_scenes` costs mvgen itself, with the network and the scene model left
//! out: parsing the request body, choosing the flavor, checking the body and rendering the scene
//! plan (`generation::scenes`), and serializing the answer. Each stage alone, then all in a row.
//!
//! `cargo bench --bench api` (or `cargo bench-static --bench api`, on the shipping static build).
//! `MVGEN_BENCH_FLAVOR` names the flavor the body asks for (default `default`), so `bench/scale.sh`
//! can time choosing one flavor among 1000. The HTTP side (sockets, hyper, the Gemini client) is
//! measured by `bench/load.sh`.

use std::hint::black_box;

#[path = "support/create_scenes.rs"]
mod request;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mvgen::generation::Generation;
use mvgen::generation::scenes::CreateScenesBody;
use mvgen::json_body::parse;
use request::{body, response, scenes};

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
