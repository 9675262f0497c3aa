//! Filesystem calls as the seccomp filter hands them to the executor: which
//! calls are watched, which of their arguments name paths, whether they read
//! or write, and the policy's judgement of the paths once resolved.
//!
//! The kernel's mounts and Landlock are the lock; this is the witness. A
//! watched call reaches the executor as a seccomp user notification
//! ([`crate::notify`]), which reads its paths from the caller
//! ([`crate::fspath`]), judges them here, and either lets the call continue
//! (the kernel still decides) or refuses it with `EACCES` and records a
//! filesystem violation. A refusal here only ever adds to the kernel's: a path
//! the policy lets through continues to the mounts, which enforce the same
//! policy.
//!
//! Watched always: every call that creates, removes, renames, links or
//! changes a path, and every `open` that asks for writing (`O_WRONLY`,
//! `O_RDWR`, `O_CREAT`, `O_TRUNC`; `openat2` whatever its flags, which sit in
//! memory). Watched only when the policy denies reading somewhere (each
//! `open` then costs a round trip to the executor): every other `open`,
//! except `O_PATH` ones, which read nothing.

use std::path::{Component, Path, PathBuf};

use sandbox_policy::FilesystemPolicy;

/// How a watched call uses a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads the file or lists the directory.
    Read,
    /// Creates, changes or removes what the path names.
    Write,
}

/// Where a path argument is resolved from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    /// The caller's working directory (`AT_FDCWD`, or a call without a
    /// directory argument).
    Cwd,
    /// One of the caller's descriptors.
    Fd(i32),
}

/// One path argument of a watched call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathArg {
    /// What a relative path is relative to.
    pub base: Base,
    /// The address of the path in the caller's memory; 0 (a null path, as
    /// `futimens` passes to `utimensat`) names the base itself.
    pub address: u64,
    /// Whether a symbolic link in the last component is followed.
    pub follow: bool,
}

/// A watched call, decoded from its number and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FsCall {
    /// What a violation calls the attempt: `read`, `write`, `mkdir`, `unlink`…
    pub op: &'static str,
    /// How the paths are used.
    pub access: Access,
    /// The paths (two for `rename`).
    pub paths: Vec<PathArg>,
}

/// `open`'s flags that ask for writing.
pub(crate) const WRITE_FLAGS: u64 =
    (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u64;

fn base(dirfd: u64) -> Base {
    match dirfd as i32 {
        libc::AT_FDCWD => Base::Cwd,
        fd => Base::Fd(fd),
    }
}

fn at(dirfd: u64, address: u64, follow: bool) -> PathArg {
    PathArg {
        base: base(dirfd),
        address,
        follow,
    }
}

fn cwd(address: u64, follow: bool) -> PathArg {
    PathArg {
        base: Base::Cwd,
        address,
        follow,
    }
}

fn call(op: &'static str, access: Access, paths: Vec<PathArg>) -> Option<FsCall> {
    Some(FsCall { op, access, paths })
}

fn open(flags: u64, path: PathArg) -> Option<FsCall> {
    let path = PathArg {
        follow: flags & libc::O_NOFOLLOW as u64 == 0,
        ..path
    };
    // `O_PATH` ignores the access flags: such a descriptor reads nothing.
    if flags & libc::O_PATH as u64 != 0 {
        None
    } else if flags & WRITE_FLAGS != 0 {
        call("write", Access::Write, vec![path])
    } else {
        call("read", Access::Read, vec![path])
    }
}

fn nofollow(flags: u64) -> bool {
    flags & libc::AT_SYMLINK_NOFOLLOW as u64 == 0
}

/// The watched call `nr` with `args`, or `None` for a call that is not
/// watched (or an `O_PATH` open). `openat2`'s flags must already be in
/// `args[2]`: they sit in memory, which the caller reads.
pub(crate) fn decode(nr: i64, args: &[u64; 6]) -> Option<FsCall> {
    use Access::Write;
    match nr {
        libc::SYS_openat | libc::SYS_openat2 => open(args[2], at(args[0], args[1], true)),
        libc::SYS_mkdirat => call("mkdir", Write, vec![at(args[0], args[1], false)]),
        libc::SYS_mknodat => call("mknod", Write, vec![at(args[0], args[1], false)]),
        libc::SYS_unlinkat => call("unlink", Write, vec![at(args[0], args[1], false)]),
        libc::SYS_renameat | libc::SYS_renameat2 => call(
            "rename",
            Write,
            vec![at(args[0], args[1], false), at(args[2], args[3], false)],
        ),
        libc::SYS_linkat => call("link", Write, vec![at(args[2], args[3], false)]),
        libc::SYS_symlinkat => call("symlink", Write, vec![at(args[1], args[2], false)]),
        libc::SYS_fchmodat => call("chmod", Write, vec![at(args[0], args[1], true)]),
        libc::SYS_fchmodat2 => call(
            "chmod",
            Write,
            vec![at(args[0], args[1], nofollow(args[3]))],
        ),
        libc::SYS_fchownat => call(
            "chown",
            Write,
            vec![at(args[0], args[1], nofollow(args[4]))],
        ),
        libc::SYS_utimensat => call(
            "utime",
            Write,
            vec![at(args[0], args[1], nofollow(args[3]))],
        ),
        libc::SYS_truncate => call("truncate", Write, vec![cwd(args[0], true)]),
        libc::SYS_setxattr | libc::SYS_removexattr => {
            call("xattr", Write, vec![cwd(args[0], true)])
        }
        libc::SYS_lsetxattr | libc::SYS_lremovexattr => {
            call("xattr", Write, vec![cwd(args[0], false)])
        }
        #[cfg(target_arch = "x86_64")]
        nr => legacy(nr, args),
        #[cfg(not(target_arch = "x86_64"))]
        _ => None,
    }
}

/// The calls older architectures keep beside their `*at` forms.
#[cfg(target_arch = "x86_64")]
fn legacy(nr: i64, args: &[u64; 6]) -> Option<FsCall> {
    use Access::Write;
    match nr {
        libc::SYS_open => open(args[1], cwd(args[0], true)),
        libc::SYS_creat => call("write", Write, vec![cwd(args[0], true)]),
        libc::SYS_mkdir => call("mkdir", Write, vec![cwd(args[0], false)]),
        libc::SYS_mknod => call("mknod", Write, vec![cwd(args[0], false)]),
        libc::SYS_rmdir => call("rmdir", Write, vec![cwd(args[0], false)]),
        libc::SYS_unlink => call("unlink", Write, vec![cwd(args[0], false)]),
        libc::SYS_rename => call(
            "rename",
            Write,
            vec![cwd(args[0], false), cwd(args[1], false)],
        ),
        libc::SYS_link => call("link", Write, vec![cwd(args[1], false)]),
        libc::SYS_symlink => call("symlink", Write, vec![cwd(args[1], false)]),
        libc::SYS_chmod => call("chmod", Write, vec![cwd(args[0], true)]),
        libc::SYS_chown => call("chown", Write, vec![cwd(args[0], true)]),
        libc::SYS_lchown => call("chown", Write, vec![cwd(args[0], false)]),
        libc::SYS_utime | libc::SYS_utimes => call("utime", Write, vec![cwd(args[0], true)]),
        libc::SYS_futimesat => call("utime", Write, vec![at(args[0], args[1], true)]),
        _ => None,
    }
}

/// How the seccomp filter picks a watched call: the calls watched whatever
/// their arguments, and the `open` calls with the argument that holds their
/// flags.
#[derive(Debug)]
pub(crate) struct Watched {
    /// Watched whatever their arguments.
    pub always: Vec<i64>,
    /// `(call, index of its flags argument)`: watched when the flags ask for
    /// writing, or (when reads are watched) when they lack `O_PATH`.
    pub opens: Vec<(i64, u8)>,
}

/// The calls [`decode`] understands, for the filter.
pub(crate) fn watched() -> Watched {
    let mut always = vec![
        libc::SYS_openat2,
        libc::SYS_mkdirat,
        libc::SYS_mknodat,
        libc::SYS_unlinkat,
        libc::SYS_renameat,
        libc::SYS_renameat2,
        libc::SYS_linkat,
        libc::SYS_symlinkat,
        libc::SYS_fchmodat,
        libc::SYS_fchmodat2,
        libc::SYS_fchownat,
        libc::SYS_utimensat,
        libc::SYS_truncate,
        libc::SYS_setxattr,
        libc::SYS_removexattr,
        libc::SYS_lsetxattr,
        libc::SYS_lremovexattr,
    ];
    #[allow(unused_mut)]
    let mut opens = vec![(libc::SYS_openat, 2)];
    #[cfg(target_arch = "x86_64")]
    {
        always.extend([
            libc::SYS_creat,
            libc::SYS_mkdir,
            libc::SYS_mknod,
            libc::SYS_rmdir,
            libc::SYS_unlink,
            libc::SYS_rename,
            libc::SYS_link,
            libc::SYS_symlink,
            libc::SYS_chmod,
            libc::SYS_chown,
            libc::SYS_lchown,
            libc::SYS_utime,
            libc::SYS_utimes,
            libc::SYS_futimesat,
        ]);
        opens.push((libc::SYS_open, 1));
    }
    Watched { always, opens }
}

/// Whether a sandbox under `fs` has every `open` for reading judged: only
/// when the policy denies reading somewhere, since each costs a round trip.
pub(crate) fn watches_reads(fs: &FilesystemPolicy) -> bool {
    !fs.deny_read.is_empty()
}

/// Whether `nr` is one of the calls [`watched`] lists.
pub(crate) fn is_watched(nr: i64) -> bool {
    static WATCHED: std::sync::OnceLock<Vec<i64>> = std::sync::OnceLock::new();
    WATCHED
        .get_or_init(|| {
            let watched = watched();
            let mut all = watched.always;
            all.extend(watched.opens.iter().map(|(nr, _)| *nr));
            all
        })
        .contains(&nr)
}

/// Paths of the sandbox's own (its `/tmp`, `/dev` and `/proc`), which the
/// policy does not describe and the executor never judges.
const PRIVATE: &[&str] = &["/tmp", "/dev", "/proc"];

/// Whether `path` lies in one of the sandbox's own trees.
pub(crate) fn is_private(path: &Path) -> bool {
    PRIVATE.iter().any(|p| path.starts_with(p))
}

/// `path` with `.` and `..` components removed lexically (for a path whose
/// directories could not be resolved on the host: the judgement then goes by
/// its text).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Why the policy refuses a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The rule, as a violation names it.
    pub rule: String,
}

/// The policy's answer for `access` to the resolved absolute `path`: `None`
/// when allowed.
pub(crate) fn judge(fs: &FilesystemPolicy, access: Access, path: &Path) -> Option<Refusal> {
    if is_private(path) {
        return None;
    }
    // Rules are named by where they were written: `--deny "Read(~/.ssh)"
    // (command line)`.
    let hidden = || Refusal {
        rule: fs
            .read_rule(path)
            .map_or_else(|| "unreadable".to_string(), |r| r.origin.to_string()),
    };
    match access {
        Access::Read if fs.can_read(path) => None,
        Access::Read => Some(hidden()),
        Access::Write if fs.can_write(path) => None,
        Access::Write if !fs.can_read(path) => Some(hidden()),
        Access::Write => Some(Refusal {
            rule: match fs.write_rule(path) {
                Some(rule) if fs.deny_write.contains(rule) => rule.origin.to_string(),
                _ => "no rule allows writing here (the host is read-only)".to_string(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_policy::{Layer, Origin, PathPattern, PathRule};

    fn rule(pattern: &str, field: &str) -> PathRule {
        PathRule {
            pattern: PathPattern::new(pattern).unwrap(),
            origin: Origin::new(Layer::Flag, field, pattern),
        }
    }

    fn policy() -> FilesystemPolicy {
        FilesystemPolicy {
            deny_read: vec![rule("/home/u/.ssh", "--deny")],
            allow_read: vec![],
            allow_write: vec![rule("/work", "--allow")],
            deny_write: vec![rule("/work/.git/hooks", "--deny")],
        }
    }

    fn args(a: &[u64]) -> [u64; 6] {
        let mut out = [0; 6];
        out[..a.len()].copy_from_slice(a);
        out
    }

    const CWD: u64 = libc::AT_FDCWD as u32 as u64;

    #[test]
    fn an_open_for_reading_is_a_read_and_one_for_writing_a_write() {
        let read = decode(
            libc::SYS_openat,
            &args(&[CWD, 0x1000, libc::O_RDONLY as u64]),
        )
        .unwrap();
        assert_eq!((read.op, read.access), ("read", Access::Read));
        assert_eq!(read.paths[0].base, Base::Cwd);
        for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_CREAT, libc::O_TRUNC] {
            let write = decode(libc::SYS_openat, &args(&[3, 0x1000, flags as u64])).unwrap();
            assert_eq!(write.access, Access::Write, "{flags:#x}");
            assert_eq!(write.paths[0].base, Base::Fd(3));
        }
    }

    #[test]
    fn an_o_path_open_reads_nothing_and_is_not_judged() {
        let flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
        assert_eq!(decode(libc::SYS_openat, &args(&[CWD, 0x1000, flags])), None);
    }

    #[test]
    fn o_nofollow_and_at_symlink_nofollow_stop_at_a_link() {
        let open = decode(
            libc::SYS_openat,
            &args(&[CWD, 0x1000, libc::O_NOFOLLOW as u64]),
        )
        .unwrap();
        assert!(!open.paths[0].follow);
        let chown = decode(
            libc::SYS_fchownat,
            &args(&[CWD, 0x1000, 0, 0, libc::AT_SYMLINK_NOFOLLOW as u64]),
        )
        .unwrap();
        assert!(!chown.paths[0].follow);
    }

    #[test]
    fn a_rename_judges_both_paths_and_a_link_only_the_new_name() {
        let rename = decode(libc::SYS_renameat2, &args(&[CWD, 0x1000, 4, 0x2000, 0])).unwrap();
        assert_eq!(rename.paths.len(), 2);
        assert_eq!(rename.paths[1].base, Base::Fd(4));
        let link = decode(libc::SYS_linkat, &args(&[CWD, 0x1000, 5, 0x2000, 0])).unwrap();
        assert_eq!(link.paths, vec![at(5, 0x2000, false)]);
        let symlink = decode(libc::SYS_symlinkat, &args(&[0x1000, 6, 0x2000])).unwrap();
        assert_eq!(symlink.paths, vec![at(6, 0x2000, false)]);
    }

    #[test]
    fn every_watched_call_decodes() {
        let watched = watched();
        for nr in watched.always {
            assert!(
                decode(nr, &args(&[CWD, 0x1000, libc::O_WRONLY as u64])).is_some(),
                "{nr}"
            );
        }
        for (nr, flags) in watched.opens {
            let mut a = args(&[CWD, 0x1000]);
            a[flags as usize] = libc::O_WRONLY as u64;
            assert!(decode(nr, &a).is_some(), "{nr}");
        }
    }

    #[test]
    fn reading_a_denied_region_is_refused_with_its_rule() {
        let refusal = judge(&policy(), Access::Read, Path::new("/home/u/.ssh/id_rsa")).unwrap();
        assert_eq!(refusal.rule, "--deny \"/home/u/.ssh\" (command line)");
        assert_eq!(
            judge(&policy(), Access::Read, Path::new("/home/u/notes")),
            None
        );
    }

    #[test]
    fn writing_outside_the_writable_roots_is_refused_as_read_only() {
        let refusal = judge(&policy(), Access::Write, Path::new("/etc/passwd")).unwrap();
        assert!(refusal.rule.contains("read-only"), "{}", refusal.rule);
        assert_eq!(
            judge(&policy(), Access::Write, Path::new("/work/out.txt")),
            None
        );
    }

    #[test]
    fn writing_a_protected_path_names_the_deny_rule() {
        let refusal = judge(
            &policy(),
            Access::Write,
            Path::new("/work/.git/hooks/pre-commit"),
        )
        .unwrap();
        assert!(
            refusal.rule.contains("/work/.git/hooks"),
            "{}",
            refusal.rule
        );
    }

    #[test]
    fn the_sandboxs_own_trees_are_never_judged() {
        for path in ["/tmp/x", "/dev/null", "/proc/self/fd/1"] {
            assert_eq!(
                judge(&policy(), Access::Write, Path::new(path)),
                None,
                "{path}"
            );
        }
        assert!(!is_private(Path::new("/tmpfoo")));
        // The host's /sys, read-only like the rest of the host.
        assert!(judge(&policy(), Access::Write, Path::new("/sys/kernel/x")).is_some());
    }

    #[test]
    fn normalizing_removes_dots_without_leaving_the_root() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../../etc")), PathBuf::from("/etc"));
    }
}
