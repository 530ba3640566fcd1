//! The JSON Schemas under `schemas/`: equal to what `mvgen schema` writes (drift guard), and proven
//! outside Rust: `check-jsonschema` (PyPI) accepts every shipped config file and refuses exactly the
//! files the compiler faults in each fault fixture that a one-file schema can express.
//!
//! `.ci/run` installs check-jsonschema in a venv and points `MVGEN_CHECK_JSONSCHEMA` at it. Without
//! it a plain `cargo test` prints one skip line and passes; under `CI=true` a missing tool fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use mvgen::compiler::Shape;
use mvgen::model::FileKind;
use mvgen::model::template::Template;
use proptest::prelude::*;

use crate::fixtures::{FIXTURES, fixture_names, materialize};
use crate::golden::{assert_trees_equal, read_tree};
use crate::properties::template_like;
use crate::scratch::{Scratch, copy_tree};
use crate::tool::required_tool;

const MVGEN: &str = env!("CARGO_BIN_EXE_mvgen");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Fault fixtures a JSON Schema refuses: wrong types, enums, ranges, model and flavor names, unknown
/// keys, the template grammar (one regex per template key), a top-level list, and in `default/`
/// the required keys and the ban on `extends`.
const REFUSED: &[&str] = &[
    "attribute_access",
    "bad_enum",
    "bad_extends_name",
    "bad_gemini_model",
    "bad_replicate_model",
    "block_template_position",
    "conversion",
    "default_extends",
    "empty_placeholder",
    "escaped_brace_position",
    "folded_template_position",
    "format_spec",
    "incomplete_default_key",
    "indexing",
    "lone_close_brace",
    "lone_open_brace",
    "missing_required_placeholder",
    "multiple_faults",
    "not_a_bool",
    "out_of_range",
    "placeholder_not_allowed",
    "positional_placeholder",
    "top_level_list",
    "unknown_key",
    "unknown_key_no_suggestion",
    "unknown_placeholder",
    "wrong_type",
    "wrong_type_collection",
    "yaml11_bool",
];

/// Fault fixtures no JSON Schema of one file can express, and why. `mvgen check` covers them.
const NOT_EXPRESSIBLE: &[(&str, &str)] = &[
    ("bad_dir_name_space", "a directory name, not file content"),
    ("bad_dir_name_uppercase", "a directory name, not file content"),
    ("duplicate_key", "YAML level: the parser sees one mapping before any schema does"),
    ("duplicate_merge_key", "YAML level: a schema sees the merged mapping, never the `<<` keys"),
    ("extends_cycle", "spans several flavors' files"),
    ("extends_self", "the parent's existence depends on the directory tree"),
    ("incomplete_default_file", "a missing file has no content to validate"),
    ("multiple_documents", "YAML level: a schema validates one document"),
    ("no_default_dir", "a missing directory"),
    ("non_utf8", "an encoding fault: the file never becomes a document"),
    ("stray_file", "a file no schema applies to"),
    ("stray_file_in_configs", "a file no schema applies to"),
    ("subdirectory", "directory layout"),
    ("unknown_parent", "which flavors exist is known only from the directory tree"),
    ("yaml_bad_indent", "not valid YAML, so no document to validate"),
    ("yaml_syntax", "not valid YAML, so no document to validate"),
];

#[test]
fn committed_schemas_match_mvgen_schema() {
    let scratch = Scratch::new("schemas");
    let out = Command::new(MVGEN)
        .args(["schema", "--out", scratch.path().to_str().expect("UTF-8 temp path")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {MVGEN}: {e}"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh = read_tree(scratch.path());
    assert_eq!(fresh.len(), FileKind::ALL.len() * 2, "an any-flavor and a default schema per file");
    assert_trees_equal("schemas", &read_tree(&Path::new(ROOT).join("schemas")), &fresh, "cargo run -- schema");
}

#[test]
fn every_fault_fixture_is_classified_for_json_schema() {
    let listed: Vec<&str> = REFUSED.iter().copied().chain(NOT_EXPRESSIBLE.iter().map(|(n, _)| *n)).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a fixture is listed twice");
    let all: BTreeSet<String> = fixture_names().into_iter().collect();
    let listed: BTreeSet<String> = unique.into_iter().map(String::from).collect();
    assert_eq!(listed, all, "add each new fault fixture to REFUSED or NOT_EXPRESSIBLE in json_schema.rs");
}

#[test]
fn check_jsonschema_accepts_the_shipped_configs_and_refuses_the_expressible_faults() {
    let Some(tool) = required_tool(
        "check-jsonschema",
        "MVGEN_CHECK_JSONSCHEMA",
        "json schema check skipped: install check-jsonschema (pip install check-jsonschema) and set MVGEN_CHECK_JSONSCHEMA",
    ) else {
        return;
    };
    let scratch = Scratch::new("check-jsonschema");
    copy_tree(&Path::new(ROOT).join("configs"), &scratch.path().join("shipped"));
    // No shipped flavor but default sets image_prompts.yaml; and a comment-only file is valid too.
    let extra = scratch.path().join("extra/restyled");
    std::fs::create_dir_all(&extra).expect("create extra flavor");
    let prompt = "character_reference_prompt: |\n  Portrait of {character_description}, {{studio}}.\n";
    std::fs::write(extra.join("image_prompts.yaml"), prompt).expect("write");
    std::fs::write(extra.join("flavor.yaml"), "# nothing to say\n").expect("write");
    let mut expected_refused = BTreeSet::new();
    for name in REFUSED {
        let dir = scratch.path().join("fixtures").join(name);
        materialize(name, &dir);
        let expect = std::fs::read_to_string(Path::new(FIXTURES).join(name).join("expect.txt")).expect("expect.txt");
        for line in expect.lines().filter(|l| !l.trim().is_empty()) {
            let rel = line.split(':').next().unwrap_or_default();
            if schema_for(Path::new(rel)).is_some() {
                expected_refused.insert(dir.join(rel));
            }
        }
        assert!(expected_refused.iter().any(|p| p.starts_with(&dir)), "{name}: no schema-checked file is faulted");
    }

    // One run per schema over every file it applies to (a Python start per file would be slow).
    let mut by_schema: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for file in yaml_files(scratch.path()) {
        if let Some(schema) = schema_for(file.strip_prefix(scratch.path()).expect("below scratch")) {
            by_schema.entry(schema).or_default().push(file);
        }
    }
    assert_eq!(by_schema.len(), FileKind::ALL.len() * 2, "every schema is exercised: {:?}", by_schema.keys());
    let mut refused = BTreeSet::new();
    let mut report = String::new();
    for (schema, files) in &by_schema {
        let out = Command::new(&tool)
            .args(["--schemafile", &format!("{ROOT}/schemas/{schema}"), "-o", "JSON"])
            .args(files)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{schema}: no JSON report ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        for error in json["errors"].as_array().into_iter().chain(json["parse_errors"].as_array()).flatten() {
            let file = PathBuf::from(error["filename"].as_str().expect("filename"));
            report.push_str(&format!("{schema}: {} {}: {}\n", file.display(), error["path"], error["message"]));
            refused.insert(file);
        }
    }
    let shown = |set: &BTreeSet<PathBuf>| {
        set.iter().map(|p| p.strip_prefix(scratch.path()).unwrap_or(p).display().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        shown(&refused),
        shown(&expected_refused),
        "check-jsonschema must refuse exactly the files the compiler faults (and no shipped file):\n{report}"
    );
}

/// Every template key: its file's schema name, the key, and what the compiler allows.
fn template_keys() -> Vec<(String, &'static str, Shape)> {
    let mut out = Vec::new();
    for (stem, keys) in [
        ("scene_prompts", mvgen::model::ScenePrompts::key_schemas()),
        ("image_params", mvgen::model::ImageParams::key_schemas()),
        ("image_prompts", mvgen::model::ImagePrompts::key_schemas()),
    ] {
        for k in keys.into_iter().filter(|k| matches!(k.shape, Shape::Template { .. })) {
            out.push((format!("{stem}.schema.json"), k.key, k.shape));
        }
    }
    out
}

/// Each template key with its pattern from the committed schema, compiled once.
static TEMPLATE_PATTERNS: std::sync::LazyLock<Vec<(&'static str, Shape, fancy_regex::Regex)>> =
    std::sync::LazyLock::new(|| {
        template_keys()
            .into_iter()
            .map(|(schema, key, shape)| {
                let text = std::fs::read_to_string(format!("{ROOT}/schemas/{schema}")).expect("committed schema");
                let doc: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
                let pattern = doc["properties"][key]["pattern"].as_str().expect("template pattern");
                (key, shape, fancy_regex::Regex::new(pattern).expect("pattern compiles"))
            })
            .collect()
    });

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Each template key's pattern in the committed schemas accepts exactly what the compiler does.
    #[test]
    fn template_patterns_accept_exactly_what_the_compiler_accepts(source in template_like()) {
        for (key, shape, regex) in TEMPLATE_PATTERNS.iter() {
            let Shape::Template { allowed, required } = shape else { continue };
            let by_schema = regex.is_match(&source).expect("regex runs");
            let by_compiler = Template::parse(&source, allowed, required).is_ok();
            prop_assert_eq!(by_schema, by_compiler, "{}: {:?}", key, source);
        }
    }
}

/// The schema for a file at `rel` (`<flavor>/<file>.yaml`), if it is a configs file.
fn schema_for(rel: &Path) -> Option<String> {
    let kind = FileKind::from_file_name(rel.file_name()?.to_str()?)?;
    let flavor = rel.parent()?.file_name()?.to_str()?;
    let stem = kind.file_name().trim_end_matches(".yaml");
    Some(if flavor == "default" { format!("{stem}.default.schema.json") } else { format!("{stem}.schema.json") })
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").map(|e| e.expect("entry")) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
    out.sort();
    out
}
