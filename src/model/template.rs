//! Prompt templates in the subset of Python `str.format` syntax our prompt authors use.
//!
//! A template is parsed once (at build time for the embedded flavors) into literal and placeholder
//! segments, so rendering is plain concatenation. Only `{name}` with a known name and the `{{` / `}}`
//! escapes are accepted; everything else Python would treat specially is rejected with the character
//! offset of the brace that starts the problem, so the caller can point at it in the YAML file.
//! This module must not know about files or flavors: it is used by the compiler and at run time.

use std::borrow::Cow;
use std::fmt;

/// A variable a template may refer to. The set is closed: a template can only mention these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Var {
    Idea,
    CharacterDescription,
    CharacterCharacteristics,
    NumberOfScenes,
    VideoType,
    VideoCharacteristics,
    CameraAngle,
    AspectRatio,
}

impl Var {
    /// Every variable, in the order they are listed to prompt authors.
    pub const ALL: [Var; 8] = [
        Var::Idea,
        Var::CharacterDescription,
        Var::CharacterCharacteristics,
        Var::NumberOfScenes,
        Var::VideoType,
        Var::VideoCharacteristics,
        Var::CameraAngle,
        Var::AspectRatio,
    ];

    /// The name written between the braces.
    pub const fn name(self) -> &'static str {
        match self {
            Var::Idea => "idea",
            Var::CharacterDescription => "character_description",
            Var::CharacterCharacteristics => "character_characteristics",
            Var::NumberOfScenes => "number_of_scenes",
            Var::VideoType => "video_type",
            Var::VideoCharacteristics => "video_characteristics",
            Var::CameraAngle => "camera_angle",
            Var::AspectRatio => "aspect_ratio",
        }
    }

    fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text copied as is (escapes already folded: `{{` is stored as `{`).
    Literal(Cow<'static, str>),
    /// A placeholder replaced by the variable's value.
    Var(Var),
}

/// A parsed template: the source text (for display and provenance) and its segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub source: Cow<'static, str>,
    pub segments: Cow<'static, [Segment]>,
}

/// Why a template was rejected, and where: `offset` counts characters (not bytes) into the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset + 1)
    }
}

impl Template {
    /// Parses `source`, accepting only placeholders named in `allowed`, and requiring each of
    /// `required` to appear at least once.
    pub fn parse(source: &str, allowed: &[Var], required: &[Var]) -> Result<Template, TemplateError> {
        let segments = split(source, allowed)?;
        for var in required {
            if !segments.contains(&Segment::Var(*var)) {
                return Err(TemplateError { offset: 0, message: format!("the template must use {{{}}}", var.name()) });
            }
        }
        Ok(Template { source: Cow::Owned(source.to_owned()), segments: Cow::Owned(segments) })
    }

    /// The variables this template uses, each once, in order of first use.
    pub fn vars(&self) -> Vec<Var> {
        let mut vars = Vec::new();
        for segment in self.segments.iter() {
            if let Segment::Var(v) = segment
                && !vars.contains(v)
            {
                vars.push(*v);
            }
        }
        vars
    }

    /// Renders the template, as Python's `source.format(**values)` would. `value` is asked for each
    /// placeholder; its text is inserted verbatim (braces in values are never expanded).
    pub fn render<'a>(&self, mut value: impl FnMut(Var) -> &'a str) -> String {
        let mut out = String::with_capacity(self.source.len() + 256);
        for segment in self.segments.iter() {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Var(v) => out.push_str(value(*v)),
            }
        }
        out
    }
}

/// The scanner. It follows CPython's `MarkupIterator`: literal text runs until a brace; `{{` and `}}`
/// are escapes; a field runs from `{` to its matching `}` (nested braces count, as in Python).
fn split(source: &str, allowed: &[Var]) -> Result<Vec<Segment>, TemplateError> {
    let chars: Vec<char> = source.chars().collect();
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' if chars.get(i + 1) == Some(&'{') => {
                literal.push('{');
                i += 2;
            }
            '}' if chars.get(i + 1) == Some(&'}') => {
                literal.push('}');
                i += 2;
            }
            '}' => {
                return Err(TemplateError {
                    offset: i,
                    message: "single '}' in template: write '}}' for a literal brace".into(),
                });
            }
            '{' => {
                let end = matching_close(&chars, i)?;
                let field: String = chars[i + 1..end].iter().collect();
                let var = check_field(&field, allowed).map_err(|message| TemplateError { offset: i, message })?;
                if !literal.is_empty() {
                    segments.push(Segment::Literal(Cow::Owned(std::mem::take(&mut literal))));
                }
                segments.push(Segment::Var(var));
                i = end + 1;
            }
            c => {
                literal.push(c);
                i += 1;
            }
        }
    }
    if !literal.is_empty() {
        segments.push(Segment::Literal(Cow::Owned(literal)));
    }
    Ok(segments)
}

/// Index of the `}` closing the field opened at `open`, counting nested braces as Python does.
fn matching_close(chars: &[char], open: usize) -> Result<usize, TemplateError> {
    let mut depth = 1;
    for (j, c) in chars.iter().enumerate().skip(open + 1) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
            _ => {}
        }
    }
    Err(TemplateError {
        offset: open,
        message: "single '{' in template with no closing '}': write '{{' for a literal brace".into(),
    })
}

/// Accepts a field only when it is exactly an allowed name; otherwise says which Python feature the
/// author reached for, since each would change or break the rendered prompt.
fn check_field(field: &str, allowed: &[Var]) -> Result<Var, String> {
    let allowed_list = || allowed.iter().map(|v| format!("{{{}}}", v.name())).collect::<Vec<_>>().join(", ");
    if field.is_empty() {
        return Err(format!("empty placeholder '{{}}': name the variable, one of {}", allowed_list()));
    }
    if field.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("positional placeholder '{{{field}}}': use a named one, one of {}", allowed_list()));
    }
    let name_end = field.find(['.', '[', '!', ':', '{', '}']).unwrap_or(field.len());
    let name = &field[..name_end];
    if name_end < field.len() {
        let what = match field.as_bytes()[name_end] {
            b'.' => "attribute access",
            b'[' => "indexing",
            b'!' => "a conversion",
            b':' => "a format spec",
            _ => "a nested brace",
        };
        return Err(format!(
            "placeholder '{{{field}}}' uses {what}, which prompt templates do not support: write '{{{name}}}'"
        ));
    }
    match Var::from_name(name) {
        Some(var) if allowed.contains(&var) => Ok(var),
        Some(var) => Err(format!(
            "placeholder '{{{}}}' is not available in this template; allowed: {}",
            var.name(),
            allowed_list()
        )),
        None => {
            let names: Vec<&str> = allowed.iter().map(|v| v.name()).collect();
            let hint = match super::suggest::nearest(name.trim(), &names) {
                Some(n) => format!(" (did you mean '{{{n}}}'?)"),
                None => String::new(),
            };
            Err(format!("unknown placeholder '{{{field}}}'{hint}; allowed: {}", allowed_list()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Var] = &Var::ALL;

    fn render(src: &str, idea: &str) -> String {
        let t = Template::parse(src, ALL, &[]).expect("valid template");
        t.render(|v| match v {
            Var::Idea => idea,
            Var::NumberOfScenes => "6",
            _ => "x",
        })
    }

    fn error(src: &str) -> TemplateError {
        Template::parse(src, ALL, &[]).expect_err("invalid template")
    }

    #[test]
    fn renders_like_python_format() {
        // Each expectation is what CPython prints for src.format(idea=..., number_of_scenes=6, ...).
        assert_eq!(render("Idea: {idea}!", "a cat"), "Idea: a cat!");
        assert_eq!(render("{idea}{idea}", "ab"), "abab");
        assert_eq!(render("{{idea}} is {idea}", "x"), "{idea} is x");
        assert_eq!(render("{{{idea}}}", "v"), "{v}");
        assert_eq!(render("}}{{", ""), "}{");
        assert_eq!(render("{number_of_scenes} scenes", ""), "6 scenes");
        assert_eq!(render("", ""), "");
        assert_eq!(render("no placeholders", ""), "no placeholders");
        assert_eq!(render("ünïcödé {idea} ✓", "日本"), "ünïcödé 日本 ✓");
    }

    #[test]
    fn values_are_inserted_verbatim() {
        assert_eq!(render("<{idea}>", "{idea} {{ }} {"), "<{idea} {{ }} {>");
    }

    #[test]
    fn lone_braces_are_rejected_at_their_offset() {
        assert_eq!(error("ab}c").offset, 2);
        assert_eq!(error("abc{").offset, 3);
        assert_eq!(error("a {idea").offset, 2);
        assert_eq!(error("{{}").offset, 2);
        assert_eq!(error("ü}").offset, 1, "offsets count characters, not bytes");
    }

    #[test]
    fn python_only_syntax_is_rejected() {
        for (src, fragment) in [
            ("{}", "empty placeholder"),
            ("{0}", "positional"),
            ("{idea.x}", "attribute access"),
            ("{idea[0]}", "indexing"),
            ("{idea!r}", "conversion"),
            ("{idea:>3}", "format spec"),
            ("{idea{x}}", "nested brace"),
            ("{ideas}", "did you mean '{idea}'"),
            ("{ idea }", "unknown placeholder"),
        ] {
            let err = error(src);
            assert_eq!(err.offset, 0, "{src}");
            assert!(err.message.contains(fragment), "{src}: {}", err.message);
        }
    }

    #[test]
    fn allowed_and_required_sets_are_enforced() {
        let err = Template::parse("{idea}", &[Var::AspectRatio], &[]).expect_err("not allowed");
        assert!(err.message.contains("not available"), "{}", err.message);
        let err = Template::parse("no idea here", &[Var::Idea], &[Var::Idea]).expect_err("required");
        assert!(err.message.contains("must use {idea}"), "{}", err.message);
        assert!(Template::parse("{aspect_ratio}", &[Var::AspectRatio], &[]).is_ok());
    }

    #[test]
    fn vars_lists_each_once_in_order() {
        let t = Template::parse("{camera_angle} {idea} {camera_angle}", ALL, &[]).expect("valid");
        assert_eq!(t.vars(), vec![Var::CameraAngle, Var::Idea]);
    }
}
