//! Errors of policy building. Every message names its source (settings file or
//! flag) and quotes the offending text.

use std::path::PathBuf;

use crate::origin::Layer;
use crate::permission::PermissionError;

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("settings file {path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not JSON, or a field of the wrong type.
    #[error("settings file {path}: line {line}, column {column}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value of the right type that is still invalid (a bad domain, IP, path).
    #[error("settings file {path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field, with its index: `network.allowedDomains[1]`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Why a policy could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A bad settings file.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A bad permission string, in a settings file or a flag.
    #[error("{layer}: {field}: {error}")]
    Permission {
        /// Where it was written.
        layer: Layer,
        /// `permissions.allow`, `--deny`, …
        field: String,
        /// The error, quoting the string.
        error: Box<PermissionError>,
    },
}
