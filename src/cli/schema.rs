//! `mvgen schema [--out DIR]`: writes the JSON Schema of every configs file (see `json_schema`).

use std::path::Path;
use std::process::ExitCode;

/// Writes every schema into `dir` (created if needed), pretty-printed with a final newline.
pub fn schema(dir: &Path) -> Result<ExitCode, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let schemas = crate::json_schema::all();
    for (name, doc) in &schemas {
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())? + "\n";
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    outln!("wrote {} schemas to {}", schemas.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}
