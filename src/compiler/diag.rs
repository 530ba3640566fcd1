//! Compiler diagnostics: one fault in one configs file, with its position and a message that says
//! what is wrong and how to fix it. The compiler collects them; callers decide how to print them.

use std::fmt;

/// One fault, printed as `path:line:col: message` (or `path: message` when there is no position,
/// e.g. for a directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: String,
    pub position: Option<(u32, u32)>,
    pub message: String,
}

impl Diagnostic {
    pub fn at(path: impl Into<String>, line: u32, col: u32, message: impl Into<String>) -> Self {
        Diagnostic { path: path.into(), position: Some((line, col)), message: message.into() }
    }

    pub fn whole(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic { path: path.into(), position: None, message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{}:{}: {}", self.path, line, col, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every fault found in one compile, sorted by path and position so output is stable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub(crate) fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| (&a.path, a.position).cmp(&(&b.path, b.position)));
        self.0.dedup();
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        write!(f, "{} error{} in configs", self.0.len(), if self.0.len() == 1 { "" } else { "s" })
    }
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(&word.to_lowercase(), c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// ` (did you mean `x`?)` when a candidate is close to `word` (see [`nearest`]), else nothing: the
/// hint every "no such name" message ends with.
pub fn did_you_mean(word: &str, candidates: &[&str]) -> String {
    nearest(word, candidates).map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb { diagonal } else { 1 + diagonal.min(above).min(row[j]) };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["video_type", "camera_angle", "number_of_scenes"];
        assert_eq!(nearest("video_typ", &keys), Some("video_type"));
        assert_eq!(nearest("Camera_Angle", &keys), Some("camera_angle"));
        assert_eq!(nearest("numbr_of_scene", &keys), Some("number_of_scenes"));
        assert_eq!(nearest("colour", &keys), None);
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn display_has_position_when_known() {
        assert_eq!(Diagnostic::at("a.yaml", 7, 19, "bad").to_string(), "a.yaml:7:19: bad");
        assert_eq!(Diagnostic::whole("configs/x", "bad").to_string(), "configs/x: bad");
    }
}
