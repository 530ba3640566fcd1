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

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use serde_json::{Value, json};

use super::Outcome;
use super::render::{self, RenderWhat};
use crate::model::Flavor;

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
pub fn render_all(flavors: &[&Flavor], dir: &Path) -> anyhow::Result<Outcome> {
    let requests = read_requests(&dir.join("requests"))?;
    let out = dir.join("renders");
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("cannot remove {}", out.display()))?;
    }
    for flavor in flavors {
        let flavor_dir = out.join(flavor.name.as_ref());
        fs::create_dir_all(&flavor_dir).with_context(|| format!("cannot create {}", flavor_dir.display()))?;
        for request in &requests {
            let what = RequestArgs::try_parse_from(&request.args)
                .with_context(|| format!("{}/requests/{}.json", dir.display(), request.name))?
                .what;
            let (prompt, parameters) = render::plan(flavor, what).map_err(anyhow::Error::msg)?;
            let meta = json!({ "flavor": flavor.name, "hash": flavor.hash, "parameters": parameters });
            let meta = serde_json::to_string_pretty(&meta)? + "\n";
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
    )?;
    Ok(Outcome::Success)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Every `*.json` in `dir`, sorted by name.
fn read_requests(dir: &Path) -> anyhow::Result<Vec<Request>> {
    let entries = fs::read_dir(dir).with_context(|| dir.display().to_string())?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("{}: no request files (*.json)", dir.display());
    }
    paths
        .iter()
        .map(|path| {
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
            let shown = || path.display().to_string();
            let text = fs::read_to_string(path).with_context(shown)?;
            let value: Value = serde_json::from_str(&text).with_context(shown)?;
            let args = to_args(&value).map_err(|e| anyhow!("{}: {e}", path.display()))?;
            // Checked here, before anything under renders/ is touched.
            RequestArgs::try_parse_from(&args).with_context(shown)?;
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
