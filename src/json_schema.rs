//! JSON Schemas (draft 2020-12) of the configs files, for prompt authors' editors and CI, generated
//! from the compiler's own schema definitions (the keys of `settings_files!` in `model/settings.rs`
//! and the checks in `compiler/schema.rs` its keys use), so they can't disagree with the build
//! about types, enums, ranges, patterns or keys.
//!
//! A JSON Schema sees one file and not the directory it sits in, so each file has two:
//! `<file>.schema.json` for any flavor (every key optional: left out, it is inherited) and
//! `<file>.default.schema.json` for `configs/default/` (also `required`, and no `extends`). What
//! needs more than one file (inheritance cycles, unknown parents, missing files, directory names)
//! stays with `mvgen check`.

use serde_json::{Map, Value, json};

use crate::compiler::{KeySchema, Shape, meta_key_schemas};
use crate::model::template::Var;
use crate::model::{FileKind, ImageParams, ImagePrompts, Parameters, ScenePrompts};

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Every schema file: (file name, document), in `FileKind::ALL` order, any-flavor variant first.
pub fn all() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for kind in FileKind::ALL {
        let stem = kind.file_name().trim_end_matches(".yaml");
        out.push((format!("{stem}.schema.json"), file_schema(kind, false)));
        out.push((format!("{stem}.default.schema.json"), file_schema(kind, true)));
    }
    out
}

/// Keys that may be left out even in `default`, with their built-in value: they drop out of
/// `required` and carry their `default`.
fn builtin_defaults(kind: FileKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        FileKind::Parameters => Parameters::BUILTIN_DEFAULTS,
        FileKind::ScenePrompts => ScenePrompts::BUILTIN_DEFAULTS,
        FileKind::ImageParams => ImageParams::BUILTIN_DEFAULTS,
        FileKind::ImagePrompts => ImagePrompts::BUILTIN_DEFAULTS,
        FileKind::Meta => &[],
    }
}

fn keys_of(kind: FileKind) -> (Vec<KeySchema>, &'static [&'static str]) {
    match kind {
        FileKind::Parameters => (Parameters::key_schemas(), Parameters::DOCS),
        FileKind::ScenePrompts => (ScenePrompts::key_schemas(), ScenePrompts::DOCS),
        FileKind::ImageParams => (ImageParams::key_schemas(), ImageParams::DOCS),
        FileKind::ImagePrompts => (ImagePrompts::key_schemas(), ImagePrompts::DOCS),
        FileKind::Meta => {
            (meta_key_schemas(), &["doc = \" `flavor.yaml`: the flavor's label, description and parent.\""])
        }
    }
}

fn file_schema(kind: FileKind, default: bool) -> Value {
    let (keys, file_docs) = keys_of(kind);
    let builtins = builtin_defaults(kind);
    let mut properties = Map::new();
    let mut required = Vec::new();
    for key in &keys {
        // The root of inheritance has no parent to name.
        if default && kind == FileKind::Meta && key.key == "extends" {
            continue;
        }
        let mut property = shape_schema(&key.shape);
        let mut description = doc_text(key.docs);
        let builtin = builtins.iter().find(|(k, _)| *k == key.key).map(|(_, v)| *v);
        if let Some(value) = builtin {
            property.insert("default".into(), value.into());
            description.push_str(&format!(" Built in when no file sets it: {value:?}."));
        }
        let said = shape_description(&key.shape);
        property.insert("description".into(), Value::from(join(&description, &said)));
        properties.insert(key.key.to_string(), Value::Object(property));
        if default && kind != FileKind::Meta && builtin.is_none() {
            required.push(key.key);
        }
    }
    let scope = if default && kind == FileKind::Meta {
        "For configs/default/flavor.yaml: the default flavor is the root of inheritance, so it takes no `extends`."
            .to_string()
    } else if default {
        format!(
            "For configs/default/{}: the default flavor is the root of inheritance, so it sets every key.",
            kind.file_name()
        )
    } else {
        format!(
            "For configs/<flavor>/{}: every key is optional; a key left out is inherited from the parent flavor.",
            kind.file_name()
        )
    };
    let mut schema = json!({
        "$schema": DRAFT,
        "title": format!("mvgen {}{}", if default { "default/" } else { "" }, kind.file_name()),
        "description": join(&doc_text(file_docs), &scope),
        // An empty or comment-only file is valid YAML null; it sets nothing.
        "type": if required.is_empty() { json!(["object", "null"]) } else { json!("object") },
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn shape_schema(shape: &Shape) -> Map<String, Value> {
    let value = match shape {
        Shape::Text => json!({ "type": "string" }),
        Shape::Pattern { pattern, .. } => json!({ "type": "string", "pattern": pattern }),
        Shape::Int { min, max } => json!({ "type": "integer", "minimum": min, "maximum": max }),
        Shape::Bool => json!({ "type": "boolean" }),
        Shape::OneOf(names) => json!({ "type": "string", "enum": names }),
        Shape::Template { allowed, required } => {
            json!({ "type": "string", "pattern": template_pattern(allowed, required) })
        }
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn shape_description(shape: &Shape) -> String {
    let braces = |vars: &[Var]| vars.iter().map(|v| format!("{{{}}}", v.name())).collect::<Vec<_>>().join(", ");
    match shape {
        Shape::Text => "A string.".into(),
        Shape::Pattern { what, .. } => format!("{}{}.", what[..1].to_uppercase(), &what[1..]),
        Shape::Int { min, max } => format!("An integer in {min}..={max}."),
        Shape::Bool => "true or false.".into(),
        Shape::OneOf(names) => format!("One of: {}.", names.join(", ")),
        Shape::Template { allowed, required } => {
            let mut s = format!(
                "A prompt template (Python str.format subset): placeholders {}; write {{{{ and }}}} for literal braces.",
                braces(allowed)
            );
            if !required.is_empty() {
                s.push_str(&format!(" Must use {}.", braces(required)));
            }
            s
        }
    }
}

/// The template grammar the compiler accepts, as one regex: the text is a sequence of plain
/// characters, `{{`, `}}` and `{name}` with an allowed name (so a single brace, `{}`, `{0}`,
/// `{a.b}`, `{a[0]}`, `{a!r}` and `{a:>3}` never match), and one lookahead per required placeholder.
/// The tokens are unambiguous (`{` starts either `{{` or `{name}`), so `{{idea}}` is not `{idea}`.
fn template_pattern(allowed: &[Var], required: &[Var]) -> String {
    let names = allowed.iter().map(|v| v.name()).collect::<Vec<_>>().join("|");
    let token = format!(r"(?:[^{{}}]|\{{\{{|\}}\}}|\{{(?:{names})\}})");
    let mut pattern = String::from("^");
    for var in required {
        pattern.push_str(&format!(r"(?={token}*?\{{{}\}})", var.name()));
    }
    pattern.push_str(&format!("{token}*$"));
    pattern
}

/// A doc attribute's text, lines joined with spaces. `stringify!` gives `///` lines as
/// `doc = r" Seconds."` (or `r#"..."#` when the text has a quote); a hand-written `doc = "..."` has
/// escapes. Other attributes have no text.
fn doc_text(docs: &[&str]) -> String {
    let lines: Vec<String> = docs.iter().filter_map(|d| doc_line(d)).filter(|l| !l.is_empty()).collect();
    lines.join(" ")
}

fn doc_line(attribute: &str) -> Option<String> {
    let literal = attribute.trim().strip_prefix("doc")?.trim_start().strip_prefix('=')?.trim();
    let text = match literal.strip_prefix('r') {
        Some(raw) => {
            let hashes = raw.len() - raw.trim_start_matches('#').len();
            let fence = "#".repeat(hashes);
            raw.strip_prefix(&format!("{fence}\""))?.strip_suffix(&format!("\"{fence}"))?.to_string()
        }
        None => literal.strip_prefix('"')?.strip_suffix('"')?.replace("\\\"", "\"").replace("\\\\", "\\"),
    };
    Some(text.trim().to_string())
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a} {b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_attributes_become_plain_text() {
        assert_eq!(doc_text(&["doc = \" Seconds.\"", "doc = \" Said \\\"twice\\\".\""]), "Seconds. Said \"twice\".");
        assert_eq!(
            doc_text(&["doc = r\" Plain.\"", "doc = r#\" A \"quoted\" \\ word.\"#"]),
            "Plain. A \"quoted\" \\ word."
        );
        assert_eq!(
            Parameters::key_schemas().iter().find(|k| k.key == "scene_model").map(|k| doc_text(k.docs)).as_deref(),
            Some(
                "The Gemini model that writes the scenes. The service mvgen replaces had no such key (its model \
                 was a constant in code), hence the built-in default."
            )
        );
        assert_eq!(doc_text(&["allow(dead_code)"]), "");
    }

    #[test]
    fn template_pattern_spells_out_the_grammar() {
        let p = template_pattern(&[Var::Idea, Var::VideoType], &[Var::Idea]);
        assert_eq!(
            p,
            r"^(?=(?:[^{}]|\{\{|\}\}|\{(?:idea|video_type)\})*?\{idea\})(?:[^{}]|\{\{|\}\}|\{(?:idea|video_type)\})*$"
        );
    }

    #[test]
    fn default_requires_every_key_and_others_none() {
        let docs = all();
        let names: Vec<&str> = docs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), 10, "{names:?}");
        let get = |name: &str| &docs.iter().find(|(n, _)| n == name).expect(name).1;
        // Every key but those with a built-in default.
        let required = get("parameters.default.schema.json")["required"].clone();
        assert_eq!(required.as_array().map(Vec::len), Some(Parameters::KEYS.len() - 1), "{required}");
        assert!(!required.as_array().is_some_and(|r| r.contains(&"scene_model".into())), "{required}");
        assert_eq!(get("parameters.default.schema.json")["properties"]["scene_model"]["default"], "gemini-2.5-pro");
        assert!(get("parameters.schema.json").get("required").is_none());
        assert!(get("flavor.default.schema.json")["properties"].get("extends").is_none());
        assert!(get("flavor.schema.json")["properties"]["extends"].is_object());
        assert_eq!(get("image_params.schema.json")["additionalProperties"], false);
    }
}
