//! The zygote: a runner the executor starts once and asks for each spare,
//! which it forks rather than the executor executing a fresh runner.
//!
//! Executing a runner costs a spare about 0.7 ms of CPU: the kernel loads
//! the program, the dynamic loader maps and relocates its libraries, and
//! glibc probes the CPU, where each `CPUID` traps to the hypervisor in a
//! virtual machine. A fork of the already-running zygote does none of it.
//!
//! Each runner is forked with `CLONE_PARENT`, so it is the executor's child
//! exactly as an executed one is: the executor waits for it by pidfd, learns
//! how it ended, and its parent-death signal follows the executor's thread
//! that started the zygote. From the fork on, it is the same runner: it
//! takes its standard descriptors from the request and closes everything
//! else, so nothing of the zygote (its channel, other runners' pipes)
//! reaches it.
//!
//! A request is a descriptor batch (the runner's stdin, stdout and stderr,
//! and its end of a socket pair: its channel to the executor, already
//! connected, so a forked runner needs no endpoint to connect to) followed
//! by a [`RunnerSpec`] frame; the answer is a batch (the runner's
//! pidfd, or nothing) followed by a [`Forked`] frame. The zygote exits when
//! its channel closes.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::fdpass;
use crate::frame;
use crate::protocol::{Forked, RunnerSpec};

/// Serves requests on the standard input until it closes. `parent` is the
/// executor's pid.
pub(super) fn run(parent: Option<i32>) -> i32 {
    // The channel moves off descriptor 0 to above 3: a forked runner's
    // descriptors 0 to 3 are taken by those it is sent, and its copy of
    // this one is closed with the rest.
    // SAFETY: duplicates our own standard input; the result is owned here.
    let channel = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 4) };
    if channel < 0 {
        return super::linux::BROKEN;
    }
    // SAFETY: a fresh descriptor owned by nothing else.
    let mut channel = UnixStream::from(unsafe { OwnedFd::from_raw_fd(channel) });
    if let Ok(null) = std::fs::File::open("/dev/null") {
        // SAFETY: replaces our own standard input.
        unsafe { libc::dup2(null.as_raw_fd(), 0) };
    }
    loop {
        // End of the channel (or a broken one): the executor is done with us.
        let Ok(fds) = fdpass::receive_now(channel.as_raw_fd()) else {
            return 0;
        };
        let Ok(spec) = frame::read_sync::<_, RunnerSpec>(&mut channel) else {
            return 0;
        };
        let (pidfd, answer) = match <[OwnedFd; 4]>::try_from(fds) {
            Ok(fds) => match fork_runner(spec, fds, parent) {
                Ok((pid, pidfd)) => (Some(pidfd), Forked::Runner { pid }),
                Err(reason) => (None, Forked::Failed { reason }),
            },
            Err(got) => (
                None,
                Forked::Failed {
                    reason: format!(
                        "a runner needs its 3 standard descriptors and its channel, the request carried {} descriptors",
                        got.len()
                    ),
                },
            ),
        };
        let batch: Vec<_> = pidfd.iter().map(std::os::fd::AsFd::as_fd).collect();
        if fdpass::send_on(channel.as_raw_fd(), &batch).is_err()
            || frame::write_sync(&mut channel, &answer).is_err()
        {
            return 0;
        }
    }
}

/// Forks the runner of `spec` as the executor's child; returns its pid and
/// pidfd. The runner takes `fds` as its standard descriptors and channel.
fn fork_runner(
    spec: RunnerSpec,
    fds: [OwnedFd; 4],
    parent: Option<i32>,
) -> Result<(u32, OwnedFd), String> {
    let mut pidfd: libc::c_int = -1;
    // The legacy clone rather than fork(): only it takes CLONE_PARENT and
    // CLONE_PIDFD (glibc's fork has no flags, and libc has no clone3
    // arguments for this target). Without a new stack the child continues
    // here, like after fork(); the zygote is single-threaded, so no lock
    // can be held by a thread the child lacks.
    // SAFETY: a fork-like clone; the child only runs the runner and exits.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::CLONE_PIDFD | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            &mut pidfd as *mut libc::c_int,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(format!(
            "cannot fork a runner: {}",
            std::io::Error::last_os_error()
        ));
    }
    if pid == 0 {
        std::process::exit(super::linux::forked(spec, fds, parent));
    }
    // SAFETY: CLONE_PIDFD stored a fresh descriptor for the child here.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok((pid as u32, pidfd))
}
