//! One evaluation, from the executor's side: spawn the runner, hand it the job,
//! capture output, enforce the timeout, and assemble the outcome.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sandbox_core::{
    EvalRequest, LimitKind, Outcome, OutputLimitAction, ResourceUsage, Status, Termination,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::capture::Capture;
use crate::classify::{classify, Evidence};
use crate::endpoint::{self, Endpoint, PrivateDir};
use crate::frame::{self, FrameError};
use crate::limits::{self, LimitPlan};
use crate::protocol::{Job, Report};
use crate::runner::{ENDPOINT_ENV, PARENT_ENV, TOKEN_ENV};
use crate::{ExecError, Observer, OutputStream};

/// After the end is known, how long to wait for the pipes to close.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Pipes are enlarged to this so a fast writer needs fewer wake-ups.
const PIPE_SIZE: libc::c_int = 1 << 20;

const READ_CHUNK: usize = 256 * 1024;

pub(crate) struct Runner<'a> {
    pub program: &'a Path,
    pub args: &'a [std::ffi::OsString],
    pub dir: &'a PrivateDir,
}

/// How the executor saw the evaluation end.
enum End {
    Report(Report),
    TimedOut,
    OutputLimit,
    Lost(String),
}

fn prepare_err(what: &str) -> impl FnOnce(std::io::Error) -> ExecError + '_ {
    move |source| ExecError::Prepare {
        what: what.to_string(),
        source,
    }
}

fn output_pipe() -> Result<(pipe::Receiver, OwnedFd), ExecError> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| prepare_err("an output pipe")(e.into()))?;
    // Best effort: a bigger pipe halves the wake-ups of a flooding child.
    unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
    let read = pipe::Receiver::from_owned_fd(read).map_err(prepare_err("an output pipe"))?;
    Ok((read, write))
}

fn validate(request: &EvalRequest) -> Result<Vec<String>, ExecError> {
    let argv = request.command.to_argv();
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err(ExecError::InvalidRequest {
            field: "command",
            reason: "the command is empty; give a program to run".into(),
        });
    }
    if request.timeout.is_zero() {
        return Err(ExecError::InvalidRequest {
            field: "timeout",
            reason: "the timeout is zero; give a positive duration such as 500ms or 30s".into(),
        });
    }
    if let Some(cwd) = &request.cwd {
        if !cwd.is_dir() {
            return Err(ExecError::InvalidRequest {
                field: "cwd",
                reason: format!("{} is not an existing directory", cwd.display()),
            });
        }
    }
    for (kind, zero) in [
        (LimitKind::Pids, request.limits.pids == Some(0)),
        (LimitKind::Memory, request.limits.memory == Some(0)),
        (LimitKind::OpenFiles, request.limits.open_files == Some(0)),
    ] {
        if zero {
            return Err(ExecError::InvalidRequest {
                field: "limits",
                reason: format!("the {kind} limit is zero; nothing could run under it"),
            });
        }
    }
    Ok(argv)
}

pub(crate) async fn evaluate(
    runner: Runner<'_>,
    request: EvalRequest,
    observer: &mut dyn Observer,
) -> Result<Outcome, ExecError> {
    let argv = validate(&request)?;
    let privileged = nix::unistd::geteuid().is_root();
    let name = format!("{}-{}", std::process::id(), request.id.0);
    let mut plan = limits::plan(&request.limits, &name, privileged)?;
    let result = run(runner, &request, argv, &mut plan, privileged, observer).await;
    if let Some(cgroup) = plan.cgroup.take() {
        cgroup.remove();
    }
    result
}

async fn run(
    runner: Runner<'_>,
    request: &EvalRequest,
    argv: Vec<String>,
    plan: &mut LimitPlan,
    privileged: bool,
    observer: &mut dyn Observer,
) -> Result<Outcome, ExecError> {
    let token = endpoint::new_token().map_err(prepare_err("a token"))?;
    let name = format!("{}-{}", request.id.0, endpoint::token_hex(&token));
    let endpoint = Endpoint::bind(runner.dir, &name).map_err(|source| ExecError::Endpoint {
        dir: runner.dir.path().to_path_buf(),
        source,
    })?;
    let (mut stdout, stdout_w) = output_pipe()?;
    let (mut stderr, stderr_w) = output_pipe()?;

    let mut command = tokio::process::Command::new(runner.program);
    command
        .args(runner.args)
        .env_clear()
        .env(ENDPOINT_ENV, endpoint.path())
        .env(TOKEN_ENV, endpoint::token_hex(&token))
        .env(PARENT_ENV, std::process::id().to_string())
        .stdin(if request.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(stdout_w)
        .stderr(stderr_w)
        .kill_on_drop(true);
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + request.timeout);
    let mut child = command.spawn().map_err(|source| ExecError::SpawnRunner {
        program: runner.program.to_path_buf(),
        source,
    })?;
    // The pipes' write ends now live only in the runner (the Command held ours).
    drop(command);
    // Taken now: `Child::wait` (raced against the handshake below) closes it.
    let mut stdin = child.stdin.take();
    let runner_pid = child.id().unwrap_or(0);
    debug!(runner_pid, "runner spawned");
    observer.runner_started(runner_pid);

    let handshake = |reason: String| ExecError::Handshake {
        program: runner.program.to_path_buf(),
        reason,
    };
    let mut stream = tokio::select! {
        accepted = endpoint.accept_runner(runner_pid, &token) => accepted.map_err(handshake)?,
        status = child.wait() => {
            let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            return Err(handshake(format!(
                "it ended ({status}) before connecting; a program used as its own runner \
                 must call sandbox_exec::dispatch() first thing in main"
            )));
        }
        _ = tokio::time::sleep_until(deadline) => {
            let _ = child.start_kill();
            return Err(handshake(format!(
                "it did not connect within the evaluation's timeout of {:?}",
                request.timeout
            )));
        }
    };
    drop(endpoint);
    debug!("runner connected");

    let job = Job {
        argv,
        setup: request.setup.iter().map(|s| s.to_argv()).collect(),
        env: request
            .effective_env(std::env::vars())
            .into_iter()
            .collect(),
        cwd: request.cwd.clone(),
        user_namespace: !privileged,
        cgroup_procs: plan
            .cgroup
            .as_ref()
            .map(|c| c.procs_files())
            .unwrap_or_default(),
        rlimits: plan.rlimits.clone(),
        max_setup_output: request.max_output,
    };
    frame::write_async(&mut stream, &job).await?;

    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let report = frame::read_async::<_, Report>(&mut stream).await;
            let stop = report.as_ref().map_or(true, Report::is_final);
            if reports_tx.send(report).is_err() || stop {
                break;
            }
        }
    });
    if let Some(mut stdin) = stdin.take() {
        let bytes = request.stdin.clone();
        // The command may never read its input; a blocked write must not hold up the end.
        tokio::spawn(async move {
            let _ = stdin.write_all(&bytes).await;
        });
    }

    let mut capture = Capture::new(request.max_output, request.truncate_mode);
    let (mut out_buf, mut err_buf) = (vec![0u8; READ_CHUNK], vec![0u8; READ_CHUNK]);
    let (mut out_open, mut err_open, mut reports_open) = (true, true, true);
    let mut init: Option<Pidfd> = None;
    let mut end: Option<End> = None;
    let mut drain_deadline = None;

    while out_open || err_open || (reports_open && end.is_none()) {
        let grace = drain_deadline.unwrap_or(deadline);
        // Unbiased on purpose: a flooding stdout must not starve stderr or
        // the timer. Writes to the two pipes in the same instant have no
        // knowable order and may merge either way.
        tokio::select! {
            read = stdout.read(&mut out_buf), if out_open => match read {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    observer.output(OutputStream::Stdout, capture.push(OutputStream::Stdout, &out_buf[..n]));
                }
            },
            read = stderr.read(&mut err_buf), if err_open => match read {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => {
                    observer.output(OutputStream::Stderr, capture.push(OutputStream::Stderr, &err_buf[..n]));
                }
            },
            report = reports.recv(), if reports_open && end.is_none() => match report {
                Some(Ok(Report::Started { init_pid })) => {
                    debug!(init_pid, "evaluation started");
                    init = Pidfd::open(init_pid);
                }
                Some(Ok(report)) => {
                    debug!(?report, "runner reported");
                    end = Some(End::Report(report));
                }
                Some(Err(FrameError::Closed)) | None => {
                    reports_open = false;
                    end = Some(End::Lost("the runner channel closed before the evaluation ended".into()));
                }
                Some(Err(e)) => {
                    reports_open = false;
                    kill_tree(init.as_ref(), &mut child);
                    end = Some(End::Lost(e.to_string()));
                }
            },
            _ = tokio::time::sleep_until(grace), if end.is_none() || drain_deadline.is_some() => {
                if end.is_none() {
                    debug!(timeout = ?request.timeout, "timeout: killing the evaluation");
                    end = Some(End::TimedOut);
                    kill_tree(init.as_ref(), &mut child);
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                } else {
                    warn!("output pipes still open after the evaluation ended; giving up on them");
                    break;
                }
            }
        }
        if end.is_none()
            && request.on_output_limit == OutputLimitAction::Kill
            && capture.over_limit()
        {
            debug!("output limit: killing the evaluation");
            end = Some(End::OutputLimit);
            kill_tree(init.as_ref(), &mut child);
        }
        if end.is_some() && drain_deadline.is_none() {
            drain_deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
        }
    }
    let wall_time = start.elapsed();

    // Everything of the evaluation is dead or dying; reap the runner.
    let runner_status = match tokio::time::timeout(DRAIN_GRACE, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            kill_tree(init.as_ref(), &mut child);
            child.wait().await.ok()
        }
    };
    let end = match end {
        Some(End::Lost(reason)) => End::Lost(match runner_status {
            Some(status) if !status.success() => format!("{reason}: the runner {status}"),
            _ => reason,
        }),
        Some(end) => end,
        None => End::Lost("the runner ended without a report".into()),
    };
    let stats = plan.cgroup.as_ref().map(|c| c.stats()).unwrap_or_default();
    let captured = capture.finish();
    let mut outcome = Outcome {
        id: request.id,
        status: Status::TimedOut,
        termination: None,
        output: captured.output,
        streams: captured.streams,
        truncation: captured.truncation,
        wall_time,
        usage: ResourceUsage {
            peak_memory_bytes: stats.peak_memory,
            ..ResourceUsage::default()
        },
        limits: plan.enforcement.clone(),
        violations: Vec::new(),
    };
    outcome.status = match end {
        End::TimedOut => Status::TimedOut,
        End::OutputLimit => Status::OutputLimit,
        End::Lost(reason) => Status::NoConnection { reason },
        End::Report(Report::Finished { termination, usage }) => {
            outcome.termination = Some(termination);
            outcome.usage.cpu_user = Duration::from_micros(usage.user_us);
            outcome.usage.cpu_sys = Duration::from_micros(usage.sys_us);
            let max_rss = usage.max_rss_kib * 1024;
            outcome.usage.peak_memory_bytes = Some(stats.peak_memory.unwrap_or(max_rss));
            let evidence = Evidence {
                oom_kills: stats.oom_kills,
                pids_refused: stats.pids_refused,
                memory_mechanism: plan
                    .enforcement
                    .iter()
                    .find(|e| e.limit == LimitKind::Memory)
                    .map(|e| e.mechanism),
                cpu: outcome.usage.cpu_user + outcome.usage.cpu_sys,
                max_rss: Some(max_rss),
            };
            classify(termination, &request.limits, &evidence)
        }
        End::Report(Report::SetupFailed {
            step,
            termination,
            output,
        }) => {
            outcome.output = output;
            outcome.truncation = None;
            let (code, signal) = match termination {
                Termination::Exited(c) => (Some(c), None),
                Termination::Signaled(s) => (None, Some(s)),
            };
            Status::SetupFailed { step, code, signal }
        }
        End::Report(Report::SpawnFailed { reason, code }) => Status::SpawnFailed { reason, code },
        End::Report(Report::Failed { reason }) => return Err(ExecError::RunnerFailed { reason }),
        End::Report(Report::Started { .. }) => unreachable!("Started is not final"),
    };
    debug!(
        status = outcome.status.name(),
        ?wall_time,
        "evaluation finished"
    );
    Ok(outcome)
}

/// Kills every process of the evaluation: SIGKILL to its init ends its whole
/// pid namespace; the runner goes too (and takes init with it through its
/// parent-death signal when init's pid was not known yet).
fn kill_tree(init: Option<&Pidfd>, child: &mut tokio::process::Child) {
    if let Some(init) = init {
        init.kill();
    }
    let _ = child.start_kill();
}

/// A pid file descriptor: signals through it can never hit a recycled pid.
struct Pidfd(OwnedFd);

impl Pidfd {
    fn open(pid: u32) -> Option<Self> {
        // SAFETY: pidfd_open returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            warn!(pid, error = %std::io::Error::last_os_error(), "cannot open a pidfd for init");
            return None;
        }
        // SAFETY: fd is a fresh descriptor we own.
        Some(Pidfd(unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32)
        }))
    }

    fn kill(&self) {
        // SAFETY: signal through a descriptor we own.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}
