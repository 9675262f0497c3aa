//! Filesystem and namespace confinement, built by init before anything of
//! the evaluation runs (the policy-independent part, [`prepare`], while a
//! spare waits for its job): fresh mount, network, IPC and UTS namespaces; the host
//! root read-only and `nosuid`; the policy's mount plan (writable roots, masked
//! paths, read-only holes); a private `/tmp` and `/dev/shm`; a `/proc` of the
//! evaluation's own pid namespace; loopback as the only network; and finally
//! `no_new_privs` and an empty capability set.
//!
//! Mounts use the new mount API: the plan's bind sources are cloned as
//! detached trees (`open_tree`) before any mask is laid, then attached
//! (`move_mount`), so a hole can be bound back inside a masked directory, and
//! whole trees are made read-only at once (`mount_setattr`).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use sandbox_policy::{Kind, LinuxPlan, MountOp};

use crate::protocol::BpfInstruction;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `struct mount_attr` (version 0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cpath(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("path {} contains a NUL byte", path.display()))
}

fn os_err(what: String) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// What [`prepare`] built: the sandbox minus the policy.
pub(super) struct Base {
    /// A detached copy of the host's mount tree as it was before anything
    /// was hidden, where the policy's binds take their sources from.
    host: OwnedFd,
    /// Whether the spare's seccomp program is in place, or why not (a kernel
    /// without seccomp: the job then refuses unless seccomp was waived);
    /// with the listener the executor answers its denials through (`None`
    /// when the filter answers them itself), until init hands it over.
    seccomp: Result<Option<OwnedFd>, String>,
}

impl Base {
    /// The seccomp listener, once: init passes it to the executor and must
    /// not keep it (a process holding it could answer its own denials).
    pub(super) fn take_listener(&mut self) -> Option<OwnedFd> {
        self.seccomp.as_mut().ok().and_then(Option::take)
    }
}

/// Builds the policy-independent part of the sandbox: fresh mount, network,
/// IPC and UTS namespaces; the host read-only and `nosuid`; a private `/tmp`,
/// a minimal `/dev`, a `/proc` of the evaluation's pid namespace, loopback
/// up, hostname `sandbox`. Needs the capabilities init has in its user
/// namespace (or as root). A spare does this while it waits for a job.
/// `watch_reads`: the executor judges every `open` for reading too (see
/// [`crate::fsaccess`]).
pub(super) fn prepare(watch_reads: bool) -> Result<Base, String> {
    // The network namespace came with init's clone (see `super::network`).
    nix::sched::unshare(
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS,
    )
    .map_err(|e| format!("cannot create mount, IPC and UTS namespaces: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the mount tree private: {e}"))?;
    let host = clone_tree(None, Path::new("/"), true)?;
    let devices = DEVICES
        .iter()
        .filter(|name| Path::new("/dev").join(name).exists())
        .map(|name| {
            clone_tree(None, &Path::new("/dev").join(name), false).map(|tree| (*name, tree))
        })
        .collect::<Result<Vec<_>, String>>()?;
    set_attr(
        Path::new("/"),
        true,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
        0,
    )?;
    private_tmpfs(Path::new("/tmp"))?;
    minimal_dev(devices)?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("cannot mount /proc for the evaluation's pid namespace: {e}"))?;
    loopback_up()?;
    // SAFETY: sethostname reads the given bytes.
    if unsafe { libc::sethostname(c"sandbox".as_ptr(), 7) } != 0 {
        return Err(os_err("cannot set the hostname".into()));
    }
    no_new_privileges()?;
    let seccomp = install_spare_seccomp(watch_reads);
    Ok(Base { host, seccomp })
}

/// Installs the spare's seccomp program with a listener for its denials, or,
/// where the kernel has no user notification, the version that answers
/// `EPERM` itself.
fn install_spare_seccomp(watch_reads: bool) -> Result<Option<OwnedFd>, String> {
    use crate::seccomp::{spare_program, Watch};
    let watch = if watch_reads {
        Watch::ChangesAndReads
    } else {
        Watch::Changes
    };
    let notifying = spare_program(watch).map_err(|e| e.to_string())?;
    match install_with_listener(&notifying) {
        Ok(listener) => Ok(Some(listener)),
        // EINVAL: no SECCOMP_FILTER_FLAG_NEW_LISTENER (before Linux 5.0).
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let plain = spare_program(Watch::None).map_err(|e| e.to_string())?;
            install_seccomp(&[plain]).map(|()| None)
        }
        Err(e) => Err(format!("cannot install the seccomp program: {e}")),
    }
}

fn install_with_listener(program: &[BpfInstruction]) -> std::io::Result<OwnedFd> {
    let filter: Vec<libc::sock_filter> = program
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at `filter`, alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor (close-on-exec) the kernel gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The part of the lock-down that leaves init's own capabilities in place, so
/// a spare does it while it waits: `no_new_privs`, an empty bounding set and
/// no ambient capabilities. Nothing init or the evaluation starts can gain a
/// capability or a uid from then on; init keeps its effective capabilities
/// for the policy's mounts until [`lock_down`].
fn no_new_privileges() -> Result<(), String> {
    // SAFETY: prctl calls that only change this process's own credentials.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(os_err("cannot set no_new_privs".into()));
        }
        // Up to the first number the kernel does not know (EINVAL): cheaper
        // than reading /proc/sys/kernel/cap_last_cap.
        for cap in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                    break;
                }
                return Err(os_err(format!(
                    "cannot drop capability {cap} from the bounding set"
                )));
            }
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    Ok(())
}

/// Applies the policy's mount plan on top of `base`.
pub(super) fn apply(base: &Base, plan: &LinuxPlan) -> Result<(), String> {
    // Sources come from the host's tree as it was, so a hole can be bound
    // back inside a mask and a host path under /tmp is still found.
    let sources = plan
        .mounts
        .iter()
        .map(|op| match op {
            MountOp::BindWritable { path } | MountOp::ReadOnly { path } => {
                clone_tree(Some(&base.host), path, true).map(Some)
            }
            MountOp::MaskDir { .. } | MountOp::MaskFile { .. } => Ok(None),
        })
        .collect::<Result<Vec<_>, String>>()?;

    for (op, source) in plan.mounts.iter().zip(sources) {
        match (op, source) {
            (MountOp::BindWritable { path }, Some(tree)) => {
                attach(&tree, path)?;
                set_attr(path, true, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY)?;
            }
            (MountOp::ReadOnly { path }, Some(tree)) => {
                attach(&tree, path)?;
                set_attr(path, true, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0)?;
            }
            // Nothing there to hide (a host path under the private /tmp).
            (MountOp::MaskDir { path, .. } | MountOp::MaskFile { path }, _)
                if std::fs::symlink_metadata(path).is_err() => {}
            (MountOp::MaskDir { path, mountpoints }, _) => {
                mount(
                    Some("tmpfs"),
                    path,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some("mode=0755,size=64k"),
                )
                .map_err(|e| format!("cannot mask {}: {e}", path.display()))?;
                for point in mountpoints {
                    let created = match point.kind {
                        Kind::Dir => std::fs::create_dir_all(&point.path),
                        _ => std::fs::create_dir_all(point.path.parent().unwrap_or(path))
                            .and_then(|()| std::fs::File::create(&point.path).map(drop)),
                    };
                    created.map_err(|e| {
                        format!("cannot create mount point {}: {e}", point.path.display())
                    })?;
                }
                set_attr(path, false, MOUNT_ATTR_RDONLY, 0)?;
            }
            (MountOp::MaskFile { path }, _) => {
                mount(
                    Some("/dev/null"),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| format!("cannot mask {}: {e}", path.display()))?;
                set_attr(path, false, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0)?;
            }
            (op, None) => unreachable!("a source was cloned for every bind: {op:?}"),
        }
    }

    Ok(())
}

/// The host devices an evaluation sees; everything else of the host's `/dev`
/// (disks, `kmsg`, `mem`, other terminals) is absent.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// A fresh `/dev`: a small tmpfs with the [`DEVICES`] bound in, a private
/// devpts instance (so `openpty` works and no host terminal is reachable), a
/// private `/dev/shm`, the usual symlinks, then read-only.
fn minimal_dev(devices: Vec<(&str, OwnedFd)>) -> Result<(), String> {
    let dev = Path::new("/dev");
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )
    .map_err(|e| format!("cannot mount a private /dev: {e}"))?;
    let in_dev = |name: &str| dev.join(name);
    for (name, tree) in devices {
        let path = in_dev(name);
        std::fs::File::create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        attach(&tree, &path)?;
        set_attr(
            &path,
            false,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
            MOUNT_ATTR_RDONLY,
        )?;
    }
    for dir in ["pts", "shm"] {
        std::fs::create_dir(in_dev(dir)).map_err(|e| format!("cannot create /dev/{dir}: {e}"))?;
    }
    mount(
        Some("devpts"),
        &in_dev("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|e| format!("cannot mount a private /dev/pts: {e}"))?;
    private_tmpfs(&in_dev("shm"))?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, in_dev(link))
            .map_err(|e| format!("cannot create /dev/{link}: {e}"))?;
    }
    set_attr(dev, false, MOUNT_ATTR_RDONLY, 0)
}

/// Installs the seccomp programs, in order. Needs `no_new_privs` (or
/// `CAP_SYS_ADMIN`), so it comes after [`lock_down`].
fn install_seccomp(programs: &[Vec<BpfInstruction>]) -> Result<(), String> {
    for (n, program) in programs.iter().enumerate() {
        let filter: seccompiler::BpfProgram = program
            .iter()
            .map(|i| seccompiler::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        seccompiler::apply_filter(&filter)
            .map_err(|e| format!("cannot install seccomp program {}: {e}", n + 1))?;
    }
    Ok(())
}

/// Installs the job's seccomp programs on top of the spare's. No programs
/// means the caller accepted running without seccomp.
pub(super) fn install_job_seccomp(
    base: &Base,
    programs: &[Vec<BpfInstruction>],
) -> Result<(), String> {
    if programs.is_empty() {
        return Ok(());
    }
    base.seccomp
        .as_ref()
        .map_err(|reason| format!("seccomp is required but unavailable: {reason}"))?;
    install_seccomp(programs)
}

/// Drops every capability of init and so of everything it starts (the rest
/// of the lock-down was done by [`prepare`]).
pub(super) fn lock_down() -> Result<(), String> {
    // SAFETY: capset only changes this process's own credentials.
    unsafe {
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = Header {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let data = [
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            return Err(os_err("cannot drop capabilities".into()));
        }
    }
    Ok(())
}

/// A detached copy of the mount at `path` (with the mounts beneath it when
/// `recursive`), looked up in the live tree or, given `within`, in a
/// detached tree.
fn clone_tree(within: Option<&OwnedFd>, path: &Path, recursive: bool) -> Result<OwnedFd, String> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let (dir, c) = match within {
        None => (libc::AT_FDCWD, cpath(path)?),
        Some(tree) => {
            // Relative to the tree's root; the root itself is the empty path.
            let relative = path.strip_prefix("/").unwrap_or(path);
            if relative.as_os_str().is_empty() {
                flags |= libc::AT_EMPTY_PATH as libc::c_uint;
            }
            (tree.as_raw_fd(), cpath(relative)?)
        }
    };
    // SAFETY: open_tree returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(os_err(format!(
            "cannot clone the mount tree at {}",
            path.display()
        )));
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn attach(tree: &OwnedFd, path: &Path) -> Result<(), String> {
    if std::fs::symlink_metadata(path).is_err() {
        // Under the private /tmp, the host path has no counterpart yet.
        let is_dir = nix::sys::stat::fstat(tree.as_raw_fd())
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .unwrap_or(true);
        let created = if is_dir {
            std::fs::create_dir_all(path)
        } else {
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))
                .and_then(|()| std::fs::File::create(path).map(drop))
        };
        created.map_err(|e| format!("cannot create the mount point {}: {e}", path.display()))?;
    }
    let c = cpath(path)?;
    // SAFETY: move_mount of a detached tree we own onto an existing path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(os_err(format!("cannot bind {}", path.display())));
    }
    Ok(())
}

fn set_attr(path: &Path, recursive: bool, set: u64, clear: u64) -> Result<(), String> {
    let c = cpath(path)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` (version 0 size).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            if recursive { AT_RECURSIVE } else { 0 },
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(os_err(format!(
            "cannot change the mount flags of {}",
            path.display()
        )));
    }
    Ok(())
}

fn private_tmpfs(path: &Path) -> Result<(), String> {
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(|e| format!("cannot mount a private {}: {e}", path.display()))
}

/// The new network namespace's loopback starts down.
fn loopback_up() -> Result<(), String> {
    // SAFETY: an ioctl pair on a throwaway datagram socket, on a zeroed ifreq.
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(os_err("cannot open a socket to bring up loopback".into()));
        }
        let sock = OwnedFd::from_raw_fd(sock);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(os_err("cannot read the loopback flags".into()));
        }
        // Up already in a namespace an earlier evaluation used.
        if req.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short != 0 {
            return Ok(());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(os_err("cannot bring up loopback".into()));
        }
    }
    Ok(())
}
