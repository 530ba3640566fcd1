//! Finding flavors on disk: which directories are flavors, which files they hold, and reading them.
//! Directory-level faults (bad names, stray files, a missing default) are reported here.

use std::fs;
use std::path::Path;

use super::diag::{Diagnostic, Diagnostics};
use super::read::read_config_file;
use super::yaml::YamlFile;
use crate::model::FileKind;
use crate::model::did_you_mean;
use crate::model::{DEFAULT_FLAVOR, MAX_FLAVOR_NAME_CHARS};

/// One flavor directory and the allowed files that parsed. `broken` is set when any of its files
/// could not be read, so later stages don't report knock-on faults.
pub struct FlavorSource {
    pub name: String,
    pub path: String,
    pub files: Vec<(FileKind, YamlFile)>,
    /// Every allowed file that was read (parsed or not) with its size in bytes.
    pub read: Vec<(String, usize)>,
    pub broken: bool,
}

/// Lists the flavors under `dir`, sorted by name, reading every allowed file.
pub fn discover(dir: &Path, diags: &mut Diagnostics) -> Vec<FlavorSource> {
    let root = dir.display().to_string().trim_end_matches('/').to_string();
    let Some(entries) = sorted_entries(dir, &root, diags) else {
        return Vec::new();
    };
    let mut flavors = Vec::new();
    for (name, path) in entries {
        let shown = format!("{root}/{name}");
        if !path.is_dir() {
            // A README beside the flavors is documentation, not configuration.
            if !name.to_ascii_lowercase().starts_with("readme") {
                diags.push(Diagnostic::whole(
                    shown,
                    "only flavor directories belong in the configs directory; move this file into one, or remove it",
                ));
            }
            continue;
        }
        if !super::is_flavor_name(&name) {
            diags.push(Diagnostic::whole(
                shown,
                format!(
                    "invalid flavor name `{name}`: use lowercase letters, digits, '-' and '_', starting with a letter or digit, at most {MAX_FLAVOR_NAME_CHARS} characters"
                ),
            ));
            continue;
        }
        flavors.push(read_flavor(name, &path, shown, diags));
    }
    if !flavors.iter().any(|f| f.name == DEFAULT_FLAVOR) {
        diags.push(Diagnostic::whole(
            root,
            format!(
                "no `{DEFAULT_FLAVOR}` flavor: create {DEFAULT_FLAVOR}/ with parameters.yaml, scene_prompts.yaml, image_params.yaml and image_prompts.yaml; every other flavor inherits from it"
            ),
        ));
    }
    flavors
}

fn read_flavor(name: String, dir: &Path, shown: String, diags: &mut Diagnostics) -> FlavorSource {
    let mut source = FlavorSource { name, path: shown.clone(), files: Vec::new(), read: Vec::new(), broken: false };
    let Some(entries) = sorted_entries(dir, &shown, diags) else {
        source.broken = true;
        return source;
    };
    let allowed: Vec<&str> = FileKind::ALL.iter().map(|k| k.file_name()).collect();
    let allowed_list = allowed.join(", ");
    for (file_name, path) in entries {
        let file_shown = format!("{shown}/{file_name}");
        if path.is_dir() {
            diags.push(Diagnostic::whole(
                file_shown,
                format!("subdirectories are not allowed in a flavor; a flavor holds only {allowed_list}"),
            ));
            source.broken = true;
            continue;
        }
        let Some(kind) = FileKind::from_file_name(&file_name) else {
            let hint = did_you_mean(&file_name, &allowed);
            diags.push(Diagnostic::whole(
                file_shown,
                format!("unexpected file `{file_name}`{hint}; a flavor holds only {allowed_list}"),
            ));
            source.broken = true;
            continue;
        };
        let parsed = read_config_file(&path, &file_shown).and_then(|bytes| {
            source.read.push((file_shown.clone(), bytes.len()));
            YamlFile::parse(file_shown, &bytes)
        });
        match parsed {
            Ok(file) => source.files.push((kind, file)),
            Err(d) => {
                diags.push(d);
                source.broken = true;
            }
        }
    }
    source
}

/// A directory's entries as (UTF-8 name, path), sorted by name, hidden ones (dotfiles such as
/// `.gitkeep` or editor swap files) left out.
fn sorted_entries(dir: &Path, shown: &str, diags: &mut Diagnostics) -> Option<Vec<(String, std::path::PathBuf)>> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) => {
            diags.push(Diagnostic::whole(shown, format!("cannot read directory: {e}")));
            return None;
        }
    };
    let mut entries = Vec::new();
    for entry in read {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                diags.push(Diagnostic::whole(shown, format!("cannot read directory: {e}")));
                continue;
            }
        };
        match entry.file_name().into_string() {
            Ok(name) if name.starts_with('.') => {}
            Ok(name) => entries.push((name, entry.path())),
            Err(raw) => diags.push(Diagnostic::whole(
                format!("{shown}/{}", raw.to_string_lossy()),
                "file name is not valid UTF-8: rename it",
            )),
        }
    }
    entries.sort();
    Some(entries)
}
