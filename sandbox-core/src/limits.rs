use std::fmt;
use std::time::Duration;

/// Resource limits of one evaluation. `None` means "not limited".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Memory of the whole evaluation, in bytes.
    pub memory: Option<u64>,
    /// CPU time (user + system).
    pub cpu_time: Option<Duration>,
    /// Number of processes (and threads) alive at once.
    pub pids: Option<u32>,
    /// Largest file the evaluation may write, in bytes.
    pub file_size: Option<u64>,
    /// Open file descriptors per process.
    pub open_files: Option<u64>,
}

impl Limits {
    /// Each limit that is set, with its kind.
    pub fn requested(&self) -> Vec<LimitKind> {
        let mut kinds = Vec::new();
        if self.memory.is_some() {
            kinds.push(LimitKind::Memory);
        }
        if self.cpu_time.is_some() {
            kinds.push(LimitKind::CpuTime);
        }
        if self.pids.is_some() {
            kinds.push(LimitKind::Pids);
        }
        if self.file_size.is_some() {
            kinds.push(LimitKind::FileSize);
        }
        if self.open_files.is_some() {
            kinds.push(LimitKind::OpenFiles);
        }
        kinds
    }
}

/// One kind of resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// See [`Limits::memory`].
    Memory,
    /// See [`Limits::cpu_time`].
    CpuTime,
    /// See [`Limits::pids`].
    Pids,
    /// See [`Limits::file_size`].
    FileSize,
    /// See [`Limits::open_files`].
    OpenFiles,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::Memory => "memory",
            LimitKind::CpuTime => "cpu_time",
            LimitKind::Pids => "pids",
            LimitKind::FileSize => "file_size",
            LimitKind::OpenFiles => "open_files",
        })
    }
}

/// The kernel mechanism that enforced a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mechanism {
    /// A cgroup v2 controller: the limit covers the whole process tree.
    CgroupV2,
    /// A cgroup v1 controller: the limit covers the whole process tree.
    CgroupV1,
    /// A `setrlimit` resource limit: it applies to each process on its own
    /// (`RLIMIT_NPROC` counts the processes of the user inside the sandbox).
    Rlimit,
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mechanism::CgroupV2 => "cgroup v2",
            Mechanism::CgroupV1 => "cgroup v1",
            Mechanism::Rlimit => "rlimit",
        })
    }
}

/// How one requested limit was enforced, as reported in an outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LimitEnforcement {
    /// The limit.
    pub limit: LimitKind,
    /// The mechanism that enforced it.
    pub mechanism: Mechanism,
    /// What exactly was set, e.g. `memory.limit_in_bytes` or `RLIMIT_AS`.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_request_nothing() {
        assert!(Limits::default().requested().is_empty());
    }

    #[test]
    fn requested_lists_each_set_limit() {
        let limits = Limits {
            memory: Some(1),
            file_size: Some(2),
            ..Limits::default()
        };
        assert_eq!(
            limits.requested(),
            vec![LimitKind::Memory, LimitKind::FileSize]
        );
    }
}
