//! Spawning one program inside the evaluation (vfork-style, like
//! `posix_spawn`), with everything that can allocate done before.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::unistd::Pid;

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
/// Stack of the spawned child until it execs (it only makes a few system calls).
const CHILD_STACK: usize = 64 * 1024;

/// What the child shares with init while init is suspended: its arguments,
/// and why it failed if it did.
struct Shared<'a> {
    prepared: &'a Prepared,
    /// Standard input and output for [`Stdio::Capture`].
    capture: Option<(RawFd, RawFd)>,
    stage: u8,
    errno: i32,
}

/// Starts a program, like `posix_spawn`: the child shares init's memory and
/// init is suspended until the child has exec'd or failed (`CLONE_VFORK`), so
/// nothing is copied — neither page tables at the fork nor, for the program,
/// a copied address space to throw away at its exec — and a failure comes
/// back through memory rather than a pipe.
pub(super) fn spawn(prepared: &Prepared, stdio: Stdio<'_>) -> Result<Pid, SpawnError> {
    let mut shared = Shared {
        prepared,
        capture: match stdio {
            Stdio::Inherit => None,
            Stdio::Capture { null, out } => Some((null.as_raw_fd(), out.as_raw_fd())),
        },
        stage: 0,
        errno: 0,
    };
    let mut stack = vec![0u8; CHILD_STACK];
    // The stack grows down from its 16-byte aligned end.
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK) & !15;
    // Init installs no signal handler, but a handler must never run in the
    // child while it shares init's memory: block everything around the clone
    // (the child resets handlers and unblocks before it execs).
    // SAFETY: plain signal-mask calls on local sets.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: `child_main` runs on its own stack, touches only `shared` (kept
    // alive by us, as we are suspended until it execs or exits) and makes
    // async-signal-safe calls.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut shared as *mut Shared<'_>).cast(),
        )
    };
    let clone_error = std::io::Error::last_os_error();
    // SAFETY: restores the mask saved above.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    drop(stack);
    if pid < 0 {
        return Err(SpawnError {
            reason: format!("cannot start a process: {clone_error}"),
            code: 125,
        });
    }
    let pid = Pid::from_raw(pid);
    if shared.stage == 0 {
        return Ok(pid);
    }
    let _ = nix::sys::wait::waitpid(pid, None);
    Err(describe(
        prepared,
        shared.stage,
        nix::errno::Errno::from_raw(shared.errno),
    ))
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Shared` that `spawn` passed to clone and keeps alive.
    unsafe { exec_child(&mut *arg.cast::<Shared<'_>>()) }
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

/// Every signal back to its default disposition, in init before anything
/// is spawned: an ignored signal (say `SIGHUP` under `nohup`, or the
/// `SIGPIPE` the Rust runtime ignores) would stay ignored across exec. Done
/// once here rather than in each child, where it would cost the spawn ~60
/// system calls.
pub(super) fn default_signals() {
    for sig in 1..libc::SIGRTMIN() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: resets a disposition; no handler is involved.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
}

/// In the child: unblock signals, set up stdio, directory and limits, exec.
/// Only async-signal-safe calls: the child shares init's memory.
unsafe fn exec_child(shared: &mut Shared<'_>) -> ! {
    let p = shared.prepared;
    let mut fail = |stage: u8| -> ! {
        shared.stage = stage;
        shared.errno = *libc::__errno_location();
        libc::_exit(127)
    };
    // Dispositions need no reset: init reset them all when it started
    // ([`default_signals`]) and exec resets the handlers it set since.
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

    if let Some((null, out)) = shared.capture {
        libc::dup2(null, 0);
        libc::dup2(out, 1);
        libc::dup2(out, 2);
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
            // A PATH directory we may not search hides nothing from us, as in
            // a shell: only a file that exists but cannot be run is "denied".
            libc::EACCES if libc::access(candidate.as_ptr(), libc::F_OK) == 0 => denied = true,
            libc::EACCES => {}
            _ => fail(STAGE_EXEC),
        }
    }
    if denied {
        *libc::__errno_location() = libc::EACCES;
    }
    fail(STAGE_EXEC)
}
