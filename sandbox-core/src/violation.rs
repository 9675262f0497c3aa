use std::time::SystemTime;

use crate::EvalId;

/// What kind of protected action was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// A connection refused by the proxy.
    Network,
    /// A file access denied by the filesystem policy.
    Filesystem,
    /// A system call blocked by the seccomp filter.
    Syscall,
}

/// One denied action, as recorded by the enforcement layer that denied it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    /// When it was denied.
    pub time: SystemTime,
    /// The evaluation that attempted it, when known.
    pub eval: Option<EvalId>,
    /// Named sandbox, when the evaluation ran in one.
    pub sandbox: Option<String>,
    /// What kind of action.
    pub kind: ViolationKind,
    /// What was attempted: a `host:port`, a path, a syscall name.
    pub target: String,
    /// The rule that decided, e.g. `deny WebFetch(domain:evil.com)` or `no matching rule`.
    pub rule: String,
    /// The command of the evaluation.
    pub command: String,
}
