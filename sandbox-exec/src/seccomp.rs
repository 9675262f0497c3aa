//! The seccomp programs a confined evaluation runs under.
//!
//! Two programs, because installing one costs a JIT compilation proportional
//! to its length and the bulk of the rules do not depend on the policy:
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
//!   3. **denials** (`EPERM`, compiled by seccompiler): system calls no
//!      evaluation needs and that widen the attack surface or reach outside the
//!      sandbox — tracing other processes, namespaces, keyrings, `bpf`,
//!      `perf_event_open`, `userfaultfd`, `io_uring`, kexec and modules,
//!      handles that bypass path checks, the TIOCSTI/TIOCLINUX terminal
//!      injections, `clone` with any `CLONE_NEW*` flag;
//! - the **job's program** ([`job_programs`]), installed by init once it has
//!   made the policy's mounts: the mount calls it needed until then, and the
//!   socket rule, which depends on the policy — sockets other than IPv4, IPv6
//!   and netlink (plus Unix when the policy allows a Unix socket), raw IP
//!   sockets and `AF_PACKET`.
//!
//! The kernel runs every installed program and the strictest answer wins, so
//! the two together deny exactly what one program with all the rules would.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use sandbox_policy::SeccompPlan;
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
    compile(rules, SeccompAction::Errno(libc::EPERM as u32))
}

/// The job's program: the mount calls and the policy's socket rule.
fn job_denials(plan: &SeccompPlan) -> Result<Vec<BpfInstruction>, FilterError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in DENIED_AFTER_MOUNTS {
        rules.insert(*nr, Vec::new());
    }
    let mut families: Vec<i32> = SOCKET_FAMILIES.to_vec();
    if plan.allow_unix_sockets {
        families.push(libc::AF_UNIX);
    }
    let other_family = families
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

/// The audit architecture the prefix checks (`AUDIT_ARCH_*`).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xc000_00f3;

/// What comes before the denials, in the same program (one program is one
/// JIT compilation when init installs it): the architecture check, then the
/// x32 bit (x86-64) and `clone3`, both answered `ENOSYS`.
fn prefix() -> Vec<BpfInstruction> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    #[cfg(target_arch = "x86_64")]
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const ARCH_OFFSET: u32 = 4; // seccomp_data.arch
    const NR_OFFSET: u32 = 0; // seccomp_data.nr
    let ins = |code, jt, jf, k| BpfInstruction { code, jt, jf, k };
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

/// The spare's program: the prefix, then the policy-independent denials.
pub(crate) fn spare_program() -> Result<Vec<BpfInstruction>, FilterError> {
    let mut program = prefix();
    program.extend(spare_denials()?);
    Ok(program)
}

/// [`job_programs`], compiled once per process for each of the two plans that
/// differ (Unix sockets allowed or not).
pub(crate) fn cached_programs(plan: &SeccompPlan) -> Result<Vec<Vec<BpfInstruction>>, FilterError> {
    type Cache = OnceLock<Result<Vec<Vec<BpfInstruction>>, String>>;
    static CLOSED: Cache = OnceLock::new();
    static OPEN: Cache = OnceLock::new();
    let cache = if plan.allow_unix_sockets {
        &OPEN
    } else {
        &CLOSED
    };
    let key = SeccompPlan {
        allow_unix_sockets: plan.allow_unix_sockets,
        ..SeccompPlan::default()
    };
    cache
        .get_or_init(|| job_programs(&key).map_err(|e| e.0))
        .clone()
        .map_err(FilterError)
}

/// The job's programs for `plan`, installed in order on top of the spare's
/// (a list, so that the protocol can carry more than one).
pub(crate) fn job_programs(plan: &SeccompPlan) -> Result<Vec<Vec<BpfInstruction>>, FilterError> {
    Ok(vec![job_denials(plan)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_fits_the_kernel_limit() {
        for allow_unix in [false, true] {
            let plan = SeccompPlan {
                allow_unix_sockets: allow_unix,
                ..SeccompPlan::default()
            };
            for program in job_programs(&plan).unwrap() {
                assert!(!program.is_empty() && program.len() <= 4096);
            }
            let spare = spare_program().unwrap();
            assert!(!spare.is_empty() && spare.len() <= 4096);
        }
    }

    #[test]
    fn allowing_unix_sockets_changes_the_socket_rule() {
        let closed = job_programs(&SeccompPlan::default()).unwrap();
        let open = job_programs(&SeccompPlan {
            allow_unix_sockets: true,
            ..SeccompPlan::default()
        })
        .unwrap();
        assert_ne!(closed, open);
    }
}
