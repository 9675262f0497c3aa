//! The executor's answer to the calls the seccomp filter hands it, each a
//! user notification on the listener init passed over:
//!
//! - a denied call is recorded as a syscall violation and refused with
//!   `EPERM` — or let through when it is a Unix socket the policy allows
//!   (see [`crate::seccomp`]);
//! - a watched filesystem call has its paths judged by the policy
//!   ([`crate::fsaccess`], [`crate::fspath`]): let through when allowed (the
//!   mounts still decide), else recorded as a filesystem violation and
//!   refused with `EACCES`. Init's own calls, made while it lays the
//!   policy's mounts, are let through unjudged.
//!
//! The denied process waits for the answer, so the watch runs for as long as
//! the evaluation. Should it stop early, the kernel answers the remaining
//! notifications with `ENOSYS`: still refused.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};

use sandbox_core::{EvalRequest, Violation, ViolationKind, ViolationLog, ViolationSink};
use sandbox_policy::FilesystemPolicy;
use tracing::debug;

use crate::fsaccess;
use crate::fspath;
use crate::recorded::Recorded;
use crate::seccomp::{verdict, Verdict};

/// One evaluation's watch over its denied calls: a thread of its own that
/// waits on the listener.
///
/// A thread, not a task: a watched call waits for its answer, and every
/// `open` can be one, so the round trip is on the sandbox's path. Waiting in
/// `poll` lets the kernel wake the thread on the caller's CPU and the caller
/// on the thread's (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`, Linux 6.6), like a
/// context switch; through the runtime's epoll each notification paid two
/// cross-CPU wake-ups and the reactor's round.
#[derive(Debug)]
pub(crate) struct SyscallWatch {
    /// Dropped to stop the thread (its read end then polls as hung up).
    stop: Option<OwnedFd>,
    /// Disconnected once the thread has returned.
    done: mpsc::Receiver<()>,
    violations: Arc<Recorded>,
}

/// How long [`SyscallWatch::finish`] waits for the thread to see the end:
/// it answers at most one last notification after being told to stop.
const FINISH_PATIENCE: Duration = Duration::from_millis(200);

/// Asks the kernel for synchronous wake-ups between caller and watcher.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

impl SyscallWatch {
    /// Answers the notifications of `listener` for `request`'s evaluation.
    /// `allow_unix` when the policy allows some Unix socket; `init_pid`'s
    /// filesystem calls are not judged.
    pub fn start(
        listener: OwnedFd,
        request: &EvalRequest,
        allow_unix: bool,
        init_pid: u32,
        log: Arc<ViolationLog>,
    ) -> SyscallWatch {
        let violations = Arc::new(Recorded::default());
        let context = Context {
            allow_unix,
            filesystem: request.policy.filesystem.clone(),
            init_pid,
            eval: request.id,
            command: request.command.display(),
            violations: Arc::clone(&violations),
            log,
        };
        // SAFETY: sets a flag of a listener we own; an older kernel refuses
        // it (EINVAL) and wakes the ordinary way.
        unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            )
        };
        let (stop_read, stop) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok((read, write)) => (Some(read), Some(write)),
            Err(error) => {
                debug!(%error, "no stop pipe for the seccomp watch; it ends with the sandbox");
                (None, None)
            }
        };
        let (finished, done) = mpsc::channel::<()>();
        // The blocking pool keeps idle threads, so an evaluation seldom pays
        // for starting one.
        tokio::task::spawn_blocking(move || {
            let _finished = finished;
            watch(&listener, stop_read.as_ref(), &context);
        });
        SyscallWatch {
            stop,
            done,
            violations,
        }
    }

    /// Stops watching (nothing of the evaluation runs any more) and returns
    /// the violations recorded (listed, and how many more).
    pub fn finish(mut self) -> (Vec<Violation>, u64) {
        self.stop.take();
        // Brief: the thread is woken by the stop and returns at once. Waiting
        // makes a notification answered just before the end count.
        let _ = self.done.recv_timeout(FINISH_PATIENCE);
        self.violations.take()
    }
}

struct Context {
    allow_unix: bool,
    filesystem: FilesystemPolicy,
    init_pid: u32,
    eval: sandbox_core::EvalId,
    command: String,
    violations: Arc<Recorded>,
    log: Arc<ViolationLog>,
}

fn watch(listener: &OwnedFd, stop: Option<&OwnedFd>, context: &Context) {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.map_or(-1, |s| s.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two pollfds in a local array; a negative fd is ignored.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            debug!(%error, "cannot wait on the seccomp listener");
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        // Only a pending notification may be received: the receiving ioctl
        // blocks when there is none (before Linux 6.11, even once every
        // filtered process is gone).
        if fds[0].revents & libc::POLLIN == 0 {
            if fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                return;
            }
            continue;
        }
        match receive(listener) {
            Ok(notification) => answer(listener, &notification, context),
            // The caller died (or was killed) before we got to it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                debug!(%error, "cannot receive a seccomp notification");
                return;
            }
        }
    }
}

fn receive(fd: &OwnedFd) -> io::Result<libc::seccomp_notif> {
    // SAFETY: the kernel wants a zeroed structure; all-zero is a valid one.
    let mut notification: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl fills `notification`, which outlives the call.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut notification as *mut libc::seccomp_notif,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(notification)
}

/// What the executor answers one notification.
enum Answer {
    /// Let the call run.
    Continue,
    /// Fail it with `errno`, recording a violation of `kind` when `record`
    /// holds its target and rule.
    Refuse {
        errno: i32,
        kind: ViolationKind,
        record: Option<(String, String)>,
    },
}

fn decide(fd: &OwnedFd, notification: &libc::seccomp_notif, context: &Context) -> Answer {
    let data = &notification.data;
    let nr = data.nr as i64;
    if fsaccess::is_watched(nr) {
        return judge_filesystem(fd, notification, context);
    }
    let refuse = |record| Answer::Refuse {
        errno: libc::EPERM,
        kind: ViolationKind::Syscall,
        record,
    };
    match verdict(nr, &data.args, context.allow_unix) {
        Verdict::Continue => Answer::Continue,
        Verdict::Quiet => refuse(None),
        Verdict::Deny { target, rule } => refuse(Some((target, rule.to_string()))),
    }
}

/// The policy's answer to a watched filesystem call. Anything that cannot
/// be read or resolved continues: the mounts decide it.
fn judge_filesystem(fd: &OwnedFd, notification: &libc::seccomp_notif, context: &Context) -> Answer {
    let pid = notification.pid;
    if pid == context.init_pid {
        return Answer::Continue;
    }
    let nr = notification.data.nr as i64;
    let mut args = notification.data.args;
    if nr == libc::SYS_openat2 {
        match fspath::read_u64(pid, args[2]) {
            Ok(flags) => args[2] = flags,
            Err(_) => return Answer::Continue,
        }
    }
    let Some(call) = fsaccess::decode(nr, &args) else {
        return Answer::Continue;
    };
    let mut paths = Vec::with_capacity(call.paths.len());
    for arg in &call.paths {
        let raw = match arg.address {
            0 => Vec::new(),
            address => match fspath::read_string(pid, address) {
                // An empty path names the base only with `AT_EMPTY_PATH`;
                // the kernel refuses it otherwise.
                Ok(raw) if raw.is_empty() => continue,
                Ok(raw) => raw,
                Err(_) => return Answer::Continue,
            },
        };
        if let Some(path) = fspath::absolute(pid, arg, &raw) {
            paths.push((path, arg.follow));
        }
    }
    // What was read belongs to the caller only if it still waits: its pid
    // could have been reused by another process meanwhile.
    if !id_valid(fd, notification.id) {
        return Answer::Continue;
    }
    for (path, follow) in paths {
        let resolved = fspath::resolve(&path, follow);
        if let Some(refusal) = fsaccess::judge(&context.filesystem, call.access, &resolved) {
            return Answer::Refuse {
                errno: libc::EACCES,
                kind: ViolationKind::Filesystem,
                record: Some((format!("{} {}", call.op, resolved.display()), refusal.rule)),
            };
        }
    }
    Answer::Continue
}

fn id_valid(fd: &OwnedFd, id: u64) -> bool {
    // SAFETY: the ioctl reads the id, which outlives the call.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id as *const u64,
        )
    };
    rc == 0
}

fn answer(fd: &OwnedFd, notification: &libc::seccomp_notif, context: &Context) {
    let mut response = libc::seccomp_notif_resp {
        id: notification.id,
        val: 0,
        error: 0,
        flags: 0,
    };
    match decide(fd, notification, context) {
        Answer::Continue => response.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        Answer::Refuse {
            errno,
            record: None,
            ..
        } => response.error = -errno,
        Answer::Refuse {
            errno,
            kind,
            record: Some((target, rule)),
        } => {
            response.error = -errno;
            let violation = Violation {
                time: SystemTime::now(),
                eval: Some(context.eval),
                sandbox: None,
                kind,
                target,
                rule,
                command: context.command.clone(),
            };
            context.violations.push(violation.clone());
            context.log.record(violation);
        }
    }
    // SAFETY: the ioctl reads `response`, which outlives the call.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut response as *mut libc::seccomp_notif_resp,
        )
    };
    if rc < 0 {
        // ENOENT: the caller is gone, nothing to answer.
        debug!(error = %io::Error::last_os_error(), pid = notification.pid, "cannot answer a seccomp notification");
    }
}
