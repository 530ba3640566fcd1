//! The crate's layering, read from its source: which top-level module imports which (`crate::x`
//! paths in code, comments skipped), checked for the rules README's code map states. Data flows one
//! way (configs → compiler → model/flavor table → generation → jobs → providers → storage, with the
//! HTTP edge on top), so an import against that flow shows up here as a cycle.
//!
//! `cargo test --test compiler layering -- --nocapture` prints the edge list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The modules allowed to import `crate::compiler`: the CLI's `--configs`/`check`/`schema`
/// commands, the JSON Schemas they write, and `serve --configs` (`live_configs`). build.rs includes
/// the compiler by path and is not under `src/`.
const COMPILER_USERS: [&str; 3] = ["cli", "json_schema", "live_configs"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code lines (comments and doc comments left out: they may name any module).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Every identifier following `prefix` (e.g. the `x` of `crate::x`).
fn names_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end > 0 {
            names.push(&rest[..end]);
        }
    }
    names
}

/// Top-level module → the other top-level modules it names.
fn top_level_graph() -> Graph {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(&root).expect("under src");
        let first = rel.components().next().expect("non-empty").as_os_str().to_string_lossy().to_string();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let targets = graph.entry(module.clone()).or_default();
        for name in names_after(&code(&file), "crate::") {
            if name != module {
                targets.insert(name.to_string());
            }
        }
    }
    graph
}

/// File → sibling files it names, inside one directory module (`super::x` or `crate::<dir>::x`).
fn inner_graph(dir: &str) -> Graph {
    let root = src().join(dir);
    let mut graph = Graph::new();
    for entry in std::fs::read_dir(&root).expect("read module dir") {
        let path = entry.expect("dir entry").path();
        let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().to_string()) else { continue };
        if stem == "mod" || path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let code = code(&path);
        let own = format!("crate::{dir}::");
        let targets = graph.entry(stem.clone()).or_default();
        for name in names_after(&code, "super::").into_iter().chain(names_after(&code, &own)) {
            if name != stem && root.join(format!("{name}.rs")).exists() {
                targets.insert(name.to_string());
            }
        }
    }
    graph
}

/// One cycle, as the path that closes it, if the graph has any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn listing(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(from, to)| format!("{from} -> {}", to.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn top_level_modules_import_each_other_without_a_cycle() {
    let graph = top_level_graph();
    println!("{}", listing(&graph));
    assert!(graph.contains_key("api") && graph.contains_key("model"), "the scan found the crate's modules: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle between top-level modules: {}\n{}", cycle.join(" -> "), listing(&graph));
    }
}

#[test]
fn nothing_at_run_time_imports_the_compiler() {
    let graph = top_level_graph();
    let importers: Vec<&String> =
        graph.iter().filter(|(_, to)| to.contains("compiler")).map(|(from, _)| from).collect();
    for from in &importers {
        assert!(
            COMPILER_USERS.contains(&from.as_str()),
            "`{from}` imports `crate::compiler`; run-time code uses `crate::model`"
        );
    }
    assert!(!importers.is_empty(), "the CLI does import the compiler: the scan is broken");
}

#[test]
fn the_model_stands_on_nothing_else_in_the_crate() {
    // build.rs includes `src/model` by path next to the compiler, so it may name nothing else.
    let graph = top_level_graph();
    assert_eq!(graph.get("model"), Some(&BTreeSet::new()), "model must import only std and itself");
}

#[test]
fn files_inside_the_compiler_and_the_model_import_each_other_without_a_cycle() {
    for dir in ["compiler", "model"] {
        let graph = inner_graph(dir);
        println!("{dir}/:\n{}", listing(&graph));
        assert!(graph.len() > 3, "the scan found {dir}'s files: {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("import cycle inside {dir}/: {}", cycle.join(" -> "));
        }
    }
}
