//! Inheritance: every key a flavor leaves out comes from its parent (`extends`, else `default`),
//! recursively. Reports unknown parents, cycles and an incomplete default.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::diag::{Diagnostic, Diagnostics};
use super::layer::Layer;
use crate::model::DEFAULT_FLAVOR;
use crate::model::did_you_mean;
use crate::model::{FileKind, Flavor};

/// Resolves every layer whose own files and whose ancestors are sound, sorted by name.
pub fn resolve(layers: &[Layer], diags: &mut Diagnostics) -> Vec<Flavor> {
    let by_name: BTreeMap<&str, &Layer> = layers.iter().map(|l| (l.name.as_str(), l)).collect();
    let mut done: BTreeMap<&str, Option<Flavor>> = BTreeMap::new();
    for layer in layers {
        resolve_one(layer, &by_name, &mut done, &mut Vec::new(), diags);
    }
    done.into_values().flatten().collect()
}

/// One layer resolved on its own, with no parent (see `compile_flavor_files`): complete or
/// `None`, with the missing keys reported.
pub fn resolve_alone(layer: &Layer, diags: &mut Diagnostics) -> Option<Flavor> {
    if layer.broken {
        return None;
    }
    merge(layer, None, diags)
}

/// The parent a layer inherits from, if it has one.
fn parent_of(layer: &Layer) -> Option<&str> {
    match &layer.extends {
        Some(e) => Some(e.value.as_str()),
        None if layer.name == DEFAULT_FLAVOR => None,
        None => Some(DEFAULT_FLAVOR),
    }
}

/// Resolves `layer` after its ancestors; `None` in `done` records a flavor that failed, so each
/// fault is reported once and descendants don't repeat it. `path` is the chain being resolved.
fn resolve_one<'a>(
    layer: &'a Layer,
    by_name: &BTreeMap<&'a str, &'a Layer>,
    done: &mut BTreeMap<&'a str, Option<Flavor>>,
    path: &mut Vec<&'a str>,
    diags: &mut Diagnostics,
) -> bool {
    if let Some(result) = done.get(layer.name.as_str()) {
        return result.is_some();
    }
    if let Some(start) = path.iter().position(|n| *n == layer.name) {
        report_cycle(&path[start..], by_name, diags);
        for name in &path[start..] {
            done.insert(name, None);
        }
        return false;
    }
    let parent = match parent_of(layer) {
        None => None,
        Some(parent_name) => {
            if layer.name == DEFAULT_FLAVOR {
                report_default_extends(layer, diags);
                done.insert(&layer.name, None);
                return false;
            }
            let Some(parent_layer) = by_name.get(parent_name).copied() else {
                // A missing default is reported once, by discover; repeating it for every flavor
                // that inherits from it would bury the one fault to fix under knock-on lines.
                if parent_name != DEFAULT_FLAVOR {
                    report_unknown_parent(layer, parent_name, by_name, diags);
                }
                done.insert(&layer.name, None);
                return false;
            };
            path.push(&layer.name);
            let parent_ok = resolve_one(parent_layer, by_name, done, path, diags);
            path.pop();
            if done.contains_key(layer.name.as_str()) {
                // Marked while reporting a cycle that runs through this flavor.
                return false;
            }
            if !parent_ok {
                done.insert(&layer.name, None);
                return false;
            }
            done.get(parent_name).and_then(|p| p.as_ref())
        }
    };
    let flavor = if layer.broken { None } else { merge(layer, parent, diags) };
    let ok = flavor.is_some();
    done.insert(&layer.name, flavor);
    ok
}

/// Applies the per-key rule to each file. Only the default can be missing keys (a parent is always
/// complete), and that is reported per file, naming the keys.
fn merge(layer: &Layer, parent: Option<&Flavor>, diags: &mut Diagnostics) -> Option<Flavor> {
    let mut missing = |kind: FileKind, keys: Vec<&'static str>| {
        let path = format!("{}/{}", layer.path, kind.file_name());
        let message = format!("the default flavor must set every key; missing: {}", keys.join(", "));
        diags.push(if layer.files.contains(&kind) {
            Diagnostic::at(path, 1, 1, message)
        } else {
            Diagnostic::whole(path, format!("file is missing: {message}"))
        });
    };
    let parameters = layer.parameters.resolve(parent.map(|p| &p.parameters));
    let scene_prompts = layer.scene_prompts.resolve(parent.map(|p| &p.scene_prompts));
    let image_params = layer.image_params.resolve(parent.map(|p| &p.image_params));
    let image_prompts = layer.image_prompts.resolve(parent.map(|p| &p.image_prompts));
    let (parameters, scene_prompts, image_params, image_prompts) =
        match (parameters, scene_prompts, image_params, image_prompts) {
            (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
            (a, b, c, d) => {
                for (kind, result) in [
                    (FileKind::Parameters, a.err()),
                    (FileKind::ScenePrompts, b.err()),
                    (FileKind::ImageParams, c.err()),
                    (FileKind::ImagePrompts, d.err()),
                ] {
                    if let Some(keys) = result {
                        missing(kind, keys);
                    }
                }
                return None;
            }
        };
    let mut entries = parameters.entries();
    entries.extend(scene_prompts.entries());
    entries.extend(image_params.entries());
    entries.extend(image_prompts.entries());
    let hash = Cow::Owned(super::hash::content_hash(&entries));
    Some(Flavor {
        name: Cow::Owned(layer.name.clone()),
        label: layer.label.clone(),
        description: layer.description.clone(),
        extends: parent.map(|p| p.name.clone()),
        hash,
        parameters,
        scene_prompts,
        image_params,
        image_prompts,
    })
}

fn meta_path(layer: &Layer) -> String {
    format!("{}/{}", layer.path, FileKind::Meta.file_name())
}

fn report_unknown_parent(layer: &Layer, parent: &str, by_name: &BTreeMap<&str, &Layer>, diags: &mut Diagnostics) {
    let names: Vec<&str> = by_name.keys().copied().filter(|n| *n != layer.name).collect();
    let hint = did_you_mean(parent, &names);
    let message = format!("extends: no flavor named `{parent}`{hint}; flavors: {}", names.join(", "));
    diags.push(match &layer.extends {
        Some(e) => Diagnostic::at(meta_path(layer), e.line, e.col, message),
        None => Diagnostic::whole(layer.path.clone(), message),
    });
}

fn report_default_extends(layer: &Layer, diags: &mut Diagnostics) {
    if let Some(e) = &layer.extends {
        diags.push(Diagnostic::at(
            meta_path(layer),
            e.line,
            e.col,
            "extends: the default flavor is the root of inheritance and cannot extend another flavor",
        ));
    }
}

fn report_cycle(cycle: &[&str], by_name: &BTreeMap<&str, &Layer>, diags: &mut Diagnostics) {
    let mut chain: Vec<&str> = cycle.to_vec();
    chain.push(cycle[0]);
    let chain = chain.join(" -> ");
    for name in cycle {
        if let Some(layer) = by_name.get(name)
            && let Some(e) = &layer.extends
        {
            diags.push(Diagnostic::at(meta_path(layer), e.line, e.col, format!("extends: inheritance cycle {chain}")));
        }
    }
}
