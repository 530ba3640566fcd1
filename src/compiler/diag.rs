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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_position_when_known() {
        assert_eq!(Diagnostic::at("a.yaml", 7, 19, "bad").to_string(), "a.yaml:7:19: bad");
        assert_eq!(Diagnostic::whole("configs/x", "bad").to_string(), "configs/x: bad");
    }
}
