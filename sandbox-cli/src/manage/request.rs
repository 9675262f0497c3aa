//! [`Request`]: one named-sandbox operation, as the command line built it.
//!
//! Requests are data so that the same operation runs either on a [`Manager`]
//! opened by this process or in the supervisor, sent over the control socket
//! (see [`crate::control`]). Everything that depends on where the user typed
//! the command (relative paths, `~`, settings files, the file to deploy) is
//! resolved by the client before the request is built.
//!
//! [`Manager`]: sandbox_core::manager::Manager

use std::path::PathBuf;

use sandbox_core::manager::SandboxSpec;
use sandbox_core::{Command, Outcome};
use serde::{Deserialize, Serialize};

/// One operation on the state directory.
// Built once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `sandbox create`.
    Create {
        name: String,
        spec: SandboxSpec,
        json: bool,
    },
    /// `sandbox list`.
    List { json: bool },
    /// `sandbox info`.
    Info { name: String, json: bool },
    /// `sandbox start`.
    Start { name: String },
    /// `sandbox stop`.
    Stop { name: String },
    /// `sandbox restart`.
    Restart { name: String },
    /// `sandbox destroy`.
    Destroy { name: String },
    /// `sandbox deploy`: the file's bytes travel in the request.
    Deploy {
        name: String,
        module: String,
        bytes: Vec<u8>,
        migrate: Option<String>,
        grace_ms: u64,
        wait_ready: bool,
        json: bool,
    },
    /// `sandbox versions`.
    Versions {
        name: String,
        module: Option<String>,
        json: bool,
    },
    /// `sandbox rollback`.
    Rollback {
        name: String,
        module: String,
        version: u32,
    },
    /// `sandbox snapshot`.
    Snapshot { name: String, snapshot: String },
    /// `sandbox restore`.
    Restore { name: String, snapshot: String },
    /// `sandbox snapshots` (with `delete`: remove that one).
    Snapshots {
        name: String,
        delete: Option<String>,
        json: bool,
    },
    /// `sandbox events`.
    Events {
        name: String,
        follow: bool,
        json: bool,
    },
    /// The request of an evaluation in the sandbox (`None`: its entry
    /// command); answered with `data`.
    Evaluation {
        name: String,
        command: Option<Command>,
    },
    /// The request of a build in the sandbox writing to `out` (default:
    /// `build` in its workspace); answered with `data`.
    Build {
        name: String,
        build: Option<Command>,
        out: Option<PathBuf>,
    },
    /// Counts a finished evaluation in the sandbox's metrics.
    RecordOutcome { name: String, outcome: Outcome },
}
