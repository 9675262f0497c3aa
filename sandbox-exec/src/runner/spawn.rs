//! fork + exec of one program inside the evaluation, with everything that can
//! allocate done before the fork.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::unistd::{ForkResult, Pid};

use crate::protocol::Rlimit;

/// A program ready to be executed: paths to try, argv, envp, cwd, limits.
pub(super) struct Prepared {
    /// Shown in error messages.
    program: String,
    /// Whether `program` was looked up in `PATH` (so "not found" reads like a shell's).
    searched: bool,
    candidates: Vec<CString>,
    // The pointer vectors point into these; they must live as long as `Prepared`.
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    rlimits: Vec<Rlimit>,
}

/// Why a program could not be started, with the shell-convention exit code.
#[derive(Debug)]
pub(super) struct SpawnError {
    pub reason: String,
    pub code: i32,
}

/// Where a spawned program's standard streams go.
pub(super) enum Stdio<'a> {
    /// Keep the runner's: the executor's stdin, stdout and stderr pipes.
    Inherit,
    /// Read nothing; write stdout and stderr to `out`.
    Capture { null: &'a OwnedFd, out: &'a OwnedFd },
}

const STAGE_CHDIR: u8 = 1;
const STAGE_RLIMIT: u8 = 2;
const STAGE_EXEC: u8 = 3;

fn cstring(what: &str, s: &str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError {
        reason: format!("{what} {s:?} contains a NUL byte"),
        code: 125,
    })
}

pub(super) fn prepare(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&Path>,
    rlimits: &[Rlimit],
) -> Result<Prepared, SpawnError> {
    let program = argv.first().ok_or(SpawnError {
        reason: "empty command".into(),
        code: 125,
    })?;
    let searched = !program.contains('/');
    let candidates = if searched {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        path.split(':')
            .map(|dir| if dir.is_empty() { "." } else { dir })
            .map(|dir| cstring("path", &format!("{dir}/{program}")))
            .collect::<Result<_, _>>()?
    } else {
        vec![cstring("program", program)?]
    };
    let argv = argv
        .iter()
        .map(|a| cstring("argument", a))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| cstring("environment variable", &format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = cwd
        .map(|d| cstring("directory", &d.to_string_lossy()))
        .transpose()?;
    let ptrs = |v: &[CString]| {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    Ok(Prepared {
        program: program.clone(),
        searched,
        candidates,
        argv_ptrs: ptrs(&argv),
        _argv: argv,
        envp_ptrs: ptrs(&envp),
        _envp: envp,
        cwd,
        rlimits: rlimits.to_vec(),
    })
}

/// Starts `prepared`; returns once it has executed (or failed to).
pub(super) fn spawn(prepared: &Prepared, stdio: Stdio<'_>) -> Result<Pid, SpawnError> {
    let (err_read, err_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError {
            reason: format!("cannot create a pipe: {e}"),
            code: 125,
        })?;
    // SAFETY: init is single-threaded; the child only makes system calls on data
    // prepared before the fork.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => unsafe { exec_child(prepared, &stdio, err_write.as_raw_fd()) },
        Ok(ForkResult::Parent { child }) => {
            drop(err_write);
            let mut msg = [0u8; 5];
            let n = read_full(&err_read, &mut msg);
            if n == 0 {
                return Ok(child);
            }
            let _ = nix::sys::wait::waitpid(child, None);
            let errno =
                nix::errno::Errno::from_raw(i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]));
            Err(describe(prepared, msg[0], errno))
        }
        Err(e) => Err(SpawnError {
            reason: format!("cannot fork: {e}"),
            code: 125,
        }),
    }
}

fn describe(p: &Prepared, stage: u8, errno: nix::errno::Errno) -> SpawnError {
    use nix::errno::Errno;
    let desc = errno.desc();
    match stage {
        STAGE_CHDIR => SpawnError {
            reason: format!(
                "cannot change directory to {}: {desc}",
                p.cwd
                    .as_ref()
                    .map(|c| c.to_string_lossy())
                    .unwrap_or_default()
            ),
            code: 125,
        },
        STAGE_RLIMIT => SpawnError {
            reason: format!("cannot set a resource limit: {desc}"),
            code: 125,
        },
        _ => match errno {
            Errno::ENOENT | Errno::ENOTDIR if p.searched => SpawnError {
                reason: format!("{}: command not found", p.program),
                code: 127,
            },
            Errno::ENOENT | Errno::ENOTDIR => SpawnError {
                reason: format!("{}: {desc}", p.program),
                code: 127,
            },
            Errno::EACCES | Errno::ENOEXEC | Errno::EISDIR | Errno::EPERM => SpawnError {
                reason: format!("{}: cannot execute: {desc}", p.program),
                code: 126,
            },
            _ => SpawnError {
                reason: format!("{}: cannot execute: {desc}", p.program),
                code: 125,
            },
        },
    }
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    got
}

/// The child side of [`spawn`]. Async-signal-safe: system calls only.
unsafe fn exec_child(p: &Prepared, stdio: &Stdio<'_>, err: RawFd) -> ! {
    let fail = |stage: u8| -> ! {
        let errno = *libc::__errno_location();
        let e = errno.to_ne_bytes();
        let msg = [stage, e[0], e[1], e[2], e[3]];
        libc::write(err, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    };
    // The runner is a Rust program: it ignores SIGPIPE, and ignored signals
    // survive exec. Programs expect the defaults (`yes | head` must end).
    for sig in 1..libc::SIGRTMIN() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

    if let Stdio::Capture { null, out } = stdio {
        libc::dup2(null.as_raw_fd(), 0);
        libc::dup2(out.as_raw_fd(), 1);
        libc::dup2(out.as_raw_fd(), 2);
    }
    if let Some(cwd) = &p.cwd {
        if libc::chdir(cwd.as_ptr()) != 0 {
            fail(STAGE_CHDIR);
        }
    }
    for r in &p.rlimits {
        let limit = libc::rlimit {
            rlim_cur: r.soft as libc::rlim_t,
            rlim_max: r.hard as libc::rlim_t,
        };
        if libc::setrlimit(r.resource as _, &limit) != 0 {
            fail(STAGE_RLIMIT);
        }
    }
    let mut denied = false;
    for candidate in &p.candidates {
        libc::execve(
            candidate.as_ptr(),
            p.argv_ptrs.as_ptr(),
            p.envp_ptrs.as_ptr(),
        );
        match *libc::__errno_location() {
            libc::ENOENT | libc::ENOTDIR => {}
            libc::EACCES => denied = true,
            _ => fail(STAGE_EXEC),
        }
    }
    if denied {
        *libc::__errno_location() = libc::EACCES;
    }
    fail(STAGE_EXEC)
}
