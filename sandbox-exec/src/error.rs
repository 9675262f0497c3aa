use std::io;
use std::path::PathBuf;

use sandbox_core::{LimitKind, Weakening};

use crate::FrameError;

/// Why the executor could not run an evaluation at all.
///
/// Everything that happens to the evaluated code itself, including a runner that
/// dies mid-way, is an [`Outcome`](sandbox_core::Outcome) instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// A field of the request has a value the executor cannot honour.
    #[error("invalid request: {field}: {reason}")]
    InvalidRequest {
        /// The field, as named in `EvalRequest`.
        field: &'static str,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// The path of the running program, needed for [`RunnerProgram::CurrentExe`](crate::RunnerProgram::CurrentExe), is unknown.
    #[error("cannot find the current executable to start the runner: {0}")]
    CurrentExe(#[source] io::Error),
    /// The runner process could not be spawned.
    #[error("cannot start the runner {program}: {source}")]
    SpawnRunner {
        /// The runner program.
        program: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The private socket the runner connects to could not be created.
    #[error("cannot create the private runner endpoint in {dir}: {source}")]
    Endpoint {
        /// The private directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The runner started but did not complete the handshake.
    #[error("runner {program} failed the handshake: {reason}")]
    Handshake {
        /// The runner program.
        program: PathBuf,
        /// What went wrong, e.g. a malformed frame or a protocol mismatch.
        reason: String,
    },
    /// The runner could not prepare the evaluation (namespaces, cgroups).
    #[error("the runner could not prepare the evaluation: {reason}")]
    RunnerFailed {
        /// What it could not do, and why.
        reason: String,
    },
    /// The channel to the runner failed while the request was being sent.
    #[error("cannot talk to the runner: {0}")]
    Channel(#[from] FrameError),
    /// The policy needs protections this machine cannot apply, and the request
    /// did not accept running without them.
    #[error(
        "refusing to run with weaker confinement than asked: {}; to run anyway, accept it explicitly: {} (EvalRequest::accept_weaker)",
        missing.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("; "),
        missing.iter().map(|w| format!("--accept-weaker {}", w.protection)).collect::<Vec<_>>().join(" ")
    )]
    WeakerConfinement {
        /// What is missing, and why.
        missing: Vec<Weakening>,
    },
    /// A protected path that does not exist yet could not be stood in for, so
    /// the sandbox could have created it.
    #[error("cannot protect {path} ({rule}): it does not exist yet and its read-only stand-in cannot be created: {source}")]
    Placeholder {
        /// The stand-in's path.
        path: std::path::PathBuf,
        /// The rule that protects it.
        rule: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A requested limit cannot be enforced on this machine.
    #[error("the {limit} limit cannot be enforced here: {reason}")]
    LimitUnavailable {
        /// The limit.
        limit: LimitKind,
        /// Why, and what would make it work.
        reason: String,
    },
    /// Preparing the evaluation (pipes, cgroups) failed.
    #[error("cannot prepare the evaluation: {what}: {source}")]
    Prepare {
        /// What was being prepared, with its path where there is one.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// [`Executor::evaluate_blocking`](crate::Executor::evaluate_blocking) was called
    /// from inside a tokio runtime, where it would block a worker thread.
    #[error("evaluate_blocking was called inside a tokio runtime; use `evaluate(..).await` there")]
    BlockingInsideRuntime,
    /// The private runtime of `evaluate_blocking` could not be started.
    #[error("cannot start a tokio runtime for evaluate_blocking: {0}")]
    Runtime(#[source] io::Error),
    /// The executor does not run on this operating system yet.
    #[error("sandbox-exec does not run evaluations on {0} yet")]
    Unsupported(&'static str),
}
