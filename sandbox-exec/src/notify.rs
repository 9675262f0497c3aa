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
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sandbox_core::{EvalRequest, Violation, ViolationKind, ViolationLog, ViolationSink};
use sandbox_policy::FilesystemPolicy;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::fsaccess;
use crate::fspath;
use crate::seccomp::{verdict, Verdict};

/// One evaluation's watch over its denied calls.
#[derive(Debug)]
pub(crate) struct SyscallWatch {
    task: JoinHandle<()>,
    violations: Arc<Mutex<Vec<Violation>>>,
}

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
        let violations = Arc::new(Mutex::new(Vec::new()));
        let context = Context {
            allow_unix,
            filesystem: request.policy.filesystem.clone(),
            init_pid,
            eval: request.id,
            command: request.command.display(),
            violations: Arc::clone(&violations),
            log,
        };
        let task = tokio::spawn(watch(listener, context));
        SyscallWatch { task, violations }
    }

    /// Stops watching (nothing of the evaluation runs any more) and returns
    /// the violations recorded.
    pub fn finish(self) -> Vec<Violation> {
        self.task.abort();
        std::mem::take(&mut *self.violations.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for SyscallWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Context {
    allow_unix: bool,
    filesystem: FilesystemPolicy,
    init_pid: u32,
    eval: sandbox_core::EvalId,
    command: String,
    violations: Arc<Mutex<Vec<Violation>>>,
    log: Arc<ViolationLog>,
}

async fn watch(listener: OwnedFd, context: Context) {
    // SAFETY: `listener` outlives the registration, dropped first below.
    let registered =
        match unsafe { AsyncFd::register_with_interest(listener.as_fd(), Interest::READABLE) } {
            Ok(registered) => registered,
            Err(error) => {
                debug!(%error, "cannot watch the seccomp listener");
                return;
            }
        };
    loop {
        let mut ready = match registered.readable().await {
            Ok(ready) => ready,
            Err(error) => {
                debug!(%error, "cannot wait on the seccomp listener");
                return;
            }
        };
        // Only a pending notification may be received: the receiving ioctl
        // blocks (this thread) when there is none, e.g. once every filtered
        // process is gone (POLLHUP).
        match pending(&listener) {
            Pending::Notification => {}
            Pending::Nothing => {
                ready.clear_ready();
                continue;
            }
            Pending::Gone => return,
        }
        match receive(&listener) {
            Ok(notification) => answer(&listener, &notification, &context),
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

enum Pending {
    Notification,
    Nothing,
    Gone,
}

fn pending(fd: &OwnedFd) -> Pending {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, no waiting.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    if n > 0 && poll.revents & libc::POLLIN != 0 {
        Pending::Notification
    } else if n > 0 && poll.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        Pending::Gone
    } else {
        Pending::Nothing
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
            context
                .violations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(violation.clone());
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
