//! The zygote: a runner the executor starts once and asks for each spare,
//! which it forks rather than the executor executing a fresh runner.
//!
//! Executing a runner costs a spare about 0.7 ms of CPU: the kernel loads
//! the program, the dynamic loader maps and relocates its libraries, and
//! glibc probes the CPU, where each `CPUID` traps to the hypervisor in a
//! virtual machine. A fork of the already-running zygote does none of it.
//!
//! What the zygote forks is the evaluation's init itself, cloned straight
//! into its new pid namespace (and user namespace), with no runner process
//! in between: the zygote maps init's ids and moves it into its cgroups
//! ([`start_init`](super::linux::start_init)), as an executed runner does
//! for the init it clones. A runner per spare cost another fork, exit and
//! reaping, about 15% of a confined evaluation's CPU back to back.
//!
//! Each init is cloned with `CLONE_PARENT`, so it is the executor's child
//! exactly as an executed runner is: the executor waits for it by pidfd,
//! learns how it ended, and its parent-death signal follows the executor's
//! thread that started the zygote. It takes its standard descriptors from
//! the request and closes everything else, so nothing of the zygote (its
//! channel, other spares' pipes) reaches it.
//!
//! An unprivileged zygote first moves into a user namespace of its own,
//! keeping its ids, so that every init's user namespace is a child of the
//! zygote's: the zygote then holds every capability over the inits'
//! namespaces and may enter their network namespaces to reuse them
//! ([`super::network`]).
//!
//! A request is a descriptor batch (init's stdin, stdout and stderr, its
//! end of a socket pair: its channel to the executor, already connected, so
//! it needs no endpoint to connect to; and maybe a network namespace to
//! reuse) followed by a [`RunnerSpec`] frame; the answer is a batch (init's
//! pidfd and, for a confined init, its network namespace; or nothing)
//! followed by a [`Forked`] frame. The zygote exits when its channel
//! closes.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use super::linux::Cloned;
use crate::fdpass;
use crate::frame;
use crate::protocol::{Forked, Preparation, RunnerSpec};

/// Serves requests on the standard input until it closes.
pub(super) fn run() -> i32 {
    // Before anything else, while this process has one thread.
    if std::env::var_os(super::USERNS_ENV).is_some_and(|v| v == "1")
        && own_user_namespace().is_err()
    {
        return super::linux::BROKEN;
    }
    // The channel moves off descriptor 0 to above 3: a forked init's
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
        let (sent, answer) = match Request::try_from(fds) {
            Ok(request) => match fork_runner(spec, request) {
                Ok((pid, sent)) => (sent, Forked::Runner { pid }),
                Err(reason) => (Vec::new(), Forked::Failed { reason }),
            },
            Err(got) => (
                Vec::new(),
                Forked::Failed {
                    reason: format!(
                        "an init needs its 3 standard descriptors and its channel (and maybe a network namespace), the request carried {got} descriptors"
                    ),
                },
            ),
        };
        let batch: Vec<_> = sent.iter().map(std::os::fd::AsFd::as_fd).collect();
        if fdpass::send_on(channel.as_raw_fd(), &batch).is_err()
            || frame::write_sync(&mut channel, &answer).is_err()
        {
            return 0;
        }
    }
}

/// What a request carries: init's standard descriptors and channel, and a
/// network namespace to reuse.
struct Request {
    fds: [OwnedFd; 4],
    network: Option<OwnedFd>,
}

impl TryFrom<Vec<OwnedFd>> for Request {
    type Error = usize;

    fn try_from(mut fds: Vec<OwnedFd>) -> Result<Self, usize> {
        let network = match fds.len() {
            4 => None,
            5 => fds.pop(),
            got => return Err(got),
        };
        let fds = <[OwnedFd; 4]>::try_from(fds).map_err(|fds| fds.len())?;
        Ok(Request { fds, network })
    }
}

/// Forks the init of `spec` as the executor's child; returns its pid, and
/// its pidfd followed by its network namespace (for a confined init). Init
/// takes the request's descriptors as its standard ones and channel.
fn fork_runner(spec: RunnerSpec, request: Request) -> Result<(u32, Vec<OwnedFd>), String> {
    let Request { fds, network } = request;
    let confined = matches!(spec.preparation, Preparation::Confined { .. });
    let cloned = match network {
        // From a thread of its own, which enters the namespace and ends
        // there (see `super::network`). The other thread waits in `join`,
        // holding no lock the init could need.
        Some(namespace) if confined => std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(INIT_STACK)
                .spawn_scoped(scope, || {
                    let entered = super::network::enter_if_idle(namespace);
                    clone_init(spec, fds, entered)
                })
                .map_err(|e| format!("cannot start a thread to clone init: {e}"))?
                .join()
                .map_err(|_| "the thread cloning init panicked".to_string())?
        }),
        _ => clone_init(spec, fds, None),
    }?;
    Ok((
        cloned.0,
        std::iter::once(cloned.1).chain(cloned.2).collect(),
    ))
}

/// The stack of a thread that clones an init, which the init goes on using:
/// as big as a main thread's.
const INIT_STACK: usize = 8 << 20;

/// The parent's side of [`super::linux::start_init`]: init's pid, pidfd and
/// network namespace. Init itself goes on from here and never returns.
fn clone_init(
    spec: RunnerSpec,
    fds: [OwnedFd; 4],
    network: Option<OwnedFd>,
) -> Result<(u32, OwnedFd, Option<OwnedFd>), String> {
    match super::linux::start_init(&spec, true, network)? {
        Cloned::Child(go) => std::process::exit(super::linux::forked_init(spec, fds, go)),
        Cloned::Parent {
            pid,
            pidfd,
            network,
        } => {
            let pidfd = pidfd.ok_or("clone returned no pidfd for init")?;
            Ok((pid as u32, pidfd, network))
        }
    }
}

/// Moves this process into a user namespace of its own, where it keeps its
/// ids and holds every capability: the parent of each init's user namespace,
/// so that it may enter their network namespaces to reuse them.
fn own_user_namespace() -> Result<(), String> {
    // The ids are read before the move, where they are the host's.
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| format!("cannot create the zygote's user namespace: {e}"))?;
    super::linux::keep_ids("self", uid, gid)
}
