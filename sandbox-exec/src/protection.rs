//! Which protections a confined evaluation gets on this machine, decided before
//! anything starts: the executor fails closed, refusing an evaluation whose
//! policy needs a protection the kernel cannot apply unless the request
//! accepts going without it ([`EvalRequest::accept_weaker`]).
//!
//! The decision ([`decide`]) is a pure function of what the kernel supports
//! ([`Support`], probed once per process) and the request, so every branch is
//! tested without a kernel that lacks Landlock or seccomp.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use sandbox_core::{EvalRequest, Protection, Weakening};

use sandbox_policy::{LinuxPlan, MountOp, Policy};
use tracing::debug;

use crate::protocol::{BridgePorts, Confinement, LandlockMode};
use crate::ExecError;

/// The first Landlock ABI that restricts connecting to Unix sockets by path.
const LANDLOCK_UNIX_ABI: u32 = 9;

/// What the kernel supports, as far as confinement is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Support {
    /// The Landlock ABI, or why there is none.
    pub landlock: Result<u32, String>,
    /// Whether seccomp filters can be installed.
    pub seccomp: bool,
}

impl Support {
    /// This machine, probed on first use.
    pub fn here() -> &'static Support {
        static SUPPORT: OnceLock<Support> = OnceLock::new();
        SUPPORT.get_or_init(|| {
            let landlock = crate::platform::landlock_support();
            let support = Support {
                landlock: landlock
                    .abi
                    .ok_or_else(|| landlock.unavailable_reason.unwrap_or_default()),
                seccomp: crate::platform::seccomp_support().available,
            };
            debug!(?support, "kernel protections probed");
            support
        })
    }
}

/// What to apply, and what the outcome must say is weaker than asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub landlock: LandlockMode,
    pub seccomp: bool,
    pub weakened: Vec<Weakening>,
}

/// Decides for a policy that allows (`unix_sockets`) or forbids Unix sockets.
pub(crate) fn decide(
    support: &Support,
    unix_sockets: bool,
    accept: &BTreeSet<Protection>,
) -> Result<Decision, ExecError> {
    let mut missing = Vec::new();
    let mut weakened = Vec::new();
    let landlock = match &support.landlock {
        Ok(abi) => {
            if unix_sockets && *abi < LANDLOCK_UNIX_ABI {
                weakened.push(Weakening {
                    protection: Protection::Landlock,
                    missing: false,
                    detail: format!(
                        "Landlock ABI {abi} cannot restrict connecting to Unix sockets by \
                         path (ABI {LANDLOCK_UNIX_ABI}, Linux 7.1+): since the policy allows \
                         Unix sockets, every Unix socket visible in the sandbox can be connected to"
                    ),
                });
            }
            LandlockMode::Apply { required: true }
        }
        Err(reason) => {
            missing.push(Weakening {
                protection: Protection::Landlock,
                missing: true,
                detail: format!("Landlock is unavailable: {reason}"),
            });
            LandlockMode::Skip
        }
    };
    if !support.seccomp {
        missing.push(Weakening {
            protection: Protection::Seccomp,
            missing: true,
            detail: "this kernel cannot install seccomp filters (CONFIG_SECCOMP_FILTER)".into(),
        });
    }
    let refused: Vec<Weakening> = missing
        .iter()
        .filter(|w| !accept.contains(&w.protection))
        .cloned()
        .collect();
    if !refused.is_empty() {
        return Err(ExecError::WeakerConfinement { missing: refused });
    }
    weakened.extend(missing);
    Ok(Decision {
        landlock,
        seccomp: support.seccomp,
        weakened,
    })
}

/// The confinement for `request` on this machine (`None` for an unrestricted
/// policy), and what the outcome must report as weakened.
pub(crate) fn confinement(
    request: &EvalRequest,
    plans: &crate::plan_cache::PlanCache,
) -> Result<(Option<Confinement>, Vec<Weakening>), ExecError> {
    let policy: &Policy = &request.policy;
    if policy.is_unrestricted() {
        return Ok((None, Vec::new()));
    }
    let mut plan = plans.plan(policy, &crate::placeholder::HostFsWithoutStandIns);
    for dir in crate::evaluation::working_dir(request)
        .iter()
        .chain(&request.visible)
    {
        keep_visible(&mut plan, policy, dir);
    }
    for gap in &plan.gaps {
        debug!(rule = ?gap.rule, reason = %gap.reason, "policy not enforced exactly");
    }
    let decision = decide(
        Support::here(),
        plan.seccomp.allow_unix_sockets,
        &request.accept_weaker,
    )?;
    let seccomp = if decision.seccomp {
        crate::seccomp::cached_programs().map_err(|e| ExecError::RunnerFailed {
            reason: e.to_string(),
        })?
    } else {
        Vec::new()
    };
    Ok((
        Some(Confinement {
            plan,
            landlock: decision.landlock,
            seccomp,
            watch_reads: crate::fsaccess::watches_reads(&policy.filesystem),
            bridge: policy.network.allows_any().then(|| BridgePorts {
                http: policy.network.http_proxy_port.unwrap_or(DEFAULT_HTTP_PORT),
                socks: policy
                    .network
                    .socks_proxy_port
                    .unwrap_or(DEFAULT_SOCKS_PORT),
            }),
        }),
        decision.weakened,
    ))
}

/// The sandbox's own loopback port of the HTTP proxy (its network namespace
/// is its own, so a fixed port cannot collide with the host's).
pub(crate) const DEFAULT_HTTP_PORT: u16 = 3128;
/// The sandbox's own loopback port of the SOCKS5 proxy.
pub(crate) const DEFAULT_SOCKS_PORT: u16 = 1080;

/// The places the sandbox replaces with private, empty ones.
const PRIVATE: &[&str] = &["/tmp", "/dev"];

/// Binds a working directory (or another directory the request keeps
/// visible) the policy lets the evaluation read back into the private `/tmp`
/// (or `/dev/shm`), read-only, so that `--cwd /tmp/x` means the host's
/// `/tmp/x` as it does unconfined. Inserted before any
/// operation beneath it, which then still masks or re-binds its part.
fn keep_visible(plan: &mut LinuxPlan, policy: &Policy, cwd: &Path) {
    let private = PRIVATE
        .iter()
        .any(|p| cwd.starts_with(p) && cwd != Path::new(p));
    let covered = plan.mounts.iter().any(|op| cwd.starts_with(op.path()));
    if !private || covered || !policy.filesystem.can_read(cwd) || !cwd.is_dir() {
        return;
    }
    let at = plan
        .mounts
        .iter()
        .position(|op| op.path().starts_with(cwd))
        .unwrap_or(plan.mounts.len());
    plan.mounts.insert(
        at,
        MountOp::ReadOnly {
            path: cwd.to_path_buf(),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Support {
        Support {
            landlock: Ok(7),
            seccomp: true,
        }
    }

    fn none() -> BTreeSet<Protection> {
        BTreeSet::new()
    }

    #[test]
    fn a_fully_capable_kernel_applies_everything_and_reports_nothing() {
        let d = decide(&full(), false, &none()).unwrap();
        assert_eq!(d.landlock, LandlockMode::Apply { required: true });
        assert!(d.seccomp);
        assert!(d.weakened.is_empty());
    }

    #[test]
    fn missing_landlock_is_refused_with_the_reason() {
        let support = Support {
            landlock: Err("disabled at boot (lsm=)".into()),
            ..full()
        };
        let err = decide(&support, false, &none()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("landlock not applied: Landlock is unavailable: disabled at boot"));
        assert!(text.contains("--accept-weaker landlock"), "{text}");
    }

    #[test]
    fn missing_landlock_runs_when_accepted_and_is_reported() {
        let support = Support {
            landlock: Err("not built into this kernel".into()),
            ..full()
        };
        let d = decide(&support, false, &BTreeSet::from([Protection::Landlock])).unwrap();
        assert_eq!(d.landlock, LandlockMode::Skip);
        assert_eq!(d.weakened.len(), 1);
        assert!(d.weakened[0].missing);
    }

    #[test]
    fn accepting_landlock_does_not_accept_a_missing_seccomp() {
        let support = Support {
            landlock: Err("not built into this kernel".into()),
            seccomp: false,
        };
        let err = decide(&support, false, &BTreeSet::from([Protection::Landlock])).unwrap_err();
        match err {
            ExecError::WeakerConfinement { missing } => {
                assert_eq!(missing.len(), 1);
                assert_eq!(missing[0].protection, Protection::Seccomp);
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn an_old_landlock_abi_weakens_allowed_unix_sockets_only() {
        assert!(decide(&full(), false, &none()).unwrap().weakened.is_empty());
        let d = decide(&full(), true, &none()).unwrap();
        assert_eq!(d.weakened.len(), 1);
        assert!(!d.weakened[0].missing);
        let newer = Support {
            landlock: Ok(9),
            ..full()
        };
        assert!(decide(&newer, true, &none()).unwrap().weakened.is_empty());
    }
}
