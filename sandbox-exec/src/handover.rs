//! Handing a job to a runner: take a spare (or start a fresh runner), connect,
//! learn its init, and send the job.
//!
//! A spare can die while it waits (killed from outside, or by its parent-death
//! signal). Init acknowledges the job before acting on it, and the
//! evaluation reads that acknowledgement with the final report; a spare lost
//! before it is replaced by a fresh runner rather than failing the
//! evaluation, as nothing of the job has run.

use std::path::PathBuf;

use interprocess::local_socket::tokio::Stream;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::frame::{self, FrameError};
use crate::launch::{Launched, Preparation};
use crate::pidfd::Pidfd;
use crate::prewarm::Pool;
use crate::protocol::{Job, Report};
use crate::ExecError;

/// A runner that has been sent the job.
pub(crate) struct HandedOver {
    pub launched: Launched,
    pub stream: Stream,
    /// Init, the root of the evaluation's process tree (if a pidfd could be had).
    pub init: Option<Pidfd>,
    /// Init's pid, as the executor sees it.
    pub init_pid: u32,
    /// Whether the runner was a spare (so may be replaced if lost early).
    pub spare: bool,
}

/// Why a hand-over failed, and whether another runner may be tried.
enum Failure {
    /// The job never reached the runner: a fresh runner may run it.
    Retry(ExecError),
    /// The runner answered with an error of its own.
    Fatal(ExecError),
}

/// Hands `job` to a spare if one takes it (and `use_spare`), else to a fresh runner.
/// Hands `job` to `spare` if it is still usable, else to a fresh runner.
/// `cgroup_procs` are the `cgroup.procs` files init must be moved into,
/// unless the spare's init already waits in the evaluation's cgroups
/// (`preattached`).
pub(crate) async fn hand_over(
    pool: &Pool,
    job: &Job,
    cgroup_procs: &[PathBuf],
    preattached: bool,
    deadline: Instant,
    spare: Option<Launched>,
) -> Result<HandedOver, ExecError> {
    let preparation = Preparation::of(job);
    if let Some(spare) = spare {
        let procs = if preattached { &[][..] } else { cgroup_procs };
        match try_runner(pool, spare, job, procs, deadline).await {
            Ok(runner) => {
                return Ok(HandedOver {
                    spare: true,
                    ..runner
                })
            }
            Err(Failure::Fatal(error)) => return Err(error),
            Err(Failure::Retry(error)) => {
                debug!(%error, "the spare runner is unusable; starting a fresh one")
            }
        }
    }
    let fresh = pool.launcher().launch(preparation, None, None)?;
    match try_runner(pool, fresh, job, cgroup_procs, deadline).await {
        Ok(runner) => Ok(runner),
        Err(Failure::Retry(error) | Failure::Fatal(error)) => Err(error),
    }
}

async fn try_runner(
    pool: &Pool,
    mut launched: Launched,
    job: &Job,
    cgroup_procs: &[PathBuf],
    deadline: Instant,
) -> Result<HandedOver, Failure> {
    let program = pool.launcher().program.clone();
    let patience = deadline.saturating_duration_since(Instant::now());
    let mut stream = launched
        .connect(&program, patience)
        .await
        .map_err(Failure::Retry)?;
    let handshake = |reason: String| ExecError::Handshake {
        program: program.clone(),
        reason,
    };
    // The runner reports its init right after its hello (a spare did so long ago).
    let report = tokio::time::timeout_at(deadline, frame::read_async::<_, Report>(&mut stream))
        .await
        .map_err(|_| {
            launched.process.kill();
            Failure::Retry(handshake(
                "it did not report its init within the evaluation's timeout".into(),
            ))
        })?;
    let (init, init_pid) = match report {
        Ok(Report::Started { init_pid }) => {
            // Moved in from here: a spare's init cannot reach the cgroup files
            // once its read-only view of the host is built.
            for file in cgroup_procs {
                std::fs::write(file, init_pid.to_string()).map_err(|source| {
                    Failure::Fatal(ExecError::Prepare {
                        what: format!("moving init into cgroup {}", file.display()),
                        source,
                    })
                })?;
            }
            let pidfd = Pidfd::open(init_pid)
                .inspect_err(|error| warn!(init_pid, %error, "cannot open a pidfd for init"))
                .ok();
            (pidfd, init_pid)
        }
        Ok(Report::Failed { reason }) => {
            return Err(Failure::Fatal(ExecError::RunnerFailed { reason }))
        }
        Ok(other) => {
            return Err(Failure::Fatal(handshake(format!(
                "it reported {other:?} instead of its init"
            ))))
        }
        Err(FrameError::Closed) => {
            let status = launched.process.wait().await;
            let status = status
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            return Err(Failure::Retry(handshake(format!(
                "it closed the channel before starting its init ({status})"
            ))));
        }
        Err(e @ FrameError::Io(_)) => return Err(Failure::Retry(handshake(e.to_string()))),
        Err(e) => return Err(Failure::Fatal(handshake(e.to_string()))),
    };
    frame::write_async(&mut stream, job)
        .await
        .map_err(|e| Failure::Retry(handshake(format!("sending it the job failed: {e}"))))?;
    // The runner is busy with the job: start its successor meanwhile.
    pool.refill(Preparation::of(job));
    Ok(HandedOver {
        launched,
        stream,
        init,
        init_pid,
        spare: false,
    })
}
