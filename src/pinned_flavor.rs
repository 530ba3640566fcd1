//! A project's flavor, pinned: the resolved settings it was created with are stored beside it
//! (`content`), and every later generation for it uses exactly those (`restore`), even after a
//! live configs edit, a new binary with other flavors, or the flavor's removal.
//!
//! The stored form is the resolved flavor as JSON, file by file and key by key (readable in the
//! database, and diffable). Restoring prefers the served flavor of that name when its content hash
//! is still the pinned one (no work at all); only otherwise is the content compiled back, by the
//! same compiler that built it, and the result kept per hash for the process's life. This and
//! `live_configs` are the only run-time users of the compiler, and this one only for flavors that
//! changed since a project pinned them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::compiler::compile_flavor_files;
use crate::flavor::{FlavorRef, value_json};
use crate::live_configs::FlavorSource;
use crate::model::{FileKind, Flavor};

/// The settings files a flavor's content holds, in schema order.
const FILES: [FileKind; 4] =
    [FileKind::Parameters, FileKind::ScenePrompts, FileKind::ImageParams, FileKind::ImagePrompts];

/// How many restored flavors a process keeps (a handful of pins per changed flavor in practice).
const KEPT: usize = 64;

/// `flavor`'s resolved settings as JSON: `{"parameters.yaml": {key: value, …}, …}`.
pub fn content(flavor: &Flavor) -> Value {
    let mut files = Map::new();
    for kind in FILES {
        let keys: Map<String, Value> = flavor
            .entries()
            .into_iter()
            .filter(|e| e.file == kind)
            .map(|e| (e.key.to_owned(), value_json(e.value)))
            .collect();
        files.insert(kind.file_name().to_owned(), Value::Object(keys));
    }
    Value::Object(files)
}

/// Restored flavors, by `name/hash`, for the process's life (at most [`KEPT`]).
static RESTORED: Mutex<Option<HashMap<String, Arc<Flavor>>>> = Mutex::new(None);

/// The flavor a project pinned as `name` with content hash `hash`, when no stored content is
/// needed: the served flavor of that name while its hash is the pinned one, or one restored
/// earlier in this process.
pub fn at_hand(source: &FlavorSource, name: &str, hash: &str) -> Option<FlavorRef> {
    let served = source.choose(Some(name));
    if !served.fell_back() && served.flavor.hash == hash {
        return Some(served.flavor);
    }
    let key = format!("{name}/{hash}");
    RESTORED.lock().ok().and_then(|kept| kept.as_ref()?.get(&key).cloned()).map(FlavorRef::Pinned)
}

/// The flavor a project pinned as `name` with content hash `hash` and stored `content`.
pub fn restore(source: &FlavorSource, name: &str, hash: &str, content: &str) -> Result<FlavorRef, String> {
    if let Some(flavor) = at_hand(source, name, hash) {
        return Ok(flavor);
    }
    let flavor = Arc::new(compile(name, hash, content)?);
    if let Ok(mut kept) = RESTORED.lock() {
        let kept = kept.get_or_insert_with(HashMap::new);
        if kept.len() >= KEPT {
            kept.clear();
        }
        kept.insert(format!("{name}/{hash}"), flavor.clone());
    }
    Ok(FlavorRef::Pinned(flavor))
}

/// Compiles stored content back into a flavor, and checks it is the one pinned.
fn compile(name: &str, hash: &str, content: &str) -> Result<Flavor, String> {
    let stored: Map<String, Value> =
        serde_json::from_str(content).map_err(|e| format!("the pinned flavor {name:?} is unreadable: {e}"))?;
    let mut files = Vec::new();
    for kind in FILES {
        let keys = stored.get(kind.file_name()).and_then(Value::as_object);
        // JSON is YAML: each value as a JSON scalar is read back as exactly that value.
        let text: String = keys.into_iter().flatten().map(|(key, value)| format!("{key}: {value}\n")).collect();
        files.push((kind, text));
    }
    let flavor = compile_flavor_files(name, &files)
        .map_err(|d| format!("the pinned flavor {name:?} no longer compiles: {}", d.to_string().trim()))?;
    if flavor.hash != hash {
        return Err(format!("the pinned flavor {name:?} restored as {} rather than {hash}", flavor.hash));
    }
    Ok(flavor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_flavor_comes_back_from_its_content_with_its_hash() {
        for flavor in crate::flavor::all() {
            let text = content(flavor).to_string();
            let restored = compile(&flavor.name, &flavor.hash, &text).expect("restores");
            assert_eq!(restored.hash, flavor.hash, "{}", flavor.name);
            assert_eq!(restored.entries().len(), flavor.entries().len());
        }
    }

    #[test]
    fn a_pin_whose_flavor_changed_is_compiled_back_and_one_tampered_with_is_refused() {
        let flavor = crate::flavor::default();
        let mut content = content(flavor);
        // Served under this name, but with another hash: the stored content is used.
        let restored = restore(&FlavorSource::Embedded, "default", "000000000000", &content.to_string());
        assert!(restored.expect_err("the hash is not the content's").contains("restored as"));
        content["parameters.yaml"]["number_of_scenes"] = 7.into();
        let changed = compile("default", "x", &content.to_string()).expect_err("hash differs");
        assert!(changed.contains("restored as"), "{changed}");
        content["parameters.yaml"]["number_of_scenes"] = "many".into();
        let broken = compile("default", "x", &content.to_string()).expect_err("does not compile");
        assert!(broken.contains("number_of_scenes"), "{broken}");
    }

    #[test]
    fn a_pin_of_a_flavor_no_longer_served_is_restored_from_its_content() {
        let flavor = crate::flavor::default();
        let content = content(flavor).to_string();
        let restored = restore(&FlavorSource::Embedded, "gone-flavor", &flavor.hash, &content).expect("restores");
        assert!(matches!(restored, FlavorRef::Pinned(_)));
        assert_eq!(restored.name, "gone-flavor");
        assert_eq!(restored.hash, flavor.hash);
        let served = restore(&FlavorSource::Embedded, "default", &flavor.hash, &content).expect("served");
        assert!(matches!(served, FlavorRef::Embedded(_)));
    }
}
