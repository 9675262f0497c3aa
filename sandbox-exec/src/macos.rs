//! One evaluation on macOS: the system calls behind the `seatbelt` module's
//! decisions.
//!
//! macOS has no namespaces and no runner child protocol. Each setup step and
//! then the command is spawned directly, as `sandbox-exec -p PROFILE -- ARGV…`
//! (or bare for an unrestricted policy), in a process group of its own, with
//! the request's environment, working directory, rlimits and stdin; its
//! stdout and stderr go through the same [`Capture`] as on Linux.
//!
//! What stands in for the Linux pid namespace's init:
//!
//! * A step's end is learned with `waitid(WEXITED | WNOWAIT)`, which leaves
//!   its leader a zombie. A zombie's pid cannot be reused, so its group id
//!   keeps naming the evaluation's processes, and `killpg(SIGKILL)` of every
//!   group (on timeout, at the output limit, and once the command has ended,
//!   as init kills what the command left behind) can never hit a stranger.
//!   The leaders are reaped (`wait4`, which also gives the command's CPU time
//!   and peak memory) only when the evaluation is over.
//! * A setup step's leftovers keep running until the evaluation ends, as on
//!   Linux, so a setup step may start a background service for the command.
//!
//! Not caught, unlike on Linux: a process that leaves its process group
//! (`setsid`, `setpgid`) survives the kills; if it keeps the output pipes
//! open, the evaluation stops reading them [`DRAIN_GRACE`] after the end.
//!
//! Programs are spawned with `std::process` and reaped here rather than
//! through `tokio::process`, whose reaper would call `waitpid` on the pid
//! itself: the evaluation needs `wait4`'s resource usage, and must decide
//! when the pid (and so the group id) may be freed.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sandbox_core::{EvalRequest, Outcome, OutputLimitAction, Termination, TruncateMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tracing::{debug, warn, Instrument};

use crate::capture::Capture;
use crate::seatbelt::{self, End, Host, Plan, Probe, Resource, Usage, SANDBOX_EXEC};
use crate::{ExecError, Observer, OutputStream};

/// After the end is known, how long to wait for the pipes to close.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// As in the Linux evaluation: below malloc's mmap threshold.
const READ_CHUNK: usize = 64 * 1024;

/// Runs `request` on macOS.
pub(crate) async fn evaluate(
    request: EvalRequest,
    observer: &mut dyn Observer,
) -> Result<Outcome, ExecError> {
    // The profile is generated here, once; every step reuses it.
    let plan = Plan::new(&request, std::env::vars(), &MacHost)?;
    let profile_bytes = plan.launcher.profile().map(str::len);
    if profile_bytes.is_some() && !Path::new(SANDBOX_EXEC).is_file() {
        // The machine cannot confine anything: an error, never an unconfined run.
        return Err(ExecError::SpawnRunner {
            program: SANDBOX_EXEC.into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        });
    }
    let span = tracing::debug_span!(
        "seatbelt",
        sandboxed = profile_bytes.is_some(),
        profile_bytes = profile_bytes.unwrap_or(0)
    );
    async {
        match profile_bytes {
            Some(bytes) => debug!(profile_bytes = bytes, "running under sandbox-exec"),
            None => debug!("unrestricted policy: running without sandbox-exec"),
        }
        let mut evaluation = Evaluation {
            plan: &plan,
            deadline: tokio::time::Instant::now() + request.timeout,
            timeout: request.timeout,
            observer,
            announced: false,
            groups: Vec::new(),
        };
        evaluation.run(&request).await
    }
    .instrument(span)
    .await
}

/// Where a program's standard streams go.
enum Io<'a> {
    /// A setup step's: nothing in; stdout and stderr into one pipe, in order.
    Setup,
    /// The command's: the request's stdin; stdout and stderr apart.
    Command { stdin: &'a [u8] },
}

/// How watching one program ended.
enum Ran {
    /// It exited (or was killed by a signal nobody here sent).
    Exited {
        termination: Termination,
        group: Arc<Group>,
    },
    SpawnFailed(seatbelt::SpawnFailure),
    TimedOut,
    OutputLimit,
    Lost(String),
}

/// One evaluation in progress.
struct Evaluation<'a> {
    plan: &'a Plan,
    deadline: tokio::time::Instant,
    /// The request's wall-clock limit, for the log.
    timeout: Duration,
    observer: &'a mut dyn Observer,
    /// Whether the observer has been told of the first process.
    announced: bool,
    /// Every process group started, setup steps first.
    groups: Vec<Arc<Group>>,
}

impl Evaluation<'_> {
    async fn run(&mut self, request: &EvalRequest) -> Result<Outcome, ExecError> {
        let plan = self.plan;
        let start = Instant::now();
        let mut capture = Capture::new(request.max_output, request.truncate_mode);
        for (step, argv) in plan.setup.iter().enumerate() {
            // As the Linux runner: a step's output is kept (up to the limit)
            // only to be reported if it fails.
            let mut step_output = Capture::new(request.max_output, TruncateMode::Head);
            let end = match self.watch(argv, Io::Setup, &mut step_output, false).await? {
                Ran::Exited { termination, .. } => seatbelt::setup_end(
                    &plan.launcher,
                    step,
                    &argv[0],
                    termination,
                    step_output.finish().output,
                )?,
                Ran::SpawnFailed(failure) => Some(seatbelt::setup_spawn_failed(step, failure)),
                Ran::TimedOut => Some(End::TimedOut),
                Ran::OutputLimit => Some(End::OutputLimit),
                Ran::Lost(reason) => Some(End::Lost(reason)),
            };
            if let Some(end) = end {
                let wall_time = start.elapsed();
                self.end_all().await;
                return Ok(seatbelt::outcome(
                    request,
                    &plan.limits,
                    capture.finish(),
                    wall_time,
                    end,
                ));
            }
        }

        let kill_on_limit = request.on_output_limit == OutputLimitAction::Kill;
        let io = Io::Command {
            stdin: &request.stdin,
        };
        let ran = self
            .watch(&plan.argv, io, &mut capture, kill_on_limit)
            .await?;
        let wall_time = start.elapsed();
        self.end_all().await;
        let captured = capture.finish();
        let end = match ran {
            Ran::Exited { termination, group } => {
                // `wait4`'s status and usage once reaped; the `waitid` status
                // (and no usage) if the leader could not be reaped in time.
                let (termination, usage) =
                    group.reaped().unwrap_or((termination, Usage::default()));
                seatbelt::command_end(&plan.launcher, &plan.argv[0], termination, usage, &captured)?
            }
            Ran::SpawnFailed(failure) => End::SpawnFailed(failure),
            Ran::TimedOut => End::TimedOut,
            Ran::OutputLimit => End::OutputLimit,
            Ran::Lost(reason) => End::Lost(reason),
        };
        let outcome = seatbelt::outcome(request, &plan.limits, captured, wall_time, end);
        debug!(
            status = outcome.status.name(),
            ?wall_time,
            "evaluation finished"
        );
        Ok(outcome)
    }

    /// Starts one program and follows it until it ends (and its output
    /// ends), the deadline passes, or the output limit kills it.
    async fn watch(
        &mut self,
        argv: &[String],
        io: Io<'_>,
        capture: &mut Capture,
        kill_on_limit: bool,
    ) -> Result<Ran, ExecError> {
        let plan = self.plan;
        let invocation = match plan.prepare(argv, &MacHost) {
            Ok(invocation) => invocation,
            Err(failure) => return Ok(Ran::SpawnFailed(failure)),
        };
        let mut command = std::process::Command::new(&invocation.program);
        command
            .arg0(&invocation.argv[0])
            .args(&invocation.argv[1..])
            .env_clear()
            .envs(plan.env.iter().map(|(k, v)| (k, v)))
            .process_group(0);
        if let Some(cwd) = &plan.cwd {
            command.current_dir(cwd);
        }
        set_rlimits(&mut command, &plan.limits.rlimits);
        let setup = matches!(io, Io::Setup);
        let mut merged = None;
        if setup {
            let (sender, receiver) = pipe::pipe().map_err(prepare_err("a setup step's pipe"))?;
            let write = sender
                .into_blocking_fd()
                .map_err(prepare_err("a setup step's pipe"))?;
            let write2 = write
                .try_clone()
                .map_err(prepare_err("a setup step's pipe"))?;
            command
                .stdin(Stdio::null())
                .stdout(Stdio::from(write))
                .stderr(Stdio::from(write2));
            merged = Some(receiver);
        } else {
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        let spawned = command.spawn();
        // The command holds our copies of a setup step's pipe: they must close
        // for the end of its output to be seen.
        drop(command);
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let name = match plan.launcher.profile() {
                    Some(_) => SANDBOX_EXEC,
                    None => argv[0].as_str(),
                };
                let failure = seatbelt::spawn_failure(name, e.raw_os_error(), &describe(&e));
                return Ok(Ran::SpawnFailed(failure));
            }
        };
        let pid = child.id();
        let group = Arc::new(Group {
            leader: pid as libc::pid_t,
            reaped: Mutex::new(None),
        });
        // From here on, `Drop` kills and reaps it whatever happens.
        self.groups.push(Arc::clone(&group));
        let mut waiter = tokio::task::spawn_blocking({
            let group = Arc::clone(&group);
            move || group.wait_exit()
        });
        if !self.announced {
            // There is no runner on macOS: the first process of the
            // evaluation stands in for it.
            self.observer.runner_started(pid);
            self.announced = true;
        }
        let receiver =
            |fd: OwnedFd| pipe::Receiver::from_owned_fd(fd).map_err(prepare_err("an output pipe"));
        let (mut out, mut err) = match merged {
            Some(merged) => (Some(merged), None),
            None => (
                child
                    .stdout
                    .take()
                    .map(OwnedFd::from)
                    .map(receiver)
                    .transpose()?,
                child
                    .stderr
                    .take()
                    .map(OwnedFd::from)
                    .map(receiver)
                    .transpose()?,
            ),
        };
        if let (Some(stdin), Io::Command { stdin: bytes }) = (child.stdin.take(), &io) {
            if !bytes.is_empty() {
                let mut stdin = pipe::Sender::from_owned_fd(OwnedFd::from(stdin))
                    .map_err(prepare_err("the stdin pipe"))?;
                let bytes = bytes.to_vec();
                // The command may never read its input; a blocked write must
                // not hold up the end.
                tokio::spawn(async move {
                    let _ = stdin.write_all(&bytes).await;
                });
            }
            // Otherwise dropped here: the command reads end of file.
        }
        // Dropping a std `Child` neither waits nor kills; the group does both.
        drop(child);

        let (mut out_buf, mut err_buf) = (vec![0u8; READ_CHUNK], vec![0u8; READ_CHUNK]);
        let (mut out_open, mut err_open) = (out.is_some(), err.is_some());
        let mut exit: Option<Result<Termination, String>> = None;
        let mut cut: Option<Ran> = None;
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        while exit.is_none() || out_open || err_open {
            let timer = drain_deadline.unwrap_or(self.deadline);
            // Unbiased on purpose, as on Linux: a flooding stdout must not
            // starve stderr, the exit or the timer.
            tokio::select! {
                read = read_some(&mut out, &mut out_buf), if out_open => match read {
                    Ok(0) | Err(_) => out_open = false,
                    Ok(n) => {
                        // A setup step's output is all one stream, as on Linux.
                        let kept = capture.push(OutputStream::Stdout, &out_buf[..n]);
                        if !setup {
                            self.observer.output(OutputStream::Stdout, kept);
                        }
                    }
                },
                read = read_some(&mut err, &mut err_buf), if err_open => match read {
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => {
                        let kept = capture.push(OutputStream::Stderr, &err_buf[..n]);
                        self.observer.output(OutputStream::Stderr, kept);
                    }
                },
                waited = &mut waiter, if exit.is_none() => {
                    exit = Some(match waited {
                        Ok(Ok(termination)) => Ok(termination),
                        Ok(Err(e)) => Err(format!("cannot wait for process {pid}: {e}")),
                        Err(e) => Err(format!("the thread waiting for process {pid} failed: {e}")),
                    });
                    // A setup step's output is read to its end, as the Linux
                    // init does; once the command has ended, what it left
                    // behind is killed (closing the pipes it holds), as init
                    // kills it.
                    if !setup && cut.is_none() {
                        self.kill_all();
                        drain_deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                    }
                }
                _ = tokio::time::sleep_until(timer) => {
                    if drain_deadline.is_none() {
                        debug!(timeout = ?self.timeout, "timeout: killing the evaluation");
                        cut = Some(Ran::TimedOut);
                        self.kill_all();
                        drain_deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                    } else {
                        warn!("output pipes still open after the evaluation ended; giving up on them");
                        break;
                    }
                }
            }
            if cut.is_none() && kill_on_limit && capture.over_limit() {
                debug!("output limit: killing the evaluation");
                cut = Some(Ran::OutputLimit);
                self.kill_all();
                drain_deadline.get_or_insert_with(|| tokio::time::Instant::now() + DRAIN_GRACE);
            }
        }
        if let Some(cut) = cut {
            return Ok(cut);
        }
        Ok(match exit {
            Some(Ok(termination)) => Ran::Exited { termination, group },
            Some(Err(reason)) => Ran::Lost(reason),
            // The loop only gives up on the pipes after the end is known.
            None => Ran::Lost(format!("process {pid} was lost before it ended")),
        })
    }

    /// SIGKILL to every process group of the evaluation.
    fn kill_all(&self) {
        for group in &self.groups {
            group.kill();
        }
    }

    /// Kills what is left of the evaluation and reaps every leader (the
    /// command's usage comes from this). Gives up waiting after
    /// [`DRAIN_GRACE`]; the reaping then finishes in the background.
    async fn end_all(&mut self) {
        self.kill_all();
        let groups = self.groups.clone();
        let reaping = tokio::task::spawn_blocking(move || {
            for group in &groups {
                if let Err(e) = group.reap() {
                    warn!(pid = group.leader, "cannot reap an evaluation process: {e}");
                }
            }
        });
        if tokio::time::timeout(DRAIN_GRACE, reaping).await.is_err() {
            warn!("processes of the evaluation outlived SIGKILL; reaping them in the background");
        }
    }
}

impl Drop for Evaluation<'_> {
    /// An evaluation dropped half-way (its future cancelled, or an error)
    /// leaves nothing running and no zombie behind.
    fn drop(&mut self) {
        self.kill_all();
        if self.groups.iter().any(|g| g.reaped().is_none()) {
            let groups = std::mem::take(&mut self.groups);
            std::thread::spawn(move || {
                for group in groups {
                    let _ = group.reap();
                }
            });
        }
    }
}

/// A process group the evaluation started, named by its leader.
struct Group {
    leader: libc::pid_t,
    /// How the leader ended and what it used, once reaped. While `None` the
    /// leader's pid cannot be reused, so the group id is ours to signal; the
    /// lock is held across the reaping so no kill can race it.
    reaped: Mutex<Option<(Termination, Usage)>>,
}

impl Group {
    /// Sends SIGKILL to every process of the group, unless the leader is
    /// reaped (then its pid may name someone else's group).
    fn kill(&self) {
        let reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if reaped.is_none() {
            // SAFETY: sends a signal; the unreaped leader keeps the group id ours.
            unsafe { libc::killpg(self.leader, libc::SIGKILL) };
        }
    }

    /// Blocks until the leader has ended, without reaping it.
    fn wait_exit(&self) -> io::Result<Termination> {
        loop {
            // SAFETY: waitid fills in a zeroed siginfo_t of ours.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.leader as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if r != 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            match seatbelt::exit_from_siginfo(info.si_code, info.si_status) {
                Some(termination) => return Ok(termination),
                // Some macOS versions report a stopped child even to
                // WEXITED alone: it has not ended; look again shortly
                // rather than spin.
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Reaps the leader (blocking until it has ended) and keeps what `wait4`
    /// says. Call after [`kill`](Self::kill), or on a leader known to have ended.
    fn reap(&self) -> io::Result<(Termination, Usage)> {
        let mut reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(done) = *reaped {
            return Ok(done);
        }
        loop {
            let mut status = 0;
            // SAFETY: wait4 fills in locals of ours.
            let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
            let r = unsafe { libc::wait4(self.leader, &mut status, 0, &mut rusage) };
            if r == self.leader {
                let done = (seatbelt::termination(status), usage_of(&rusage));
                *reaped = Some(done);
                return Ok(done);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// What `wait4` said, once reaped.
    fn reaped(&self) -> Option<(Termination, Usage)> {
        *self.reaped.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn usage_of(r: &libc::rusage) -> Usage {
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Usage {
        cpu_user: time(r.ru_utime),
        cpu_sys: time(r.ru_stime),
        // In bytes on macOS (in KiB on Linux).
        max_rss_bytes: r.ru_maxrss as u64,
    }
}

/// Sets the plan's rlimits in the child between fork and exec.
fn set_rlimits(command: &mut std::process::Command, rlimits: &[seatbelt::Rlimit]) {
    if rlimits.is_empty() {
        // No `pre_exec`, so std may use posix_spawn.
        return;
    }
    let limits: Vec<(libc::c_int, libc::rlimit)> = rlimits
        .iter()
        .map(|r| {
            let limit = libc::rlimit {
                rlim_cur: r.soft as libc::rlim_t,
                rlim_max: r.hard as libc::rlim_t,
            };
            (resource_id(r.resource), limit)
        })
        .collect();
    // SAFETY: between fork and exec the closure only calls setrlimit (async-
    // signal-safe) on memory allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            for (resource, limit) in &limits {
                if libc::setrlimit(*resource, limit) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

fn resource_id(resource: Resource) -> libc::c_int {
    match resource {
        Resource::Cpu => libc::RLIMIT_CPU,
        Resource::FileSize => libc::RLIMIT_FSIZE,
        Resource::OpenFiles => libc::RLIMIT_NOFILE,
    }
}

/// Reads from a stream that may not exist (a setup step has one); `select!`
/// builds every branch's future, even a disabled one.
async fn read_some(stream: &mut Option<pipe::Receiver>, buf: &mut [u8]) -> io::Result<usize> {
    match stream {
        Some(stream) => stream.read(buf).await,
        None => std::future::pending().await,
    }
}

fn prepare_err(what: &str) -> impl FnOnce(io::Error) -> ExecError + '_ {
    move |source| ExecError::Prepare {
        what: what.to_string(),
        source,
    }
}

/// An error's text as the C library words it ("No such file or directory"),
/// without Rust's "(os error N)".
fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => nix::errno::Errno::from_raw(errno).desc().to_string(),
        None => e.to_string(),
    }
}

/// This Mac, as the `seatbelt` module's logic needs to see it.
struct MacHost;

impl Host for MacHost {
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn probe(&self, path: &Path) -> Probe {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() && executable(path) => Probe::Runnable,
            Ok(_) => Probe::Denied,
            Err(e) => match e.raw_os_error() {
                // A directory on the way that we cannot search hides nothing
                // from us, as in a shell.
                Some(libc::ENOENT | libc::ENOTDIR | libc::EACCES) => Probe::Missing,
                _ => Probe::Failed(describe(&e)),
            },
        }
    }

    fn hard_limit(&self, resource: Resource) -> Option<u64> {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit fills in a local of ours.
        let r = unsafe { libc::getrlimit(resource_id(resource), &mut limit) };
        (r == 0 && limit.rlim_max != libc::RLIM_INFINITY).then_some(limit.rlim_max)
    }

    fn is_root(&self) -> bool {
        nix::unistd::geteuid().is_root()
    }
}

/// Whether this user may execute the file at `path`.
fn executable(path: &Path) -> bool {
    CString::new(path.as_os_str().as_bytes()).is_ok_and(|c| {
        // SAFETY: access reads a NUL-terminated path of ours.
        unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
    })
}
