//! What this machine supports, and what the sandbox enforces on it.
//!
//! [`probe`] (exported as `probe_platform`) asks the kernel: its release and
//! architecture, whether unprivileged user namespaces work (by trying one in a
//! short-lived child), the Landlock ABI, seccomp and its user notification, the
//! cgroup layout and whether we run as root. [`PlatformReport`] is a pure value;
//! [`enforcement`] derives the "enforced / not enforced" lines from it, and the
//! parsing of `/proc` text is done by pure functions tested on fixture strings.

use serde::Serialize;

/// Everything `sandbox platform` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformReport {
    /// The operating system (`linux`, `macos`, …).
    pub os: String,
    /// The kernel release (`uname -r`), when known.
    pub kernel_release: Option<String>,
    /// The CPU architecture (`x86_64`, `aarch64`, …).
    pub arch: String,
    /// Whether this process runs with effective uid 0.
    pub root: bool,
    /// Unprivileged user namespaces.
    pub user_namespaces: UserNamespaces,
    /// Landlock.
    pub landlock: Landlock,
    /// seccomp.
    pub seccomp: Seccomp,
    /// Yama's `ptrace_scope` (`/proc/sys/kernel/yama/ptrace_scope`), when
    /// Yama is active: from 2 on it keeps an unprivileged executor from
    /// reading a watched call's path out of the caller, and 3 keeps root
    /// from it too.
    pub yama_ptrace_scope: Option<u32>,
    /// The cgroup layout.
    pub cgroup: CgroupReport,
    /// What the sandbox enforces and observes here, derived from the rest.
    pub enforcement: Vec<Enforcement>,
}

/// Whether an unprivileged process can create a user namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserNamespaces {
    /// `/proc/sys/kernel/unprivileged_userns_clone` (Debian/Ubuntu kernels), if present.
    pub unprivileged_userns_clone: Option<bool>,
    /// `/proc/sys/user/max_user_namespaces`, if readable.
    pub max_user_namespaces: Option<u64>,
    /// The result of really trying `unshare(CLONE_NEWUSER)` as an unprivileged
    /// user in a short-lived child (`None`: not tried, e.g. not Linux).
    pub unprivileged_unshare_works: Option<bool>,
}

impl UserNamespaces {
    /// The verdict: the trial when there was one, otherwise what the sysctls say.
    pub fn usable(&self) -> bool {
        match self.unprivileged_unshare_works {
            Some(works) => works,
            None => {
                self.unprivileged_userns_clone != Some(false)
                    && self.max_user_namespaces.is_some_and(|n| n > 0)
            }
        }
    }
}

/// Landlock support.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Landlock {
    /// The ABI version the kernel reports, or `None` when Landlock is unavailable.
    pub abi: Option<u32>,
    /// Why it is unavailable (`not built into this kernel`, `disabled at boot`, …).
    pub unavailable_reason: Option<String>,
}

/// seccomp support.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Seccomp {
    /// `prctl(PR_GET_SECCOMP)` succeeds: seccomp filters can be installed.
    pub available: bool,
    /// `SECCOMP_RET_USER_NOTIF` is supported (Linux 5.0+): denied syscalls can be
    /// reported to a supervisor.
    pub user_notification: bool,
}

/// How cgroups are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupMode {
    /// Only v1 hierarchies.
    V1,
    /// Only the unified v2 hierarchy.
    V2,
    /// v1 controllers and a v2 hierarchy side by side.
    Hybrid,
    /// No cgroup filesystem mounted.
    None,
}

impl CgroupMode {
    /// `v1`, `v2`, `hybrid` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            CgroupMode::V1 => "v1",
            CgroupMode::V2 => "v2",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::None => "none",
        }
    }
}

/// The cgroup layout read from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupReport {
    /// v1, v2, hybrid or none.
    pub mode: CgroupMode,
    /// The v1 controllers mounted (`cpu`, `memory`, `pids`, …), sorted; named
    /// hierarchies such as `name=systemd` are not controllers and are left out.
    pub v1_controllers: Vec<String>,
    /// Whether the v1 `memory` controller is mounted.
    pub v1_memory: bool,
    /// Whether the v1 `pids` controller is mounted.
    pub v1_pids: bool,
}

/// One line of the "what is enforced here" list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enforcement {
    /// What: `filesystem`, `memory limit`, `syscall violations`, …
    pub what: String,
    /// Whether it is enforced (or, for a violation kind, observable) on this machine.
    pub enforced: bool,
    /// How, or why not.
    pub detail: String,
}

/// Probes this machine. Cheap (a few `/proc` reads, two syscalls and one
/// short-lived child), but not free: call it once.
pub fn probe() -> PlatformReport {
    let mut report = PlatformReport {
        os: std::env::consts::OS.to_string(),
        kernel_release: kernel_release(),
        arch: std::env::consts::ARCH.to_string(),
        root: is_root(),
        user_namespaces: UserNamespaces::default(),
        landlock: Landlock {
            abi: None,
            unavailable_reason: Some("Landlock is Linux only".to_string()),
        },
        seccomp: Seccomp::default(),
        yama_ptrace_scope: None,
        cgroup: CgroupReport {
            mode: CgroupMode::None,
            v1_controllers: Vec::new(),
            v1_memory: false,
            v1_pids: false,
        },
        enforcement: Vec::new(),
    };
    #[cfg(target_os = "linux")]
    linux::probe_into(&mut report);
    report.enforcement = enforcement(&report);
    report
}

#[cfg(unix)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

#[cfg(unix)]
fn kernel_release() -> Option<String> {
    // SAFETY: utsname is plain old data; uname fills it or fails.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    // SAFETY: uname NUL-terminates every field it fills.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    Some(release.to_string_lossy().into_owned())
}

#[cfg(not(unix))]
fn kernel_release() -> Option<String> {
    None
}

/// Reads a `0`/`1` sysctl value; anything else is `None`.
pub fn parse_flag(text: &str) -> Option<bool> {
    match text.trim() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// The cgroup layout described by `/proc/self/mountinfo` text.
pub fn parse_cgroups(mountinfo: &str) -> CgroupReport {
    let mut v2 = false;
    let mut controllers: Vec<String> = Vec::new();
    for line in mountinfo.lines() {
        // "<id> <parent> <dev> <root> <mountpoint> <options> [optional…] - <fstype> <source> <super options>"
        let Some((_, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let (Some(fstype), _source, super_options) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        match fstype {
            "cgroup2" => v2 = true,
            "cgroup" => {
                for option in super_options.unwrap_or("").split(',') {
                    if is_v1_controller(option) && !controllers.iter().any(|c| c == option) {
                        controllers.push(option.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    controllers.sort();
    let mode = match (controllers.is_empty(), v2) {
        (false, true) => CgroupMode::Hybrid,
        (false, false) => CgroupMode::V1,
        (true, true) => CgroupMode::V2,
        (true, false) => CgroupMode::None,
    };
    CgroupReport {
        mode,
        v1_memory: controllers.iter().any(|c| c == "memory"),
        v1_pids: controllers.iter().any(|c| c == "pids"),
        v1_controllers: controllers,
    }
}

/// A super option of a v1 cgroup mount that names a controller (not `rw`,
/// `name=systemd`, `xattr`, …).
fn is_v1_controller(option: &str) -> bool {
    const CONTROLLERS: &[&str] = &[
        "blkio",
        "cpu",
        "cpuacct",
        "cpuset",
        "devices",
        "freezer",
        "hugetlb",
        "memory",
        "misc",
        "net_cls",
        "net_prio",
        "perf_event",
        "pids",
        "rdma",
    ];
    CONTROLLERS.contains(&option)
}

/// What the sandbox enforces and observes on a machine like `report` describes.
pub fn enforcement(report: &PlatformReport) -> Vec<Enforcement> {
    let line = |what: &str, enforced: bool, detail: String| Enforcement {
        what: what.to_string(),
        enforced,
        detail,
    };
    if report.os != "linux" {
        return vec![line(
            "confinement",
            false,
            format!(
                "not implemented on {}: only limits and timeouts apply",
                report.os
            ),
        )];
    }
    let userns = report.user_namespaces.usable();
    let mut out = Vec::new();
    out.push(if report.root {
        line(
            "process isolation",
            true,
            "pid namespace (running as root: no user namespace needed)".into(),
        )
    } else if userns {
        line("process isolation", true, "user + pid namespace".into())
    } else {
        line(
            "process isolation",
            false,
            "unprivileged user namespaces are not usable: evaluations cannot start unprivileged \
             (see sysctl kernel.unprivileged_userns_clone and user.max_user_namespaces)"
                .into(),
        )
    });
    let mounts = "mount namespace (read-only nosuid host, writable roots, masks, private /tmp, minimal /dev)";
    out.push(match report.landlock.abi {
        Some(abi) => line("filesystem", true, format!("{mounts} + Landlock ABI {abi}")),
        None => line(
            "filesystem",
            true,
            format!(
                "{mounts}; Landlock unavailable ({}): confined evaluations are refused \
                 unless run with --accept-weaker landlock",
                report
                    .landlock
                    .unavailable_reason
                    .as_deref()
                    .unwrap_or("unknown reason")
            ),
        ),
    });
    out.push(line(
        "network",
        true,
        "network namespace with loopback only; allowed names and host:port reached only through the executor's HTTP and SOCKS5 proxies (bridged onto the sandbox's 127.0.0.1:3128 and :1080)".into(),
    ));
    out.push(if report.seccomp.available {
        line(
            "syscall filter",
            true,
            "seccomp: EPERM for ptrace, mount and namespace calls, keyrings, bpf, perf, \
             userfaultfd, io_uring, kexec and modules, TIOCSTI/TIOCLINUX, clone with namespace \
             flags, raw, packet and non-IP sockets (Unix only when allowed); clone3 gets ENOSYS"
                .into(),
        )
    } else {
        line(
            "syscall filter",
            false,
            "seccomp is unavailable in this kernel: confined evaluations are refused unless \
             run with --accept-weaker seccomp"
                .into(),
        )
    });
    out.push(line(
        "privileges",
        true,
        "no_new_privs, every capability dropped, host mounted nosuid".into(),
    ));
    let v1_cgroups = report.root && report.cgroup.mode != CgroupMode::V2;
    out.push(if v1_cgroups && report.cgroup.v1_memory {
        line(
            "memory limit",
            true,
            "cgroup v1 memory controller (whole process tree)".into(),
        )
    } else {
        line(
            "memory limit",
            true,
            "RLIMIT_AS per process (address space, not the whole tree)".into(),
        )
    });
    out.push(if v1_cgroups && report.cgroup.v1_pids {
        line("process limit", true, "cgroup v1 pids controller".into())
    } else if report.root {
        line(
            "process limit",
            false,
            "RLIMIT_NPROC does not apply to root and no cgroup v1 pids controller is mounted"
                .into(),
        )
    } else {
        line(
            "process limit",
            true,
            "RLIMIT_NPROC in the evaluation's user namespace".into(),
        )
    });
    out.push(line(
        "cpu time limit",
        true,
        "RLIMIT_CPU per process".into(),
    ));
    out.push(line("file size limit", true, "RLIMIT_FSIZE".into()));
    out.push(line(
        "network violations",
        true,
        "recorded: every connection the proxies refuse (outcome, `sandbox violations`)".into(),
    ));
    out.push(if report.seccomp.user_notification {
        line(
            "syscall violations",
            true,
            "recorded: each refused call reaches the executor as a seccomp user notification and fails with EPERM (Unix sockets without a rule are refused unrecorded: glibc tries nscd's on every lookup; post-setup mount calls are refused by the filter itself, unrecorded)".into(),
        )
    } else {
        line(
            "syscall violations",
            false,
            "not recorded: denied calls fail with EPERM; no seccomp user notification (Linux 5.0+) to report them".into(),
        )
    });
    // Landlock's audit records would not do: the mounts refuse a write or
    // hide a denied path before Landlock ever sees the access, and the
    // records reach only a system-wide audit daemon.
    let ptrace_forbidden = match report.yama_ptrace_scope {
        Some(scope) if scope >= 3 || (scope == 2 && !report.root) => Some(scope),
        _ => None,
    };
    out.push(if let (true, Some(scope)) = (report.seccomp.user_notification, ptrace_forbidden) {
        line(
            "filesystem violations",
            false,
            format!("not recorded: Yama's ptrace_scope {scope} keeps the executor from reading a call's path out of the sandbox (denied accesses still fail: EROFS for writes, an empty mask for reads)"),
        )
    } else if report.seccomp.user_notification {
        line(
            "filesystem violations",
            true,
            "recorded: each call that changes a path reaches the executor as a seccomp user notification, and each open for reading too when the policy denies reading somewhere; a denied path fails with EACCES and is recorded with the rule (the mounts still enforce the policy beneath)".into(),
        )
    } else {
        line(
            "filesystem violations",
            false,
            "not recorded: denied accesses fail with EROFS (writes) or find an empty mask (reads); no seccomp user notification (Linux 5.0+) to report them".into(),
        )
    });
    out
}

#[cfg(target_os = "linux")]
pub(crate) use linux::{landlock as landlock_support, seccomp as seccomp_support};

#[cfg(target_os = "linux")]
mod linux {
    use super::*;

    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    /// The uid/gid the user-namespace trial drops to when we are root.
    const NOBODY: libc::uid_t = 65534;

    pub(super) fn probe_into(report: &mut PlatformReport) {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        report.user_namespaces = UserNamespaces {
            unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone")
                .as_deref()
                .and_then(parse_flag),
            max_user_namespaces: read("/proc/sys/user/max_user_namespaces")
                .and_then(|t| t.trim().parse().ok()),
            unprivileged_unshare_works: try_unprivileged_unshare(report.root),
        };
        report.landlock = landlock();
        report.seccomp = seccomp();
        report.yama_ptrace_scope =
            read("/proc/sys/kernel/yama/ptrace_scope").and_then(|t| t.trim().parse().ok());
        report.cgroup = parse_cgroups(&read("/proc/self/mountinfo").unwrap_or_default());
    }

    /// Forks a child that (after dropping to nobody when we are root) calls
    /// `unshare(CLONE_NEWUSER)` and exits 0 on success. `None` if fork failed.
    fn try_unprivileged_unshare(root: bool) -> Option<bool> {
        // SAFETY: the child only makes raw syscalls (setgroups, setgid, setuid,
        // unshare) and `_exit`s; it touches no lock, allocator or Rust state, so
        // forking a multi-threaded process is sound.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return None;
        }
        if pid == 0 {
            // SAFETY: async-signal-safe syscalls on valid arguments, then _exit.
            unsafe {
                if root
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(NOBODY) != 0
                        || libc::setuid(NOBODY) != 0)
                {
                    libc::_exit(2);
                }
                let code = if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                    0
                } else {
                    1
                };
                libc::_exit(code);
            }
        }
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child with a valid status pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == pid {
                break;
            }
            if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return None;
            }
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 2 {
            Some(libc::WEXITSTATUS(status) == 0)
        } else {
            None
        }
    }

    pub(crate) fn landlock() -> Landlock {
        // SAFETY: landlock_create_ruleset with a NULL attribute, size 0 and the
        // VERSION flag only returns the ABI version; it creates nothing.
        let abi = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        if abi >= 1 {
            return Landlock {
                abi: u32::try_from(abi).ok(),
                unavailable_reason: None,
            };
        }
        let err = std::io::Error::last_os_error();
        let reason = match err.raw_os_error() {
            Some(libc::ENOSYS) => "not built into this kernel".to_string(),
            Some(libc::EOPNOTSUPP) => "built in but disabled at boot (lsm=)".to_string(),
            _ => format!("landlock_create_ruleset failed: {err}"),
        };
        Landlock {
            abi: None,
            unavailable_reason: Some(reason),
        }
    }

    pub(crate) fn seccomp() -> Seccomp {
        // SAFETY: PR_GET_SECCOMP takes no pointer and only reads our mode.
        let available = unsafe { libc::prctl(libc::PR_GET_SECCOMP) } >= 0;
        let mut action = libc::SECCOMP_RET_USER_NOTIF;
        // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32 from a valid pointer.
        let user_notif = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_GET_ACTION_AVAIL,
                0u32,
                &mut action as *mut libc::c_uint,
            )
        } == 0;
        let mut sizes = libc::seccomp_notif_sizes {
            seccomp_notif: 0,
            seccomp_notif_resp: 0,
            seccomp_data: 0,
        };
        // SAFETY: SECCOMP_GET_NOTIF_SIZES writes one seccomp_notif_sizes.
        let sizes_ok = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_GET_NOTIF_SIZES,
                0u32,
                &mut sizes as *mut libc::seccomp_notif_sizes,
            )
        } == 0;
        Seccomp {
            available,
            user_notification: available && user_notif && sizes_ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
";

    const V2_MOUNTINFO: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    const HYBRID_MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
34 25 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
";

    fn report() -> PlatformReport {
        PlatformReport {
            os: "linux".into(),
            kernel_release: Some("6.1.0".into()),
            arch: "x86_64".into(),
            root: false,
            user_namespaces: UserNamespaces {
                unprivileged_userns_clone: None,
                max_user_namespaces: Some(1000),
                unprivileged_unshare_works: Some(true),
            },
            landlock: Landlock {
                abi: Some(3),
                unavailable_reason: None,
            },
            seccomp: Seccomp {
                available: true,
                user_notification: true,
            },
            yama_ptrace_scope: None,
            cgroup: parse_cgroups(V1_MOUNTINFO),
            enforcement: Vec::new(),
        }
    }

    fn line<'a>(lines: &'a [Enforcement], what: &str) -> &'a Enforcement {
        lines.iter().find(|l| l.what == what).unwrap()
    }

    #[test]
    fn v1_controllers_are_listed_without_named_hierarchies() {
        let cg = parse_cgroups(V1_MOUNTINFO);
        assert_eq!(cg.mode, CgroupMode::V1);
        assert_eq!(cg.v1_controllers, ["cpu", "memory", "pids"]);
        assert!(cg.v1_memory && cg.v1_pids);
    }

    #[test]
    fn a_lone_cgroup2_mount_is_v2() {
        let cg = parse_cgroups(V2_MOUNTINFO);
        assert_eq!(cg.mode, CgroupMode::V2);
        assert!(cg.v1_controllers.is_empty());
        assert!(!cg.v1_memory && !cg.v1_pids);
    }

    #[test]
    fn v1_controllers_beside_cgroup2_are_hybrid() {
        let cg = parse_cgroups(HYBRID_MOUNTINFO);
        assert_eq!(cg.mode, CgroupMode::Hybrid);
        assert_eq!(cg.v1_controllers, ["cpu", "cpuacct", "memory"]);
        assert!(cg.v1_memory && !cg.v1_pids);
    }

    #[test]
    fn no_cgroup_mount_is_none() {
        assert_eq!(parse_cgroups("").mode, CgroupMode::None);
        assert_eq!(parse_cgroups("garbage line\n").mode, CgroupMode::None);
    }

    #[test]
    fn sysctl_flags_are_zero_or_one() {
        assert_eq!(parse_flag("1\n"), Some(true));
        assert_eq!(parse_flag("0"), Some(false));
        assert_eq!(parse_flag("yes"), None);
    }

    #[test]
    fn the_userns_trial_beats_the_sysctls() {
        let mut ns = UserNamespaces {
            unprivileged_userns_clone: Some(true),
            max_user_namespaces: Some(100),
            unprivileged_unshare_works: Some(false),
        };
        assert!(!ns.usable());
        ns.unprivileged_unshare_works = None;
        assert!(ns.usable());
        ns.unprivileged_userns_clone = Some(false);
        assert!(!ns.usable());
    }

    #[test]
    fn root_with_v1_controllers_uses_cgroups_for_memory_and_pids() {
        let mut r = report();
        r.root = true;
        let lines = enforcement(&r);
        assert!(line(&lines, "memory limit").detail.contains("cgroup v1"));
        assert!(line(&lines, "process limit").detail.contains("cgroup v1"));
    }

    #[test]
    fn unprivileged_memory_limits_fall_back_to_rlimit_as() {
        let lines = enforcement(&report());
        assert!(line(&lines, "memory limit").detail.contains("RLIMIT_AS"));
        assert!(line(&lines, "process limit")
            .detail
            .contains("RLIMIT_NPROC"));
    }

    #[test]
    fn root_without_a_pids_controller_has_no_process_limit() {
        let mut r = report();
        r.root = true;
        r.cgroup = parse_cgroups(V2_MOUNTINFO);
        assert!(!line(&enforcement(&r), "process limit").enforced);
    }

    #[test]
    fn filesystem_violations_need_the_callers_memory_which_yama_can_forbid() {
        let mut r = report();
        r.yama_ptrace_scope = Some(2);
        assert!(!line(&enforcement(&r), "filesystem violations").enforced);
        r.root = true;
        assert!(line(&enforcement(&r), "filesystem violations").enforced);
        r.yama_ptrace_scope = Some(3);
        let detail = line(&enforcement(&r), "filesystem violations").clone();
        assert!(
            !detail.enforced && detail.detail.contains("ptrace_scope 3"),
            "{detail:?}"
        );
        r.yama_ptrace_scope = Some(1);
        r.root = false;
        assert!(line(&enforcement(&r), "filesystem violations").enforced);
    }

    #[test]
    fn filesystem_violations_are_recorded_where_seccomp_notifies() {
        let mut r = report();
        r.seccomp.user_notification = true;
        let recorded = line(&enforcement(&r), "filesystem violations").clone();
        assert!(recorded.enforced, "{recorded:?}");
        assert!(recorded.detail.contains("EACCES"), "{recorded:?}");
        r.seccomp.user_notification = false;
        let not = line(&enforcement(&r), "filesystem violations").clone();
        assert!(
            !not.enforced && not.detail.starts_with("not recorded"),
            "{not:?}"
        );
    }

    #[test]
    fn the_landlock_abi_is_named_in_the_filesystem_line() {
        let detail = line(&enforcement(&report()), "filesystem").detail.clone();
        assert!(detail.ends_with(" + Landlock ABI 3"), "{detail}");
    }

    #[test]
    fn missing_landlock_says_evaluations_are_refused() {
        let mut r = report();
        r.landlock = Landlock {
            abi: None,
            unavailable_reason: Some("disabled at boot (lsm=)".into()),
        };
        let detail = line(&enforcement(&r), "filesystem").detail.clone();
        assert!(detail.contains("disabled at boot (lsm=)"), "{detail}");
        assert!(detail.contains("--accept-weaker landlock"), "{detail}");
    }

    #[test]
    fn the_syscall_filter_line_follows_seccomp_support() {
        let mut r = report();
        assert!(line(&enforcement(&r), "syscall filter").enforced);
        r.seccomp.available = false;
        assert!(!line(&enforcement(&r), "syscall filter").enforced);
    }

    #[test]
    fn syscall_violations_are_recorded_where_user_notification_works() {
        let mut r = report();
        let lines = enforcement(&r);
        let recorded = line(&lines, "syscall violations");
        assert!(recorded.enforced);
        assert!(recorded.detail.contains("user notification"));
        r.seccomp.user_notification = false;
        let lines = enforcement(&r);
        let not = line(&lines, "syscall violations");
        assert!(!not.enforced);
        assert!(not.detail.contains("Linux 5.0+"));
    }

    #[test]
    fn unusable_user_namespaces_are_reported_when_unprivileged() {
        let mut r = report();
        r.user_namespaces.unprivileged_unshare_works = Some(false);
        assert!(!line(&enforcement(&r), "process isolation").enforced);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn probing_this_machine_fills_the_linux_fields() {
        let r = probe();
        assert_eq!(r.os, "linux");
        assert!(r.kernel_release.is_some());
        assert!(r.landlock.abi.is_some() || r.landlock.unavailable_reason.is_some());
        assert!(!r.enforcement.is_empty());
    }
}
