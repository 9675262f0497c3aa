//! Cgroups that executors which died without cleaning up left behind are
//! removed by the next executor of the machine.
//!
//! A binary of its own: the removal happens once per process, with the
//! first executor.

mod common;

use std::path::PathBuf;

use common::{executor, is_root};

/// A pid no process has: one that has just exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// This process's own cgroup directory in the v1 hierarchy of `controller`.
fn own_dir(controller: &str) -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == controller).then(|| {
            std::path::Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'))
        })
    })
}

#[test]
fn cgroups_a_killed_executor_left_are_removed_by_the_next() {
    if !is_root() {
        return; // no cgroups without root here
    }
    let dead = dead_pid();
    let mut left = Vec::new();
    for controller in ["memory", "pids"] {
        let Some(dir) = own_dir(controller) else {
            continue;
        };
        let stale = dir.join("sandbox").join(format!("{dead}-spare-0"));
        std::fs::create_dir_all(&stale).unwrap();
        left.push(stale);
    }
    // Another executor's live cgroup is left alone.
    let live = own_dir("memory").map(|dir| {
        let live = dir
            .join("sandbox")
            .join(format!("{}-live-0", std::process::id()));
        std::fs::create_dir_all(&live).unwrap();
        live
    });
    drop(executor());
    for stale in &left {
        assert!(!stale.exists(), "{} is still there", stale.display());
    }
    if let Some(live) = live {
        assert!(live.exists());
        std::fs::remove_dir(&live).unwrap();
    }
}
