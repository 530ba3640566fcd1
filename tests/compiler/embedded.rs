//! The drift guard (the table build.rs embedded equals a fresh compile of `configs/`) and the
//! inheritance facts of the shipped flavors, checked against the YAML files themselves.

use std::collections::BTreeSet;
use std::path::Path;

use mvgen::compiler::compile;
use mvgen::flavor;
use mvgen::model::{DEFAULT_FLAVOR, FileKind, Flavor, Origin};

const CONFIGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs");

fn shipped() -> Vec<Flavor> {
    compile(Path::new(CONFIGS)).unwrap_or_else(|d| panic!("the shipped configs must compile:\n{d}"))
}

#[test]
fn embedded_table_equals_a_fresh_compile_of_configs() {
    let compiled = shipped();
    let names: Vec<&str> = compiled.iter().map(|f| f.name.as_ref()).collect();
    assert_eq!(flavor::names(), names.as_slice(), "embedded names");
    for f in &compiled {
        let embedded = flavor::lookup(&f.name).unwrap_or_else(|| panic!("`{}` is not embedded", f.name));
        assert_eq!(embedded, f, "embedded `{}` differs from configs/; rebuild, or fix build.rs", f.name);
    }
    let default = compiled.iter().find(|f| f.name == DEFAULT_FLAVOR).expect("configs/default");
    assert_eq!(flavor::default(), default);
    let all: Vec<&str> = flavor::all().iter().map(|f| f.name.as_ref()).collect();
    assert_eq!(all.first(), Some(&DEFAULT_FLAVOR), "default is listed first");
    assert_eq!(all.len(), compiled.len());
    assert_eq!(flavor::lookup("no-such-flavor"), None);
}

#[test]
fn each_flavor_inherits_exactly_the_keys_it_does_not_set() {
    let compiled = shipped();
    let by_name = |name: &str| compiled.iter().find(|f| f.name == name).expect("flavor exists");
    for f in compiled.iter().filter(|f| f.name != DEFAULT_FLAVOR) {
        let parent = by_name(f.extends.as_deref().expect("every flavor but default has a parent"));
        let own = own_keys(&f.name);
        for e in f.entries() {
            if own.contains(&(e.file, e.key)) {
                assert_eq!(e.origin.flavor, f.name, "{}: {} is set in its own file", f.name, e.key);
            } else {
                let p = parent.entry(e.file, e.key).expect("parent has every key");
                assert_eq!(
                    (e.origin, e.value),
                    (p.origin, p.value),
                    "{}: {} comes from {}",
                    f.name,
                    e.key,
                    parent.name
                );
            }
        }
    }
}

#[test]
fn example_sets_three_parameters_and_takes_the_rest_from_default() {
    let compiled = shipped();
    let example = compiled.iter().find(|f| f.name == "example").expect("configs/example");
    assert_eq!(example.extends.as_deref(), Some(DEFAULT_FLAVOR));
    let own: BTreeSet<&str> =
        example.entries().into_iter().filter(|e| e.origin.flavor == "example").map(|e| e.key).collect();
    assert_eq!(own, BTreeSet::from(["video_type", "camera_angle", "number_of_scenes"]));
    let model = example.entry(FileKind::ImageParams, "model").expect("model");
    let from = Origin { flavor: "default".into(), file: FileKind::ImageParams, line: 2, col: 8 };
    assert_eq!((model.origin, model.value.to_string().as_str()), (&from, "google/imagen-4"));
    let mv1 = compiled.iter().find(|f| f.name == "mv1").expect("configs/mv1");
    assert_eq!(mv1.extends.as_deref(), Some(DEFAULT_FLAVOR), "no `extends:` means default");
}

#[test]
fn every_origin_points_at_its_value_in_the_yaml_file() {
    for f in shipped() {
        for e in f.entries() {
            let o = e.origin;
            if o.is_builtin() {
                // No file sets it: the value is the schema's built-in default for that key.
                assert_eq!(builtin_default(o.file, e.key), Some(e.value.to_string().as_str()), "{}: {}", f.name, e.key);
                continue;
            }
            let path = format!("{CONFIGS}/{}/{}", o.flavor, o.file.file_name());
            let text = std::fs::read_to_string(&path).expect("origin file exists");
            let line = text.lines().nth(o.line as usize - 1).unwrap_or_else(|| panic!("{path} has no line {}", o.line));
            let at: String = line.chars().skip(o.col as usize - 1).collect();
            // The value as written, minus quotes; a block scalar's origin is its first content line,
            // which is where its resolved text starts too.
            let written = at.trim_start_matches('"').trim_end().trim_end_matches('"');
            let value = e.value.to_string();
            assert!(
                !written.is_empty() && value.starts_with(written),
                "{}: {} origin {o} shows {written:?}, value is {value:?}",
                f.name,
                e.key
            );
        }
    }
}

/// The built-in default of `key` in `file`, as the schema declares it.
fn builtin_default(file: FileKind, key: &str) -> Option<&'static str> {
    let table = match file {
        FileKind::Parameters => mvgen::model::Parameters::BUILTIN_DEFAULTS,
        FileKind::ScenePrompts => mvgen::model::ScenePrompts::BUILTIN_DEFAULTS,
        FileKind::ImageParams => mvgen::model::ImageParams::BUILTIN_DEFAULTS,
        FileKind::ImagePrompts => mvgen::model::ImagePrompts::BUILTIN_DEFAULTS,
        FileKind::Meta => &[],
    };
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

#[test]
fn shipped_flavors_take_gemini_video_model_from_the_builtin_default() {
    for f in shipped() {
        let e = f.entry(FileKind::ImageParams, "gemini_video_model").expect("key exists");
        assert!(e.origin.is_builtin(), "{}: {}", f.name, e.origin);
        assert_eq!(f.image_params.gemini_video_model.value, "veo-3.1-generate-preview");
        // Embedded like any other value, so the server reads it with no lookup.
        assert_eq!(
            flavor::lookup(&f.name).expect("embedded").image_params.gemini_video_model,
            f.image_params.gemini_video_model
        );
    }
}

/// The (file, key) pairs a flavor's own files set: top-level `key:` lines, which is all the shipped
/// configs use (comments start with `#`, block scalar text is indented).
fn own_keys(flavor: &str) -> BTreeSet<(FileKind, &'static str)> {
    let mut keys = BTreeSet::new();
    for kind in FileKind::ALL {
        let Ok(text) = std::fs::read_to_string(format!("{CONFIGS}/{flavor}/{}", kind.file_name())) else {
            continue;
        };
        for line in text.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase())) {
            let key = line.split(':').next().expect("split yields one part");
            let known = mvgen::model::Parameters::KEYS
                .iter()
                .chain(mvgen::model::ScenePrompts::KEYS)
                .chain(mvgen::model::ImageParams::KEYS)
                .chain(mvgen::model::ImagePrompts::KEYS)
                .find(|k| **k == key);
            if let Some(k) = known {
                keys.insert((kind, *k));
            }
        }
    }
    keys
}
