//! The evaluation's init: pid 1 of its pid namespace. Runs the setup steps and
//! the command, reaps every orphan, kills whatever the command left behind,
//! reports how the command ended, and exits.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use interprocess::local_socket::Stream;
use nix::unistd::Pid;
use sandbox_core::{Termination, TruncateMode};

use super::confine::Base;
use super::spawn::{self, Stdio};
use crate::capture::Capture;
use crate::frame;
use crate::protocol::{Confinement, Job, LandlockMode, Preparation, Report, Usage};
use crate::OutputStream;

pub(super) fn run(mut stream: Stream, preparation: Preparation) -> ! {
    super::spawn::default_signals();
    // Everything of the sandbox that does not depend on the policy is built
    // while a spare waits, off the evaluation's path.
    let base = match preparation {
        Preparation::Confined { watch_reads } => Some(super::confine::prepare(watch_reads)),
        Preparation::Plain => None,
    };
    // A spare waits here, possibly for long, until an evaluation takes it.
    let job: Job = match frame::read_sync(&mut stream) {
        Ok(job) => job,
        // The executor let the spare go unused.
        Err(_) => std::process::exit(125),
    };
    // A confined job's descriptors go to the executor before anything of it
    // runs: the seccomp listener (when notifications work), then the
    // bridge's sockets (when the policy allows network; none when they cannot
    // be made, which tells the executor to give up). Init keeps no copy.
    let mut base = base;
    if let Some(confinement) = &job.confinement {
        let mut fds: Vec<OwnedFd> = Vec::new();
        if let Some(Ok(base)) = &mut base {
            fds.extend(base.take_listener());
            if let Some(ports) = &confinement.bridge {
                // Only inside the sandbox's own network namespace.
                fds.extend(super::bridge::listen(ports).unwrap_or_default());
            }
        }
        let borrowed: Vec<_> = fds.iter().map(|s| s.as_fd()).collect();
        if crate::fdpass::send(&stream, &borrowed).is_err() {
            std::process::exit(125);
        }
    }
    if frame::write_sync(&mut stream, &Report::Accepted).is_err() {
        std::process::exit(125);
    }
    // `base` outlives the report on purpose: it holds a clone of the whole
    // host mount tree, and closing that unmounts a copy of every host mount
    // (170 µs here), which the evaluation need not wait for. The exit below
    // closes it, after the report is sent.
    let report = evaluate(&job, base.as_ref()).unwrap_or_else(|reason| Report::Failed { reason });
    end_of_evaluation();
    let _ = frame::write_sync(&mut stream, &report);
    std::process::exit(0)
}

/// Makes sure nothing of the evaluation runs once it is reported: kills and
/// reaps every other process of the namespace, then lets go of the output
/// pipes, so the executor sees end-of-output together with the report and
/// need not wait for init's own exit.
fn end_of_evaluation() {
    // From pid 1, -1 means every other process in this pid namespace.
    // SAFETY: plain kill and waitpid calls.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    loop {
        let reaped = unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) };
        if reaped < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break; // ECHILD: nothing left
        }
    }
    for fd in 0..=2 {
        // SAFETY: init writes only to its socket from here on.
        unsafe { libc::close(fd) };
    }
}

fn evaluate(job: &Job, base: Option<&Result<Base, String>>) -> Result<Report, String> {
    match (&job.confinement, base) {
        (Some(confinement), Some(base)) => {
            confine(confinement, base.as_ref().map_err(Clone::clone)?)?
        }
        (None, None) => {}
        // The executor picks runners by kind; a mismatch is a bug of ours.
        (Some(_), None) => return Err("this runner was not prepared for confinement".into()),
        (None, Some(_)) => return Err("this runner was prepared for a confined evaluation".into()),
    }
    for (step, argv) in job.setup.iter().enumerate() {
        let (termination, output) = run_setup_step(job, argv)?;
        if termination != Termination::Exited(0) {
            return Ok(Report::SetupFailed {
                step,
                termination,
                output,
            });
        }
    }
    let prepared = match spawn::prepare(&job.argv, &job.env, job.cwd.as_deref(), &job.rlimits) {
        Ok(p) => p,
        Err(e) => return Ok(spawn_failed(e)),
    };
    let before = children_usage();
    let command = match spawn::spawn(&prepared, Stdio::Inherit) {
        Ok(pid) => pid,
        Err(e) => return Ok(spawn_failed(e)),
    };
    let (termination, command_usage) = reap_until(command)?;
    let after = children_usage();
    Ok(Report::Finished {
        termination,
        usage: Usage {
            user_us: after.user_us.saturating_sub(before.user_us),
            sys_us: after.sys_us.saturating_sub(before.sys_us),
            max_rss_kib: command_usage.max_rss_kib,
        },
    })
}

/// The policy's mounts on top of the prepared base, then Landlock (which opens
/// its rule paths in the new mount tree), then no capabilities, then the job's
/// seccomp programs (which forbid the mount calls made before them).
fn confine(confinement: &Confinement, base: &Base) -> Result<(), String> {
    super::confine::apply(base, &confinement.plan)?;
    if let LandlockMode::Apply { required } = confinement.landlock {
        super::landlock::restrict(&confinement.plan, required)?;
    }
    super::confine::lock_down()?;
    super::confine::install_job_seccomp(base, &confinement.seccomp)
}

fn spawn_failed(e: spawn::SpawnError) -> Report {
    Report::SpawnFailed {
        reason: e.reason,
        code: e.code,
    }
}

/// Runs one setup step with stdin from /dev/null and its output captured (up to
/// the job's limit), and waits for it.
fn run_setup_step(job: &Job, argv: &[String]) -> Result<(Termination, Vec<u8>), String> {
    let prepared = match spawn::prepare(argv, &job.env, job.cwd.as_deref(), &job.rlimits) {
        Ok(p) => p,
        Err(e) => return Ok((Termination::Exited(e.code), e.reason.into_bytes())),
    };
    let null: OwnedFd = std::fs::File::open("/dev/null")
        .map_err(|e| format!("cannot open /dev/null: {e}"))?
        .into();
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot create a pipe: {e}"))?;
    let spawned = spawn::spawn(
        &prepared,
        Stdio::Capture {
            null: &null,
            out: &write,
        },
    );
    drop(write);
    let pid = match spawned {
        Ok(pid) => pid,
        Err(e) => return Ok((Termination::Exited(e.code), e.reason.into_bytes())),
    };
    let mut capture = Capture::new(job.max_setup_output, TruncateMode::Head);
    let mut reader = std::fs::File::from(read);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                capture.push(OutputStream::Stdout, &buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read a setup step's output: {e}")),
        }
    }
    let (termination, _) = reap_until(pid)?;
    Ok((termination, capture.finish().output))
}

/// Waits for `target`, reaping any other process that ends meanwhile (init
/// inherits every orphan of the namespace).
fn reap_until(target: Pid) -> Result<(Termination, Usage), String> {
    loop {
        let mut status = 0;
        // SAFETY: plain wait4 into local variables.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = unsafe { libc::wait4(-1, &mut status, 0, &mut rusage) };
        if pid < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("waiting for pid {target} failed: {err}"));
        }
        if pid != target.as_raw() {
            continue;
        }
        let termination = if libc::WIFEXITED(status) {
            Termination::Exited(libc::WEXITSTATUS(status))
        } else {
            Termination::Signaled(libc::WTERMSIG(status))
        };
        return Ok((termination, usage_of(&rusage)));
    }
}

fn usage_of(r: &libc::rusage) -> Usage {
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Usage {
        user_us: us(r.ru_utime),
        sys_us: us(r.ru_stime),
        max_rss_kib: r.ru_maxrss as u64,
    }
}

fn children_usage() -> Usage {
    // SAFETY: getrusage into a local variable.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut r) };
    usage_of(&r)
}
