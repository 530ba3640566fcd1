//! `mvgen schema [--out DIR]`: writes the JSON Schema of every configs file (see `json_schema`).

use std::path::Path;

use anyhow::Context as _;

use super::Outcome;

/// Writes every schema into `dir` (created if needed), pretty-printed with a final newline.
pub fn schema(dir: &Path) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let schemas = crate::json_schema::all();
    for (name, doc) in &schemas {
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(doc)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    outln!("wrote {} schemas to {}", schemas.len(), dir.display())?;
    Ok(Outcome::Success)
}
