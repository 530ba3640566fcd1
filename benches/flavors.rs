//! What a request pays for flavors at run time: the lookup, the choice a handler makes (embedded
//! and live sources side by side), the default scene prompt, and every template of every shipped
//! flavor. Run with `cargo bench --bench flavors`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mvgen::flavor;
use mvgen::live_configs::{FlavorSource, LiveConfigs};
use mvgen::model::{ValueRef, template::Var};
use mvgen::prompts::{SceneInputs, scene_plan};

fn inputs() -> SceneInputs {
    SceneInputs {
        idea: "a lighthouse keeper who befriends a storm".into(),
        character_description: "a woman in her sixties with a yellow raincoat".into(),
        ..Default::default()
    }
}

fn lookup(c: &mut Criterion) {
    c.bench_function("lookup/mv1", |b| b.iter(|| flavor::lookup(black_box("mv1"))));
    c.bench_function("lookup/missing", |b| b.iter(|| flavor::lookup(black_box("no-such-flavor"))));
}

/// The handler's choice: `flavor::choose` directly (the embedded path), through the source the
/// server picks at start (`Embedded`: must cost the same), and from a live table (`--configs`).
fn choose(c: &mut Criterion) {
    c.bench_function("choose/direct/mv1", |b| b.iter(|| flavor::choose(black_box(Some("mv1")))));
    let embedded = FlavorSource::Embedded;
    c.bench_function("choose/embedded_source/mv1", |b| b.iter(|| embedded.choose(black_box(Some("mv1")))));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let live = FlavorSource::Live(LiveConfigs::open(&dir).expect("configs/ compiles"));
    c.bench_function("choose/live_source/mv1", |b| b.iter(|| live.choose(black_box(Some("mv1")))));
}

fn default_scene_prompt(c: &mut Criterion) {
    let inputs = inputs();
    // The plan takes its inputs: each iteration gets a copy made outside the timing, and drops
    // the plan inside it, as `iter` does.
    c.bench_function("lookup+scene_plan/default", |b| {
        b.iter_batched(
            || inputs.clone(),
            |inputs| {
                let f = flavor::lookup(black_box("default")).expect("default is embedded");
                black_box(scene_plan(f, inputs));
            },
            BatchSize::SmallInput,
        )
    });
}

fn every_template(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    for flavor in flavor::all() {
        for entry in flavor.entries() {
            let ValueRef::Template(t) = entry.value else { continue };
            let value = |v: Var| match v {
                Var::Idea => "a lighthouse keeper who befriends a storm",
                Var::NumberOfScenes => "6",
                _ => "some request value of ordinary length",
            };
            group.bench_function(format!("{}/{}", flavor.name, entry.key), |b| b.iter(|| black_box(t).render(value)));
        }
    }
    group.finish();
}

criterion_group!(benches, lookup, choose, default_scene_prompt, every_template);
criterion_main!(benches);
