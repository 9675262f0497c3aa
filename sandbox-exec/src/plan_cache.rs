//! The last Linux plan an executor derived, reused while nothing it was
//! derived from has changed.
//!
//! Deriving a plan matches every rule of the policy, the mandatory
//! protections included, against each writable root and protected path:
//! 60 to 150 µs for a one-root policy on these machines, on the
//! evaluation's path. An agent typically runs many commands under one
//! policy. The plan is a function of the policy and of the answers the
//! filesystem gave ([`FsFacts`]), so asking the same questions again and
//! getting the same answers (the system calls alone) proves the last plan
//! is the one a new derivation would give.

use std::sync::Mutex;

use sandbox_policy::{FsFacts, FsView, LinuxPlan, Policy};

/// One executor's last plan.
#[derive(Debug, Default)]
pub(crate) struct PlanCache {
    last: Mutex<Option<Derived>>,
}

#[derive(Debug)]
struct Derived {
    policy: Policy,
    facts: FsFacts,
    plan: LinuxPlan,
}

impl PlanCache {
    /// `policy`'s plan for the filesystem `fs` shows now.
    pub fn plan(&self, policy: &Policy, fs: &dyn FsView) -> LinuxPlan {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(derived) = last.as_ref() {
            if derived.policy == *policy && derived.facts.hold(fs) {
                return derived.plan.clone();
            }
        }
        let (plan, facts) = policy.linux_plan_and_facts(fs);
        *last = Some(Derived {
            policy: policy.clone(),
            facts,
            plan: plan.clone(),
        });
        plan
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use sandbox_policy::{Context, MemFs};

    use super::*;

    fn policy(fs: &MemFs, allow: &str) -> Policy {
        let context = Context {
            home: PathBuf::from("/home/user"),
            cwd: PathBuf::from("/home/user/project"),
        };
        Policy::builder(context).allow(allow).build(fs).unwrap().0
    }

    #[test]
    fn the_same_policy_on_the_same_filesystem_gets_the_same_plan() {
        let fs = MemFs::new().dir("/home/user/project/src");
        let policy = policy(&fs, "Edit(/home/user/project)");
        let cache = PlanCache::default();
        let first = cache.plan(&policy, &fs);
        assert_eq!(cache.plan(&policy, &fs), first);
        assert_eq!(first, policy.linux_plan(&fs));
    }

    #[test]
    fn the_plan_follows_the_filesystem() {
        let fs = MemFs::new().dir("/home/user/project/src");
        let policy = policy(&fs, "Edit(/home/user/project)");
        let cache = PlanCache::default();
        let before = cache.plan(&policy, &fs);
        // `.git` appears: protected as it is, no longer by a stand-in.
        let now = fs.dir("/home/user/project/.git");
        let after = cache.plan(&policy, &now);
        assert_ne!(after, before);
        assert_eq!(after, policy.linux_plan(&now));
    }

    #[test]
    fn another_policy_gets_its_own_plan() {
        let fs = MemFs::new()
            .dir("/home/user/project/src")
            .dir("/home/user/other");
        let cache = PlanCache::default();
        let project = policy(&fs, "Edit(/home/user/project)");
        let other = policy(&fs, "Edit(/home/user/other)");
        cache.plan(&project, &fs);
        assert_eq!(cache.plan(&other, &fs), other.linux_plan(&fs));
    }
}
