//! One flavor's own settings: every key its files set, checked against the schema, before inheritance.

use std::borrow::Cow;

use super::diag::{Diagnostic, Diagnostics};
use super::discover::FlavorSource;
use super::schema::{
    AnyText, Check, Fault, PartialImageParams, PartialImagePrompts, PartialParameters, PartialScenePrompts, SetError,
    keys_of,
};
use super::yaml::{At, Scalar, YamlFile};
use crate::model::did_you_mean;
use crate::model::{FileKind, Origin, Text};

/// What a flavor sets itself, plus what `resolve` needs to report inheritance faults.
pub struct Layer {
    pub name: String,
    pub path: String,
    pub label: Option<Text>,
    pub description: Option<Text>,
    /// The `extends:` value with its position in flavor.yaml.
    pub extends: Option<At<String>>,
    pub parameters: PartialParameters,
    pub scene_prompts: PartialScenePrompts,
    pub image_params: PartialImageParams,
    pub image_prompts: PartialImagePrompts,
    /// Which files exist, for "default must be complete" messages.
    pub files: Vec<FileKind>,
    /// Set when any fault was found in this flavor's own files.
    pub broken: bool,
}

impl Layer {
    /// Checks every key of every file in `source`, reporting each fault.
    pub fn read(source: FlavorSource, diags: &mut Diagnostics) -> Layer {
        let mut layer = Layer {
            name: source.name,
            path: source.path,
            label: None,
            description: None,
            extends: None,
            parameters: PartialParameters::default(),
            scene_prompts: PartialScenePrompts::default(),
            image_params: PartialImageParams::default(),
            image_prompts: PartialImagePrompts::default(),
            files: source.files.iter().map(|(k, _)| *k).collect(),
            broken: source.broken,
        };
        for (kind, file) in &source.files {
            for (key, value) in &file.entries {
                if let Err(d) = layer.set(*kind, file, key, value) {
                    diags.push(d);
                    layer.broken = true;
                }
            }
        }
        layer
    }

    fn set(&mut self, kind: FileKind, file: &YamlFile, key: &At<String>, value: &At<Scalar>) -> Result<(), Diagnostic> {
        let origin = Origin { flavor: Cow::Owned(self.name.clone()), file: kind, line: value.line, col: value.col };
        let result = match kind {
            FileKind::Parameters => self.parameters.set(&key.value, &value.value, origin),
            FileKind::ScenePrompts => self.scene_prompts.set(&key.value, &value.value, origin),
            FileKind::ImageParams => self.image_params.set(&key.value, &value.value, origin),
            FileKind::ImagePrompts => self.image_prompts.set(&key.value, &value.value, origin),
            FileKind::Meta => self.set_meta(&key.value, value),
        };
        match result {
            Ok(()) => Ok(()),
            Err(SetError::UnknownKey) => Err(unknown_key(kind, file, key)),
            Err(SetError::Bad(fault)) => {
                let (line, col) =
                    fault.brace.and_then(|(ch, nth)| file.find_char(value, ch, nth)).unwrap_or((value.line, value.col));
                Err(Diagnostic::at(file.path.clone(), line, col, format!("{}: {}", key.value, fault.message)))
            }
        }
    }

    fn set_meta(&mut self, key: &str, value: &At<Scalar>) -> Result<(), SetError> {
        let text = AnyText.check(&value.value);
        match key {
            "label" => self.label = Some(text?),
            "description" => self.description = Some(text?),
            "extends" => {
                let name = text?;
                if !super::is_flavor_name(&name) {
                    return Err(SetError::Bad(Fault::new(format!("`{name}` is not a valid flavor name"))));
                }
                self.extends = Some(At { value: name.into_owned(), line: value.line, col: value.col, end: value.end });
            }
            _ => return Err(SetError::UnknownKey),
        }
        Ok(())
    }
}

fn unknown_key(kind: FileKind, file: &YamlFile, key: &At<String>) -> Diagnostic {
    let allowed = keys_of(kind);
    let hint = did_you_mean(&key.value, allowed);
    Diagnostic::at(
        file.path.clone(),
        key.line,
        key.col,
        format!("unknown key `{}`{hint}; {} takes: {}", key.value, kind.file_name(), allowed.join(", ")),
    )
}
