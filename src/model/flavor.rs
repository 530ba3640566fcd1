//! What a compiled flavor is: its name and description, its content hash and every settings file,
//! fully resolved.

use super::key::{Entry, Key};
use super::origin::FileKind;
use super::settings::{ImageParams, ImagePrompts, Parameters, ScenePrompts};
use super::value::Text;

/// A fully resolved flavor: every key has a value, own or inherited.
#[derive(Debug, Clone, PartialEq)]
pub struct Flavor {
    pub name: Text,
    pub label: Option<Text>,
    pub description: Option<Text>,
    /// The parent keys were inherited from; `None` only for `default`.
    pub extends: Option<Text>,
    /// The content hash of the resolved settings (`hash.rs`): equal for equal content, whatever
    /// the files looked like.
    pub hash: Text,
    pub parameters: Parameters,
    pub scene_prompts: ScenePrompts,
    pub image_params: ImageParams,
    pub image_prompts: ImagePrompts,
}

impl Flavor {
    /// Every resolved key, file by file, in schema order.
    pub fn entries(&self) -> Vec<Entry<'_>> {
        let mut all = self.parameters.entries();
        all.extend(self.scene_prompts.entries());
        all.extend(self.image_params.entries());
        all.extend(self.image_prompts.entries());
        all
    }

    /// The resolved value of `key` in `file`.
    pub fn entry(&self, file: FileKind, key: &str) -> Option<Entry<'_>> {
        match file {
            FileKind::Parameters => self.parameters.entry(key),
            FileKind::ScenePrompts => self.scene_prompts.entry(key),
            FileKind::ImageParams => self.image_params.entry(key),
            FileKind::ImagePrompts => self.image_prompts.entry(key),
            // flavor.yaml (name, label, extends) has no settings keys.
            FileKind::Meta => None,
        }
    }

    /// The resolved value of the typed `key`.
    pub fn entry_for(&self, key: Key) -> Option<Entry<'_>> {
        self.entry(key.file, key.name)
    }

    /// The human name: the label when set, else the flavor name.
    pub fn display_label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}
