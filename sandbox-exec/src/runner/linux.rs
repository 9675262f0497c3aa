//! The runner process proper: handshake, namespaces, and the fork of init.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericFilePath, Stream};
use interprocess::os::unix::uds_local_socket;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

use super::{
    CGROUP_ENV, CONFINED_ENV, ENDPOINT_ENV, PARENT_ENV, TOKEN_ENV, USERNS_ENV, ZYGOTE_ENV,
};
use crate::frame;
use crate::protocol::{Hello, Preparation, Report, RunnerSpec, MAGIC};

/// Exit code of a runner that could not even reach its executor.
pub(super) const BROKEN: i32 = 125;

pub(super) fn run() -> i32 {
    let parent = expected_parent();
    arm_parent_death_signal(parent);
    // Whatever descriptors the executor's process leaked to us (its caller's
    // pipes, sockets, files) must not reach the evaluation.
    close_from(3);
    if more_than_one_thread() {
        // fork() in a threaded process may inherit locks held by other threads;
        // a fresh exec of ourselves is single-threaded until `dispatch` runs.
        reexec_self();
    }
    if std::env::var_os(ZYGOTE_ENV).is_some() {
        return super::zygote::run(parent);
    }
    match spec_from_env() {
        Ok(spec) => serve(spec),
        Err(reason) => {
            eprintln!("sandbox runner: {reason}");
            BROKEN
        }
    }
}

/// Where a forked runner finds its channel to the executor.
const CHANNEL_FD: libc::c_int = 3;

/// The start of a runner the zygote forked: `fds` (stdin, stdout, stderr
/// and the channel to the executor) become its descriptors 0 to 3, and
/// nothing else of the zygote's stays open.
pub(super) fn forked(spec: RunnerSpec, fds: [OwnedFd; 4], parent: Option<i32>) -> i32 {
    // The fork cleared the zygote's parent-death signal; with CLONE_PARENT
    // the parent is the executor's, so the same check holds.
    arm_parent_death_signal(parent);
    // The received descriptors are above 2 (the zygote holds 0 to 2), and
    // one of them at 3 is moved before 3 is written: no dup2 below
    // overwrites a descriptor still to be moved.
    for (target, fd) in fds.into_iter().enumerate() {
        let fd = fd.into_raw_fd();
        // SAFETY: installs a descriptor we own at its place; the original is
        // closed with the rest below.
        unsafe { libc::dup2(fd, target as libc::c_int) };
    }
    close_from(CHANNEL_FD as u32 + 1);
    serve(spec)
}

/// Closes every descriptor from `first` up.
fn close_from(first: u32) {
    // SAFETY: closes descriptors this process has no handle objects for
    // (the callers hold none from `first` up).
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
}

/// Connects to the executor, proves itself, enters the namespaces, forks
/// init and waits for it.
pub(super) fn serve(spec: RunnerSpec) -> i32 {
    let RunnerSpec {
        endpoint,
        token,
        user_namespace,
        preparation,
        cgroup_procs,
    } = spec;
    let mut stream = match endpoint {
        Some(endpoint) => {
            let endpoint = OsString::from_vec(endpoint);
            match endpoint
                .as_os_str()
                .to_fs_name::<GenericFilePath>()
                .and_then(Stream::connect)
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sandbox runner: cannot connect to {endpoint:?}: {e}");
                    return BROKEN;
                }
            }
        }
        // SAFETY: `forked` put the connected channel there and nothing else owns it.
        None => Stream::from(uds_local_socket::Stream::from(unsafe {
            OwnedFd::from_raw_fd(CHANNEL_FD)
        })),
    };
    let hello = Hello {
        magic: MAGIC,
        version: frame::PROTOCOL_VERSION,
        token,
    };
    if frame::write_sync(&mut stream, &hello).is_err() {
        return BROKEN;
    }
    // Init is forked into the spare's cgroups: the runner moves in first
    // (and stays: moving it out again would cost another migration).
    if let Err(reason) = move_into(&cgroup_procs) {
        let _ = frame::write_sync(&mut stream, &Report::Failed { reason });
        return BROKEN;
    }
    if let Err(reason) = enter_namespaces(user_namespace) {
        let _ = frame::write_sync(&mut stream, &Report::Failed { reason });
        return BROKEN;
    }
    // Init waits on this pipe until the runner has reported its pid, so that
    // the `Started` report always precedes init's own reports on the shared socket.
    let (go_read, go_write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            let reason = format!("cannot create a pipe: {e}");
            let _ = frame::write_sync(&mut stream, &Report::Failed { reason });
            return BROKEN;
        }
    };
    // The runner gives its copies of the evaluation's stdio away once init
    // has them, so the executor sees end-of-output as soon as init is gone.
    let null = match std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        Ok(f) => f,
        Err(e) => {
            let reason = format!("cannot open /dev/null: {e}");
            let _ = frame::write_sync(&mut stream, &Report::Failed { reason });
            return BROKEN;
        }
    };
    // SAFETY: the runner is single-threaded (checked above), so the child may
    // run arbitrary code after the fork.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(go_write);
            drop(null);
            super::init::run(stream, go_read, preparation)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(go_read);
            for fd in 0..=2 {
                // SAFETY: replaces this process's own standard descriptors.
                unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
            }
            drop(null);
            let started = Report::Started {
                init_pid: child.as_raw() as u32,
            };
            let _ = frame::write_sync(&mut stream, &started);
            let _ = std::fs::File::from(go_write).write_all(b"g");
            // Only init holds the socket from here on: when it dies, the
            // executor sees the channel close.
            drop(stream);
            wait_for(child)
        }
        Err(e) => {
            let reason = format!("cannot fork the evaluation's init: {e}");
            let _ = frame::write_sync(&mut stream, &Report::Failed { reason });
            BROKEN
        }
    }
}

/// Moves this process into each cgroup whose `cgroup.procs` is given.
fn move_into(procs: &[String]) -> Result<(), String> {
    for file in procs {
        // "0" is the writing process itself.
        std::fs::write(file, "0")
            .map_err(|e| format!("cannot move the runner into {file}: {e}"))?;
    }
    Ok(())
}

/// The executor's pid, as it put it in our environment.
fn expected_parent() -> Option<i32> {
    std::env::var(PARENT_ENV).ok().and_then(|p| p.parse().ok())
}

fn arm_parent_death_signal(parent: Option<i32>) {
    // SAFETY: prctl with these arguments only changes this process's own setting.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // If the executor died before the prctl took effect, nobody would ever kill us.
    if let Some(parent) = parent {
        if nix::unistd::getppid().as_raw() != parent {
            std::process::exit(BROKEN);
        }
    }
}

fn more_than_one_thread() -> bool {
    use std::os::unix::fs::MetadataExt;
    // A task directory links "." and ".." plus one entry per thread: one stat
    // instead of reading and parsing /proc/self/status.
    std::fs::metadata("/proc/self/task").is_ok_and(|m| m.nlink() > 3)
}

fn reexec_self() {
    use std::os::unix::process::CommandExt;
    let args: Vec<OsString> = std::env::args_os().collect();
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(args.first().cloned().unwrap_or_default())
        .args(args.iter().skip(1))
        .exec();
    eprintln!("sandbox runner: cannot re-execute itself single-threaded: {err}");
    std::process::exit(BROKEN);
}

/// The spec of a runner the executor executed, from its environment.
fn spec_from_env() -> Result<RunnerSpec, String> {
    let endpoint = std::env::var_os(ENDPOINT_ENV).ok_or(format!("{ENDPOINT_ENV} is not set"))?;
    let hex = std::env::var(TOKEN_ENV).map_err(|_| format!("{TOKEN_ENV} is not set"))?;
    let token =
        crate::endpoint::parse_token(&hex).ok_or(format!("{TOKEN_ENV} is not 32 hex digits"))?;
    let preparation = match std::env::var(CONFINED_ENV).as_deref() {
        Ok("1") => Preparation::Confined { watch_reads: false },
        Ok("reads") => Preparation::Confined { watch_reads: true },
        _ => Preparation::Plain,
    };
    Ok(RunnerSpec {
        endpoint: Some(endpoint.into_vec()),
        token,
        user_namespace: std::env::var_os(USERNS_ENV).is_some_and(|v| v == "1"),
        preparation,
        cgroup_procs: std::env::var(CGROUP_ENV)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect(),
    })
}

/// Moves the runner into a new pid namespace for its children (and, when it is
/// not privileged, a user namespace that allows it), mapping the caller's own
/// uid and gid so the evaluation runs as the same user as before.
fn enter_namespaces(user_namespace: bool) -> Result<(), String> {
    let mut flags = CloneFlags::CLONE_NEWPID;
    if !user_namespace {
        return nix::sched::unshare(flags)
            .map_err(|e| format!("cannot create a pid namespace for the evaluation: {e}"));
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    flags |= CloneFlags::CLONE_NEWUSER;
    nix::sched::unshare(flags).map_err(|e| {
        format!(
            "cannot create a user and pid namespace for the evaluation: {e} \
             (are unprivileged user namespaces disabled? see sysctl kernel.unprivileged_userns_clone \
             and user.max_user_namespaces)"
        )
    })?;
    let write = |file: &str, text: String| {
        std::fs::write(file, &text).map_err(|e| format!("cannot write {text:?} to {file}: {e}"))
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1"))?;
    Ok(())
}

fn wait_for(child: Pid) -> i32 {
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => return code,
            _ => return BROKEN,
        }
    }
}
