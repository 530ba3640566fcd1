//! Property tests: rendering, template parsing and the whole compiler on arbitrary input. Case
//! counts are kept moderate so the suite stays fast; a failure prints a shrunk input to add as a
//! unit test or fixture.

use std::path::Path;

use mvgen::compiler::compile;
use mvgen::model::FileKind;
use mvgen::model::template::{Template, Var};
use proptest::prelude::*;

use crate::fixtures::FIXTURES;
use crate::scratch::{Scratch, copy_tree};

/// A piece of a generated template: literal text (any characters, braces included) or a placeholder.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Var(Var),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        "[a-z {}\\n:!.\\[\\]0-9ü]{0,12}".prop_map(Piece::Text),
        any::<String>().prop_map(Piece::Text),
        (0..Var::ALL.len()).prop_map(|i| Piece::Var(Var::ALL[i])),
    ]
}

/// Strings dense in the characters the template scanner treats specially (also used by
/// `json_schema.rs`).
pub fn template_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{"),
        Just("}"),
        Just("{{"),
        Just("}}"),
        Just("idea"),
        Just("{idea}"),
        Just("{character_description}"),
        Just("aspect_ratio"),
        Just("0"),
        Just(":>3"),
        Just("!r"),
        Just(".x"),
        Just("[0]"),
        Just(" "),
        Just("ü"),
        Just("\n"),
    ];
    prop::collection::vec(token, 0..24).prop_map(|t| t.concat())
}

fn value_of(values: &[String], var: Var) -> &str {
    let i = Var::ALL.iter().position(|v| *v == var).expect("var is in Var::ALL");
    &values[i]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Escaping every literal brace gives a template that parses, and rendering it yields exactly
    /// the literals and the raw values side by side: nothing in a value is ever expanded.
    #[test]
    fn rendering_inserts_values_verbatim(
        pieces in prop::collection::vec(piece(), 0..12),
        values in prop::collection::vec(any::<String>(), Var::ALL.len()),
    ) {
        let source: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.replace('{', "{{").replace('}', "}}"),
                Piece::Var(v) => format!("{{{}}}", v.name()),
            })
            .collect();
        let template = Template::parse(&source, &Var::ALL, &[]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Var(v) => value_of(&values, *v),
            })
            .collect();
        prop_assert_eq!(template.render(|v| value_of(&values, v)), expected);
    }

    /// Every rejection names a character offset inside the source, and that character is the brace
    /// the problem starts at.
    #[test]
    fn template_errors_point_at_a_brace(source in prop_oneof![template_like(), any::<String>()]) {
        let chars: Vec<char> = source.chars().collect();
        for allowed in [&Var::ALL[..], &[Var::AspectRatio][..]] {
            if let Err(e) = Template::parse(&source, allowed, &[]) {
                prop_assert!(e.offset < chars.len(), "offset {} beyond {:?}", e.offset, source);
                prop_assert!(matches!(chars[e.offset], '{' | '}'), "{:?} at {} in {:?}", e.message, e.offset, source);
            }
        }
        // A missing required placeholder is about the whole template, not a brace.
        match Template::parse(&source, &Var::ALL, &[Var::Idea]) {
            Err(e) if e.message.contains("must use") => prop_assert_eq!(e.offset, 0),
            Err(e) => prop_assert!(matches!(chars.get(e.offset), Some('{' | '}')), "{:?}", e),
            Ok(t) => prop_assert!(t.vars().contains(&Var::Idea)),
        }
    }

    /// Source without braces is always accepted and renders to itself.
    #[test]
    fn brace_free_text_renders_to_itself(source in "[^{}]*") {
        let t = Template::parse(&source, &Var::ALL, &[]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(t.render(|_| "unused"), source);
    }
}

/// Bytes that look like YAML often enough to reach the schema and template checks.
fn yamlish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"video_type: ".to_vec()),
        Just(b"number_of_scenes: ".to_vec()),
        Just(b"scene_generation_prompt: ".to_vec()),
        Just(b"video_rules_template: ".to_vec()),
        Just(b"extends: ".to_vec()),
        Just(b"label: ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"  ".to_vec()),
        Just(b"- ".to_vec()),
        Just(b"|\n  ".to_vec()),
        Just(b">-\n  ".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"{idea}".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b"# c".to_vec()),
        Just(b"---\n".to_vec()),
        Just(b"&a ".to_vec()),
        Just(b"*a".to_vec()),
        Just(b"!!str ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"6".to_vec()),
        Just(b"\xff".to_vec()),
        Just("é".as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..4),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever lands in a flavor file, the compiler returns (no panic) and every fault it reports
    /// about that file says where, inside the file.
    #[test]
    fn the_compiler_positions_every_fault_in_a_mangled_file(
        file in 0..FileKind::ALL.len(),
        bytes in yamlish(),
    ) {
        let scratch = Scratch::new("prop-yaml");
        let root = scratch.path();
        copy_tree(&Path::new(FIXTURES).join("_base/configs"), root);
        let name = FileKind::ALL[file].file_name();
        let path = root.join("default").join(name);
        std::fs::write(&path, &bytes).expect("write the mangled file");
        let lines = u32::try_from(bytes.split(|b| *b == b'\n').count()).expect("few lines");
        let shown = path.display().to_string();
        if let Err(diags) = compile(root) {
            for d in diags.iter().filter(|d| d.path == shown) {
                let Some((line, col)) = d.position else {
                    return Err(TestCaseError::fail(format!("no position: {d}")));
                };
                prop_assert!(line >= 1 && col >= 1 && line <= lines, "{} outside the file ({} lines)", d, lines);
            }
        }
    }
}
