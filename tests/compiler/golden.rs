//! Drift guards for generated files that are committed for review: the golden renders under
//! `tests/golden/renders` (every flavor × every request in `tests/golden/requests`). A mismatch fails
//! with a unified diff of each changed file and the command that regenerates them.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::scratch::{Scratch, copy_tree};

const MVGEN: &str = env!("CARGO_BIN_EXE_mvgen");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every file under `dir`, by path relative to it.
pub fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.map(|e| e.expect("directory entry")) {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("below root").to_string_lossy().replace('\\', "/");
                let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.insert(rel, text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Fails with one unified diff per differing, missing or extra file.
pub fn assert_trees_equal(
    committed_dir: &str,
    committed: &BTreeMap<String, String>,
    fresh: &BTreeMap<String, String>,
    regenerate: &str,
) {
    let mut report = String::new();
    let paths: std::collections::BTreeSet<&String> = committed.keys().chain(fresh.keys()).collect();
    for path in paths {
        let old = committed.get(path).map_or("", String::as_str);
        let new = fresh.get(path).map_or("", String::as_str);
        if committed.contains_key(path) && fresh.contains_key(path) && old == new {
            continue;
        }
        let diff = similar::TextDiff::from_lines(old, new);
        let (a, b) = (format!("committed/{path}"), format!("fresh/{path}"));
        report.push_str(&diff.unified_diff().context_radius(2).header(&a, &b).to_string());
        if !committed.contains_key(path) {
            report.push_str(&format!("(new file: {path})\n"));
        } else if !fresh.contains_key(path) {
            report.push_str(&format!("(no longer generated: {path})\n"));
        }
    }
    assert!(
        report.is_empty(),
        "{committed_dir} is out of date with the code and configs:\n{report}\n\
         if the change is intended, regenerate with `{regenerate}` and review the diff"
    );
}

#[test]
fn golden_renders_match_every_flavor_and_request() {
    let scratch = Scratch::new("golden");
    let dir = scratch.path().join("golden");
    copy_tree(&Path::new(ROOT).join("tests/golden/requests"), &dir.join("requests"));
    let out = Command::new(MVGEN)
        .args(["render", "--all", dir.to_str().expect("UTF-8 temp path")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {MVGEN}: {e}"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh = read_tree(&dir.join("renders"));
    let committed = read_tree(&Path::new(ROOT).join("tests/golden/renders"));
    let flavors = mvgen::flavor::names().len();
    let requests = fs::read_dir(dir.join("requests")).expect("requests").count();
    assert_eq!(fresh.len(), flavors * requests * 2, "a prompt and a parameters file per flavor and request");
    assert_trees_equal("tests/golden/renders", &committed, &fresh, "cargo run -- render --all tests/golden");
}

#[test]
fn render_all_replaces_stale_renders_and_names_a_bad_request_file() {
    let scratch = Scratch::new("golden-bad");
    let dir = scratch.path().join("golden");
    fs::create_dir_all(dir.join("requests")).expect("requests dir");
    fs::create_dir_all(dir.join("renders/removed-flavor")).expect("stale dir");
    fs::write(dir.join("renders/removed-flavor/old.json"), "{}").expect("stale file");
    fs::write(dir.join("requests/ok.json"), r#"{"kind": "video", "prompt": "p"}"#).expect("request");
    let run = || Command::new(MVGEN).args(["render", "--all", dir.to_str().expect("UTF-8 temp path")]).output();
    let out = run().expect("run mvgen");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.join("renders/removed-flavor").exists(), "stale renders are removed");
    assert!(dir.join("renders/mv1/ok.prompt.txt").is_file());

    fs::write(dir.join("requests/typo.json"), r#"{"kind": "video", "prompt": "p", "durration": 5}"#).expect("request");
    let out = run().expect("run mvgen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("typo.json") && stderr.contains("--durration"), "{stderr}");
    assert!(dir.join("renders/mv1/ok.prompt.txt").is_file(), "a refused request leaves the renders as they were");
}
