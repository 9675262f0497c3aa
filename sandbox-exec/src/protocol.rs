//! The messages exchanged between the executor and a runner child.
//!
//! The runner speaks first ([`Hello`]); the executor answers with one [`Job`];
//! the runner then reports [`Report`]s until the evaluation ends. Everything is
//! framed by [`frame`](crate::frame).

use std::path::PathBuf;

use sandbox_core::Termination;

/// Identifies a runner of ours speaking this protocol.
pub(crate) const MAGIC: [u8; 8] = *b"sbx-runr";

/// The runner's first frame: proves it is the child we spawned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Hello {
    pub magic: [u8; 8],
    pub version: u32,
    /// The secret the executor passed to this child in its environment.
    pub token: [u8; 16],
}

/// What a runner's init prepares before its job arrives, and so which jobs
/// it can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Preparation {
    /// Nothing: an unconfined job.
    Plain,
    /// The policy-independent part of the sandbox; `watch_reads` when its
    /// seccomp program also hands every `open` for reading to the executor.
    Confined {
        /// See `fsaccess`.
        watch_reads: bool,
    },
}

/// What one runner is started for. A runner the executor executes reads it
/// from its environment; one the zygote forks gets it in the request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RunnerSpec {
    /// The socket the runner connects to (the bytes of its path); `None`
    /// for a runner the zygote forks, which is handed a connected socket.
    pub endpoint: Option<Vec<u8>>,
    /// The secret it proves itself with.
    pub token: [u8; 16],
    /// Whether it creates a user namespace (the executor is not privileged).
    pub user_namespace: bool,
    /// What its init prepares.
    pub preparation: Preparation,
    /// The `cgroup.procs` files it moves into before forking init.
    pub cgroup_procs: Vec<String>,
}

/// The zygote's answer to a [`RunnerSpec`] (which arrives after the
/// runner's stdin, stdout, stderr and connected channel). The runner's pidfd travels in a
/// descriptor batch just before `Runner`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Forked {
    /// The runner exists; it is the executor's child. A forked runner is
    /// the evaluation's init itself.
    Runner { pid: u32 },
    /// No runner was made.
    Failed { reason: String },
}

/// What a new init's parent tells it once it has made the init's place:
/// mapped its user and group ids (in a user namespace) and moved it into
/// its cgroups.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Go {
    /// Init may go on; `pid` is its pid as the executor sees it.
    Ready { pid: u32 },
    /// Init must report `reason` and exit.
    Failed { reason: String },
}

/// A resource limit the runner sets with `setrlimit` in each child before exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Rlimit {
    /// The `RLIMIT_*` resource number.
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

/// Everything the runner needs to run one evaluation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Job {
    /// The command's argument vector.
    pub argv: Vec<String>,
    /// Setup steps, each an argument vector.
    pub setup: Vec<Vec<String>>,
    /// The complete environment of setup steps and command.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    /// What to confine the evaluation with; `None` for an unrestricted policy.
    pub confinement: Option<Confinement>,
    pub rlimits: Vec<Rlimit>,
    /// Most bytes of a failing setup step's output to report.
    pub max_setup_output: usize,
}

/// The confinement init applies before anything of the evaluation runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Confinement {
    /// Namespaces and mounts.
    pub plan: sandbox_policy::LinuxPlan,
    /// Whether to apply Landlock on top of the mounts.
    pub landlock: LandlockMode,
    /// The job's seccomp programs, installed in order on top of the one init
    /// installed as a spare (none when the caller accepted running without a
    /// filter on a machine that has none).
    pub seccomp: Vec<Vec<BpfInstruction>>,
    /// The loopback ports init listens on inside the sandbox's network
    /// namespace for the executor's proxies, when the policy allows any network.
    pub bridge: Option<BridgePorts>,
    /// Whether the executor judges every `open` for reading (the policy
    /// denies reading somewhere); the spare that takes the job must have
    /// been prepared so.
    pub watch_reads: bool,
}

/// Where the sandbox reaches the proxies: ports on its own loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct BridgePorts {
    /// The HTTP proxy (`HTTP_PROXY`, `HTTPS_PROXY`).
    pub http: u16,
    /// The SOCKS5 proxy (`ALL_PROXY`).
    pub socks: u16,
}

/// How init applies Landlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum LandlockMode {
    /// Not at all: the machine has none and the caller accepted that.
    Skip,
    /// As fully as the kernel allows. `required`: fail rather than run when the
    /// kernel enforces nothing of it.
    Apply { required: bool },
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct BpfInstruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Resource usage of the evaluation's processes, as `getrusage` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Usage {
    pub user_us: u64,
    pub sys_us: u64,
    pub max_rss_kib: u64,
}

/// What the runner reports while and after running a job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Report {
    /// The evaluation's init process exists; this is its pid as the executor sees
    /// it. Killing it kills every process of the evaluation.
    Started { init_pid: u32 },
    /// Init has read the job and is about to act on it. Until this report the
    /// job has had no effect, so a runner lost before it may be replaced.
    Accepted,
    /// A setup step failed; the command did not run.
    SetupFailed {
        step: usize,
        termination: Termination,
        /// Its output, truncated with the usual marker.
        output: Vec<u8>,
    },
    /// The command could not be executed.
    SpawnFailed { reason: String, code: i32 },
    /// The command ended.
    Finished {
        termination: Termination,
        usage: Usage,
    },
    /// The runner could not prepare the evaluation.
    Failed { reason: String },
}

impl Report {
    /// Whether the evaluation is over once this report arrives.
    pub fn is_final(&self) -> bool {
        !matches!(self, Report::Started { .. } | Report::Accepted)
    }
}
