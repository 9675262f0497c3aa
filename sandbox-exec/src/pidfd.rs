//! Process handles by pid file descriptor: a signal or a wait through one can
//! never reach a recycled pid, and waiting needs no `SIGCHLD` handler, so a
//! runner spawned under one tokio runtime can be awaited under another.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A pid file descriptor.
#[derive(Debug)]
pub(crate) struct Pidfd {
    fd: OwnedFd,
    pid: u32,
}

impl AsRawFd for Pidfd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl Pidfd {
    /// Opens a descriptor for `pid`, which must not have been reaped yet.
    pub fn open(pid: u32) -> io::Result<Self> {
        // SAFETY: pidfd_open returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Pidfd { fd, pid })
    }

    /// A descriptor for `pid` obtained elsewhere (from `CLONE_PIDFD`).
    pub fn from_owned(fd: OwnedFd, pid: u32) -> Self {
        Pidfd { fd, pid }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends SIGKILL; a process that is already gone is not an error.
    pub fn kill(&self) {
        // SAFETY: signal through a descriptor we own.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    /// Reaps the process if it has ended (it must be our child).
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        self.waitid(libc::WNOHANG)
    }

    /// Blocks until the process ends and reaps it (it must be our child).
    pub fn wait_blocking(&self) -> io::Result<ExitStatus> {
        loop {
            match self.waitid(0) {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits, without blocking the runtime, until the process ends, and reaps it.
    pub async fn wait(&self) -> io::Result<ExitStatus> {
        // A pidfd becomes readable when its process exits.
        // SAFETY: the descriptor outlives `ready`, which is dropped before we return.
        let ready =
            unsafe { AsyncFd::register_with_interest(self.fd.as_fd(), Interest::READABLE)? };
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            ready.readable().await?.clear_ready();
        }
    }

    fn waitid(&self, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        // SAFETY: an all-zero siginfo_t is valid; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on a descriptor we own, writing into `info`.
        let rc = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                self.fd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | flags,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zeroed).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        // Rebuild the wait(2) status word that ExitStatus understands.
        let raw = match info.si_code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            libc::CLD_DUMPED => status | 0x80,
            _ => status,
        };
        Ok(Some(ExitStatus::from_raw(raw)))
    }
}

/// A runner process we spawned: killed and reaped when dropped unless it was
/// reaped already.
#[derive(Debug)]
pub(crate) struct ChildProcess {
    pidfd: Pidfd,
    reaped: Option<ExitStatus>,
}

impl ChildProcess {
    pub fn new(pidfd: Pidfd) -> Self {
        ChildProcess {
            pidfd,
            reaped: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pidfd.pid()
    }

    /// Its descriptor, to wait for its exit without reaping it.
    pub fn pidfd(&self) -> &Pidfd {
        &self.pidfd
    }

    pub fn kill(&self) {
        if self.reaped.is_none() {
            self.pidfd.kill();
        }
    }

    /// The exit status, once the process has ended.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.reaped {
            return Ok(status);
        }
        let status = self.pidfd.wait().await?;
        self.reaped = Some(status);
        Ok(status)
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.reaped.is_none() {
            self.reaped = self.pidfd.try_wait()?;
        }
        Ok(self.reaped)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.reaped.is_some() {
            return;
        }
        self.pidfd.kill();
        if let Ok(Some(_)) = self.pidfd.try_wait() {
            return;
        }
        // A killed process usually goes within microseconds, but one stuck in
        // the kernel may take longer: reap it off the caller's thread.
        let pidfd = Pidfd {
            fd: match self.pidfd.fd.try_clone() {
                Ok(fd) => fd,
                Err(_) => return,
            },
            pid: self.pidfd.pid,
        };
        let _ = std::thread::Builder::new()
            .name("sandbox-reaper".into())
            .spawn(move || pidfd.wait_blocking());
    }
}
