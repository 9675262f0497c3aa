//! [`ManagerError`]: everything the manager of named sandboxes can refuse or fail
//! at, each message naming the sandbox, module, snapshot or file involved.

use std::io;
use std::path::PathBuf;

/// Why a manager operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// A sandbox, module or snapshot name outside the accepted form.
    #[error("invalid {what} name {name:?}: {accepted}")]
    InvalidName {
        /// `sandbox`, `module` or `snapshot`.
        what: &'static str,
        /// The name as given.
        name: String,
        /// What is accepted, e.g. `use 1-63 characters from a-z, 0-9, '_' and '-', starting with a letter or digit`.
        accepted: &'static str,
    },
    /// `create` with the name of an existing sandbox.
    #[error("a sandbox named {0:?} already exists (destroy it first or pick another name)")]
    AlreadyExists(String),
    /// No sandbox of that name.
    #[error("no sandbox named {0:?}")]
    NotFound(String),
    /// The sandbox has no module of that name.
    #[error("sandbox {sandbox:?} has no module named {module:?}")]
    ModuleNotFound {
        /// The sandbox.
        sandbox: String,
        /// The module.
        module: String,
    },
    /// The module has no such version.
    #[error("module {module:?} of sandbox {sandbox:?} has no version {version} (it has {total})")]
    VersionNotFound {
        /// The sandbox.
        sandbox: String,
        /// The module.
        module: String,
        /// The version asked for.
        version: u32,
        /// How many versions the module has.
        total: u32,
    },
    /// No snapshot of that name.
    #[error("sandbox {sandbox:?} has no snapshot named {snapshot:?}")]
    SnapshotNotFound {
        /// The sandbox.
        sandbox: String,
        /// The snapshot.
        snapshot: String,
    },
    /// A snapshot of that name exists already.
    #[error("sandbox {sandbox:?} already has a snapshot named {snapshot:?}")]
    SnapshotExists {
        /// The sandbox.
        sandbox: String,
        /// The snapshot.
        snapshot: String,
    },
    /// The spec cannot be used (empty command, zero period, …).
    #[error("invalid spec for sandbox {name:?}: {reason}")]
    InvalidSpec {
        /// The sandbox.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Another manager holds the state directory.
    #[error(
        "state directory is in use by another manager (lock {path} held{}); \
         close it or use another state directory (SANDBOX_STATE_DIR)",
        match holder_pid { Some(pid) => format!(" by pid {pid}"), None => String::new() }
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The pid written in the lock file by its holder, when readable.
        holder_pid: Option<u32>,
    },
    /// A store file failed validation: truncated, checksum mismatch, bad header,
    /// unparsable body, or missing.
    #[error("corrupt state file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A store file written by a newer format.
    #[error("state file {path} has format version {found}, this build reads up to {supported}")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Neither an explicit directory, `SANDBOX_STATE_DIR`, `XDG_DATA_HOME` nor
    /// `HOME` says where the state lives.
    #[error("no state directory: pass one, or set SANDBOX_STATE_DIR, XDG_DATA_HOME or HOME")]
    NoStateDir,
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `writing`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The sandbox has a service but the manager was opened without a launcher.
    #[error("sandbox {0:?} has a service but this manager has no service launcher (Manager::with_launcher)")]
    NoLauncher(String),
    /// The sandbox's spec has no service.
    #[error("sandbox {0:?} has no service")]
    NoService(String),
    /// The service is not running.
    #[error("the service of sandbox {0:?} is not running")]
    ServiceNotRunning(String),
    /// The launcher could not start the service.
    #[error("starting the service of sandbox {name:?}: {reason}")]
    Launch {
        /// The sandbox.
        name: String,
        /// The launcher's error.
        reason: String,
    },
    /// The service did not answer on its control channel as the protocol asks.
    #[error("service of sandbox {name:?}: {reason}")]
    Protocol {
        /// The sandbox.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

impl ManagerError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ManagerError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        ManagerError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Shorthand for manager results.
pub type Result<T, E = ManagerError> = std::result::Result<T, E>;
