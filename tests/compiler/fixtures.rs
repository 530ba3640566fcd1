//! The data-driven fault suite: each directory under `tests/fixtures/` (except `_base`) is one broken
//! configs tree plus the exact diagnostics it must produce. Conventions: `tests/fixtures/README.md`.

use std::fs;
use std::path::Path;

use mvgen::compiler::{Diagnostic, compile};

use crate::scratch::{Scratch, copy_tree};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Writes fixture `name`'s configs tree into `dest`: the shared `_base` tree, minus the paths listed
/// in its `remove.txt`, with its own `configs/` laid over it.
pub fn materialize(name: &str, dest: &Path) {
    let fixture = Path::new(FIXTURES).join(name);
    copy_tree(&Path::new(FIXTURES).join("_base/configs"), dest);
    if let Ok(list) = fs::read_to_string(fixture.join("remove.txt")) {
        for rel in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let target = dest.join(rel);
            let removed = if target.is_dir() { fs::remove_dir_all(&target) } else { fs::remove_file(&target) };
            removed.unwrap_or_else(|e| panic!("{name}/remove.txt: cannot remove {rel}: {e}"));
        }
    }
    // Absent when the fixture only removes things (git keeps no empty directories).
    let own = fixture.join("configs");
    if own.is_dir() {
        copy_tree(&own, dest);
    }
}

/// Every fault fixture, sorted; `_`-prefixed directories are shared material, not cases.
pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(FIXTURES)
        .expect("tests/fixtures exists")
        .map(|e| e.expect("directory entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().into_string().expect("fixture names are UTF-8"))
        .filter(|n| !n.starts_with('_'))
        .collect();
    names.sort();
    names
}

/// One line of `expect.txt`: `path:line:col: fragment`, or `path: fragment` for a fault that has no
/// position (a directory, a missing file). `path` is relative to the configs dir, `.` being the dir.
#[derive(Debug, PartialEq)]
struct Expected {
    path: String,
    position: Option<(u32, u32)>,
    fragment: String,
}

impl Expected {
    fn parse(line: &str) -> Result<Expected, String> {
        let (head, fragment) = line.split_once(": ").ok_or_else(|| format!("no `: ` in expected line {line:?}"))?;
        if fragment.trim().is_empty() {
            return Err(format!("empty message fragment in {line:?}"));
        }
        let mut parts = head.rsplitn(3, ':');
        let (col, row, path) = (parts.next(), parts.next(), parts.next());
        let position = match (row.map(str::parse::<u32>), col.map(str::parse::<u32>), path) {
            (Some(Ok(row)), Some(Ok(col)), Some(path)) => Some((path, (row, col))),
            _ => None,
        };
        Ok(match position {
            Some((path, pos)) => Expected { path: path.into(), position: Some(pos), fragment: fragment.into() },
            None => Expected { path: head.into(), position: None, fragment: fragment.into() },
        })
    }

    fn matches(&self, d: &Diagnostic, root: &str) -> bool {
        relative(&d.path, root) == self.path && d.position == self.position && d.message.contains(&self.fragment)
    }
}

/// A diagnostic's path as written in `expect.txt`.
fn relative(path: &str, root: &str) -> String {
    if path == root {
        return ".".into();
    }
    path.strip_prefix(root).and_then(|p| p.strip_prefix('/')).unwrap_or(path).to_string()
}

/// Pairs each expected line with a distinct diagnostic and requires nothing left over on either side.
fn compare(expect: &str, diags: &[Diagnostic], root: &str) -> Result<(), String> {
    let expected: Vec<Expected> =
        expect.lines().filter(|l| !l.trim().is_empty()).map(Expected::parse).collect::<Result<_, _>>()?;
    if expected.is_empty() {
        return Err("expect.txt lists no diagnostics".into());
    }
    let mut used = vec![false; diags.len()];
    let mut missing = Vec::new();
    for e in &expected {
        match diags.iter().enumerate().position(|(i, d)| !used[i] && e.matches(d, root)) {
            Some(i) => used[i] = true,
            None => missing.push(e),
        }
    }
    if missing.is_empty() && expected.len() == diags.len() {
        return Ok(());
    }
    let got: Vec<String> = diags
        .iter()
        .map(|d| {
            let path = relative(&d.path, root);
            match d.position {
                Some((line, col)) => format!("    {path}:{line}:{col}: {}", d.message),
                None => format!("    {path}: {}", d.message),
            }
        })
        .collect();
    let missing: Vec<String> = missing.iter().map(|e| format!("    {e:?}")).collect();
    Err(format!(
        "expected {} diagnostic(s), got {}\n  unmatched expectations:\n{}\n  produced:\n{}",
        expected.len(),
        diags.len(),
        missing.join("\n"),
        got.join("\n")
    ))
}

fn run_fixture(name: &str) -> Result<(), String> {
    let scratch = Scratch::new(name);
    let root = scratch.path().join("configs");
    materialize(name, &root);
    let expect = fs::read_to_string(Path::new(FIXTURES).join(name).join("expect.txt"))
        .map_err(|e| format!("cannot read expect.txt: {e}"))?;
    match compile(&root) {
        Ok(flavors) => Err(format!("compiled without faults into {} flavor(s)", flavors.len())),
        Err(diags) => compare(&expect, &diags.0, &root.display().to_string()),
    }
}

#[test]
fn every_fixture_reports_exactly_its_expected_diagnostics() {
    let names = fixture_names();
    // Guards the loop itself: a wrong FIXTURES path would otherwise pass with zero cases.
    assert!(names.len() >= 25, "only {} fixtures found in {FIXTURES}", names.len());
    let failures: Vec<String> =
        names.iter().filter_map(|n| run_fixture(n).err().map(|why| format!("fixture `{n}`: {why}"))).collect();
    assert!(failures.is_empty(), "{} of {} fixtures failed:\n\n{}", failures.len(), names.len(), failures.join("\n\n"));
}

#[test]
fn the_shared_base_is_a_valid_configs_tree() {
    let scratch = Scratch::new("base");
    copy_tree(&Path::new(FIXTURES).join("_base/configs"), scratch.path());
    let flavors = compile(scratch.path()).unwrap_or_else(|d| panic!("_base must compile cleanly:\n{d}"));
    assert_eq!(flavors.iter().map(|f| f.name.as_ref()).collect::<Vec<_>>(), ["default"]);
}

/// A configs tree laid out exactly like the service mvgen replaces: four files in `default` (no
/// `scene_model`, no `flavor.yaml` anywhere), `example` with only parameters.yaml, `mv1` with
/// parameters.yaml and scene_prompts.yaml. Teams moving over keep theirs untouched.
pub const PYTHON_LAYOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/_python_service_layout/configs");

#[test]
fn a_configs_tree_shaped_like_the_replaced_service_compiles_with_no_diagnostic() {
    let flavors = compile(Path::new(PYTHON_LAYOUT)).unwrap_or_else(|d| panic!("must compile untouched:\n{d}"));
    let names: Vec<&str> = flavors.iter().map(|f| f.name.as_ref()).collect();
    assert_eq!(names, ["default", "example", "mv1"]);
    for f in &flavors {
        let model = &f.parameters.scene_model;
        assert_eq!((model.value.as_ref(), model.origin.is_builtin()), ("gemini-2.5-pro", true), "{}", f.name);
        let veo = &f.image_params.gemini_video_model;
        assert_eq!((veo.value.as_ref(), veo.origin.is_builtin()), ("veo-3.1-generate-preview", true), "{}", f.name);
        assert_eq!(f.extends.as_deref(), (f.name != "default").then_some("default"));
    }
}

#[test]
fn expected_lines_parse_with_and_without_a_position() {
    assert_eq!(
        Expected::parse("default/a.yaml:7:19: key: bad: really").expect("positioned"),
        Expected { path: "default/a.yaml".into(), position: Some((7, 19)), fragment: "key: bad: really".into() }
    );
    assert_eq!(
        Expected::parse("my flavor: invalid").expect("whole"),
        Expected { path: "my flavor".into(), position: None, fragment: "invalid".into() }
    );
    assert!(Expected::parse("no separator").is_err());
}

#[test]
fn comparison_fails_on_a_wrong_position_message_or_count() {
    let root = "/r";
    let diags = [
        Diagnostic::at("/r/default/p.yaml", 5, 19, "number_of_scenes: expected an integer"),
        Diagnostic::whole("/r", "no `default` flavor"),
    ];
    let both = "default/p.yaml:5:19: expected an integer\n.: no `default`";
    assert_eq!(compare(both, &diags, root), Ok(()));
    assert!(compare("default/p.yaml:5:18: expected an integer\n.: no `default`", &diags, root).is_err(), "column");
    assert!(compare("default/p.yaml:5:19: expected a string\n.: no `default`", &diags, root).is_err(), "message");
    assert!(compare("default/p.yaml:5:19: expected an integer", &diags, root).is_err(), "unexpected extra");
    let twice = "default/p.yaml:5:19: expected an integer\ndefault/p.yaml:5:19: expected an integer";
    assert!(compare(twice, &diags[..1], root).is_err(), "one diagnostic cannot satisfy two lines");
}
