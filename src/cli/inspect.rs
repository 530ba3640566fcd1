//! `mvgen flavors`, `show` and `diff`: reading resolved flavors, for prompt authors.

use serde_json::{Map, Value, json};

use super::Outcome;
use crate::flavor::value_json;
use crate::model::{Entry, FileKind, Flavor, ValueRef};

/// One line per flavor: name, label, parent, content hash.
pub fn flavors(all: &[&Flavor]) -> anyhow::Result<Outcome> {
    let width = all.iter().map(|f| f.name.len()).max().unwrap_or(4).max(4);
    let label_width = all.iter().map(|f| f.display_label().len()).max().unwrap_or(5).max(5);
    let extends_width = all.iter().map(|f| f.extends.as_deref().unwrap_or("-").len()).max().unwrap_or(7).max(7);
    outln!("{:width$}  {:label_width$}  {:extends_width$}  HASH", "NAME", "LABEL", "EXTENDS")?;
    for f in all {
        let extends = f.extends.as_deref().unwrap_or("-");
        outln!("{:width$}  {:label_width$}  {extends:extends_width$}  {}", f.name, f.display_label(), f.hash)?;
    }
    Ok(Outcome::Success)
}

/// Every resolved value, file by file; `explain` adds each value's origin.
pub fn show(flavor: &Flavor, explain: bool, json: bool) -> anyhow::Result<Outcome> {
    if json {
        outln!("{}", serde_json::to_string_pretty(&show_json(flavor))?)?;
        return Ok(Outcome::Success);
    }
    outln!("flavor: {}", flavor.name)?;
    outln!("label: {}", flavor.display_label())?;
    if let Some(d) = &flavor.description {
        outln!("description: {d}")?;
    }
    outln!("extends: {}", flavor.extends.as_deref().unwrap_or("-"))?;
    outln!("hash: {}", flavor.hash)?;
    let mut file = None;
    for entry in flavor.entries() {
        if file != Some(entry.file) {
            outln!("\n# {}", entry.file.file_name())?;
            file = Some(entry.file);
        }
        print_value(entry.key, entry.value)?;
        if explain {
            outln!("  # {}", provenance(flavor, &entry))?;
        }
    }
    Ok(Outcome::Success)
}

/// Where a value came from, e.g. `own: mv1/parameters.yaml:5:19` or
/// `inherited from default: default/parameters.yaml:3:3`, or `built-in default (...)` when no file
/// in the chain sets the key.
pub fn provenance(flavor: &Flavor, entry: &Entry<'_>) -> String {
    if entry.origin.is_builtin() {
        entry.origin.to_string()
    } else if entry.origin.flavor == flavor.name {
        format!("own: {}", entry.origin)
    } else {
        format!("inherited from {}: {}", entry.origin.flavor, entry.origin)
    }
}

fn show_json(flavor: &Flavor) -> Value {
    let mut files = Map::new();
    for kind in FileKind::ALL {
        let mut keys = Map::new();
        for e in flavor.entries().into_iter().filter(|e| e.file == kind) {
            // A built-in default has no file position to point at.
            let origin = if e.origin.is_builtin() {
                Value::Null
            } else {
                json!({
                    "flavor": e.origin.flavor,
                    "file": e.origin.file.file_name(),
                    "line": e.origin.line,
                    "col": e.origin.col,
                })
            };
            keys.insert(
                e.key.to_string(),
                json!({
                    "value": value_json(e.value),
                    "origin": origin,
                    "inherited": !e.origin.is_builtin() && e.origin.flavor != flavor.name,
                    "builtin_default": e.origin.is_builtin(),
                }),
            );
        }
        if !keys.is_empty() {
            files.insert(kind.file_name().to_string(), Value::Object(keys));
        }
    }
    json!({
        "name": flavor.name,
        "label": flavor.label,
        "description": flavor.description,
        "extends": flavor.extends,
        "hash": flavor.hash,
        "files": files,
    })
}

/// Keys whose resolved values differ; a negative answer (exit 1) when there are any, like diff(1).
pub fn diff(a: &Flavor, b: &Flavor) -> anyhow::Result<Outcome> {
    let mut differ = 0;
    for (ea, eb) in a.entries().into_iter().zip(b.entries()) {
        if ea.value == eb.value {
            continue;
        }
        differ += 1;
        outln!("# {} {}", ea.file.file_name(), ea.key)?;
        print_side('-', &a.name, ea.value)?;
        print_side('+', &b.name, eb.value)?;
    }
    if differ == 0 {
        outln!("{} and {} resolve to the same values", a.name, b.name)?;
        Ok(Outcome::Success)
    } else {
        outln!("{differ} key(s) differ")?;
        Ok(Outcome::Negative)
    }
}

fn print_value(key: &str, value: ValueRef<'_>) -> anyhow::Result<()> {
    let text = value.to_string();
    if text.contains('\n') {
        outln!("{key}: |")?;
        for line in text.lines() {
            outln!("  {line}")?;
        }
    } else {
        outln!("{key}: {text}")?;
    }
    Ok(())
}

fn print_side(sign: char, flavor: &str, value: ValueRef<'_>) -> anyhow::Result<()> {
    let text = value.to_string();
    let mut lines = text.lines();
    outln!("{sign} {flavor}: {}", lines.next().unwrap_or(""))?;
    for line in lines {
        outln!("{sign}   {line}")?;
    }
    Ok(())
}
