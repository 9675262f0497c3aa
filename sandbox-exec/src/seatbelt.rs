//! macOS evaluations through Seatbelt: every decision that is logic rather
//! than a system call.
//!
//! macOS has no namespaces to build a runner child in, so an evaluation there
//! starts each setup step and then the command as
//! `/usr/bin/sandbox-exec -p PROFILE -- ARGV…`, where `PROFILE` is the shared
//! generator's [`Policy::seatbelt_profile`] of the request's policy (an
//! unrestricted policy runs the program directly). The system calls that do
//! this live in the `macos` module and cannot run on the Linux machines the
//! project is tested on; this module holds what they act on — the launcher
//! argv, direct or sandboxed, the program lookup that gives the same 126/127
//! statuses as Linux, the rlimit plan and how honestly it can be enforced,
//! reading `sandbox-exec`'s own failures, and assembling the [`Outcome`] — so
//! that all of it is compiled and unit-tested everywhere.

// Only the macOS evaluation (and the tests) use this module; on other
// platforms it is compiled so that its tests run there.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::path::{Path, PathBuf};
use std::time::Duration;

use sandbox_core::{
    EvalRequest, LimitEnforcement, LimitKind, Limits, Mechanism, Outcome, ResourceUsage, Status,
    StreamCounts, Termination,
};
use sandbox_policy::{HostFs, Policy};

use crate::capture::Captured;
use crate::classify::{classify, Evidence};
use crate::ExecError;

/// The Seatbelt launcher every macOS has.
pub(crate) const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// What macOS's `execvp` searches when the environment has no `PATH`
/// (`_PATH_DEFPATH`). `sandbox-exec` finds the command with `execvp`, so the
/// lookup here must search the same directories to agree with it.
pub(crate) const DEFAULT_PATH: &str = "/usr/bin:/bin";

/// `sandbox-exec`'s exit code when its `execvp` of the command fails (`EX_OSERR`).
const SANDBOX_EXEC_EXEC_FAILED: i32 = 71;

/// Exit codes with which `sandbox-exec` reports its own failures: usage (64),
/// a profile it cannot compile (65), and an exec or `sandbox_apply` failure
/// (71). A command may exit with them too, so they count only together with
/// `sandbox-exec`'s own message as the whole output.
const SANDBOX_EXEC_FAILURES: [i32; 3] = [64, 65, SANDBOX_EXEC_EXEC_FAILED];

/// How the programs of one evaluation are started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Launcher {
    /// As they are: the policy is unrestricted, so nothing confines them (as
    /// on Linux, where such a policy gets no confinement either).
    Direct,
    /// Under `sandbox-exec` with this profile.
    Seatbelt {
        /// The SBPL profile, generated once for the whole evaluation.
        profile: String,
    },
}

impl Launcher {
    /// The launcher for `policy`; generates its profile (once: every step of
    /// the evaluation reuses it).
    pub fn for_policy(policy: &Policy) -> Launcher {
        if policy.is_unrestricted() {
            Launcher::Direct
        } else {
            // The generator does not consult the filesystem (paths were
            // resolved when the policy was built); `HostFs` is what it takes.
            Launcher::Seatbelt {
                profile: policy.seatbelt_profile(&HostFs),
            }
        }
    }

    /// The profile, when the programs run under Seatbelt.
    pub fn profile(&self) -> Option<&str> {
        match self {
            Launcher::Direct => None,
            Launcher::Seatbelt { profile } => Some(profile),
        }
    }

    /// What to execute for `argv`, whose program was found at `resolved`.
    pub fn invocation(&self, argv: &[String], resolved: &Path) -> Invocation {
        match self {
            // The resolved path is executed, but the program sees the name it
            // was given as its argv[0], as after a shell's PATH lookup.
            Launcher::Direct => Invocation {
                program: resolved.to_path_buf(),
                argv: argv.to_vec(),
            },
            // `sandbox-exec` looks the program up itself (with the same PATH,
            // see `DEFAULT_PATH`), so the name is passed as given.
            Launcher::Seatbelt { profile } => Invocation {
                program: PathBuf::from(SANDBOX_EXEC),
                argv: launcher_argv(profile, argv),
            },
        }
    }
}

/// `sandbox-exec -p PROFILE -- ARGV…`. The profile is one argument however
/// many lines it has (no temporary file to write, leak or race on), and `--`
/// keeps a program whose name starts with `-` from being read as an option.
pub(crate) fn launcher_argv(profile: &str, argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len() + 4);
    out.extend([SANDBOX_EXEC, "-p", profile, "--"].map(String::from));
    out.extend_from_slice(argv);
    out
}

/// One program to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    /// The file to execute.
    pub program: PathBuf,
    /// Its argument vector, argv[0] included.
    pub argv: Vec<String>,
}

/// Why a program could not be started, with the shell-convention exit code
/// (127 not found, 126 not executable, 125 anything else), as on Linux.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpawnFailure {
    pub reason: String,
    pub code: i32,
}

/// What the host says about one candidate path of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A file this user may execute.
    Runnable,
    /// It exists but cannot be executed (no permission, a directory, …).
    Denied,
    /// Nothing there, or a directory on the way that this user cannot search.
    Missing,
    /// Looking failed otherwise (a symlink loop, a name too long, …).
    Failed(String),
}

/// A resource limit macOS enforces per process with `setrlimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `RLIMIT_CPU`.
    Cpu,
    /// `RLIMIT_FSIZE`.
    FileSize,
    /// `RLIMIT_NOFILE`.
    OpenFiles,
}

impl Resource {
    /// The `RLIMIT_*` name, for messages and outcome details.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "RLIMIT_CPU",
            Resource::FileSize => "RLIMIT_FSIZE",
            Resource::OpenFiles => "RLIMIT_NOFILE",
        }
    }
}

/// A resource limit set in each program before it executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rlimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// How the limits of one evaluation are enforced on macOS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LimitPlan {
    pub rlimits: Vec<Rlimit>,
    /// One entry per requested limit, for [`Outcome::limits`].
    pub enforcement: Vec<LimitEnforcement>,
}

/// Plans `limits` for macOS, or refuses a limit it cannot enforce: there are
/// no cgroups, so only what `setrlimit` enforces per process is available.
pub(crate) fn plan_limits(limits: &Limits) -> Result<LimitPlan, ExecError> {
    if limits.memory.is_some() {
        return Err(ExecError::LimitUnavailable {
            limit: LimitKind::Memory,
            reason: "macOS has no cgroups and does not enforce RLIMIT_AS (nor RLIMIT_DATA \
                     or RLIMIT_RSS), so nothing would stop the evaluation from using more; \
                     leave the memory limit unset on macOS"
                .into(),
        });
    }
    if limits.pids.is_some() {
        return Err(ExecError::LimitUnavailable {
            limit: LimitKind::Pids,
            reason: "macOS has no cgroups, and its RLIMIT_NPROC counts every process of the \
                     user on the whole machine rather than the evaluation's; leave the pids \
                     limit unset on macOS"
                .into(),
        });
    }
    let mut plan = LimitPlan::default();
    let mut set = |limit, resource: Resource, soft: u64, hard: u64, detail: String| {
        plan.rlimits.push(Rlimit {
            resource,
            soft,
            hard,
        });
        plan.enforcement.push(LimitEnforcement {
            limit,
            mechanism: Mechanism::Rlimit,
            detail,
        });
    };
    if let Some(cpu) = limits.cpu_time {
        // As on Linux: RLIMIT_CPU counts whole seconds, rounded up so the limit
        // is never stricter than asked; SIGXCPU at the soft limit, and the hard
        // limit a second later for programs that catch or ignore it.
        let secs = (cpu.as_secs() + u64::from(cpu.subsec_nanos() > 0)).max(1);
        set(
            LimitKind::CpuTime,
            Resource::Cpu,
            secs,
            secs + 1,
            format!("RLIMIT_CPU={secs}s per process"),
        );
    }
    if let Some(bytes) = limits.file_size {
        set(
            LimitKind::FileSize,
            Resource::FileSize,
            bytes,
            bytes,
            format!("RLIMIT_FSIZE={bytes}"),
        );
    }
    if let Some(n) = limits.open_files {
        set(
            LimitKind::OpenFiles,
            Resource::OpenFiles,
            n,
            n,
            format!("RLIMIT_NOFILE={n}"),
        );
    }
    Ok(plan)
}

/// What the evaluation needs to know about the machine, so that the logic
/// here can be tested with a made-up one.
pub(crate) trait Host {
    /// Whether `path` is an existing directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// What is at `path`, seen as a program to execute.
    fn probe(&self, path: &Path) -> Probe;
    /// This process's hard limit of `resource` (which its children inherit);
    /// `None` when unlimited.
    fn hard_limit(&self, resource: Resource) -> Option<u64>;
    /// Whether this process may raise hard limits.
    fn is_root(&self) -> bool;
}

/// Everything decided once per evaluation before anything starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The command's argument vector.
    pub argv: Vec<String>,
    /// Each setup step's argument vector.
    pub setup: Vec<Vec<String>>,
    pub launcher: Launcher,
    pub limits: LimitPlan,
    /// The complete environment of every program.
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

impl Plan {
    /// Checks `request` as Linux does and plans it; `host_env` is the
    /// executor's environment, from which the allowlisted variables come.
    pub fn new<I, K, V>(
        request: &EvalRequest,
        host_env: I,
        host: &dyn Host,
    ) -> Result<Plan, ExecError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let argv = validate(request, host)?;
        let limits = plan_limits(&request.limits)?;
        Ok(Plan {
            argv,
            setup: request.setup.iter().map(|s| s.to_argv()).collect(),
            launcher: Launcher::for_policy(&request.policy),
            limits,
            env: request.effective_env(host_env).into_iter().collect(),
            cwd: request.cwd.clone(),
        })
    }

    /// What to execute for one program of the evaluation, checked in the order
    /// the Linux runner fails in: arguments, then limits, then the lookup.
    pub fn prepare(&self, argv: &[String], host: &dyn Host) -> Result<Invocation, SpawnFailure> {
        check_nul(argv, &self.env, self.cwd.as_deref())?;
        check_rlimits(&self.limits.rlimits, host)?;
        let path_var = self
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str());
        let resolved = resolve(&argv[0], path_var, self.cwd.as_deref(), host)?;
        Ok(self.launcher.invocation(argv, &resolved))
    }
}

/// Refuses what the Linux executor refuses, in the same order and words
/// (the checks shared with Linux), and returns the argv.
pub(crate) fn validate(request: &EvalRequest, host: &dyn Host) -> Result<Vec<String>, ExecError> {
    crate::validate::request(request, &|dir| host.is_dir(dir))
}

/// A NUL byte cannot cross `execve`; say which string has one, as Linux does.
fn check_nul(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&Path>,
) -> Result<(), SpawnFailure> {
    let nul = |what: &str, s: &str| SpawnFailure {
        reason: format!("{what} {s:?} contains a NUL byte"),
        code: 125,
    };
    if let Some(arg) = argv.iter().find(|a| a.contains('\0')) {
        return Err(nul("argument", arg));
    }
    for (k, v) in env {
        let var = format!("{k}={v}");
        if var.contains('\0') {
            return Err(nul("environment variable", &var));
        }
    }
    if let Some(dir) = cwd.map(|d| d.to_string_lossy()) {
        if dir.contains('\0') {
            return Err(nul("directory", &dir));
        }
    }
    Ok(())
}

/// Refuses, before spawning, a limit above this process's hard limit: the
/// child could not set it (`EPERM`), and a failure inside the child would be
/// indistinguishable from a failed exec. Same status as on Linux, where the
/// runner's `setrlimit` fails: spawn failed, 125.
pub(crate) fn check_rlimits(rlimits: &[Rlimit], host: &dyn Host) -> Result<(), SpawnFailure> {
    if host.is_root() {
        return Ok(());
    }
    for r in rlimits {
        if let Some(hard) = host.hard_limit(r.resource) {
            if r.hard > hard {
                return Err(SpawnFailure {
                    reason: format!(
                        "cannot set a resource limit: {}={} is above this process's hard \
                         limit {hard}, which only root may raise",
                        r.resource.name(),
                        r.hard
                    ),
                    code: 125,
                });
            }
        }
    }
    Ok(())
}

/// Finds `program` as `execvp` (and the Linux runner) does: a name with a
/// slash is a path, anything else is searched in `path_var` (or
/// [`DEFAULT_PATH`]), an empty entry meaning the working directory. The first
/// runnable candidate wins; one that exists but cannot be executed makes the
/// failure "cannot execute" (126) rather than "not found" (127). Candidates
/// are returned as written; relative ones are probed from `cwd`, where the
/// program will start.
pub(crate) fn resolve(
    program: &str,
    path_var: Option<&str>,
    cwd: Option<&Path>,
    host: &dyn Host,
) -> Result<PathBuf, SpawnFailure> {
    let searched = !program.contains('/');
    let candidates: Vec<PathBuf> = if searched {
        path_var
            .unwrap_or(DEFAULT_PATH)
            .split(':')
            .map(|dir| if dir.is_empty() { "." } else { dir })
            .map(|dir| Path::new(dir).join(program))
            .collect()
    } else {
        vec![PathBuf::from(program)]
    };
    let mut denied = false;
    for candidate in candidates {
        let probed = match cwd {
            Some(cwd) => cwd.join(&candidate),
            None => candidate.clone(),
        };
        match host.probe(&probed) {
            Probe::Runnable => return Ok(candidate),
            Probe::Denied => denied = true,
            Probe::Missing => {}
            Probe::Failed(desc) => {
                return Err(SpawnFailure {
                    reason: format!("{program}: cannot execute: {desc}"),
                    code: 125,
                })
            }
        }
    }
    Err(if denied {
        SpawnFailure {
            reason: format!("{program}: cannot execute: Permission denied"),
            code: 126,
        }
    } else {
        not_found(program, "No such file or directory")
    })
}

fn not_found(program: &str, desc: &str) -> SpawnFailure {
    SpawnFailure {
        reason: if program.contains('/') {
            format!("{program}: {desc}")
        } else {
            format!("{program}: command not found")
        },
        code: 127,
    }
}

/// The status of a program whose spawn failed with `errno` (`desc` is its
/// text), by the shell's convention as on Linux.
pub(crate) fn spawn_failure(program: &str, errno: Option<i32>, desc: &str) -> SpawnFailure {
    match errno {
        Some(libc::ENOENT | libc::ENOTDIR) => not_found(program, desc),
        Some(libc::EACCES | libc::ENOEXEC | libc::EISDIR | libc::EPERM) => SpawnFailure {
            reason: format!("{program}: cannot execute: {desc}"),
            code: 126,
        },
        _ => SpawnFailure {
            reason: format!("{program}: cannot execute: {desc}"),
            code: 125,
        },
    }
}

/// What the end of a program started through `sandbox-exec` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Launch {
    /// The program ran; its end is its own.
    Ran,
    /// `sandbox-exec` applied the profile but could not execute the program
    /// (not found, or the profile forbids executing it).
    ExecFailed(SpawnFailure),
    /// `sandbox-exec` failed before running anything (a profile it rejects,
    /// or a process that is already sandboxed): nothing was confined.
    SandboxFailed(String),
}

/// Reads how a program run as `sandbox-exec … -- program …` ended.
/// `sandbox-exec` reports its own failures as one line on stderr and an exit
/// code of its own; `output` must be everything the process wrote (stdout
/// empty), since a command may exit with those codes too.
pub(crate) fn read_launch(program: &str, termination: Termination, output: &[u8]) -> Launch {
    let Termination::Exited(code) = termination else {
        return Launch::Ran;
    };
    let Ok(text) = std::str::from_utf8(output) else {
        return Launch::Ran;
    };
    let line = text.strip_suffix('\n').unwrap_or(text);
    if !SANDBOX_EXEC_FAILURES.contains(&code)
        || !line.starts_with("sandbox-exec: ")
        || line.contains('\n')
    {
        return Launch::Ran;
    }
    let exec_failure = line
        .strip_prefix("sandbox-exec: execvp() of '")
        .and_then(|rest| rest.rsplit_once("' failed: "));
    match exec_failure {
        Some((_, desc)) if code == SANDBOX_EXEC_EXEC_FAILED => {
            let errno = match desc {
                "No such file or directory" => Some(libc::ENOENT),
                "Not a directory" => Some(libc::ENOTDIR),
                "Permission denied" => Some(libc::EACCES),
                "Operation not permitted" => Some(libc::EPERM),
                "Exec format error" => Some(libc::ENOEXEC),
                "Is a directory" => Some(libc::EISDIR),
                _ => None,
            };
            Launch::ExecFailed(spawn_failure(program, errno, desc))
        }
        _ => Launch::SandboxFailed(line.to_string()),
    }
}

/// How a process ended, from a `wait` status (the traditional encoding, the
/// same on macOS and Linux: the signal in the low 7 bits, else the exit code
/// in the next byte).
pub(crate) fn termination(wait_status: i32) -> Termination {
    match wait_status & 0x7f {
        0 => Termination::Exited((wait_status >> 8) & 0xff),
        signal => Termination::Signaled(signal),
    }
}

/// How a process ended, from `waitid`'s `si_code` and `si_status`; `None`
/// when the report is not of an end (a stopped or continued child).
pub(crate) fn exit_from_siginfo(code: i32, status: i32) -> Option<Termination> {
    match code {
        libc::CLD_EXITED => Some(Termination::Exited(status & 0xff)),
        libc::CLD_KILLED | libc::CLD_DUMPED => Some(Termination::Signaled(status)),
        _ => None,
    }
}

/// What `wait4` reported about a finished program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Usage {
    /// CPU time of the program and the children it waited for.
    pub cpu_user: Duration,
    pub cpu_sys: Duration,
    /// Largest resident set of the program (macOS reports bytes, Linux KiB).
    pub max_rss_bytes: u64,
}

/// How an evaluation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The command ran to an end the kernel reported.
    Finished {
        termination: Termination,
        usage: Usage,
    },
    /// A setup step failed; the command did not run.
    SetupFailed {
        step: usize,
        termination: Termination,
        /// Its output, truncated with the usual marker.
        output: Vec<u8>,
    },
    /// The command could not be started.
    SpawnFailed(SpawnFailure),
    /// The wall-clock timeout expired and the process group was killed.
    TimedOut,
    /// The output passed the limit with `OutputLimitAction::Kill`.
    OutputLimit,
    /// The executor lost track of the command (waiting for it failed).
    Lost(String),
}

/// How a setup step that exited with `termination` after writing `output`
/// ends the evaluation: `None` when it succeeded and the next step may run.
pub(crate) fn setup_end(
    launcher: &Launcher,
    step: usize,
    program: &str,
    termination: Termination,
    output: Vec<u8>,
) -> Result<Option<End>, ExecError> {
    if termination == Termination::Exited(0) {
        return Ok(None);
    }
    if launcher.profile().is_some() {
        match read_launch(program, termination, &output) {
            Launch::Ran => {}
            // As on Linux, a step that cannot start fails with its code and
            // the reason as its output.
            Launch::ExecFailed(failure) => return Ok(Some(setup_spawn_failed(step, failure))),
            Launch::SandboxFailed(reason) => return Err(sandbox_failed(reason)),
        }
    }
    Ok(Some(End::SetupFailed {
        step,
        termination,
        output,
    }))
}

/// A setup step that could not start, reported the way Linux does.
pub(crate) fn setup_spawn_failed(step: usize, failure: SpawnFailure) -> End {
    End::SetupFailed {
        step,
        termination: Termination::Exited(failure.code),
        output: failure.reason.into_bytes(),
    }
}

/// How the command's end ends the evaluation, telling `sandbox-exec`'s own
/// failures from the command's.
pub(crate) fn command_end(
    launcher: &Launcher,
    program: &str,
    termination: Termination,
    usage: Usage,
    captured: &Captured,
) -> Result<End, ExecError> {
    // `sandbox-exec` writes its failure to stderr before the command exists:
    // any stdout, or more output than the limit kept, means the command ran.
    if launcher.profile().is_some()
        && captured.streams.stdout_bytes == 0
        && captured.truncation.is_none()
    {
        match read_launch(program, termination, &captured.output) {
            Launch::Ran => {}
            Launch::ExecFailed(failure) => return Ok(End::SpawnFailed(failure)),
            Launch::SandboxFailed(reason) => return Err(sandbox_failed(reason)),
        }
    }
    Ok(End::Finished { termination, usage })
}

fn sandbox_failed(reason: String) -> ExecError {
    ExecError::RunnerFailed {
        reason: format!("sandbox-exec could not confine the evaluation: {reason}"),
    }
}

/// The outcome of an evaluation, in the same shape as Linux's: the command's
/// captured output, or a failed step's own output; a spawn failure keeps none.
pub(crate) fn outcome(
    request: &EvalRequest,
    limits: &LimitPlan,
    captured: Captured,
    wall_time: Duration,
    end: End,
) -> Outcome {
    let mut outcome = Outcome {
        id: request.id,
        status: Status::TimedOut,
        termination: None,
        output: captured.output,
        streams: captured.streams,
        truncation: captured.truncation,
        wall_time,
        usage: ResourceUsage::default(),
        limits: limits.enforcement.clone(),
        violations: Vec::new(),
        violations_unlisted: 0,
        // Seatbelt is applied whole or the evaluation fails; nothing is
        // applied in part.
        weakened: Vec::new(),
    };
    outcome.status = match end {
        End::Finished { termination, usage } => {
            outcome.termination = Some(termination);
            outcome.usage = ResourceUsage {
                cpu_user: usage.cpu_user,
                cpu_sys: usage.cpu_sys,
                peak_memory_bytes: Some(usage.max_rss_bytes),
            };
            let evidence = Evidence {
                cpu: usage.cpu_user + usage.cpu_sys,
                max_rss: Some(usage.max_rss_bytes),
                // No memory limit is ever planned on macOS, so no OOM
                // verdict is inferred; no cgroup counts anything either.
                memory_mechanism: None,
                ..Evidence::default()
            };
            classify(termination, &request.limits, &evidence)
        }
        End::SetupFailed {
            step,
            termination,
            output,
        } => {
            outcome.output = output;
            outcome.truncation = None;
            let (code, signal) = match termination {
                Termination::Exited(c) => (Some(c), None),
                Termination::Signaled(s) => (None, Some(s)),
            };
            Status::SetupFailed { step, code, signal }
        }
        End::SpawnFailed(SpawnFailure { reason, code }) => {
            // Whatever was captured is `sandbox-exec`'s message, now the reason.
            outcome.output = Vec::new();
            outcome.streams = StreamCounts::default();
            outcome.truncation = None;
            Status::SpawnFailed { reason, code }
        }
        End::TimedOut => Status::TimedOut,
        End::OutputLimit => Status::OutputLimit,
        End::Lost(reason) => Status::NoConnection { reason },
    };
    outcome
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use sandbox_core::{Command, TruncateMode};
    use sandbox_policy::{Context, MemFs};

    use super::*;
    use crate::capture::Capture;
    use crate::OutputStream;

    /// A made-up machine: the listed files, all limits unlimited, not root.
    #[derive(Default)]
    struct FakeHost {
        runnable: BTreeSet<PathBuf>,
        denied: BTreeSet<PathBuf>,
        dirs: BTreeSet<PathBuf>,
        hard_limits: BTreeMap<&'static str, u64>,
        root: bool,
    }

    impl FakeHost {
        fn runnable(mut self, path: &str) -> Self {
            self.runnable.insert(path.into());
            self
        }
        fn denied(mut self, path: &str) -> Self {
            self.denied.insert(path.into());
            self
        }
    }

    impl Host for FakeHost {
        fn is_dir(&self, path: &Path) -> bool {
            self.dirs.contains(path)
        }
        fn probe(&self, path: &Path) -> Probe {
            if self.runnable.contains(path) {
                Probe::Runnable
            } else if self.denied.contains(path) {
                Probe::Denied
            } else {
                Probe::Missing
            }
        }
        fn hard_limit(&self, resource: Resource) -> Option<u64> {
            self.hard_limits.get(resource.name()).copied()
        }
        fn is_root(&self) -> bool {
            self.root
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn restricted_policy() -> Policy {
        let ctx = Context {
            home: "/Users/me".into(),
            cwd: "/Users/me/project".into(),
        };
        let fs = MemFs::new().dir("/Users/me/project").dir("/Users/me/.ssh");
        Policy::builder(ctx)
            .deny("Read(~/.ssh)")
            .allow("Edit(.)")
            .build(&fs)
            .expect("a valid policy")
            .0
    }

    fn request(argv: &[&str]) -> EvalRequest {
        EvalRequest::new(Command::argv(argv.iter().copied()))
    }

    fn plan(request: &EvalRequest) -> Plan {
        Plan::new(request, [("PATH", "/usr/bin:/bin")], &FakeHost::default()).expect("a plan")
    }

    fn captured(stdout: &[u8], stderr: &[u8], max: usize) -> Captured {
        let mut capture = Capture::new(max, TruncateMode::Head);
        capture.push(OutputStream::Stdout, stdout);
        capture.push(OutputStream::Stderr, stderr);
        capture.finish()
    }

    // The launcher.

    #[test]
    fn the_launcher_argv_is_sandbox_exec_p_profile_double_dash_then_the_command() {
        let argv = launcher_argv("(version 1)", &strings(&["ls", "-l", "/tmp"]));
        assert_eq!(
            argv,
            [
                "/usr/bin/sandbox-exec",
                "-p",
                "(version 1)",
                "--",
                "ls",
                "-l",
                "/tmp"
            ]
        );
    }

    #[test]
    fn the_profile_is_one_argument_however_many_lines_it_has() {
        let profile = "(version 1)\n(allow default)\n(deny network*)\n";
        let argv = launcher_argv(profile, &strings(&["true"]));
        assert_eq!(argv.len(), 5);
        assert_eq!(argv[2], profile);
    }

    #[test]
    fn a_program_named_like_an_option_comes_after_the_double_dash() {
        let argv = launcher_argv("(version 1)", &strings(&["-n", "x"]));
        assert_eq!(&argv[3..], ["--", "-n", "x"]);
    }

    #[test]
    fn an_unrestricted_policy_runs_programs_directly() {
        assert_eq!(Launcher::for_policy(&Policy::default()), Launcher::Direct);
    }

    #[test]
    fn a_restricted_policy_runs_under_the_shared_generators_profile() {
        let policy = restricted_policy();
        assert_eq!(
            Launcher::for_policy(&policy).profile(),
            Some(policy.seatbelt_profile(&HostFs).as_str())
        );
    }

    #[test]
    fn a_direct_launch_executes_the_resolved_path_with_the_given_argv0() {
        let invocation = Launcher::Direct.invocation(&strings(&["ls", "-l"]), Path::new("/bin/ls"));
        assert_eq!(invocation.program, Path::new("/bin/ls"));
        assert_eq!(invocation.argv, ["ls", "-l"]);
    }

    #[test]
    fn a_sandboxed_launch_executes_sandbox_exec_and_leaves_the_lookup_to_it() {
        let launcher = Launcher::Seatbelt {
            profile: "(version 1)".into(),
        };
        let invocation = launcher.invocation(&strings(&["ls"]), Path::new("/bin/ls"));
        assert_eq!(invocation.program, Path::new(SANDBOX_EXEC));
        assert_eq!(invocation.argv[0], SANDBOX_EXEC);
        assert_eq!(invocation.argv.last().map(String::as_str), Some("ls"));
    }

    #[test]
    fn every_program_of_an_evaluation_gets_the_one_profile_of_its_plan() {
        let request = request(&["/bin/echo", "done"])
            .policy(restricted_policy())
            .setup(Command::argv(["/bin/mkdir", "out"]))
            .setup(Command::argv(["/usr/bin/touch", "out/x"]));
        let plan = plan(&request);
        let host = FakeHost::default()
            .runnable("/bin/echo")
            .runnable("/bin/mkdir")
            .runnable("/usr/bin/touch");
        let profile = request.policy.seatbelt_profile(&HostFs);
        let steps = plan.setup.iter().chain([&plan.argv]);
        for argv in steps {
            let invocation = plan.prepare(argv, &host).expect("runnable");
            assert_eq!(invocation.argv[..4], [SANDBOX_EXEC, "-p", &profile, "--"]);
            assert_eq!(invocation.argv[4..], argv[..]);
        }
    }

    #[test]
    fn the_environment_is_the_requests_effective_one() {
        let request = request(&["true"]).env("ANSWER", "42");
        let plan = Plan::new(
            &request,
            [("PATH", "/usr/bin"), ("SECRET", "x")],
            &FakeHost::default(),
        )
        .expect("a plan");
        assert_eq!(
            plan.env,
            [
                ("ANSWER".to_string(), "42".to_string()),
                ("PATH".to_string(), "/usr/bin".to_string())
            ]
        );
    }

    // Limits.

    #[test]
    fn no_limits_plan_no_rlimits() {
        assert_eq!(
            plan_limits(&Limits::default()).unwrap(),
            LimitPlan::default()
        );
    }

    #[test]
    fn cpu_time_is_rlimit_cpu_rounded_up_with_the_hard_limit_a_second_later() {
        let limits = Limits {
            cpu_time: Some(Duration::from_millis(1500)),
            ..Limits::default()
        };
        let plan = plan_limits(&limits).unwrap();
        assert_eq!(
            plan.rlimits,
            [Rlimit {
                resource: Resource::Cpu,
                soft: 2,
                hard: 3
            }]
        );
    }

    #[test]
    fn a_cpu_time_under_a_second_is_one_second() {
        let limits = Limits {
            cpu_time: Some(Duration::from_millis(10)),
            ..Limits::default()
        };
        assert_eq!(plan_limits(&limits).unwrap().rlimits[0].soft, 1);
    }

    #[test]
    fn file_size_and_open_files_are_rlimit_fsize_and_rlimit_nofile() {
        let limits = Limits {
            file_size: Some(1 << 20),
            open_files: Some(64),
            ..Limits::default()
        };
        assert_eq!(
            plan_limits(&limits).unwrap().rlimits,
            [
                Rlimit {
                    resource: Resource::FileSize,
                    soft: 1 << 20,
                    hard: 1 << 20
                },
                Rlimit {
                    resource: Resource::OpenFiles,
                    soft: 64,
                    hard: 64
                }
            ]
        );
    }

    #[test]
    fn every_enforced_limit_is_reported_as_an_rlimit_with_what_was_set() {
        let limits = Limits {
            cpu_time: Some(Duration::from_secs(2)),
            file_size: Some(1000),
            open_files: Some(64),
            ..Limits::default()
        };
        let reported: Vec<_> = plan_limits(&limits)
            .unwrap()
            .enforcement
            .into_iter()
            .map(|e| (e.limit, e.mechanism, e.detail))
            .collect();
        assert_eq!(
            reported,
            [
                (
                    LimitKind::CpuTime,
                    Mechanism::Rlimit,
                    "RLIMIT_CPU=2s per process".to_string()
                ),
                (
                    LimitKind::FileSize,
                    Mechanism::Rlimit,
                    "RLIMIT_FSIZE=1000".to_string()
                ),
                (
                    LimitKind::OpenFiles,
                    Mechanism::Rlimit,
                    "RLIMIT_NOFILE=64".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_memory_limit_is_refused_because_macos_does_not_enforce_rlimit_as() {
        let limits = Limits {
            memory: Some(1 << 30),
            ..Limits::default()
        };
        let err = plan_limits(&limits).unwrap_err();
        assert!(
            matches!(&err, ExecError::LimitUnavailable { limit: LimitKind::Memory, reason } if reason.contains("RLIMIT_AS")),
            "{err}"
        );
    }

    #[test]
    fn a_pids_limit_is_refused_because_rlimit_nproc_counts_the_whole_user() {
        let limits = Limits {
            pids: Some(10),
            ..Limits::default()
        };
        let err = plan_limits(&limits).unwrap_err();
        assert!(
            matches!(&err, ExecError::LimitUnavailable { limit: LimitKind::Pids, reason } if reason.contains("RLIMIT_NPROC")),
            "{err}"
        );
    }

    #[test]
    fn a_limit_above_the_hard_limit_fails_to_spawn_with_125_as_on_linux() {
        let mut host = FakeHost::default();
        host.hard_limits.insert("RLIMIT_NOFILE", 256);
        let rlimits = [Rlimit {
            resource: Resource::OpenFiles,
            soft: 1000,
            hard: 1000,
        }];
        let failure = check_rlimits(&rlimits, &host).unwrap_err();
        assert_eq!(failure.code, 125);
        assert!(
            failure
                .reason
                .starts_with("cannot set a resource limit: RLIMIT_NOFILE=1000"),
            "{}",
            failure.reason
        );
    }

    #[test]
    fn root_may_raise_a_hard_limit() {
        let mut host = FakeHost {
            root: true,
            ..FakeHost::default()
        };
        host.hard_limits.insert("RLIMIT_NOFILE", 256);
        let rlimits = [Rlimit {
            resource: Resource::OpenFiles,
            soft: 1000,
            hard: 1000,
        }];
        assert_eq!(check_rlimits(&rlimits, &host), Ok(()));
    }

    #[test]
    fn an_unlimited_hard_limit_accepts_any_value() {
        let rlimits = [Rlimit {
            resource: Resource::Cpu,
            soft: 1 << 40,
            hard: (1 << 40) + 1,
        }];
        assert_eq!(check_rlimits(&rlimits, &FakeHost::default()), Ok(()));
    }

    // Finding the program.

    #[test]
    fn a_name_is_found_in_the_first_path_directory_that_has_it() {
        let host = FakeHost::default()
            .runnable("/usr/bin/tool")
            .runnable("/bin/tool");
        let found = resolve("tool", Some("/opt/bin:/usr/bin:/bin"), None, &host);
        assert_eq!(found, Ok(PathBuf::from("/usr/bin/tool")));
    }

    #[test]
    fn a_name_found_nowhere_is_127_command_not_found() {
        let failure = resolve("no-such-tool", Some("/usr/bin"), None, &FakeHost::default());
        assert_eq!(
            failure,
            Err(SpawnFailure {
                reason: "no-such-tool: command not found".into(),
                code: 127
            })
        );
    }

    #[test]
    fn a_missing_path_is_127_no_such_file() {
        let failure = resolve("/nonexistent/tool", None, None, &FakeHost::default());
        assert_eq!(
            failure,
            Err(SpawnFailure {
                reason: "/nonexistent/tool: No such file or directory".into(),
                code: 127
            })
        );
    }

    #[test]
    fn a_file_that_cannot_be_executed_is_126() {
        let host = FakeHost::default().denied("/tmp/script");
        let failure = resolve("/tmp/script", None, None, &host).unwrap_err();
        assert_eq!(failure.code, 126);
        assert_eq!(
            failure.reason,
            "/tmp/script: cannot execute: Permission denied"
        );
    }

    #[test]
    fn a_runnable_candidate_later_in_path_beats_a_denied_one() {
        let host = FakeHost::default()
            .denied("/opt/bin/tool")
            .runnable("/usr/bin/tool");
        let found = resolve("tool", Some("/opt/bin:/usr/bin"), None, &host);
        assert_eq!(found, Ok(PathBuf::from("/usr/bin/tool")));
    }

    #[test]
    fn a_name_found_only_as_a_denied_file_is_126() {
        let host = FakeHost::default().denied("/opt/bin/tool");
        let failure = resolve("tool", Some("/opt/bin:/usr/bin"), None, &host).unwrap_err();
        assert_eq!(failure.code, 126);
    }

    #[test]
    fn without_path_the_macos_default_path_is_searched() {
        let host = FakeHost::default()
            .runnable("/usr/local/bin/tool")
            .runnable("/bin/tool");
        assert_eq!(
            resolve("tool", None, None, &host),
            Ok(PathBuf::from("/bin/tool"))
        );
    }

    #[test]
    fn an_empty_path_entry_is_the_working_directory_probed_from_the_cwd() {
        let host = FakeHost::default().runnable("/work/./tool");
        let found = resolve(
            "tool",
            Some("/usr/bin::/bin"),
            Some(Path::new("/work")),
            &host,
        );
        assert_eq!(found, Ok(PathBuf::from("./tool")));
    }

    #[test]
    fn a_relative_path_is_probed_from_the_cwd_but_executed_as_written() {
        let host = FakeHost::default().runnable("/work/bin/tool");
        let found = resolve("bin/tool", None, Some(Path::new("/work")), &host);
        assert_eq!(found, Ok(PathBuf::from("bin/tool")));
    }

    #[test]
    fn a_lookup_error_other_than_missing_or_denied_is_125() {
        struct Looping;
        impl Host for Looping {
            fn is_dir(&self, _: &Path) -> bool {
                false
            }
            fn probe(&self, _: &Path) -> Probe {
                Probe::Failed("Too many levels of symbolic links".into())
            }
            fn hard_limit(&self, _: Resource) -> Option<u64> {
                None
            }
            fn is_root(&self) -> bool {
                false
            }
        }
        let failure = resolve("/loop/tool", None, None, &Looping).unwrap_err();
        assert_eq!(failure.code, 125);
    }

    #[test]
    fn a_nul_byte_in_an_argument_is_a_125_spawn_failure() {
        let plan = plan(&request(&["/bin/echo"]));
        let failure = plan
            .prepare(&strings(&["/bin/echo", "a\0b"]), &FakeHost::default())
            .unwrap_err();
        assert_eq!(failure.code, 125);
        assert!(
            failure.reason.contains("contains a NUL byte"),
            "{}",
            failure.reason
        );
    }

    #[test]
    fn spawn_errors_use_the_shells_exit_codes() {
        let code = |errno| spawn_failure("tool", Some(errno), "x").code;
        assert_eq!(code(libc::ENOENT), 127);
        assert_eq!(code(libc::EACCES), 126);
        assert_eq!(code(libc::ENOEXEC), 126);
        assert_eq!(code(libc::E2BIG), 125);
        assert_eq!(spawn_failure("tool", None, "x").code, 125);
    }

    // Reading sandbox-exec's own failures.

    #[test]
    fn sandbox_exec_not_finding_the_program_is_127() {
        let launch = read_launch(
            "tool",
            Termination::Exited(71),
            b"sandbox-exec: execvp() of 'tool' failed: No such file or directory\n",
        );
        assert_eq!(
            launch,
            Launch::ExecFailed(SpawnFailure {
                reason: "tool: command not found".into(),
                code: 127
            })
        );
    }

    #[test]
    fn the_profile_forbidding_the_exec_is_126() {
        let launch = read_launch(
            "/opt/tool",
            Termination::Exited(71),
            b"sandbox-exec: execvp() of '/opt/tool' failed: Operation not permitted\n",
        );
        assert_eq!(
            launch,
            Launch::ExecFailed(SpawnFailure {
                reason: "/opt/tool: cannot execute: Operation not permitted".into(),
                code: 126
            })
        );
    }

    #[test]
    fn a_command_exiting_71_on_its_own_ran() {
        let launch = read_launch("tool", Termination::Exited(71), b"tool: internal error\n");
        assert_eq!(launch, Launch::Ran);
    }

    #[test]
    fn sandbox_execs_message_with_another_exit_code_is_the_commands() {
        let launch = read_launch(
            "tool",
            Termination::Exited(1),
            b"sandbox-exec: execvp() of 'x' failed: No such file or directory\n",
        );
        assert_eq!(launch, Launch::Ran);
    }

    #[test]
    fn a_profile_sandbox_exec_rejects_means_the_sandbox_failed() {
        let launch = read_launch(
            "tool",
            Termination::Exited(65),
            b"sandbox-exec: unbound variable: bogus at <input string>, line 1\n",
        );
        assert_eq!(
            launch,
            Launch::SandboxFailed(
                "sandbox-exec: unbound variable: bogus at <input string>, line 1".into()
            )
        );
    }

    #[test]
    fn a_sandbox_failure_is_an_executor_error_not_an_outcome() {
        let launcher = Launcher::Seatbelt {
            profile: "(version 1)".into(),
        };
        let output = captured(
            b"",
            b"sandbox-exec: sandbox_apply: Operation not permitted\n",
            100,
        );
        let end = command_end(
            &launcher,
            "tool",
            Termination::Exited(71),
            Usage::default(),
            &output,
        );
        assert!(
            matches!(end, Err(ExecError::RunnerFailed { .. })),
            "{end:?}"
        );
    }

    #[test]
    fn a_command_that_wrote_to_stdout_ran_whatever_its_stderr_says() {
        let launcher = Launcher::Seatbelt {
            profile: "(version 1)".into(),
        };
        let output = captured(
            b"x",
            b"sandbox-exec: execvp() of 'tool' failed: No such file or directory\n",
            1000,
        );
        let end = command_end(
            &launcher,
            "tool",
            Termination::Exited(71),
            Usage::default(),
            &output,
        )
        .unwrap();
        assert!(matches!(end, End::Finished { .. }), "{end:?}");
    }

    #[test]
    fn a_directly_run_command_is_never_read_as_sandbox_exec() {
        let output = captured(
            b"",
            b"sandbox-exec: execvp() of 'tool' failed: No such file or directory\n",
            1000,
        );
        let end = command_end(
            &Launcher::Direct,
            "tool",
            Termination::Exited(71),
            Usage::default(),
            &output,
        )
        .unwrap();
        assert!(matches!(end, End::Finished { .. }), "{end:?}");
    }

    #[test]
    fn a_setup_step_sandbox_exec_cannot_start_fails_with_its_code_and_reason() {
        let launcher = Launcher::Seatbelt {
            profile: "(version 1)".into(),
        };
        let end = setup_end(
            &launcher,
            1,
            "/nonexistent/tool",
            Termination::Exited(71),
            b"sandbox-exec: execvp() of '/nonexistent/tool' failed: No such file or directory\n"
                .to_vec(),
        )
        .unwrap();
        assert_eq!(
            end,
            Some(End::SetupFailed {
                step: 1,
                termination: Termination::Exited(127),
                output: b"/nonexistent/tool: No such file or directory".to_vec()
            })
        );
    }

    #[test]
    fn a_setup_step_that_exits_0_lets_the_next_one_run() {
        let end = setup_end(
            &Launcher::Direct,
            0,
            "true",
            Termination::Exited(0),
            Vec::new(),
        );
        assert_eq!(end.unwrap(), None);
    }

    // Wait statuses.

    #[test]
    fn a_wait_status_with_no_signal_is_an_exit_with_its_code() {
        assert_eq!(termination(3 << 8), Termination::Exited(3));
    }

    #[test]
    fn a_wait_status_with_a_signal_is_signaled_even_with_a_core_dump() {
        assert_eq!(termination(9), Termination::Signaled(9));
        assert_eq!(termination(0x80 | 11), Termination::Signaled(11));
    }

    #[test]
    fn waitid_reports_an_exit_or_a_signal_as_the_end() {
        assert_eq!(
            exit_from_siginfo(libc::CLD_EXITED, 3),
            Some(Termination::Exited(3))
        );
        assert_eq!(
            exit_from_siginfo(libc::CLD_KILLED, 9),
            Some(Termination::Signaled(9))
        );
        assert_eq!(
            exit_from_siginfo(libc::CLD_DUMPED, 11),
            Some(Termination::Signaled(11))
        );
    }

    #[test]
    fn a_stopped_child_reported_by_waitid_has_not_ended() {
        assert_eq!(exit_from_siginfo(libc::CLD_STOPPED, 19), None);
        assert_eq!(exit_from_siginfo(libc::CLD_CONTINUED, 18), None);
    }

    // Validation.

    #[test]
    fn an_empty_command_is_an_invalid_request() {
        let err = validate(&request(&[]), &FakeHost::default()).unwrap_err();
        assert!(
            matches!(
                err,
                ExecError::InvalidRequest {
                    field: "command",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_zero_timeout_is_an_invalid_request() {
        let request = request(&["true"]).timeout(Duration::ZERO);
        let err = validate(&request, &FakeHost::default()).unwrap_err();
        assert!(
            matches!(
                err,
                ExecError::InvalidRequest {
                    field: "timeout",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_cwd_that_is_not_a_directory_is_an_invalid_request() {
        let request = request(&["true"]).cwd("/no/such/dir");
        let err = validate(&request, &FakeHost::default()).unwrap_err();
        assert!(
            matches!(err, ExecError::InvalidRequest { field: "cwd", .. }),
            "{err}"
        );
    }

    #[test]
    fn a_zero_limit_is_an_invalid_request_before_it_is_unavailable() {
        let request = request(&["true"]).limits(Limits {
            memory: Some(0),
            ..Limits::default()
        });
        let err = Plan::new(&request, [("PATH", "/bin")], &FakeHost::default()).unwrap_err();
        assert!(
            matches!(
                err,
                ExecError::InvalidRequest {
                    field: "limits",
                    ..
                }
            ),
            "{err}"
        );
    }

    // Outcomes.

    #[test]
    fn a_finished_command_reports_its_termination_usage_and_limits() {
        let request = request(&["true"]).limits(Limits {
            open_files: Some(64),
            ..Limits::default()
        });
        let limits = plan_limits(&request.limits).unwrap();
        let usage = Usage {
            cpu_user: Duration::from_millis(30),
            cpu_sys: Duration::from_millis(5),
            max_rss_bytes: 4 << 20,
        };
        let end = End::Finished {
            termination: Termination::Exited(0),
            usage,
        };
        let outcome = outcome(
            &request,
            &limits,
            captured(b"hi\n", b"", 100),
            Duration::ZERO,
            end,
        );
        assert_eq!(outcome.status, Status::Exited { code: 0 });
        assert_eq!(outcome.termination, Some(Termination::Exited(0)));
        assert_eq!(outcome.output, b"hi\n");
        assert_eq!(outcome.usage.cpu_user, Duration::from_millis(30));
        assert_eq!(outcome.usage.peak_memory_bytes, Some(4 << 20));
        assert_eq!(outcome.limits, limits.enforcement);
    }

    #[test]
    fn sigxcpu_under_a_cpu_limit_is_cpu_limit() {
        let request = request(&["spin"]).limits(Limits {
            cpu_time: Some(Duration::from_secs(1)),
            ..Limits::default()
        });
        let end = End::Finished {
            termination: Termination::Signaled(libc::SIGXCPU),
            usage: Usage::default(),
        };
        let outcome = outcome(
            &request,
            &LimitPlan::default(),
            captured(b"", b"", 100),
            Duration::ZERO,
            end,
        );
        assert_eq!(outcome.status, Status::CpuLimit);
    }

    #[test]
    fn a_failed_setup_step_reports_its_own_output_and_no_truncation() {
        let end = End::SetupFailed {
            step: 0,
            termination: Termination::Exited(3),
            output: b"cannot prepare\n".to_vec(),
        };
        let outcome = outcome(
            &request(&["true"]),
            &LimitPlan::default(),
            captured(b"", b"", 100),
            Duration::ZERO,
            end,
        );
        assert_eq!(
            outcome.status,
            Status::SetupFailed {
                step: 0,
                code: Some(3),
                signal: None
            }
        );
        assert_eq!(outcome.output, b"cannot prepare\n");
        assert_eq!(outcome.truncation, None);
    }

    #[test]
    fn a_spawn_failure_keeps_no_output() {
        let end = End::SpawnFailed(SpawnFailure {
            reason: "tool: command not found".into(),
            code: 127,
        });
        let outcome = outcome(
            &request(&["tool"]),
            &LimitPlan::default(),
            captured(b"", b"sandbox-exec: execvp() of 'tool' failed\n", 100),
            Duration::ZERO,
            end,
        );
        assert_eq!(outcome.exit_code(), 127);
        assert!(outcome.output.is_empty());
        assert_eq!(outcome.streams, StreamCounts::default());
    }

    #[test]
    fn a_timed_out_evaluation_keeps_its_partial_output() {
        let outcome = outcome(
            &request(&["sleep", "9"]),
            &LimitPlan::default(),
            captured(b"partial", b"", 100),
            Duration::from_secs(1),
            End::TimedOut,
        );
        assert_eq!(outcome.status, Status::TimedOut);
        assert_eq!(outcome.output, b"partial");
        assert_eq!(outcome.termination, None);
    }
}
