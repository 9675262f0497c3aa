//! One evaluation, from the executor's side: spawn the runner, hand it the job,
//! capture output, enforce the timeout, and assemble the outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use interprocess::local_socket::tokio::Stream;
use sandbox_core::{
    EvalRequest, LimitKind, Outcome, OutputLimitAction, ResourceUsage, Status, Termination,
    ViolationLog,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tracing::{debug, warn};

use crate::bridge::Bridge;
use crate::capture::Capture;
use crate::classify::{classify, Evidence};
use crate::frame::{self, FrameError};
use crate::handover::{self, HandedOver};
use crate::launch::Launched;
use crate::limits::{self, LimitPlan};
use crate::notify::SyscallWatch;
use crate::pidfd::{ChildProcess, Pidfd};
use crate::prewarm::Pool;
use crate::protocol::{Job, Report};
use crate::reclaim::{Leftovers, Reclaimer};
use crate::{ExecError, Observer, OutputStream};

/// After the end is known, how long to wait for the pipes to close.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Below malloc's mmap threshold, so the buffers come from (and return to)
/// the heap instead of costing fresh pages on every evaluation.
const READ_CHUNK: usize = 64 * 1024;

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

/// What watches a confined job from outside: the answers to its denied
/// calls and its proxy bridge.
pub(crate) type Attached = (Option<SyscallWatch>, Option<Bridge>);

/// Takes the descriptors init passes before anything else of a confined
/// job (the seccomp listener, unless the kernel has no user notification,
/// then the bridge's two sockets when the policy allows network) and starts
/// serving them. `init_pid`'s own calls (its mounts' mount points) are let
/// through unjudged.
pub(crate) async fn attach(
    stream: &Stream,
    job: &Job,
    request: &EvalRequest,
    log: &Arc<ViolationLog>,
    deadline: tokio::time::Instant,
    spare: bool,
    init_pid: u32,
) -> Result<Attached, Attempt> {
    let attached = match &job.confinement {
        None => (None, None),
        Some(confinement) => {
            let received = tokio::time::timeout_at(deadline, crate::fdpass::receive(stream)).await;
            let mut fds = match received {
                Ok(Ok(fds)) => fds,
                Ok(Err(e)) if spare && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(Attempt::SpareLost(e.to_string()))
                }
                Ok(Err(e)) => {
                    return Err(Attempt::Failed(ExecError::RunnerFailed {
                        reason: format!("cannot receive the sandbox's descriptors: {e}"),
                    }))
                }
                Err(_) => {
                    return Err(Attempt::Failed(ExecError::RunnerFailed {
                        reason: "the runner did not pass the sandbox's descriptors within the evaluation's timeout".into(),
                    }))
                }
            };
            let sockets = if confinement.bridge.is_some() { 2 } else { 0 };
            let listener = match fds.len() {
                n if n == sockets + 1 => Some(fds.remove(0)),
                n if n == sockets => None,
                _ => {
                    return Err(Attempt::Failed(ExecError::RunnerFailed {
                        reason: "the sandbox could not listen for the proxy bridge on its loopback"
                            .into(),
                    }))
                }
            };
            let failed = |what: &str, e: std::io::Error| ExecError::RunnerFailed {
                reason: format!("cannot {what}: {e}"),
            };
            let watch = listener.map(|listener| {
                SyscallWatch::start(
                    listener,
                    request,
                    confinement.plan.seccomp.allow_unix_sockets,
                    init_pid,
                    Arc::clone(log),
                )
            });
            let bridge = (sockets > 0)
                .then(|| {
                    Bridge::serve(fds, request, Arc::clone(log))
                        .map_err(|e| failed("serve the proxy bridge", e))
                })
                .transpose()?;
            (watch, bridge)
        }
    };
    Ok(attached)
}

/// What an evaluation and a service prepare alike before a runner takes
/// their job.
pub(crate) struct Prepared {
    /// The job.
    pub job: Job,
    /// The stand-ins its plan asked for, held.
    pub stand_ins: crate::placeholder::StandIns,
    /// The protections it runs without, as accepted.
    pub weakened: Vec<sandbox_core::Weakening>,
}

/// The confinement of `request` on this machine, its stand-ins held, and
/// its job (see [`job`]).
pub(crate) fn prepare(
    request: &EvalRequest,
    argv: Vec<String>,
    plan: &LimitPlan,
    plans: &crate::plan_cache::PlanCache,
) -> Result<Prepared, ExecError> {
    let (mut confinement, weakened) = crate::protection::confinement(request, plans)?;
    let stand_ins = match &mut confinement {
        Some(confinement) => crate::placeholder::hold(&mut confinement.plan)?,
        None => crate::placeholder::StandIns::default(),
    };
    Ok(Prepared {
        job: job(request, argv, plan, confinement),
        stand_ins,
        weakened,
    })
}

/// The job for `request`: its command (`argv`, validated), setup, environment
/// and directory, the limits `plan`'s rlimits and the confinement.
fn job(
    request: &EvalRequest,
    argv: Vec<String>,
    plan: &LimitPlan,
    confinement: Option<crate::protocol::Confinement>,
) -> Job {
    let mut env = request.effective_env(std::env::vars());
    // The bridge is the only way out: the proxy variables always name it.
    if let Some(ports) = confinement.as_ref().and_then(|c| c.bridge.as_ref()) {
        env.extend(crate::bridge::proxy_env(ports));
    }
    Job {
        argv,
        setup: request.setup.iter().map(|s| s.to_argv()).collect(),
        env: env.into_iter().collect(),
        cwd: working_dir(request),
        rlimits: plan.rlimits.clone(),
        max_setup_output: request.max_output,
        confinement,
    }
}

/// Where the job runs: the request's directory, else the executor's own.
///
/// Always named, never inherited: a runner's inherited working directory
/// lies on the host's mount *beneath* the sandbox's binds, so relative paths
/// from it would bypass them — writes would hit the read-only host instead of
/// a writable root, and reads would see through a mask (running `sandbox run`
/// from inside a denied directory would let the job read it). Init changes
/// into it after the mounts, where the path meets the sandbox's view.
pub(crate) fn working_dir(request: &EvalRequest) -> Option<std::path::PathBuf> {
    request.cwd.clone().or_else(|| std::env::current_dir().ok())
}

fn validate(request: &EvalRequest) -> Result<Vec<String>, ExecError> {
    crate::validate::request(request, &|dir| dir.is_dir())
}

pub(crate) async fn evaluate(
    pool: &Pool,
    reclaimer: &Reclaimer,
    log: &Arc<ViolationLog>,
    request: EvalRequest,
    observer: &mut dyn Observer,
) -> Result<Outcome, ExecError> {
    let argv = validate(&request)?;
    // Until the outcome is ready: when this evaluation ends decides when
    // the next spare is prepared.
    let _running = pool.begin();
    // Decided once per executor: its runners are started (maybe ahead of time)
    // with or without a user namespace accordingly.
    let privileged = !pool.launcher().user_namespace;
    let name = format!("{}-{}", std::process::id(), request.id.0);
    // The spare is taken first: its init may already wait in cgroups that
    // then only need the limits.
    let mut spare = pool
        .take_or_await(
            crate::launch::Preparation::for_policy(&request.policy),
            crate::prewarm::SPARE_PATIENCE,
        )
        .await;
    let mut plan = limits::plan(
        &request.limits,
        &name,
        privileged,
        spare.as_mut().map(|s| &mut s.cgroup),
        pool.shelf(),
    )?;
    pool.expect_limits(plan.spare_limits);
    let mut result = run(
        pool,
        reclaimer,
        log,
        &request,
        argv.clone(),
        &mut plan,
        observer,
        spare,
    )
    .await;
    if let Err(Attempt::SpareLost(reason)) = &result {
        debug!(%reason, "the spare runner was lost before it accepted the job; using a fresh one");
        // The lost spare's cgroups (if it had its own) are the evaluation's
        // still: the fresh init is moved into them like any other.
        plan.preattached = false;
        result = run(
            pool, reclaimer, log, &request, argv, &mut plan, observer, None,
        )
        .await;
    }
    let result = result.map_err(|attempt| match attempt {
        Attempt::Failed(error) => error,
        Attempt::SpareLost(reason) => ExecError::RunnerFailed { reason },
    });
    // Left only when the evaluation did not get as far as a runner.
    if let Some(cgroup) = plan.cgroup.take() {
        cgroup.remove();
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn run(
    pool: &Pool,
    reclaimer: &Reclaimer,
    log: &Arc<ViolationLog>,
    request: &EvalRequest,
    argv: Vec<String>,
    plan: &mut LimitPlan,
    observer: &mut dyn Observer,
    spare: Option<Launched>,
) -> Result<Outcome, Attempt> {
    // The stand-ins are held until the evaluation's mount namespace is gone.
    let Prepared {
        job,
        stand_ins,
        weakened,
    } = prepare(request, argv, plan, pool.plans())?;
    let cgroup_procs = plan
        .cgroup
        .as_ref()
        .map(|c| c.procs_files())
        .unwrap_or_default();
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + request.timeout);
    let HandedOver {
        launched,
        mut stream,
        init,
        init_pid,
        spare,
    } = handover::hand_over(pool, &job, &cgroup_procs, plan.preattached, deadline, spare).await?;
    let (watch, bridge) = attach(&stream, &job, request, log, deadline, spare, init_pid).await?;
    let network = launched.network;
    let mut child = launched.process;
    observer.runner_started(child.pid());
    let receiver = |fd| pipe::Receiver::from_owned_fd(fd).map_err(prepare_err("an output pipe"));
    let mut stdout = receiver(launched.stdout)?;
    let mut stderr = receiver(launched.stderr)?;
    let stdin = launched.stdin;

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
    let (mut out_open, mut err_open) = (true, true);
    let mut end: Option<End> = None;
    let mut drain_deadline = None;

    // The channel is not watched while the evaluation runs: init closes its
    // copies of the output pipes just before its final report, so their end
    // says when to read the reports (and no wake-up is spent on them before).
    // A runner or init that dies closes them too.
    while out_open || err_open {
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

    let end = match end {
        Some(end) => end,
        None => match read_final_report(&mut stream).await {
            Ok(report) => End::Report(report),
            Err((true, reason)) if spare => {
                return Err(Attempt::SpareLost(reason));
            }
            Err((_, reason)) => {
                kill_tree(init.as_ref(), &child);
                End::Lost(reason)
            }
        },
    };
    // Everything of the evaluation is dead: init reported after killing the
    // rest, or was killed. The runner is exiting on its own (or killed here);
    // reap it off the evaluation's path. Dropped, it would be killed and reaped.
    let runner_status = match child.try_wait() {
        Ok(Some(status)) => Some(status),
        _ if matches!(end, End::Report(_)) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            None
        }
        _ => {
            kill_tree(init.as_ref(), &child);
            tokio::time::timeout(DRAIN_GRACE, child.wait())
                .await
                .ok()
                .and_then(Result::ok)
        }
    };
    let end = match end {
        End::Lost(reason) => End::Lost(match runner_status {
            Some(status) if !status.success() => format!("{reason}: the runner {status}"),
            _ => reason,
        }),
        end => end,
    };
    // The cgroups' figures are final (every process of the evaluation is
    // gone). Removing the cgroups and the stand-ins waits for init's exit,
    // which tears the namespaces down: off the outcome's path.
    let stats = plan.cgroup.as_ref().map(|c| c.stats()).unwrap_or_default();
    let leftovers = Leftovers {
        init,
        cgroup: plan.cgroup.take(),
        stand_ins,
        reported: matches!(end, End::Report(_)),
        network,
    };
    if leftovers.anything() {
        reclaimer.submit(leftovers);
    }
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
        violations_unlisted: 0,
        weakened,
    };
    let (mut violations, bridge_unlisted) = bridge.map(Bridge::finish).unwrap_or_default();
    let (syscall_listed, syscall_unlisted) = watch.map(SyscallWatch::finish).unwrap_or_default();
    violations.extend(syscall_listed);
    violations.sort_by_key(|v| v.time);
    outcome.violations_unlisted = bridge_unlisted + syscall_unlisted;
    outcome.violations = violations;
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
        End::Report(Report::Failed { reason }) => {
            return Err(Attempt::Failed(ExecError::RunnerFailed { reason }))
        }
        End::Report(Report::Started { .. } | Report::Accepted) => {
            unreachable!("only final reports end an evaluation")
        }
    };
    debug!(
        status = outcome.status.name(),
        ?wall_time,
        "evaluation finished"
    );
    Ok(outcome)
}

/// How one attempt at an evaluation failed.
pub(crate) enum Attempt {
    /// The spare it used died before accepting the job: nothing ran, so a
    /// fresh runner may run it.
    SpareLost(String),
    Failed(ExecError),
}

impl From<ExecError> for Attempt {
    fn from(error: ExecError) -> Self {
        Attempt::Failed(error)
    }
}

impl From<FrameError> for Attempt {
    fn from(error: FrameError) -> Self {
        Attempt::Failed(error.into())
    }
}

/// Reads the reports left on the channel once the output has ended: the
/// acknowledgement of the job, then the final report. On failure, says
/// whether the runner was lost before acknowledging the job (so nothing of
/// it ran and another runner may run it), and why it failed.
async fn read_final_report(stream: &mut Stream) -> Result<Report, (bool, String)> {
    let mut accepted = false;
    loop {
        let report = tokio::time::timeout(DRAIN_GRACE, frame::read_async::<_, Report>(stream))
            .await
            .map_err(|_| {
                (
                    false,
                    "the runner sent no report after the output ended".to_string(),
                )
            })?;
        match report {
            Ok(Report::Accepted) if !accepted => accepted = true,
            Ok(report) if accepted && report.is_final() => return Ok(report),
            Ok(report) => {
                return Err((
                    false,
                    format!("the runner broke the protocol: unexpected {report:?}"),
                ))
            }
            // Lost before acknowledging: the only case where nothing ran. A
            // runner killed with the job unread in its socket resets the
            // connection instead of closing it.
            Err(FrameError::Closed) => {
                return Err((
                    !accepted,
                    "the runner channel closed before the evaluation ended".into(),
                ))
            }
            Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err((
                    !accepted,
                    format!("the runner channel was reset before the evaluation ended: {e}"),
                ))
            }
            Err(e) => return Err((false, e.to_string())),
        }
    }
}

fn kill_tree(init: Option<&Pidfd>, child: &ChildProcess) {
    if let Some(init) = init {
        init.kill();
    }
    child.kill();
}
