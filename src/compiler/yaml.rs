//! Reading one YAML file into positioned key/value pairs.
//!
//! We deliberately do not deserialize straight into typed structs: the schema checks want every key
//! with its own position so that one run can report an unknown key, a wrong type and a bad template in
//! the same file, each with our own wording. serde-saphyr gives token positions and rejects duplicate
//! keys, which is why it was chosen over the archived serde_yaml.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::diag::Diagnostic;

/// A YAML value as the schema checks see it: scalars keep their data, collections only their kind
/// (no key in our schemas takes a collection).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq,
    Map,
}

impl Scalar {
    /// How the value reads in an error message, e.g. `"six"`, `7`, `a list`.
    pub fn describe(&self) -> String {
        match self {
            Scalar::Null => "nothing (null)".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(x) => format!("{x:?}"),
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Seq => "a list".into(),
            Scalar::Map => "a mapping".into(),
        }
    }
}

/// A key or value with the 1-based line and column where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct At<T> {
    pub value: T,
    pub line: u32,
    pub col: u32,
    /// Where the value's source text ends, as a character offset into the file, when known.
    pub end: Option<usize>,
}

/// One configs file: its display path, its text, and its top-level entries in file order.
#[derive(Debug)]
pub struct YamlFile {
    pub path: String,
    pub text: String,
    pub entries: Vec<(At<String>, At<Scalar>)>,
}

impl YamlFile {
    /// Decodes and parses `bytes`. An empty or comment-only file has no entries.
    pub fn parse(path: String, bytes: &[u8]) -> Result<YamlFile, Diagnostic> {
        let text = match String::from_utf8(bytes.to_vec()) {
            Ok(text) => text,
            Err(e) => {
                let (line, col) = line_col_of_byte(bytes, e.utf8_error().valid_up_to());
                return Err(Diagnostic::at(path, line, col, "file is not valid UTF-8: save it as UTF-8"));
            }
        };
        // YAML 1.2 booleans only: `yes`, `no`, `on` and `off` stay strings, as the README documents.
        let mut options = serde_saphyr::Options::default();
        options.strict_booleans = true;
        let entries = serde_saphyr::from_str_with_options::<Option<Entries>>(&text, options.clone())
            .map_err(|err| diagnostic(&path, &err))?;
        no_repeated_merge_keys(&text, options).map_err(|err| diagnostic(&path, &err))?;
        Ok(YamlFile { path, text, entries: entries.map(|e| e.0).unwrap_or_default() })
    }

    /// The position of the `nth` (0-based) occurrence of `ch` inside `value`'s source text.
    /// Template faults are found in the decoded string; braces are never folded by any YAML scalar
    /// style, so counting them in the raw text finds the same brace. The search stops at the end of
    /// the value, so an escaped brace (`\x7b`) can't push it into the next key.
    pub fn find_char<T>(&self, value: &At<T>, ch: char, nth: usize) -> Option<(u32, u32)> {
        let from = (value.line, value.col);
        let (mut line, mut col) = (1u32, 1u32);
        let mut seen = 0;
        for (index, c) in self.text.chars().enumerate() {
            if value.end.is_some_and(|end| index >= end) {
                return None;
            }
            if (line, col) >= from && c == ch {
                if seen == nth {
                    return Some((line, col));
                }
                seen += 1;
            }
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        None
    }
}

/// serde-saphyr expands YAML 1.1 merge keys (`<<: {...}`) the way the spec says, and an explicit
/// key beside a merged one overrides it: both are fine. But it also takes two `<<` entries in one
/// mapping and silently keeps the first one's keys, where any other key written twice is an error.
/// `<<` is a key like any other in that mapping, so written twice it is the same fault as a plain
/// duplicate. Parsing once more with merge keys as ordinary keys finds exactly that (merged maps are
/// not expanded, so an override is not compared with what it overrides), with the second `<<`'s
/// position. Only files that contain `<<` at all pay for the second parse.
fn no_repeated_merge_keys(text: &str, mut options: serde_saphyr::Options) -> Result<(), serde_saphyr::Error> {
    if !text.contains("<<") {
        return Ok(());
    }
    options.merge_keys = serde_saphyr::MergeKeyPolicy::AsOrdinary;
    serde_saphyr::from_str_with_options::<IgnoredAny>(text, options).map(|_| ())
}

/// A parse error as a diagnostic at its position (1:1 when the parser has none).
fn diagnostic(path: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let (line, col) =
        err.location().map(|l| (to_u32(l.line()), to_u32(l.column()))).filter(|(line, _)| *line > 0).unwrap_or((1, 1));
    Diagnostic::at(path, line, col, yaml_message(&err.without_snippet().to_string()))
}

fn to_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn line_col_of_byte(bytes: &[u8], offset: usize) -> (u32, u32) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (to_u32(line as u64), to_u32(col as u64))
}

/// serde-saphyr's messages end with "at line N, column M" and sometimes name its own options; we
/// print the position ourselves and speak to prompt authors, not to Rust programmers.
fn yaml_message(raw: &str) -> String {
    let msg = match raw.rfind(" at line ") {
        Some(i) => &raw[..i],
        None => raw,
    };
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest);
        return format!("duplicate key `{key}`: each key may appear once per file");
    }
    if msg.contains("expected a mapping of top-level keys") || msg.starts_with("invalid type") {
        return "expected a mapping of `key: value` lines at the top of the file".into();
    }
    if msg.contains("into string") || msg.contains("expected string scalar") {
        return "keys must be plain names such as `video_type`".into();
    }
    if msg.contains("multiple YAML documents") {
        return "only one YAML document per file: remove the `---` separator".into();
    }
    format!("invalid YAML: {msg}")
}

/// The top-level mapping, entries in file order.
struct Entries(Vec<(At<String>, At<Scalar>)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of top-level keys")
            }
            fn visit_unit<E>(self) -> Result<Entries, E> {
                Ok(Entries(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Spanned<Scalar>>()?;
                    entries.push((at(key), at(value)));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_any(EntriesVisitor)
    }
}

fn at<T>(s: Spanned<T>) -> At<T> {
    let span = s.referenced.span();
    let end = (!span.is_empty()).then(|| usize::try_from(span.offset() + span.len()).unwrap_or(usize::MAX));
    At { value: s.value, line: to_u32(s.referenced.line()).max(1), col: to_u32(s.referenced.column()).max(1), end }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                Scalar::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Scalar, E> {
                Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
            }
            fn visit_u128<E>(self, v: u128) -> Result<Scalar, E> {
                Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Seq)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Map)
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Scalar, E> {
                Err(E::custom("binary values are not supported"))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<YamlFile, Diagnostic> {
        YamlFile::parse("f.yaml".into(), text.as_bytes())
    }

    #[test]
    fn entries_keep_order_and_positions() {
        let f = parse("a: 1\nb: \"x\"\nc: |\n  text\n").expect("valid");
        let got: Vec<_> = f.entries.iter().map(|(k, v)| (k.value.as_str(), v.line, v.col)).collect();
        assert_eq!(got, vec![("a", 1, 4), ("b", 2, 4), ("c", 4, 3)]);
    }

    #[test]
    fn empty_and_comment_only_files_have_no_entries() {
        assert!(parse("").expect("empty").entries.is_empty());
        assert!(parse("# nothing here\n\n").expect("comments").entries.is_empty());
    }

    #[test]
    fn faults_have_positions_and_plain_messages() {
        let d = parse("a: 1\na: 2\n").expect_err("duplicate");
        assert_eq!(
            (d.position, d.message.as_str()),
            (Some((2, 1)), "duplicate key `a`: each key may appear once per file")
        );
        let d = parse("a: [1\n").expect_err("unclosed");
        assert_eq!(d.position, Some((1, 4)));
        assert!(d.message.starts_with("invalid YAML"), "{}", d.message);
        let d = parse("- 1\n").expect_err("list");
        assert!(d.message.contains("mapping"), "{}", d.message);
    }

    #[test]
    fn merge_keys_merge_and_a_second_merge_key_is_a_duplicate() {
        let keys = |text: &str| -> Vec<(String, Scalar)> {
            parse(text).expect("valid").entries.into_iter().map(|(k, v)| (k.value, v.value)).collect()
        };
        // YAML 1.1: merged keys come in, an explicit key overrides a merged one, and within one
        // `<<: [a, b]` the earlier map wins. None of these is a duplicate.
        assert_eq!(keys("<<: {a: 1}\nb: 2\n"), [("b".into(), Scalar::Int(2)), ("a".into(), Scalar::Int(1))]);
        assert_eq!(keys("<<: {a: 1}\na: 2\n"), [("a".into(), Scalar::Int(2))]);
        assert_eq!(keys("<<: [{a: 1}, {a: 2}]\n"), [("a".into(), Scalar::Int(1))]);
        for (text, at) in [
            ("<<: {a: 1}\n<<: {b: 2}\n", (2, 1)),
            ("m: &m {a: 1}\nx: 1\n<<: *m\n<<: *m\n", (4, 1)),
            ("a: {<<: {x: 1}, <<: {y: 2}}\n", (1, 17)),
        ] {
            let d = parse(text).expect_err(text);
            assert_eq!(
                (d.position, d.message.as_str()),
                (Some(at), "duplicate key `<<`: each key may appear once per file"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn non_utf8_is_reported_where_it_starts() {
        let d = YamlFile::parse("f.yaml".into(), b"a: 1\nb: \xff\n").expect_err("bad utf-8");
        assert_eq!(d.position, Some((2, 4)));
    }

    #[test]
    fn find_char_counts_inside_the_value_only() {
        let f = parse("a: '{'\nb: |\n  x { y {\n").expect("valid");
        let b = &f.entries[1].1;
        assert_eq!(f.find_char(b, '{', 1), Some((3, 9)));
        assert_eq!(f.find_char(b, '{', 2), None);
        let f = parse("a: \"\\x7b {\"\nb: '{'\n").expect("valid");
        let a = &f.entries[0].1;
        assert_eq!(f.find_char(a, '{', 1), None, "the escaped brace is not in the raw text; don't run into `b`");
    }

    #[test]
    fn only_yaml_1_2_booleans_are_booleans() {
        let f = parse("a: yes\nb: off\nc: true\n").expect("valid");
        let values: Vec<&Scalar> = f.entries.iter().map(|(_, v)| &v.value).collect();
        assert_eq!(values, vec![&Scalar::Str("yes".into()), &Scalar::Str("off".into()), &Scalar::Bool(true)]);
    }
}
