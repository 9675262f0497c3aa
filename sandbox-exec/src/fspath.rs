//! The paths of a notified filesystem call, read out of the caller and
//! resolved to what the policy speaks of: absolute host paths with their
//! symbolic links followed.
//!
//! The caller waits in the kernel while this runs, so its memory and
//! working directory hold still — except for its other threads, which could
//! change the path after it was read. That race only ever makes the
//! executor judge a different path than the kernel opens: a path judged
//! allowed still meets the mounts, which enforce the same policy, so a
//! misjudgement can cost a violation record, never a confinement.
//!
//! The sandbox sees the host's paths at the host's places (the mounts bind
//! each path onto itself), so a path is resolved against the host's
//! filesystem, with two exceptions handled by the caller: the sandbox's own
//! trees ([`fsaccess::is_private`]), never judged, and masked regions, whose
//! host paths are exactly what the policy names.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::fsaccess::{self, Base, PathArg};

/// Longest path the kernel accepts, terminating NUL included.
const PATH_MAX: usize = libc::PATH_MAX as usize;

/// Reads the NUL-terminated string at `address` in process `pid`, without
/// ever asking for bytes across a 4 KiB boundary it has not reached (the
/// next page may be unmapped).
pub(crate) fn read_string(pid: u32, mut address: u64) -> io::Result<Vec<u8>> {
    const PAGE: u64 = 4096;
    let mut out = Vec::new();
    let mut buf = [0u8; PAGE as usize];
    while out.len() < PATH_MAX {
        let want = (PAGE - address % PAGE) as usize;
        let n = read_memory(pid, address, &mut buf[..want])?;
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if n < want {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        address += n as u64;
    }
    Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
}

/// Reads the `u64` at `address` in process `pid` (`openat2`'s flags, the
/// first field of its `struct open_how`).
pub(crate) fn read_u64(pid: u32, address: u64) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    match read_memory(pid, address, &mut buf)? {
        8 => Ok(u64::from_ne_bytes(buf)),
        _ => Err(io::Error::from_raw_os_error(libc::EFAULT)),
    }
}

fn read_memory(pid: u32, address: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: one local iovec over `buf`, which outlives the call; the
    // remote one is only read by the kernel, with the ptrace checks.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The directory (or file) `base` names in process `pid`, as the process
/// sees it; `None` when it is not a path (a pipe, a deleted directory).
pub(crate) fn base_path(pid: u32, base: Base) -> Option<PathBuf> {
    let link = match base {
        Base::Cwd => format!("/proc/{pid}/cwd"),
        Base::Fd(fd) => format!("/proc/{pid}/fd/{fd}"),
    };
    let target = std::fs::read_link(link).ok()?;
    let deleted = target.to_str().is_some_and(|t| t.ends_with(" (deleted)"));
    (target.is_absolute() && !deleted).then_some(target)
}

/// The path `arg` names, given its text `raw` as read from the caller
/// (empty for a null path or `AT_EMPTY_PATH`): absolute, before any link
/// is resolved. `None` when its base is not a path.
pub(crate) fn absolute(pid: u32, arg: &PathArg, raw: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let text = Path::new(std::ffi::OsStr::from_bytes(raw));
    if text.is_absolute() {
        return Some(text.to_path_buf());
    }
    let base = base_path(pid, arg.base)?;
    Some(if raw.is_empty() {
        base
    } else {
        base.join(text)
    })
}

/// `path` (absolute) as the policy speaks of it: its directories' links
/// resolved on the host and, when `follow`, a link in its last component
/// too. A path the host cannot resolve (a directory created only in the
/// sandbox's own `/tmp`, one that does not exist) is judged by its text.
pub(crate) fn resolve(path: &Path, follow: bool) -> PathBuf {
    let lexical = fsaccess::normalize(path);
    if fsaccess::is_private(&lexical) {
        return lexical;
    }
    if let Some(real) = real_path(path, follow) {
        return real;
    }
    match (path.parent(), path.file_name()) {
        // A name that does not exist yet, in a directory that does.
        (Some(parent), Some(name)) => real_path(parent, true)
            .map(|p| p.join(name))
            .unwrap_or(lexical),
        _ => lexical,
    }
}

/// The path the kernel finds at `path`, by one lookup: opened with `O_PATH`
/// (which reads nothing and never blocks, not even on a FIFO) and named by
/// its descriptor's link. A `realpath` walk costs a system call per
/// component, and this runs once per watched call.
fn real_path(path: &Path, follow: bool) -> Option<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_PATH;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .ok()?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    real.is_absolute().then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_is_read_up_to_its_nul_even_across_a_page() {
        // A string that starts 3 bytes before a page boundary of our own
        // memory, read through the same call the executor uses.
        let mut page = vec![0u8; 3 * 4096];
        let start = (page.as_ptr() as usize + 4096) / 4096 * 4096 - 3;
        let offset = start - page.as_ptr() as usize;
        page[offset..offset + 9].copy_from_slice(b"/abc/def\0");
        let read = read_string(std::process::id(), start as u64).unwrap();
        assert_eq!(read, b"/abc/def");
    }

    #[test]
    fn an_unmapped_address_is_an_error_not_a_panic() {
        assert!(read_string(std::process::id(), 8).is_err());
    }

    #[test]
    fn a_relative_path_is_joined_to_the_callers_working_directory() {
        let arg = PathArg {
            base: Base::Cwd,
            address: 1,
            follow: true,
        };
        let cwd = std::env::current_dir().unwrap();
        let path = absolute(std::process::id(), &arg, b"a/b").unwrap();
        assert_eq!(path, cwd.join("a/b"));
        assert_eq!(absolute(std::process::id(), &arg, b"").unwrap(), cwd);
        assert_eq!(
            absolute(std::process::id(), &arg, b"/etc").unwrap(),
            PathBuf::from("/etc")
        );
    }

    #[test]
    fn a_link_is_followed_only_when_the_call_follows_it() {
        // Not under /tmp, which is the sandbox's own and never resolved.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::write(real.join("target"), b"").unwrap();
        std::os::unix::fs::symlink(real.join("target"), real.join("link")).unwrap();
        assert_eq!(resolve(&real.join("link"), true), real.join("target"));
        assert_eq!(resolve(&real.join("link"), false), real.join("link"));
        // A name that does not exist yet keeps its resolved directory.
        assert_eq!(resolve(&real.join("sub/../new"), true), real.join("new"));
    }

    #[test]
    fn the_sandboxs_own_paths_are_not_resolved_on_the_host() {
        assert_eq!(
            resolve(Path::new("/tmp/./x/../y"), true),
            PathBuf::from("/tmp/y")
        );
    }
}
