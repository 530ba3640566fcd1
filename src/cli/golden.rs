//! `mvgen render --all DIR`: golden renders. Every flavor × every request in `DIR/requests/*.json`
//! is rendered through the same `render::plan` as `mvgen render` (so through the server's `prompts`
//! plans) into `DIR/renders/<flavor>/<request>.prompt.txt` (the prompt, byte for byte as sent) and
//! `<request>.json` (flavor, content hash and the parameters sent). Committed, they turn a template
//! edit into a reviewable diff of every real prompt it changes.
//!
//! A request file is one JSON object: `"kind"` (`scenes`, `character` or `video`) and the fields of
//! that `mvgen render` subcommand under their API names (`number_of_scenes`, not `--number-of-scenes`).
//! It is turned into those command-line arguments and parsed by clap, so it is validated exactly as
//! the command line is and there is no second definition of a request.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use serde_json::{Value, json};

use super::render::{self, RenderWhat};
use crate::compiler::Flavor;

/// One request file, parsed as the `render` subcommand it names.
#[derive(Debug, Parser)]
#[command(name = "request", no_binary_name = true)]
struct RequestArgs {
    #[command(subcommand)]
    what: RenderWhat,
}

/// A request file: its name (the file stem) and the subcommand arguments it stands for.
struct Request {
    name: String,
    args: Vec<String>,
}

/// Renders every flavor × request under `dir`, replacing `dir/renders` whole (so a removed flavor or
/// request leaves no stale snapshot behind).
pub fn render_all(flavors: &[&Flavor], dir: &Path) -> Result<ExitCode, String> {
    let requests = read_requests(&dir.join("requests"))?;
    let out = dir.join("renders");
    if out.exists() {
        fs::remove_dir_all(&out).map_err(|e| format!("cannot remove {}: {e}", out.display()))?;
    }
    for flavor in flavors {
        let flavor_dir = out.join(flavor.name.as_ref());
        fs::create_dir_all(&flavor_dir).map_err(|e| format!("cannot create {}: {e}", flavor_dir.display()))?;
        for request in &requests {
            let what = RequestArgs::try_parse_from(&request.args)
                .map_err(|e| format!("{}/requests/{}.json: {e}", dir.display(), request.name))?
                .what;
            let (prompt, parameters) = render::plan(flavor, what)?;
            let meta = json!({ "flavor": flavor.name, "hash": flavor.hash, "parameters": parameters });
            let meta = serde_json::to_string_pretty(&meta).map_err(|e| e.to_string())? + "\n";
            write(&flavor_dir.join(format!("{}.prompt.txt", request.name)), &prompt)?;
            write(&flavor_dir.join(format!("{}.json", request.name)), &meta)?;
        }
    }
    outln!(
        "wrote {} renders ({} flavors x {} requests) to {}",
        flavors.len() * requests.len(),
        flavors.len(),
        requests.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Every `*.json` in `dir`, sorted by name.
fn read_requests(dir: &Path) -> Result<Vec<Request>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("{}: no request files (*.json)", dir.display()));
    }
    paths
        .iter()
        .map(|path| {
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let value: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let args = to_args(&value).map_err(|e| format!("{}: {e}", path.display()))?;
            // Checked here, before anything under renders/ is touched.
            RequestArgs::try_parse_from(&args).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Request { name, args })
        })
        .collect()
}

/// `{"kind": "scenes", "number_of_scenes": 3}` → `["scenes", "--number-of-scenes", "3"]`.
fn to_args(value: &Value) -> Result<Vec<String>, String> {
    let object = value.as_object().ok_or("a request is a JSON object")?;
    let kind = object.get("kind").and_then(Value::as_str).ok_or("\"kind\" must be scenes, character or video")?;
    let mut args = vec![kind.to_string()];
    for (key, value) in object.iter().filter(|(k, _)| *k != "kind") {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => return Err(format!("{key}: expected a string, number or boolean, found {other}")),
        };
        args.push(format!("--{}", key.replace('_', "-")));
        args.push(text);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_fields_become_the_subcommands_arguments() {
        let args = to_args(&json!({"kind": "video", "prompt": "p", "duration": 5, "generate_audio": true}))
            .expect("valid request");
        assert_eq!(args, ["video", "--duration", "5", "--generate-audio", "true", "--prompt", "p"]);
        assert!(RequestArgs::try_parse_from(&args).is_ok());
        let unknown = to_args(&json!({"kind": "video", "prompt": "p", "durtion": 5})).expect("shape is fine");
        assert!(RequestArgs::try_parse_from(&unknown).is_err(), "clap refuses an unknown field");
        assert!(to_args(&json!({"kind": "video", "prompt": ["p"]})).is_err());
        assert!(to_args(&json!({"prompt": "p"})).is_err());
    }
}
