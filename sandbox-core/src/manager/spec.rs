//! [`SandboxSpec`]: what a named sandbox is made of — its policy, limits, entry
//! command, workspace and optional supervised service.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sandbox_policy::Policy;

use super::error::{ManagerError, Result};
use crate::Limits;

/// The definition of a named sandbox, stored with it and given back by
/// [`Manager::info`](super::Manager::info).
///
/// The policy is a built [`Policy`], not the settings and permission strings it
/// came from: the caller (the CLI) resolves settings layers against its own
/// home and working directory, and the stored policy then means the same thing
/// whatever process later reads the state directory. The manager adds one rule
/// to a restricted policy: the workspace is writable (see
/// [`Manager::eval_request`](super::Manager::eval_request)).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    /// Confinement of every evaluation and of the service.
    pub policy: Policy,
    /// Resource limits of every evaluation and of the service.
    pub limits: Limits,
    /// The entry command (argv) run by
    /// [`Manager::entry_request`](super::Manager::entry_request), e.g.
    /// `["python3", "main.py"]`; empty when the sandbox has none.
    pub entry: Vec<String>,
    /// Extra environment of evaluations and of the service.
    pub env: BTreeMap<String, String>,
    /// The workspace directory; `None` means `sandboxes/NAME/workspace` inside
    /// the state directory, removed with the sandbox. A directory given here is
    /// the caller's: it is created when missing but never removed.
    pub workspace: Option<PathBuf>,
    /// A long-lived process supervised by the manager.
    pub service: Option<ServiceSpec>,
}

impl SandboxSpec {
    /// A spec with the given policy and everything else default.
    pub fn new(policy: Policy) -> Self {
        SandboxSpec {
            policy,
            ..SandboxSpec::default()
        }
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the entry command.
    pub fn entry<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entry = argv.into_iter().map(Into::into).collect();
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Uses `dir` as the workspace (kept when the sandbox is destroyed).
    pub fn workspace(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workspace = Some(dir.into());
        self
    }

    /// Sets the service.
    pub fn service(mut self, service: ServiceSpec) -> Self {
        self.service = Some(service);
        self
    }

    pub(crate) fn validate(&self, name: &str) -> Result<()> {
        let invalid = |reason: &str| ManagerError::InvalidSpec {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if let Some(dir) = &self.workspace {
            if !dir.is_absolute() {
                return Err(invalid("the workspace must be an absolute path"));
            }
        }
        if self.env.keys().any(|k| k.is_empty() || k.contains('=')) {
            return Err(invalid(
                "environment names must be non-empty and free of '='",
            ));
        }
        if let Some(service) = &self.service {
            if service.command.is_empty() {
                return Err(invalid("the service command is empty"));
            }
            let r = &service.restart;
            if r.period.is_zero() {
                return Err(invalid("the restart period must be longer than zero"));
            }
            if r.backoff_initial > r.backoff_max {
                return Err(invalid(
                    "the initial backoff is longer than the maximum backoff",
                ));
            }
        }
        Ok(())
    }
}

/// A long-lived process of a sandbox: started with the sandbox, restarted when
/// it crashes, replaced on hot reload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceSpec {
    /// Program and arguments. It sees the sandbox's code directory in
    /// `SANDBOX_CODE_DIR` and its workspace as working directory.
    pub command: Vec<String>,
    /// When and how fast to restart it after a crash.
    pub restart: RestartStrategy,
}

impl ServiceSpec {
    /// A service running `argv` with the default restart strategy.
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ServiceSpec {
            command: argv.into_iter().map(Into::into).collect(),
            restart: RestartStrategy::default(),
        }
    }

    /// Sets the restart strategy.
    pub fn restart(mut self, restart: RestartStrategy) -> Self {
        self.restart = restart;
        self
    }
}

/// The restart intensity (OTP's `max_restarts` within `max_seconds`) and the
/// exponential backoff between restarts.
///
/// A crash is followed by a restart after `backoff_initial × 2^(n-1)` (at most
/// `backoff_max`), where `n` counts the crashes within the last `period`; the
/// crash that makes `n` exceed `max_restarts` leaves the service `Failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestartStrategy {
    /// Restarts allowed within `period`.
    pub max_restarts: u32,
    /// The sliding window the restarts are counted in.
    pub period: Duration,
    /// Delay before the first restart.
    pub backoff_initial: Duration,
    /// Longest delay between restarts.
    pub backoff_max: Duration,
}

impl Default for RestartStrategy {
    /// 3 restarts within 5 s (OTP's supervisor default intensity is 1 in 5 s;
    /// services started from scripts often fail once while warming up), backoff
    /// 100 ms doubling up to 5 s.
    fn default() -> Self {
        RestartStrategy {
            max_restarts: 3,
            period: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}
