//! One evaluation, from the executor's side: spawn the runner, hand it the job,
//! capture output, enforce the timeout, and assemble the outcome.

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
use crate::frame::{self, FrameError};
use crate::launch::Launched;
use crate::limits::{self, LimitPlan};
use crate::pidfd::{ChildProcess, Pidfd};
use crate::prewarm::Pool;
use crate::protocol::{Job, Report};
use crate::{ExecError, Observer, OutputStream};

/// After the end is known, how long to wait for the pipes to close.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

const READ_CHUNK: usize = 256 * 1024;

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
    pool: &Pool,
    request: EvalRequest,
    observer: &mut dyn Observer,
) -> Result<Outcome, ExecError> {
    let argv = validate(&request)?;
    // Decided once per executor: its runners are started (maybe ahead of time)
    // with or without a user namespace accordingly.
    let privileged = !pool.launcher().user_namespace;
    let name = format!("{}-{}", std::process::id(), request.id.0);
    let mut plan = limits::plan(&request.limits, &name, privileged)?;
    let result = run(pool, &request, argv, &mut plan, observer).await;
    if let Some(cgroup) = plan.cgroup.take() {
        cgroup.remove();
    }
    result
}

async fn run(
    pool: &Pool,
    request: &EvalRequest,
    argv: Vec<String>,
    plan: &mut LimitPlan,
    observer: &mut dyn Observer,
) -> Result<Outcome, ExecError> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + request.timeout);
    let (launched, mut stream) = acquire(pool, request.timeout).await?;
    let mut child = launched.process;
    let runner_pid = child.pid();
    observer.runner_started(runner_pid);
    let receiver = |fd| pipe::Receiver::from_owned_fd(fd).map_err(prepare_err("an output pipe"));
    let mut stdout = receiver(launched.stdout)?;
    let mut stderr = receiver(launched.stderr)?;
    let stdin = launched.stdin;

    let job = Job {
        argv,
        setup: request.setup.iter().map(|s| s.to_argv()).collect(),
        env: request
            .effective_env(std::env::vars())
            .into_iter()
            .collect(),
        cwd: request.cwd.clone(),
        cgroup_procs: plan
            .cgroup
            .as_ref()
            .map(|c| c.procs_files())
            .unwrap_or_default(),
        rlimits: plan.rlimits.clone(),
        max_setup_output: request.max_output,
    };
    frame::write_async(&mut stream, &job).await?;
    // The runner is busy with the job: start its successor meanwhile.
    pool.refill();

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
    if !request.stdin.is_empty() {
        let mut stdin =
            pipe::Sender::from_owned_fd(stdin).map_err(prepare_err("the stdin pipe"))?;
        let bytes = request.stdin.clone();
        // The command may never read its input; a blocked write must not hold up the end.
        tokio::spawn(async move {
            let _ = stdin.write_all(&bytes).await;
        });
    } else {
        drop(stdin);
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
                    init = Pidfd::open(init_pid)
                        .inspect_err(|error| warn!(init_pid, %error, "cannot open a pidfd for init"))
                        .ok();
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
                    kill_tree(init.as_ref(), &child);
                    end = Some(End::Lost(e.to_string()));
                }
            },
            _ = tokio::time::sleep_until(grace), if end.is_none() || drain_deadline.is_some() => {
                if end.is_none() {
                    debug!(timeout = ?request.timeout, "timeout: killing the evaluation");
                    end = Some(End::TimedOut);
                    kill_tree(init.as_ref(), &child);
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
            kill_tree(init.as_ref(), &child);
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
            kill_tree(init.as_ref(), &child);
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
/// A connected runner: a spare if one is alive and answers, else a fresh one.
async fn acquire(
    pool: &Pool,
    patience: Duration,
) -> Result<(Launched, interprocess::local_socket::tokio::Stream), ExecError> {
    let program = &pool.launcher().program;
    if let Some(mut spare) = pool.take() {
        match spare.connect(program, patience).await {
            // A spare that died after its hello would look like a lost channel.
            Ok(stream) if matches!(spare.process.try_wait(), Ok(None)) => {
                debug!(runner_pid = spare.process.pid(), "using a spare runner");
                return Ok((spare, stream));
            }
            Ok(_) => debug!("the spare runner died after connecting; starting a fresh one"),
            Err(error) => debug!(%error, "the spare runner is unusable; starting a fresh one"),
        }
    }
    let mut fresh = pool.launcher().launch()?;
    let stream = fresh.connect(program, patience).await?;
    Ok((fresh, stream))
}

fn kill_tree(init: Option<&Pidfd>, child: &ChildProcess) {
    if let Some(init) = init {
        init.kill();
    }
    child.kill();
}
