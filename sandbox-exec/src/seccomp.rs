//! The seccomp programs a confined evaluation runs under, and what a denied
//! call is reported as.
//!
//! Two programs, because installing one costs a JIT compilation proportional
//! to its length and the bulk of the rules do not depend on the job:
//!
//! - the **spare's program** ([`spare_program`]), installed by init while it
//!   waits as a spare, off the evaluation's path. After the architecture check
//!   (another architecture's calls, e.g. i386 through `int 0x80`, kill the
//!   process):
//!   1. **x32** (`ENOSYS`, x86-64 only): the x32 ABI numbers its system calls
//!      with bit 30 set under the same audit architecture, which would slip
//!      past the numbers the denials match;
//!   2. **clone3** (`ENOSYS`): its flags sit in memory a filter cannot read, so
//!      it is refused as "not implemented", which makes libc fall back to
//!      `clone`, whose flags the denials check;
//!   3. **denials** (compiled by seccompiler): system calls no evaluation needs
//!      and that widen the attack surface or reach outside the sandbox —
//!      tracing other processes, namespaces, keyrings, `bpf`,
//!      `perf_event_open`, `userfaultfd`, `io_uring`, kexec and modules,
//!      handles that bypass path checks, the TIOCSTI/TIOCLINUX terminal
//!      injections, `clone` with any `CLONE_NEW*` flag — and sockets other
//!      than IPv4, IPv6 and netlink, raw IP sockets and `AF_PACKET`. They go
//!      to the executor as **user notifications**: it records each one as a
//!      violation ([`verdict`]) and answers `EPERM`, except a Unix socket the
//!      policy allows, which it lets through (the family is a register, read
//!      once, so letting it continue cannot be raced). On a kernel without
//!      user notification the same program answers `EPERM` itself, and Unix
//!      sockets are refused whatever the policy;
//!   4. **watched filesystem calls** (with user notification only): every
//!      call that changes a path, and the `open` calls that ask for writing
//!      or (when the policy denies reading somewhere) any but `O_PATH` ones,
//!      go to the executor, which judges their paths by the policy
//!      ([`crate::fsaccess`]). A spare is prepared for one kind of policy or
//!      the other ([`Watch`]), since its program cannot depend on the job;
//! - the **job's program** ([`job_programs`]), installed by init once it has
//!   made the policy's mounts: the mount calls it needed until then (`EPERM`,
//!   not recorded: notifying them would cost init's own mounts a round trip
//!   each).
//!
//! The kernel runs every installed program and the strictest answer wins, so
//! the two together deny exactly what one program with all the rules would.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::protocol::BpfInstruction;

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;
#[cfg(target_arch = "riscv64")]
const ARCH: TargetArch = TargetArch::riscv64;

/// System calls refused whatever their arguments, from the spare's program on.
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
];

/// The mount calls init makes for the policy after the spare's program is in
/// place: refused whatever their arguments by the job's program.
const DENIED_AFTER_MOUNTS: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
];

/// Namespace flags `clone` must not carry.
const CLONE_NEW: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// The obsolete packet socket type of `AF_INET` (libc deprecates the constant).
const SOCK_PACKET: i32 = 10;

/// Socket families an evaluation may create (Unix only when allowed).
const SOCKET_FAMILIES: &[i32] = &[libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK];

/// Why a filter could not be built (a bug of ours: the rules are constants).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the seccomp filter: {0}")]
pub(crate) struct FilterError(String);

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, FilterError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
        .map_err(|e| FilterError(e.to_string()))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, FilterError> {
    SeccompRule::new(conditions).map_err(|e| FilterError(e.to_string()))
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    action: SeccompAction,
) -> Result<Vec<BpfInstruction>, FilterError> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, ARCH)
        .map_err(|e| FilterError(e.to_string()))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| FilterError(e.to_string()))?;
    Ok(program
        .into_iter()
        .map(|i| BpfInstruction {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect())
}

/// The denials of the spare's program (see the module docs).
fn spare_denials() -> Result<Vec<BpfInstruction>, FilterError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in DENIED {
        // An empty rule list matches every call.
        rules.insert(*nr, Vec::new());
    }
    rules.insert(
        libc::SYS_ioctl,
        vec![
            rule(vec![cond(1, SeccompCmpOp::Eq, libc::TIOCSTI)?])?,
            rule(vec![cond(1, SeccompCmpOp::Eq, libc::TIOCLINUX)?])?,
        ],
    );
    rules.insert(
        libc::SYS_clone,
        CLONE_NEW
            .iter()
            .map(|&flag| rule(vec![cond(0, SeccompCmpOp::MaskedEq(flag), flag)?]))
            .collect::<Result<_, _>>()?,
    );
    let other_family = SOCKET_FAMILIES
        .iter()
        .map(|&f| cond(0, SeccompCmpOp::Ne, f as u64))
        .collect::<Result<Vec<_>, _>>()?;
    let mut socket = vec![rule(other_family)?];
    for family in [libc::AF_INET, libc::AF_INET6] {
        for kind in [libc::SOCK_RAW, SOCK_PACKET] {
            socket.push(rule(vec![
                cond(0, SeccompCmpOp::Eq, family as u64)?,
                // The type's low bits; SOCK_NONBLOCK and SOCK_CLOEXEC sit above.
                cond(1, SeccompCmpOp::MaskedEq(0xf), kind as u64)?,
            ])?);
        }
    }
    rules.insert(libc::SYS_socket, socket);
    compile(rules, SeccompAction::Errno(libc::EPERM as u32))
}

/// The job's program: the mount calls.
fn job_denials() -> Result<Vec<BpfInstruction>, FilterError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED_AFTER_MOUNTS
        .iter()
        .map(|nr| (*nr, Vec::new()))
        .collect();
    compile(rules, SeccompAction::Errno(libc::EPERM as u32))
}

/// The audit architecture the prefix checks (`AUDIT_ARCH_*`).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xc000_00f3;

// The classic BPF instructions the hand-written parts use.
/// `BPF_LD | BPF_W | BPF_ABS`: load a word of `seccomp_data`.
const LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JSET | BPF_K`: jump if any of the bits is set.
const JSET_K: u16 = 0x45;
/// `BPF_JMP | BPF_JA`: jump always.
const JA: u16 = 0x05;
/// `BPF_RET | BPF_K`.
const RET_K: u16 = 0x06;

const fn ins(code: u16, jt: u8, jf: u8, k: u32) -> BpfInstruction {
    BpfInstruction { code, jt, jf, k }
}

/// What comes before the denials, in the same program (one program is one
/// JIT compilation when init installs it): the architecture check, then the
/// x32 bit (x86-64) and `clone3`, both answered `ENOSYS`.
fn prefix() -> Vec<BpfInstruction> {
    const ARCH_OFFSET: u32 = 4; // seccomp_data.arch
    const NR_OFFSET: u32 = 0; // seccomp_data.nr
    let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let mut out = vec![
        ins(LD_W_ABS, 0, 0, ARCH_OFFSET),
        ins(JEQ_K, 1, 0, AUDIT_ARCH),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        ins(LD_W_ABS, 0, 0, NR_OFFSET),
    ];
    #[cfg(target_arch = "x86_64")]
    out.extend([ins(JSET_K, 0, 1, 0x4000_0000), ins(RET_K, 0, 0, enosys)]);
    out.extend([
        ins(JEQ_K, 0, 1, libc::SYS_clone3 as u32),
        ins(RET_K, 0, 0, enosys),
    ]);
    out
}

/// The filesystem calls the executor judges ([`crate::fsaccess`]), for a
/// program whose accumulator holds the call's number: every call that
/// changes a path goes to the executor, and so does an `open` whose flags ask
/// for writing or, when `watch_reads`, lack `O_PATH`; any other `open` is
/// allowed here (the denials do not concern it), and every other call falls
/// through with the accumulator untouched.
///
/// Written by hand rather than by seccompiler, which compares each argument
/// as two 32-bit halves and tests one flag per rule: 449 instructions where
/// this is about 45, and the spare pays the JIT compilation of every one.
fn filesystem_block(watch_reads: bool) -> Vec<BpfInstruction> {
    /// `seccomp_data.args[n]`, low 32 bits (every supported architecture is
    /// little-endian, and the flags fit in them).
    const fn arg_low(n: u8) -> u32 {
        16 + 8 * n as u32
    }
    let watched = crate::fsaccess::watched();
    // Each check is followed by the checks after it, a jump over the two
    // returns, and the two returns: NOTIFY, then ALLOW.
    let len = watched.always.len() + 3 * watched.opens.len() + 3;
    let mut out = Vec::with_capacity(len);
    for nr in &watched.always {
        let here = out.len();
        // To NOTIFY: past the rest of the checks and the jump.
        let to_notify = (len - 2 - here - 1) as u8;
        out.push(ins(JEQ_K, to_notify, 0, *nr as u32));
    }
    for (nr, flags) in &watched.opens {
        let here = out.len();
        out.push(ins(JEQ_K, 0, 2, *nr as u32));
        out.push(ins(LD_W_ABS, 0, 0, arg_low(*flags)));
        let to_notify = (len - 2 - (here + 2) - 1) as u8;
        let (mask, jt, jf) = if watch_reads {
            (libc::O_PATH as u32, to_notify + 1, to_notify)
        } else {
            (
                crate::fsaccess::WRITE_FLAGS as u32,
                to_notify,
                to_notify + 1,
            )
        };
        out.push(ins(JSET_K, jt, jf, mask));
    }
    out.push(ins(JA, 0, 0, 2));
    out.push(ins(RET_K, 0, 0, libc::SECCOMP_RET_USER_NOTIF));
    out.push(ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
    debug_assert_eq!(out.len(), len);
    out
}

/// How the spare's program treats the calls it watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// No user notification (a kernel before 5.0): the filter answers its
    /// denials with `EPERM` itself and no filesystem call is watched.
    None,
    /// Denials and filesystem changes go to the executor.
    Changes,
    /// Also every `open` for reading: the policy denies reading somewhere.
    ChangesAndReads,
}

/// The spare's program: the prefix, the watched filesystem calls, then the
/// denials, all answered by the executor; or (`Watch::None`) the prefix and
/// the denials alone, answered with `EPERM` by the filter itself.
pub(crate) fn spare_program(watch: Watch) -> Result<Vec<BpfInstruction>, FilterError> {
    let mut program = prefix();
    let notify = watch != Watch::None;
    match watch {
        Watch::None => {}
        Watch::Changes => program.extend(filesystem_block(false)),
        Watch::ChangesAndReads => program.extend(filesystem_block(true)),
    }
    let denials = spare_denials()?;
    let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    // seccompiler has no user-notification action: its EPERM returns (the
    // denials' and nothing else's) become notifications.
    program.extend(denials.into_iter().map(|mut i| {
        if notify && i.code == RET_K && i.k == eperm {
            i.k = libc::SECCOMP_RET_USER_NOTIF;
        }
        i
    }));
    Ok(program)
}

/// [`job_programs`], compiled once per process.
pub(crate) fn cached_programs() -> Result<Vec<Vec<BpfInstruction>>, FilterError> {
    static PROGRAMS: OnceLock<Result<Vec<Vec<BpfInstruction>>, String>> = OnceLock::new();
    PROGRAMS
        .get_or_init(|| job_programs().map_err(|e| e.0))
        .clone()
        .map_err(FilterError)
}

/// The job's programs, installed in order on top of the spare's (a list, so
/// that the protocol can carry more than one).
pub(crate) fn job_programs() -> Result<Vec<Vec<BpfInstruction>>, FilterError> {
    Ok(vec![job_denials()?])
}

/// What the executor answers a notified call with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Let it run (a Unix socket the policy allows).
    Continue,
    /// Refuse it with `EPERM` without recording it: a Unix socket the
    /// policy does not allow. glibc opens one for nscd on every name lookup
    /// and user lookup, so recording them would bury the violations that
    /// matter under one per `curl`.
    Quiet,
    /// Refuse it with `EPERM` and record it.
    Deny {
        /// The call as the violation names it: `ptrace`, `socket(AF_PACKET)`.
        target: String,
        /// Why the sandbox refuses it.
        rule: &'static str,
    },
}

/// The answer to a notified call `nr` with `args`; `allow_unix` when the
/// policy allows some Unix socket.
pub(crate) fn verdict(nr: i64, args: &[u64; 6], allow_unix: bool) -> Verdict {
    let deny = |target: String, rule| Verdict::Deny { target, rule };
    match nr {
        libc::SYS_socket => {
            let family = args[0] as i32;
            if family == libc::AF_UNIX && allow_unix {
                return Verdict::Continue;
            }
            let kind = (args[1] & 0xf) as i32;
            match family {
                libc::AF_UNIX => Verdict::Quiet,
                libc::AF_INET | libc::AF_INET6 => deny(
                    format!(
                        "socket({}, {})",
                        if family == libc::AF_INET {
                            "AF_INET"
                        } else {
                            "AF_INET6"
                        },
                        if kind == libc::SOCK_RAW {
                            "SOCK_RAW"
                        } else {
                            "SOCK_PACKET"
                        }
                    ),
                    "seccomp: raw and packet sockets are refused",
                ),
                libc::AF_PACKET => deny(
                    "socket(AF_PACKET)".into(),
                    "seccomp: raw and packet sockets are refused",
                ),
                other => deny(
                    format!("socket(family {other})"),
                    "seccomp: only IPv4, IPv6 and netlink sockets (and allowed Unix sockets)",
                ),
            }
        }
        libc::SYS_ioctl => deny(
            match args[1] {
                libc::TIOCSTI => "ioctl(TIOCSTI)".into(),
                libc::TIOCLINUX => "ioctl(TIOCLINUX)".into(),
                cmd => format!("ioctl({cmd:#x})"),
            },
            "seccomp: terminal input injection is refused",
        ),
        libc::SYS_clone => deny(
            format!("clone({})", clone_flags(args[0])),
            "seccomp: new namespaces are refused",
        ),
        nr => deny(
            syscall_name(nr).map_or_else(|| format!("syscall {nr}"), str::to_string),
            "seccomp: refused for every evaluation",
        ),
    }
}

fn clone_flags(flags: u64) -> String {
    const NAMES: &[(u64, &str)] = &[
        (libc::CLONE_NEWNS as u64, "CLONE_NEWNS"),
        (libc::CLONE_NEWCGROUP as u64, "CLONE_NEWCGROUP"),
        (libc::CLONE_NEWUTS as u64, "CLONE_NEWUTS"),
        (libc::CLONE_NEWIPC as u64, "CLONE_NEWIPC"),
        (libc::CLONE_NEWUSER as u64, "CLONE_NEWUSER"),
        (libc::CLONE_NEWPID as u64, "CLONE_NEWPID"),
        (libc::CLONE_NEWNET as u64, "CLONE_NEWNET"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    names.join("|")
}

/// The names of the calls in [`DENIED`].
fn syscall_name(nr: i64) -> Option<&'static str> {
    Some(match nr {
        libc::SYS_ptrace => "ptrace",
        libc::SYS_process_vm_readv => "process_vm_readv",
        libc::SYS_process_vm_writev => "process_vm_writev",
        libc::SYS_chroot => "chroot",
        libc::SYS_unshare => "unshare",
        libc::SYS_setns => "setns",
        libc::SYS_keyctl => "keyctl",
        libc::SYS_add_key => "add_key",
        libc::SYS_request_key => "request_key",
        libc::SYS_bpf => "bpf",
        libc::SYS_perf_event_open => "perf_event_open",
        libc::SYS_userfaultfd => "userfaultfd",
        libc::SYS_io_uring_setup => "io_uring_setup",
        libc::SYS_io_uring_enter => "io_uring_enter",
        libc::SYS_io_uring_register => "io_uring_register",
        libc::SYS_kexec_load => "kexec_load",
        libc::SYS_kexec_file_load => "kexec_file_load",
        libc::SYS_init_module => "init_module",
        libc::SYS_finit_module => "finit_module",
        libc::SYS_delete_module => "delete_module",
        libc::SYS_reboot => "reboot",
        libc::SYS_swapon => "swapon",
        libc::SYS_swapoff => "swapoff",
        libc::SYS_acct => "acct",
        libc::SYS_open_by_handle_at => "open_by_handle_at",
        libc::SYS_name_to_handle_at => "name_to_handle_at",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_fits_the_kernel_limit() {
        for program in job_programs().unwrap() {
            assert!(!program.is_empty() && program.len() <= 4096);
        }
        for watch in [Watch::None, Watch::Changes, Watch::ChangesAndReads] {
            let spare = spare_program(watch).unwrap();
            assert!(!spare.is_empty() && spare.len() <= 4096);
        }
    }

    /// Runs a classic BPF program over a `seccomp_data` (`nr`, `args`), as
    /// the kernel would, for the instructions our programs use.
    fn run(program: &[BpfInstruction], nr: i64, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend((nr as i32).to_ne_bytes());
        data.extend(AUDIT_ARCH.to_ne_bytes());
        data.extend(0u64.to_ne_bytes()); // instruction pointer
        for a in args {
            data.extend(a.to_ne_bytes());
        }
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = &program[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => {
                    let k = i.k as usize;
                    a = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                0x54 => a &= i.k, // ALU AND K
                JA => pc += i.k as usize,
                RET_K => return i.k,
                code => {
                    let taken = match code {
                        JEQ_K => a == i.k,
                        0x25 => a > i.k,  // JGT
                        0x35 => a >= i.k, // JGE
                        JSET_K => a & i.k != 0,
                        other => panic!("opcode {other:#x} not interpreted"),
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
            }
        }
    }

    const NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    fn openat(flags: i32) -> [u64; 6] {
        [libc::AT_FDCWD as u32 as u64, 0x1000, flags as u64, 0, 0, 0]
    }

    #[test]
    fn opens_for_writing_and_path_changes_go_to_the_executor() {
        let program = spare_program(Watch::Changes).unwrap();
        for flags in [
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_CREAT,
            libc::O_TRUNC | libc::O_RDONLY,
        ] {
            assert_eq!(
                run(&program, libc::SYS_openat, openat(flags)),
                NOTIFY,
                "{flags:#x}"
            );
        }
        assert_eq!(
            run(&program, libc::SYS_openat, openat(libc::O_RDONLY)),
            ALLOW
        );
        assert_eq!(run(&program, libc::SYS_openat, openat(libc::O_PATH)), ALLOW);
        for nr in crate::fsaccess::watched().always {
            assert_eq!(run(&program, nr, [0; 6]), NOTIFY, "{nr}");
        }
        // Calls neither watched nor denied pass; the denials still apply.
        assert_eq!(run(&program, libc::SYS_read, [0; 6]), ALLOW);
        assert_eq!(run(&program, libc::SYS_ptrace, [0; 6]), NOTIFY);
        assert_eq!(
            run(&program, libc::SYS_clone3, [0; 6]),
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
        );
    }

    #[test]
    fn watching_reads_sends_every_open_but_o_path_ones() {
        let program = spare_program(Watch::ChangesAndReads).unwrap();
        assert_eq!(
            run(&program, libc::SYS_openat, openat(libc::O_RDONLY)),
            NOTIFY
        );
        assert_eq!(
            run(&program, libc::SYS_openat, openat(libc::O_WRONLY)),
            NOTIFY
        );
        assert_eq!(
            run(
                &program,
                libc::SYS_openat,
                openat(libc::O_PATH | libc::O_CLOEXEC)
            ),
            ALLOW
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            run(
                &program,
                libc::SYS_open,
                [0x1000, libc::O_RDONLY as u64, 0, 0, 0, 0]
            ),
            NOTIFY
        );
    }

    #[test]
    fn without_notifications_no_filesystem_call_is_watched() {
        let program = spare_program(Watch::None).unwrap();
        assert_eq!(
            run(&program, libc::SYS_openat, openat(libc::O_WRONLY)),
            ALLOW
        );
        assert_eq!(run(&program, libc::SYS_unlinkat, [0; 6]), ALLOW);
        assert_eq!(
            run(&program, libc::SYS_ptrace, [0; 6]),
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32
        );
    }

    #[test]
    fn a_notifying_spare_program_returns_notifications_instead_of_eperm() {
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let returns = |notify| -> Vec<u32> {
            spare_program(if notify { Watch::Changes } else { Watch::None })
                .unwrap()
                .into_iter()
                .filter(|i| i.code == 0x06)
                .map(|i| i.k)
                .collect()
        };
        assert!(returns(false).contains(&eperm));
        assert!(!returns(true).contains(&eperm));
        assert!(returns(true).contains(&libc::SECCOMP_RET_USER_NOTIF));
        // The prefix's answers stay the filter's own.
        assert!(returns(true).contains(&libc::SECCOMP_RET_KILL_PROCESS));
    }

    #[test]
    fn an_allowed_unix_socket_continues_and_a_refused_one_is_refused_quietly() {
        let unix = [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
        assert_eq!(verdict(libc::SYS_socket, &unix, true), Verdict::Continue);
        assert_eq!(verdict(libc::SYS_socket, &unix, false), Verdict::Quiet);
    }

    #[test]
    fn refused_calls_are_named_with_their_telling_argument() {
        let target = |nr, args: [u64; 6]| match verdict(nr, &args, true) {
            Verdict::Deny { target, .. } => target,
            other => panic!("{other:?}"),
        };
        assert_eq!(target(libc::SYS_ptrace, [0; 6]), "ptrace");
        assert_eq!(
            target(
                libc::SYS_clone,
                [
                    libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64,
                    0,
                    0,
                    0,
                    0,
                    0
                ]
            ),
            "clone(CLONE_NEWUSER)"
        );
        assert_eq!(
            target(libc::SYS_ioctl, [0, libc::TIOCSTI, 0, 0, 0, 0]),
            "ioctl(TIOCSTI)"
        );
        assert_eq!(
            target(
                libc::SYS_socket,
                [libc::AF_INET as u64, libc::SOCK_RAW as u64, 0, 0, 0, 0]
            ),
            "socket(AF_INET, SOCK_RAW)"
        );
    }
}
