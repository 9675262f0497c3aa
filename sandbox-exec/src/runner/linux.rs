//! The runner process proper: connecting to the executor, and cloning init
//! into its namespaces and cgroups (which the zygote does the same way).

use std::ffi::OsString;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericFilePath, Stream};
use interprocess::os::unix::uds_local_socket;
use nix::unistd::Pid;

use super::{
    CGROUP_ENV, CONFINED_ENV, ENDPOINT_ENV, PARENT_ENV, TOKEN_ENV, USERNS_ENV, ZYGOTE_ENV,
};
use crate::frame;
use crate::protocol::{Go, Hello, Preparation, Report, RunnerSpec, MAGIC};

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
        return super::zygote::run();
    }
    match spec_from_env() {
        Ok(spec) => serve(spec),
        Err(reason) => {
            eprintln!("sandbox runner: {reason}");
            BROKEN
        }
    }
}

/// Where a forked init finds its channel to the executor.
const CHANNEL_FD: libc::c_int = 3;

/// The start of an init the zygote forked: `fds` (stdin, stdout, stderr
/// and the channel to the executor) become its descriptors 0 to 3, and
/// nothing else of the zygote's stays open.
pub(super) fn forked_init(spec: RunnerSpec, fds: [OwnedFd; 4], go: OwnedFd) -> i32 {
    // Read first: the pipe's descriptor may be one of those overwritten below.
    let go = await_go(go);
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
    // SAFETY: the channel was put there just above and nothing else owns it.
    let stream = Stream::from(uds_local_socket::Stream::from(unsafe {
        OwnedFd::from_raw_fd(CHANNEL_FD)
    }));
    become_init(stream, &spec.token, go, spec.preparation)
}

/// Closes every descriptor from `first` up.
fn close_from(first: u32) {
    // SAFETY: closes descriptors this process has no handle objects for
    // (the callers hold none from `first` up).
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
}

/// Connects to the executor, clones init into its namespaces and waits for
/// it. Init proves itself to the executor and reports itself; the runner
/// speaks only when no init could be made.
pub(super) fn serve(spec: RunnerSpec) -> i32 {
    let Some(endpoint) = spec.endpoint.clone() else {
        eprintln!("sandbox runner: no endpoint to connect to");
        return BROKEN;
    };
    let endpoint = OsString::from_vec(endpoint);
    let mut stream = match endpoint
        .as_os_str()
        .to_fs_name::<GenericFilePath>()
        .and_then(Stream::connect)
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sandbox runner: cannot connect to {endpoint:?}: {e}");
            return BROKEN;
        }
    };
    let mut fail = |reason: String| {
        let hello = hello(&spec.token);
        let _ = frame::write_sync(&mut stream, &hello)
            .and_then(|()| frame::write_sync(&mut stream, &Report::Failed { reason }));
        BROKEN
    };
    // The runner gives its copies of the evaluation's stdio away once init
    // has them, so the executor sees end-of-output as soon as init is gone.
    let null = match std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot open /dev/null: {e}")),
    };
    match start_init(&spec, false, None) {
        Err(reason) => fail(reason),
        Ok(Cloned::Child(go)) => {
            drop(null);
            let go = await_go(go);
            become_init(stream, &spec.token, go, spec.preparation)
        }
        Ok(Cloned::Parent { pid, .. }) => {
            for fd in 0..=2 {
                // SAFETY: replaces this process's own standard descriptors.
                unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
            }
            drop(null);
            // Only init holds the socket from here on: when it dies, the
            // executor sees the channel close.
            drop(stream);
            wait_for(Pid::from_raw(pid))
        }
    }
}

fn hello(token: &[u8; 16]) -> Hello {
    Hello {
        magic: MAGIC,
        version: frame::PROTOCOL_VERSION,
        token: *token,
    }
}

/// Which side of [`start_init`]'s clone this is.
pub(super) enum Cloned {
    /// The new init, with the pipe its [`Go`] arrives on.
    Child(OwnedFd),
    /// Its parent, once the init has its place; `pidfd` with `as_sibling`,
    /// and then, for a confined init, its network namespace.
    Parent {
        pid: i32,
        pidfd: Option<OwnedFd>,
        network: Option<OwnedFd>,
    },
}

/// Clones the evaluation's init into a new pid namespace (and a new user
/// namespace when `spec` asks for one), as this process's child or, with
/// `as_sibling`, as its parent's (`CLONE_PARENT`, returning a pidfd: the
/// zygote's inits are the executor's children). The parent then maps the
/// init's ids and moves it into `spec`'s cgroups, and tells it to [`Go`]
/// (or why it cannot). The caller stays outside the namespaces and the
/// cgroups, so they hold init and the evaluation only.
///
/// A confined init gets a network namespace of its own: `reused`, an
/// earlier evaluation's that the calling thread has entered (see
/// [`super::network`]), else a new one.
pub(super) fn start_init(
    spec: &RunnerSpec,
    as_sibling: bool,
    reused: Option<OwnedFd>,
) -> Result<Cloned, String> {
    let (go_read, go_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot create a pipe: {e}"))?;
    let mut flags = libc::CLONE_NEWPID | libc::SIGCHLD;
    if spec.user_namespace {
        flags |= libc::CLONE_NEWUSER;
    }
    let confined = matches!(spec.preparation, Preparation::Confined { .. });
    let entered = reused.filter(|_| confined);
    if confined && entered.is_none() {
        flags |= libc::CLONE_NEWNET;
    }
    if as_sibling {
        flags |= libc::CLONE_PARENT | libc::CLONE_PIDFD;
    }
    let mut pidfd: libc::c_int = -1;
    // The legacy clone rather than fork(): only it takes namespace flags,
    // CLONE_PARENT and CLONE_PIDFD (and libc has no clone3 arguments for
    // this target). Without a new stack the child continues here, like
    // after fork(); callers are single-threaded, so no lock can be held by
    // a thread the child lacks.
    // SAFETY: a fork-like clone; the child only goes on to be init.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0usize,
            &mut pidfd as *mut libc::c_int,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        drop(go_write);
        drop(entered);
        return Ok(Cloned::Child(go_read));
    }
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        return Err(if spec.user_namespace {
            format!(
                "cannot create a user and pid namespace for the evaluation: {e} \
                 (are unprivileged user namespaces disabled? see sysctl kernel.unprivileged_userns_clone \
                 and user.max_user_namespaces)"
            )
        } else {
            format!("cannot create a pid namespace for the evaluation: {e}")
        });
    }
    drop(go_read);
    let pid = pid as i32;
    // SAFETY: CLONE_PIDFD stored a fresh descriptor for the child there.
    let pidfd = as_sibling.then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    // The zygote's inits' namespaces are kept for later spares.
    let network = match entered {
        Some(reused) => Some(reused),
        None if confined && as_sibling => std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .ok()
            .map(OwnedFd::from),
        None => None,
    };
    let go = match admit(pid, spec) {
        Ok(()) => Go::Ready { pid: pid as u32 },
        Err(reason) => Go::Failed { reason },
    };
    // A failure here means init is gone already; its exit tells the executor.
    let _ = frame::write_sync(&mut std::fs::File::from(go_write), &go);
    Ok(Cloned::Parent {
        pid,
        pidfd,
        network,
    })
}

/// Makes init's place: its ids mapped in its user namespace (to the
/// caller's own, so the evaluation runs as the same user as before) and
/// init moved into its cgroups.
fn admit(pid: i32, spec: &RunnerSpec) -> Result<(), String> {
    if spec.user_namespace {
        keep_ids(
            &pid.to_string(),
            nix::unistd::getuid(),
            nix::unistd::getgid(),
        )?;
    }
    for file in &spec.cgroup_procs {
        std::fs::write(file, pid.to_string())
            .map_err(|e| format!("cannot move init into {file}: {e}"))?;
    }
    Ok(())
}

/// Maps `uid` and `gid` (the caller's) to themselves in the new user
/// namespace of `/proc/{process}` (a pid, or `self`), with `setgroups`
/// denied as an unprivileged map requires.
pub(super) fn keep_ids(
    process: &str,
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
) -> Result<(), String> {
    let write = |file: String, text: String| {
        std::fs::write(&file, &text).map_err(|e| format!("cannot write {text:?} to {file}: {e}"))
    };
    write(format!("/proc/{process}/setgroups"), "deny".into())?;
    write(format!("/proc/{process}/uid_map"), format!("{uid} {uid} 1"))?;
    write(format!("/proc/{process}/gid_map"), format!("{gid} {gid} 1"))
}

/// Waits for init's [`Go`]; exits if its parent died before sending it.
fn await_go(go: OwnedFd) -> Go {
    // Armed before the wait: from here on the parent's death kills init.
    // Its pid namespace hides the parent (getppid() is 0), so whether the
    // parent died before this took effect cannot be checked; an init left
    // alone then finds its pipe and its channel closed and exits.
    // SAFETY: only changes this process's own parent-death signal.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    match frame::read_sync::<_, Go>(&mut std::fs::File::from(go)) {
        Ok(go) => go,
        Err(_) => std::process::exit(BROKEN),
    }
}

/// Init's first words to the executor: its hello and, after `go`, that it
/// exists (or why it cannot be used); then init proper.
fn become_init(mut stream: Stream, token: &[u8; 16], go: Go, preparation: Preparation) -> ! {
    if frame::write_sync(&mut stream, &hello(token)).is_err() {
        std::process::exit(BROKEN);
    }
    let report = match go {
        Go::Ready { pid } => Report::Started { init_pid: pid },
        Go::Failed { reason } => {
            let _ = frame::write_sync(&mut stream, &Report::Failed { reason });
            std::process::exit(BROKEN);
        }
    };
    if frame::write_sync(&mut stream, &report).is_err() {
        std::process::exit(BROKEN);
    }
    super::init::run(stream, preparation)
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

fn wait_for(child: Pid) -> i32 {
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => return code,
            _ => return BROKEN,
        }
    }
}
