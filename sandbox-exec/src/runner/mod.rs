//! The runner child: connects back to the executor and clones the
//! evaluation's init into a fresh pid namespace; init receives one job,
//! runs it, reports, and exits. Everything before the job is done ahead of
//! time when init is a pre-warmed spare, so an evaluation starts with init
//! already waiting.
//!
//! Process layout on Linux:
//!
//! ```text
//! executor ── runner (executed: host pid namespace; clones init, waits)
//!    │          └── init (pid 1 of a new pid namespace: runs the setup
//!    │                │   steps and the command, reaps orphans, reports)
//!    │                └── command, and everything it starts
//!    ├── zygote (with spares: clones each spare's init as the executor's child)
//!    └── init (a spare's, cloned by the zygote; no runner of its own)
//!          └── command, and everything it starts
//! ```
//!
//! A runner is executed when the executor has no zygote (no spares, or the
//! zygote failed); otherwise the zygote clones init directly. Either way
//! the runner or zygote maps init's ids, moves it into its cgroups and
//! stays outside both, and init greets the executor and reports its pid.
//!
//! Killing init kills every process in its namespace, so a timeout kills the
//! whole tree, including children that double-fork or call `setsid` — no list of
//! pids is ever chased.

#[cfg(target_os = "linux")]
mod bridge;
#[cfg(target_os = "linux")]
mod confine;
#[cfg(target_os = "linux")]
mod init;
#[cfg(target_os = "linux")]
mod landlock;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
mod network;
#[cfg(target_os = "linux")]
mod spawn;
#[cfg(target_os = "linux")]
mod zygote;

/// Names the socket the runner connects to; set only in runner children.
pub(crate) const ENDPOINT_ENV: &str = "SANDBOX_RUNNER_ENDPOINT";
/// The secret the runner proves itself with (hex).
pub(crate) const TOKEN_ENV: &str = "SANDBOX_RUNNER_TOKEN";
/// Set to `1` when the runner must create a user namespace (it is not privileged).
pub(crate) const USERNS_ENV: &str = "SANDBOX_RUNNER_USERNS";
/// Set to `1` when the evaluation will be confined: init then builds the
/// policy-independent part of the sandbox (namespaces, read-only host,
/// private /tmp and /dev, /proc, loopback) before the job arrives; `reads`
/// when its seccomp program must also hand every `open` for reading to the
/// executor (the policy denies reading somewhere).
pub(crate) const CONFINED_ENV: &str = "SANDBOX_RUNNER_CONFINED";
/// Set for a spare with cgroups of its own: one `cgroup.procs` file per
/// line, which the runner moves init into before letting it go on.
pub(crate) const CGROUP_ENV: &str = "SANDBOX_RUNNER_CGROUP";
/// Set (to `1`) when the runner is the executor's zygote: it forks a runner
/// for each request on its standard input instead of running one itself.
pub(crate) const ZYGOTE_ENV: &str = "SANDBOX_RUNNER_ZYGOTE";
/// The executor's pid, so the runner can tell if its parent died before it
/// armed its parent-death signal.
pub(crate) const PARENT_ENV: &str = "SANDBOX_RUNNER_PARENT";

/// Becomes the runner when this process was started as one, and never returns
/// then; returns at once otherwise. Call it first thing in `main`, before any
/// thread or async runtime starts, when the executor uses
/// [`RunnerProgram::CurrentExe`](crate::RunnerProgram::CurrentExe).
pub fn dispatch() {
    if std::env::var_os(ENDPOINT_ENV).is_some() || std::env::var_os(ZYGOTE_ENV).is_some() {
        runner_main()
    }
}

/// Runs the runner and exits. For a dedicated runner binary's `main`.
pub fn runner_main() -> ! {
    #[cfg(target_os = "linux")]
    let code = linux::run();
    #[cfg(not(target_os = "linux"))]
    let code = {
        eprintln!("sandbox runner: this platform has no runner yet");
        125
    };
    std::process::exit(code)
}
