//! The network namespace a confined init is cloned into: a new one, or one
//! an earlier evaluation left behind, once nothing of it remains.
//!
//! Creating a network namespace and tearing it down costs the kernel about
//! 0.7 ms of CPU here (the per-namespace sysctl tables and protocol state,
//! then an RCU grace period), a quarter of a confined evaluation's CPU back
//! to back. So the executor keeps the namespaces of evaluations whose init
//! has exited (all their processes are gone with it) and hands one to the
//! zygote with the next spare; a thread of the zygote enters it, checks that
//! no socket lives in it any more, and clones the spare's init there.
//!
//! Unprivileged, this works because the zygote lives in a user namespace of
//! its own, the parent of every init's: it holds every capability over the
//! inits' namespaces, so it may enter their network namespaces.
//!
//! A socket outlives the evaluation that made it only if a process outside
//! holds it: one passed out through a Unix socket the policy allows, or the
//! executor's own bridge listeners before it drops them. Any such socket,
//! of any family, bound or not, makes the namespace unfit and the init gets
//! a new one; only `TIME_WAIT` remnants of closed TCP connections, which
//! belong to no one, are left for the next.

use std::os::fd::{AsFd, OwnedFd};

use nix::sched::{setns, CloneFlags};

/// Moves the calling thread into `namespace`; returns it if it is idle,
/// else `None`, and the thread should clone its init into a new one.
///
/// Only a thread about to clone an init and end calls this (see
/// [`super::zygote`]): an unprivileged zygote lives in a user namespace of
/// its own, which may enter the namespaces of its inits' user namespaces
/// but not return to the host's.
pub(super) fn enter_if_idle(namespace: OwnedFd) -> Option<OwnedFd> {
    setns(namespace.as_fd(), CloneFlags::CLONE_NEWNET).ok()?;
    idle().then_some(namespace)
}

/// Whether the current network namespace holds no socket a process made
/// and no `TIME_WAIT` remnant of a connection (which the next evaluation
/// could list, learning whom the last one talked to).
fn idle() -> bool {
    std::fs::read_to_string("/proc/thread-self/net/sockstat").is_ok_and(|stats| idle_by(&stats))
}

/// [`idle`] by the counts of a `sockstat` file: those of the namespace, not
/// the host. (Listing the sockets instead, `/proc/net/tcp`, walks the
/// host-wide connection table: milliseconds on a large host.)
fn idle_by(stats: &str) -> bool {
    let count = |prefix: &str, field: &str| -> Option<u64> {
        let line = stats.lines().find_map(|line| line.strip_prefix(prefix))?;
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            if word == field {
                return words.next()?.parse().ok();
            }
        }
        None
    };
    // Kernel sockets are not counted in "used"; closed connections' remnants
    // are the "tw" of TCP (IPv4 and IPv6 together).
    count("sockets:", "used") == Some(0) && count("TCP:", "tw") == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: &str =
        "sockets: used 0\nTCP: inuse 0 orphan 0 tw 0 alloc 0 mem 0\nUDP: inuse 0 mem 0\n";

    #[test]
    fn a_namespace_without_sockets_or_remnants_is_idle() {
        assert!(idle_by(IDLE));
    }

    #[test]
    fn any_socket_makes_a_namespace_busy() {
        assert!(!idle_by(&IDLE.replace("used 0", "used 1")));
    }

    #[test]
    fn a_time_wait_remnant_makes_a_namespace_busy() {
        assert!(!idle_by(&IDLE.replace("tw 0", "tw 2")));
    }

    #[test]
    fn an_unreadable_count_makes_a_namespace_busy() {
        assert!(!idle_by("sockets: used 0\n"));
        assert!(!idle_by(""));
    }

    #[test]
    fn a_new_namespace_is_idle_until_a_socket_is_made_in_it() {
        // In a child of its own, as entering namespaces changes the process.
        // SAFETY: the child only makes system calls and reads a file before
        // it exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = (|| {
                    let flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET;
                    nix::sched::unshare(flags).map_err(|_| 2)?;
                    if !idle() {
                        return Err(3);
                    }
                    // Not even bound: a holder could bind it later.
                    // SAFETY: a plain socket call.
                    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
                    if socket < 0 {
                        return Err(4);
                    }
                    if idle() {
                        return Err(5);
                    }
                    Ok(())
                })()
                .err()
                .unwrap_or(0);
                // SAFETY: ends the forked child without running the harness's exit.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
