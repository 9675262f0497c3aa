//! Where each rule came from, so that a policy can be printed rule by rule with the
//! layer that contributed it.

use std::fmt;
use std::path::PathBuf;

/// A source of rules. Layers are applied in this order; later layers add rules
/// (they never remove one), and deny rules win over allow rules whatever their layer.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Layer {
    /// Built-in protections (shell rc files, `.git/hooks`, `.git/config`, `.sandbox/`).
    Mandatory,
    /// The user settings file (`~/.sandbox/settings.json`).
    User(PathBuf),
    /// The project settings file (`.sandbox/settings.json` in the working directory).
    Project(PathBuf),
    /// A settings file named explicitly (`--settings FILE`).
    SettingsFile(PathBuf),
    /// Command-line flags (`--allow`, `--deny`).
    Flag,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Mandatory => f.write_str("mandatory"),
            Layer::User(p) => write!(f, "user settings {}", p.display()),
            Layer::Project(p) => write!(f, "project settings {}", p.display()),
            Layer::SettingsFile(p) => write!(f, "settings file {}", p.display()),
            Layer::Flag => f.write_str("command line"),
        }
    }
}

/// The origin of one rule: its layer, the field or flag it was written in, and its
/// text exactly as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// The layer.
    pub layer: Layer,
    /// Where in the layer: `permissions.deny`, `filesystem.denyRead`, `--allow`, …
    pub field: String,
    /// The original text: `Read(~/.ssh)`, `~/.ssh`, `*.github.com`, …
    pub text: String,
}

impl Origin {
    /// An origin for a rule written in `field` of `layer`.
    pub fn new(layer: Layer, field: impl Into<String>, text: impl Into<String>) -> Origin {
        Origin {
            layer,
            field: field.into(),
            text: text.into(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} ({})", self.field, self.text, self.layer)
    }
}
