//! The sandbox executor: runs each evaluation in a fresh runner child.
//!
//! Use this crate when you want to run untrusted commands from Rust with hard
//! limits and a precise [`Outcome`]: every call to [`Executor::evaluate`] spawns
//! a new runner process, talks to it over a private `interprocess` local socket
//! (bincode frames, see the `frame` module), enforces the wall-clock timeout by
//! killing the evaluation's whole process tree, and keeps at most `max_output`
//! bytes of output in memory however much the child writes.
//!
//! # The runner
//!
//! The runner is the same program as the caller, started again in runner mode, or
//! the bundled `sandbox-runner` binary. With the default
//! [`RunnerProgram::CurrentExe`], call [`dispatch`] first thing in `main`: in a
//! runner child it takes over and never returns, everywhere else it returns at
//! once. No separate install step is needed.
//!
//! ```no_run
//! use std::time::Duration;
//! use sandbox_exec::{Command, EvalRequest, Executor};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     sandbox_exec::dispatch(); // becomes the runner in runner children
//!
//!     let executor = Executor::new()?;
//!     let request = EvalRequest::new(Command::shell("echo hello; echo oops >&2"))
//!         .timeout(Duration::from_secs(5));
//!     let outcome = executor.evaluate_blocking(request)?;
//!     assert!(outcome.status.success());
//!     print!("{}", outcome.output_text());
//!     Ok(())
//! }
//! ```
//!
//! Library users who cannot edit `main` (test harnesses, plugins) point the
//! executor at the bundled runner: `Executor::with_runner(RunnerProgram::path(…))`.
//!
//! # Spare runners
//!
//! An executor keeps one runner started ahead of time (see
//! [`Executor::set_prewarm`]): a spare has already started, connected, and
//! prepared its namespaces and init, so an evaluation only hands it the job.
//! Spares are never reused — each runs exactly one evaluation — and a spare
//! found dead is silently replaced by a fresh runner (its init acknowledges a
//! job before acting on it, so nothing runs twice).
//!
//! Spares are not executed one by one: the executor starts the runner
//! program once more as a *zygote*, which clones each spare's init straight
//! into its namespaces (as the executor's child, with no runner process of
//! its own), saving every spare the program's start-up and a process. An
//! evaluation that finds its spare still being started waits for it. While
//! evaluations come one at a time with pauses between them, the next spare
//! is prepared after an evaluation ends rather than alongside it, so it
//! does not compete with the evaluation for the CPU.

#![cfg_attr(not(target_os = "linux"), allow(unused))]

mod capture;
mod classify;
mod error;
mod executor;
mod frame;
mod observe;
mod platform;
mod protocol;
mod runner;
mod seatbelt;
mod validate;

#[cfg(target_os = "linux")]
mod bpf;
#[cfg(target_os = "linux")]
mod bridge;
#[cfg(target_os = "linux")]
mod cgroup;
#[cfg(target_os = "linux")]
mod cgroup_shelf;
#[cfg(target_os = "linux")]
mod endpoint;
#[cfg(target_os = "linux")]
mod evaluation;
#[cfg(target_os = "linux")]
mod fdpass;
#[cfg(target_os = "linux")]
mod fsaccess;
#[cfg(target_os = "linux")]
mod fspath;
#[cfg(target_os = "linux")]
mod handover;
#[cfg(target_os = "linux")]
mod launch;
#[cfg(target_os = "linux")]
mod limits;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "linux")]
mod network_shelf;
#[cfg(target_os = "linux")]
mod notify;
#[cfg(target_os = "linux")]
mod pidfd;
#[cfg(target_os = "linux")]
mod placeholder;
#[cfg(target_os = "linux")]
mod plan_cache;
#[cfg(target_os = "linux")]
mod prewarm;
#[cfg(target_os = "linux")]
mod protection;
#[cfg(target_os = "linux")]
mod reclaim;
#[cfg(target_os = "linux")]
mod recorded;
#[cfg(target_os = "linux")]
mod seccomp;
#[cfg(target_os = "linux")]
mod service;
#[cfg(target_os = "linux")]
mod zygote;

pub use error::ExecError;
pub use executor::{Executor, RunnerProgram, DEFAULT_PREWARM};
pub use frame::FrameError;
pub use observe::{NoObserver, Observer, OutputStream};
pub use platform::{
    probe as probe_platform, CgroupMode, CgroupReport, Enforcement, Landlock, PlatformReport,
    Seccomp, UserNamespaces,
};
pub use runner::{dispatch, runner_main};
#[cfg(target_os = "linux")]
pub use service::{ConfinedLauncher, ConfinedService};

pub use sandbox_core::{
    Command, EvalRequest, Limits, Outcome, OutputLimitAction, Status, TruncateMode,
};
