//! Flavor content hashes: equal for equal resolved settings whatever the files looked like, different
//! when any value differs, and computed by a pinned algorithm (the shipped flavors' hashes are pinned
//! by the golden renders, `golden.rs`).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use mvgen::compiler::{compile, content_hash};
use mvgen::model::{DEFAULT_FLAVOR, Entry, FileKind, Flavor, Origin, ValueRef};

use crate::fixtures::FIXTURES;
use crate::scratch::{Scratch, copy_tree};

/// A configs tree: `_base`'s default plus `files` as (path under configs, contents).
fn compile_tree(label: &str, files: &[(String, String)]) -> Vec<Flavor> {
    let scratch = Scratch::new(label);
    let dir = scratch.path().join("configs");
    copy_tree(&Path::new(FIXTURES).join("_base/configs"), &dir);
    for (rel, text) in files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("a file in a flavor dir")).expect("create flavor dir");
        fs::write(&path, text).expect("write config file");
    }
    compile(&dir).unwrap_or_else(|d| panic!("the test tree must compile:\n{d}"))
}

fn hash_of<'a>(flavors: &'a [Flavor], name: &str) -> &'a str {
    &flavors.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no flavor {name}")).hash
}

fn file(path: &str, text: &str) -> (String, String) {
    (path.to_string(), text.to_string())
}

#[test]
fn equal_content_hashes_alike_whatever_the_layout_inheritance_or_yaml_style() {
    let flavors = compile_tree(
        "hash-layouts",
        &[
            // Sets one key, inherits the rest from default.
            file("own/parameters.yaml", "video_type: short film\n"),
            // Inherits that key through a parent instead.
            file("mid/parameters.yaml", "video_type: \"short film\"\n"),
            file("child/flavor.yaml", "label: Child\nextends: mid\n"),
            // Restates every key default has, in other scalar styles, other key order, comments.
            file(
                "restated/parameters.yaml",
                "# restated\nscene_model: 'gemini-2.5-flash'\nnumber_of_scenes: 6\ncamera_angle: \"eye level\"\n\
                 video_characteristics: >-\n  warm\n  light\nvideo_type: 'short film'\n\
                 character_characteristics: |-\n  calm and curious\n",
            ),
            file(
                "restated/scene_prompts.yaml",
                "scene_generation_prompt: >-\n  Write {number_of_scenes} scenes\n  about {idea}.\n",
            ),
            file(
                "restated/image_params.yaml",
                "video_rules_template: |-\n  Shoot in {aspect_ratio}.\nvideo_person_generation: \"allow_all\"\n\
                 video_generate_audio: false\nvideo_duration: 8\nvideo_aspect_ratio: '16:9'\n\
                 video_model: \"google/veo-3.1-fast\"\noutput_format: 'png'\nperson_generation: allow_adult\n\
                 safety_filter_level: block_medium_and_above\naspect_ratio: \"3:4\"\nmodel: google/imagen-4\n",
            ),
            file(
                "restated/image_prompts.yaml",
                "character_reference_prompt: 'A portrait of {character_description}.'\n",
            ),
            file("restated/flavor.yaml", "label: Restated\ndescription: every key written out\nextends: child\n"),
            // Default's content under another name, label and description.
            file("same-as-default/flavor.yaml", "label: Twin\ndescription: nothing changed\n"),
        ],
    );
    let own = hash_of(&flavors, "own");
    assert_eq!(own.len(), 12, "12 hex digits: {own}");
    assert!(own.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{own}");
    for name in ["mid", "child", "restated"] {
        assert_eq!(hash_of(&flavors, name), own, "{name} resolves to the same settings as `own`");
    }
    assert_eq!(hash_of(&flavors, "same-as-default"), hash_of(&flavors, DEFAULT_FLAVOR), "names and labels don't count");
    assert_ne!(own, hash_of(&flavors, DEFAULT_FLAVOR), "video_type differs from default");
}

/// A different, still valid value for `entry`, as a YAML scalar.
fn changed(entry: &Entry<'_>) -> String {
    let quoted = |s: String| serde_json::to_string(&s).expect("JSON strings are YAML double-quoted scalars");
    match entry.value {
        // Appending a letter keeps model names valid.
        ValueRef::Text(s) => quoted(format!("{s}x")),
        ValueRef::Int(n) => (n + 1).to_string(),
        ValueRef::Bool(b) => (!b).to_string(),
        // Whitespace alone is a different prompt.
        ValueRef::Template(t) => quoted(format!("{} ", t.source)),
        ValueRef::Choice { wire, .. } => {
            let other = match entry.key {
                "aspect_ratio" | "video_aspect_ratio" => ["1:1", "9:16"],
                "safety_filter_level" => ["block_none", "block_low_and_above"],
                "person_generation" | "video_person_generation" => ["dont_allow", "allow_adult"],
                "output_format" => ["jpg", "webp"],
                key => panic!("add another value of the enum key `{key}` here"),
            };
            quoted(other.into_iter().find(|v| *v != wire).expect("two choices").to_string())
        }
    }
}

#[test]
fn changing_any_single_value_changes_the_hash() {
    let base = compile_tree("hash-base", &[]);
    let default = base.iter().find(|f| f.name == DEFAULT_FLAVOR).expect("default");
    let entries = default.entries();
    let files: Vec<(String, String)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| file(&format!("k{i}/{}", e.file.file_name()), &format!("{}: {}\n", e.key, changed(e))))
        .collect();
    let flavors = compile_tree("hash-changes", &files);
    let mut seen = BTreeSet::from([default.hash.to_string()]);
    for (i, e) in entries.iter().enumerate() {
        let hash = hash_of(&flavors, &format!("k{i}"));
        assert!(
            seen.insert(hash.to_string()),
            "changing {}/{} left a hash seen before: {hash}",
            e.file.file_name(),
            e.key
        );
    }
    assert_eq!(seen.len(), entries.len() + 1);
}

#[test]
fn the_canonical_form_and_digest_are_pinned() {
    // Expected value computed outside Rust from the documented canonical form:
    // python3 -c 'import hashlib; print(hashlib.sha256(b"image_params.yaml/video_duration=i:1:8\n"
    //   b"parameters.yaml/video_type=s:5:Hi \xc3\xa9\n").hexdigest()[:12])'
    let origin = Origin { flavor: Cow::Borrowed("t"), file: FileKind::Parameters, line: 1, col: 1 };
    let entries = [
        Entry { file: FileKind::Parameters, key: "video_type", value: ValueRef::Text("Hi é"), origin: &origin },
        Entry { file: FileKind::ImageParams, key: "video_duration", value: ValueRef::Int(8), origin: &origin },
    ];
    let expected = "0b754a858803";
    assert_eq!(content_hash(&entries), expected, "sorted by file, then key; values length-prefixed in bytes");
    let mut reversed = entries;
    reversed.reverse();
    assert_eq!(content_hash(&reversed), expected, "schema order does not matter");
}
