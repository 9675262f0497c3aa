//! Landlock on top of the mount plan: read and execute beneath `/`, everything
//! beneath the writable roots and the sandbox's own `/tmp`, `/dev/shm` and
//! `/dev`; signals and abstract Unix sockets scoped to the sandbox.
//!
//! The mounts already give each path its meaning; Landlock is the second,
//! independent lock: a write that some mount would let through (a bug of ours,
//! a bind the kernel resolved differently) is still refused unless it lands
//! beneath a writable root.
//!
//! The ruleset asks for everything this crate knows (ABI 10) in best-effort
//! mode, so the kernel enforces the most it can. The executor has already
//! worked out from the probed ABI what that leaves out and put it in the
//! outcome; here the only question is whether anything was enforced at all.

use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    Scope, ABI,
};
use sandbox_policy::{LandlockAccess, LinuxPlan};

/// The newest ABI this code asks for; older kernels get what they support.
const WANTED: ABI = ABI::V10;

/// The sandbox's own writable places, which are not in the policy.
const PRIVATE_WRITABLE: &[&str] = &["/tmp", "/dev/shm", "/dev"];

/// Restricts init and everything it will start. Fails when `required` and the
/// kernel enforces none of it.
pub(super) fn restrict(plan: &LinuxPlan, required: bool) -> Result<(), String> {
    let read = AccessFs::from_read(WANTED);
    let all = AccessFs::from_all(WANTED);
    let mut readable: Vec<PathBuf> = vec!["/".into()];
    let mut writable: Vec<PathBuf> = PRIVATE_WRITABLE.iter().map(PathBuf::from).collect();
    for rule in &plan.landlock.rules {
        match rule.access {
            LandlockAccess::ReadExecute => readable.push(rule.path.clone()),
            LandlockAccess::ReadWrite => writable.push(rule.path.clone()),
        }
    }
    let sockets: Vec<&Path> = plan
        .seccomp
        .unix_socket_paths
        .iter()
        .map(PathBuf::as_path)
        .collect();
    let fail = |e: landlock::RulesetError| format!("cannot apply Landlock: {e}");
    let mut ruleset = Ruleset::default()
        .handle_access(all)
        .map_err(fail)?
        .scope(Scope::from_all(WANTED))
        .map_err(fail)?
        .create()
        .map_err(fail)?
        .add_rules(path_beneath_rules(&readable, read))
        .map_err(fail)?
        .add_rules(path_beneath_rules(&writable, all))
        .map_err(fail)?;
    if !sockets.is_empty() {
        ruleset = ruleset
            .add_rules(path_beneath_rules(&sockets, AccessFs::ResolveUnix))
            .map_err(fail)?;
    }
    let status = ruleset.restrict_self().map_err(fail)?;
    if required && status.ruleset == RulesetStatus::NotEnforced {
        return Err(format!(
            "Landlock is required but the kernel enforced none of it ({:?})",
            status.landlock
        ));
    }
    Ok(())
}
