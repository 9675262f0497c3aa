//! Choosing how each requested limit is enforced: a cgroup where this process
//! can create one, an rlimit otherwise, and a clear refusal where neither works.

use sandbox_core::{LimitEnforcement, LimitKind, Limits, Mechanism};

use crate::cgroup::{self, Cgroup, CgroupLimits};
use crate::cgroup_shelf::Shelf;
use crate::launch::SpareCgroup;
use crate::protocol::Rlimit;
use crate::ExecError;

/// How the limits of one evaluation are enforced.
#[derive(Debug)]
pub(crate) struct LimitPlan {
    pub rlimits: Vec<Rlimit>,
    pub cgroup: Option<Cgroup>,
    /// Whether `cgroup` is a spare's that its init already waits in.
    pub preattached: bool,
    /// The limits the next spares' cgroups should carry: this evaluation's.
    pub spare_limits: CgroupLimits,
    pub enforcement: Vec<LimitEnforcement>,
}

/// Processes of ours inside the evaluation besides the user's: init alone
/// (the runner, or the zygote, clones init into the evaluation's namespaces
/// and cgroups and stays outside them), both in the pids cgroup and for
/// RLIMIT_NPROC, which counts the user's processes in the evaluation's user
/// namespace.
const INIT_PROCESSES: u32 = 1;

/// The cgroup limits of a spare (its init inside) for `limits`.
pub(crate) fn spare_limits(limits: &Limits) -> CgroupLimits {
    let support = cgroup::support();
    CgroupLimits {
        memory: limits.memory.filter(|_| support.memory.is_some()),
        pids: limits
            .pids
            .filter(|_| support.pids.is_some())
            .map(|n| n + INIT_PROCESSES),
    }
}

fn rlimit(resource: libc::__rlimit_resource_t, value: u64) -> Rlimit {
    Rlimit {
        resource: resource as i32,
        soft: value,
        hard: value,
    }
}

/// Plans `limits` for an evaluation named `name`, creating its cgroups.
pub(crate) fn plan(
    limits: &Limits,
    name: &str,
    privileged: bool,
    spare: Option<&mut SpareCgroup>,
    shelf: &Shelf,
) -> Result<LimitPlan, ExecError> {
    let support = cgroup::support();
    let use_memory_cgroup = limits.memory.is_some() && support.memory.is_some();
    let use_pids_cgroup = limits.pids.is_some() && support.pids.is_some();
    let memory_max = limits.memory.filter(|_| use_memory_cgroup);
    let pids_max = limits
        .pids
        .filter(|_| use_pids_cgroup)
        .map(|n| n + INIT_PROCESSES);
    let prepare_err = |source| ExecError::Prepare {
        what: "the evaluation's cgroup".into(),
        source,
    };
    // A spare's init already waits in cgroups of its own: only the limits
    // are left to write (unlimited ones still give the tree's figures).
    let wanted = CgroupLimits {
        memory: memory_max,
        pids: pids_max,
    };
    let for_spares = spare_limits(limits);
    let preattached = match spare {
        Some(spare) => match spare.get_mut() {
            // Set while the spare still owns them: on an error they go with it.
            Some(cgroup) => {
                cgroup.set_limits(wanted).map_err(prepare_err)?;
                spare.take()
            }
            None => None,
        },
        None => None,
    };
    let preattached_flag = preattached.is_some();
    let cgroup = if preattached.is_some() {
        preattached
    } else if !(use_memory_cgroup || use_pids_cgroup) {
        None
    } else if let Some(mut cgroup) = shelf.take(use_memory_cgroup, use_pids_cgroup) {
        if let Err(e) = cgroup.set_limits(wanted) {
            cgroup.remove();
            return Err(prepare_err(e));
        }
        Some(cgroup)
    } else {
        match Cgroup::create(support, name, memory_max, pids_max) {
            Ok(c) => Some(c),
            // Unprivileged users see the mounts but may not create cgroups:
            // fall back to rlimits below.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => None,
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => None,
            Err(e) => return Err(prepare_err(e)),
        }
    };

    let mut plan = LimitPlan {
        rlimits: Vec::new(),
        cgroup: None,
        spare_limits: for_spares,
        preattached: preattached_flag,
        enforcement: Vec::new(),
    };
    let enforced = |limit, mechanism, detail: String| LimitEnforcement {
        limit,
        mechanism,
        detail,
    };
    if let Some(bytes) = limits.memory {
        if cgroup.as_ref().is_some_and(Cgroup::has_memory) {
            plan.enforcement.push(enforced(
                LimitKind::Memory,
                Mechanism::CgroupV1,
                format!("memory.limit_in_bytes={bytes}"),
            ));
        } else {
            plan.rlimits.push(rlimit(libc::RLIMIT_AS, bytes));
            plan.enforcement.push(enforced(
                LimitKind::Memory,
                Mechanism::Rlimit,
                format!("RLIMIT_AS={bytes} per process"),
            ));
        }
    }
    if let Some(n) = limits.pids {
        if cgroup.as_ref().is_some_and(Cgroup::has_pids) {
            plan.enforcement.push(enforced(
                LimitKind::Pids,
                Mechanism::CgroupV1,
                format!(
                    "pids.max={} (the evaluation's {n} plus its init)",
                    n + INIT_PROCESSES
                ),
            ));
        } else if privileged {
            return Err(ExecError::LimitUnavailable {
                limit: LimitKind::Pids,
                reason: "RLIMIT_NPROC is not enforced for root and no cgroup pids controller \
                         is available; mount the cgroup v1 pids controller, or run as an \
                         ordinary user"
                    .into(),
            });
        } else {
            let max = n + INIT_PROCESSES;
            plan.rlimits.push(rlimit(libc::RLIMIT_NPROC, max as u64));
            plan.enforcement.push(enforced(
                LimitKind::Pids,
                Mechanism::Rlimit,
                format!("RLIMIT_NPROC={max} in the evaluation's user namespace (the evaluation's {n} plus its init)"),
            ));
        }
    }
    if let Some(cpu) = limits.cpu_time {
        // RLIMIT_CPU counts whole seconds: round up so the limit is never
        // stricter than asked. SIGXCPU at the soft limit, SIGKILL a second later.
        let secs = cpu.as_secs() + u64::from(cpu.subsec_nanos() > 0);
        let secs = secs.max(1);
        plan.rlimits.push(Rlimit {
            resource: libc::RLIMIT_CPU as i32,
            soft: secs,
            hard: secs + 1,
        });
        plan.enforcement.push(enforced(
            LimitKind::CpuTime,
            Mechanism::Rlimit,
            format!("RLIMIT_CPU={secs}s per process"),
        ));
    }
    if let Some(bytes) = limits.file_size {
        plan.rlimits.push(rlimit(libc::RLIMIT_FSIZE, bytes));
        plan.enforcement.push(enforced(
            LimitKind::FileSize,
            Mechanism::Rlimit,
            format!("RLIMIT_FSIZE={bytes}"),
        ));
    }
    if let Some(n) = limits.open_files {
        plan.rlimits.push(rlimit(libc::RLIMIT_NOFILE, n));
        plan.enforcement.push(enforced(
            LimitKind::OpenFiles,
            Mechanism::Rlimit,
            format!("RLIMIT_NOFILE={n}"),
        ));
    }
    plan.cgroup = cgroup;
    Ok(plan)
}
