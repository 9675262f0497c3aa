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
//!   3. **denials**: system calls no evaluation needs
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
//!
//! Both are assembled here ([`crate::bpf`]) rather than by seccompiler, which
//! compares each argument as two 32-bit halves, tests one flag per rule, and
//! chains one comparison per call: the kernel runs a new program for every
//! system call number when installing it, so a chain costs the square of its
//! length. A search tree over the call numbers, each leading to a short block,
//! took the spare's program from 282 instructions and 232 µs to install to
//! about 100 and far less.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::bpf::{Asm, Label, To, AND_K, JEQ_K, JSET_K, LD_W_ABS};
use crate::protocol::BpfInstruction;

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

/// Why a filter could not be built (a bug of ours: the rules are constants).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the seccomp filter: {0}")]
pub(crate) struct FilterError(String);

/// The audit architecture the prefix checks (`AUDIT_ARCH_*`).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xc000_00f3;

/// `seccomp_data.nr`.
const NR_OFFSET: u32 = 0;
/// `seccomp_data.arch`.
const ARCH_OFFSET: u32 = 4;

/// `seccomp_data.args[n]`, low 32 bits: every supported architecture is
/// little-endian, and the kernel reads the arguments we compare as 32-bit
/// values (flags, families, `ioctl` requests), ignoring the high half.
const fn arg_low(n: u8) -> u32 {
    16 + 8 * n as u32
}

const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// The start of every program: the architecture check (another
/// architecture's calls, e.g. i386 through `int 0x80`, kill the process),
/// then the call's number into the accumulator, where the rest expects it.
fn arch_check_and_number(asm: &mut Asm) {
    let native = asm.label();
    asm.op(LD_W_ABS, ARCH_OFFSET);
    asm.jump(JEQ_K, AUDIT_ARCH, To::At(native), To::Next);
    asm.ret(libc::SECCOMP_RET_KILL_PROCESS);
    asm.place(native);
    asm.op(LD_W_ABS, NR_OFFSET);
}

/// The returns the blocks of a program jump to.
struct Returns {
    allow: Label,
    /// The denials' answer: a notification for the executor, or `EPERM`.
    deny: Label,
    /// A watched filesystem call, for the executor to judge.
    notify: Label,
}

impl Returns {
    fn new(asm: &mut Asm) -> Self {
        Returns {
            allow: asm.label(),
            deny: asm.label(),
            notify: asm.label(),
        }
    }

    fn place(self, asm: &mut Asm, deny: u32) {
        asm.place(self.allow);
        asm.ret(libc::SECCOMP_RET_ALLOW);
        asm.place(self.deny);
        asm.ret(deny);
        asm.place(self.notify);
        asm.ret(libc::SECCOMP_RET_USER_NOTIF);
    }
}

/// The calls the spare's program decides on, each with the label of its
/// block (or of the return every call of its kind gets), and the blocks
/// themselves, emitted by [`Rules::emit_blocks`] after the dispatch.
struct Rules {
    keys: BTreeMap<u32, Label>,
    blocks: Vec<(Label, Block)>,
}

/// A block that looks at a call's arguments.
enum Block {
    /// An `open` with flags in argument `flags`: watched when they ask for
    /// writing, or (`reads`) when they lack `O_PATH`.
    Open { flags: u8, reads: bool },
    /// `ioctl`: the terminal injections.
    Ioctl,
    /// `clone`: any namespace flag.
    Clone,
    /// `socket`: families other than IPv4, IPv6 and netlink, raw IP and
    /// packet sockets.
    Socket,
}

impl Rules {
    fn spare(asm: &mut Asm, returns: &Returns, watch: Watch) -> Self {
        let mut rules = Rules {
            keys: BTreeMap::new(),
            blocks: Vec::new(),
        };
        let mut key = |nr: i64, label: Label| {
            let clash = rules.keys.insert(nr as u32, label);
            debug_assert!(clash.is_none(), "system call {nr} has two rules");
        };
        if watch != Watch::None {
            let watched = crate::fsaccess::watched();
            for nr in &watched.always {
                key(*nr, returns.notify);
            }
            for (nr, flags) in &watched.opens {
                let label = asm.label();
                key(*nr, label);
                let block = Block::Open {
                    flags: *flags,
                    reads: watch == Watch::ChangesAndReads,
                };
                rules.blocks.push((label, block));
            }
        }
        for nr in DENIED {
            key(*nr, returns.deny);
        }
        for (nr, block) in [
            (libc::SYS_ioctl, Block::Ioctl),
            (libc::SYS_clone, Block::Clone),
            (libc::SYS_socket, Block::Socket),
        ] {
            let label = asm.label();
            key(nr, label);
            rules.blocks.push((label, block));
        }
        rules
    }

    fn emit_blocks(self, asm: &mut Asm, returns: &Returns) {
        let (allow, deny, notify) = (
            To::At(returns.allow),
            To::At(returns.deny),
            To::At(returns.notify),
        );
        for (label, block) in self.blocks {
            asm.place(label);
            match block {
                Block::Open { flags, reads } => {
                    asm.op(LD_W_ABS, arg_low(flags));
                    if reads {
                        asm.jump(JSET_K, libc::O_PATH as u32, allow, notify);
                    } else {
                        let write = crate::fsaccess::WRITE_FLAGS as u32;
                        asm.jump(JSET_K, write, notify, allow);
                    }
                }
                Block::Ioctl => {
                    asm.op(LD_W_ABS, arg_low(1));
                    asm.jump(JEQ_K, libc::TIOCSTI as u32, deny, To::Next);
                    asm.jump(JEQ_K, libc::TIOCLINUX as u32, deny, allow);
                }
                Block::Clone => {
                    let any = CLONE_NEW.iter().fold(0, |all, flag| all | *flag as u32);
                    asm.op(LD_W_ABS, arg_low(0));
                    asm.jump(JSET_K, any, deny, allow);
                }
                Block::Socket => {
                    let ip = asm.label();
                    asm.op(LD_W_ABS, arg_low(0));
                    asm.jump(JEQ_K, libc::AF_INET as u32, To::At(ip), To::Next);
                    asm.jump(JEQ_K, libc::AF_INET6 as u32, To::At(ip), To::Next);
                    asm.jump(JEQ_K, libc::AF_NETLINK as u32, allow, deny);
                    asm.place(ip);
                    asm.op(LD_W_ABS, arg_low(1));
                    // The type's low bits; SOCK_NONBLOCK and SOCK_CLOEXEC sit above.
                    asm.op(AND_K, 0xf);
                    asm.jump(JEQ_K, libc::SOCK_RAW as u32, deny, To::Next);
                    asm.jump(JEQ_K, SOCK_PACKET as u32, deny, allow);
                }
            }
        }
    }
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

/// The spare's program (see the module docs): the architecture check, the
/// x32 bit (x86-64) and `clone3`, both answered `ENOSYS`, then a search tree
/// over the numbers of the calls it decides on, each leading to its block.
pub(crate) fn spare_program(watch: Watch) -> Result<Vec<BpfInstruction>, FilterError> {
    let mut asm = Asm::default();
    let returns = Returns::new(&mut asm);
    let enosys = asm.label();
    arch_check_and_number(&mut asm);
    #[cfg(target_arch = "x86_64")]
    asm.jump(JSET_K, 0x4000_0000, To::At(enosys), To::Next);
    asm.jump(JEQ_K, libc::SYS_clone3 as u32, To::At(enosys), To::Next);
    let rules = Rules::spare(&mut asm, &returns, watch);
    let keys: Vec<(u32, Label)> = rules.keys.iter().map(|(k, l)| (*k, *l)).collect();
    asm.dispatch(&keys, returns.allow);
    rules.emit_blocks(&mut asm, &returns);
    asm.place(enosys);
    asm.ret(ENOSYS);
    let deny = if watch == Watch::None {
        EPERM
    } else {
        libc::SECCOMP_RET_USER_NOTIF
    };
    returns.place(&mut asm, deny);
    asm.finish().map_err(FilterError)
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
/// that the protocol can carry more than one): the mount calls, `EPERM`.
pub(crate) fn job_programs() -> Result<Vec<Vec<BpfInstruction>>, FilterError> {
    let mut asm = Asm::default();
    let (allow, deny) = (asm.label(), asm.label());
    arch_check_and_number(&mut asm);
    let mut keys: Vec<(u32, Label)> = DENIED_AFTER_MOUNTS
        .iter()
        .map(|nr| (*nr as u32, deny))
        .collect();
    keys.sort_unstable_by_key(|(nr, _)| *nr);
    asm.dispatch(&keys, allow);
    asm.place(allow);
    asm.ret(libc::SECCOMP_RET_ALLOW);
    asm.place(deny);
    asm.ret(EPERM);
    Ok(vec![asm.finish().map_err(FilterError)?])
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
    use crate::bpf::{JA, JGE_K, RET_K};

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
        run_as(program, AUDIT_ARCH, nr, args)
    }

    fn run_as(program: &[BpfInstruction], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend((nr as i32).to_ne_bytes());
        data.extend(arch.to_ne_bytes());
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
                        0x25 => a > i.k, // JGT
                        JGE_K => a >= i.k,
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

    /// The rules of the module docs in plain Rust, as the spare's program
    /// must decide them.
    fn decided(watch: Watch, nr: i64, args: [u64; 6]) -> u32 {
        let low = |n: usize| args[n] as u32;
        let deny = if watch == Watch::None { EPERM } else { NOTIFY };
        if cfg!(target_arch = "x86_64") && nr as u32 & 0x4000_0000 != 0 {
            return ENOSYS;
        }
        if nr == libc::SYS_clone3 {
            return ENOSYS;
        }
        if watch != Watch::None {
            let watched = crate::fsaccess::watched();
            if watched.always.contains(&nr) {
                return NOTIFY;
            }
            if let Some((_, flags)) = watched.opens.iter().find(|(n, _)| *n == nr) {
                let flags = low(*flags as usize);
                let watched = if watch == Watch::ChangesAndReads {
                    flags & libc::O_PATH as u32 == 0
                } else {
                    flags & crate::fsaccess::WRITE_FLAGS as u32 != 0
                };
                return if watched { NOTIFY } else { ALLOW };
            }
        }
        let denied = match nr {
            _ if DENIED.contains(&nr) => true,
            libc::SYS_ioctl => [libc::TIOCSTI as u32, libc::TIOCLINUX as u32].contains(&low(1)),
            libc::SYS_clone => CLONE_NEW.iter().any(|flag| low(0) & *flag as u32 != 0),
            libc::SYS_socket => match low(0) as i32 {
                libc::AF_INET | libc::AF_INET6 => {
                    [libc::SOCK_RAW, SOCK_PACKET].contains(&((low(1) & 0xf) as i32))
                }
                libc::AF_NETLINK => false,
                _ => true,
            },
            _ => false,
        };
        if denied {
            deny
        } else {
            ALLOW
        }
    }

    /// Arguments that tell the rules apart: nothing, each flag and request
    /// the rules name, the families and socket types, with and without bits
    /// in the high half the kernel ignores.
    fn telling_arguments() -> Vec<[u64; 6]> {
        let mut values: Vec<u64> = vec![0, 1, 2, 3, libc::O_PATH as u64, libc::SIGCHLD as u64];
        values.extend([libc::TIOCSTI, libc::TIOCLINUX, libc::TIOCGWINSZ]);
        values.extend(CLONE_NEW.iter().map(|flag| flag | libc::SIGCHLD as u64));
        values.extend(
            [
                libc::AF_UNIX,
                libc::AF_INET,
                libc::AF_INET6,
                libc::AF_NETLINK,
                libc::AF_PACKET,
            ]
            .map(|f| f as u64),
        );
        values.extend(
            [
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                SOCK_PACKET,
                libc::SOCK_STREAM,
            ]
            .map(|t| t as u64),
        );
        values
            .extend([libc::O_WRONLY, libc::O_RDWR, libc::O_CREAT, libc::O_TRUNC].map(|f| f as u64));
        let with_high: Vec<u64> = values.iter().map(|v| v | 1 << 40).collect();
        values.extend(with_high);
        let mut out = Vec::new();
        for &v in &values {
            for slot in 0..4 {
                let mut args = [0u64; 6];
                args[slot] = v;
                out.push(args);
            }
        }
        // A socket's family and type together.
        for family in [
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
            libc::AF_UNIX,
        ] {
            for kind in [
                libc::SOCK_STREAM,
                libc::SOCK_DGRAM,
                libc::SOCK_RAW,
                SOCK_PACKET,
            ] {
                out.push([
                    family as u64,
                    (kind | libc::SOCK_NONBLOCK) as u64,
                    0,
                    0,
                    0,
                    0,
                ]);
            }
        }
        out
    }

    #[test]
    fn the_spare_program_decides_every_call_as_the_rules_say() {
        for watch in [Watch::None, Watch::Changes, Watch::ChangesAndReads] {
            let program = spare_program(watch).unwrap();
            for nr in (0..600).chain([0x4000_0000, 0x4000_0001, libc::SYS_clone3 | 0x4000_0000]) {
                for args in telling_arguments() {
                    assert_eq!(
                        run(&program, nr, args),
                        decided(watch, nr, args),
                        "{watch:?}: call {nr} with {args:x?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_job_program_refuses_the_mount_calls_and_nothing_else() {
        let programs = job_programs().unwrap();
        for nr in 0..600 {
            let expected = if DENIED_AFTER_MOUNTS.contains(&nr) {
                EPERM
            } else {
                ALLOW
            };
            assert_eq!(run(&programs[0], nr, [0; 6]), expected, "call {nr}");
        }
    }

    #[test]
    fn another_architecture_is_killed_by_both_programs() {
        let mut programs = job_programs().unwrap();
        programs.push(spare_program(Watch::Changes).unwrap());
        for program in programs {
            assert_eq!(
                run_as(&program, AUDIT_ARCH ^ 1, libc::SYS_getpid, [0; 6]),
                libc::SECCOMP_RET_KILL_PROCESS
            );
        }
    }

    #[test]
    fn the_programs_stay_short() {
        // Installing costs about 0.26 µs per instruction of JIT here, plus
        // the action-cache walk the tree keeps short.
        assert!(spare_program(Watch::ChangesAndReads).unwrap().len() < 160);
        assert!(job_programs().unwrap()[0].len() < 24);
    }
}
