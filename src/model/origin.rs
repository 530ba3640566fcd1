//! Where a resolved value came from: the settings files a flavor directory holds, and the flavor,
//! file, line and column that set the value.

use std::borrow::Cow;
use std::fmt;

use super::value::Text;

/// The flavor every other one inherits from, and the one used when a request names none.
pub const DEFAULT_FLAVOR: &str = "default";

/// The longest flavor name, in characters (all ASCII): a leading letter or digit and up to 63 more,
/// as the compiler's `FLAVOR_NAME_PATTERN` spells it.
pub const MAX_FLAVOR_NAME_CHARS: usize = 64;

/// The files a flavor directory may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    Parameters,
    ScenePrompts,
    ImageParams,
    ImagePrompts,
    Meta,
}

impl FileKind {
    /// Every allowed file, settings files first.
    pub const ALL: [FileKind; 5] =
        [FileKind::Parameters, FileKind::ScenePrompts, FileKind::ImageParams, FileKind::ImagePrompts, FileKind::Meta];

    pub const fn file_name(self) -> &'static str {
        match self {
            FileKind::Parameters => "parameters.yaml",
            FileKind::ScenePrompts => "scene_prompts.yaml",
            FileKind::ImageParams => "image_params.yaml",
            FileKind::ImagePrompts => "image_prompts.yaml",
            FileKind::Meta => "flavor.yaml",
        }
    }

    pub fn from_file_name(name: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|k| k.file_name() == name)
    }
}

/// Where a resolved value was written: the flavor whose file set it, and the position of the value.
/// A value no file set (a key's built-in default) has line and column 0: positions in files are
/// 1-based, so 0 never names one, and the generated table keeps one plain shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub flavor: Text,
    pub file: FileKind,
    pub line: u32,
    pub col: u32,
}

impl Origin {
    /// The origin of a built-in default for a key of `file`. It belongs to the default flavor, the
    /// root every other flavor inherits from.
    pub fn builtin(file: FileKind) -> Origin {
        Origin { flavor: Cow::Borrowed(DEFAULT_FLAVOR), file, line: 0, col: 0 }
    }

    /// True when no file set the value: it is the key's built-in default.
    pub fn is_builtin(&self) -> bool {
        self.line == 0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_builtin() {
            write!(f, "built-in default (not set in any {})", self.file.file_name())
        } else {
            write!(f, "{}/{}:{}:{}", self.flavor, self.file.file_name(), self.line, self.col)
        }
    }
}

/// A resolved value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}
