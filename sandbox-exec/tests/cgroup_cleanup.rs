//! An executor leaves no cgroup behind: not its evaluations', not those of
//! spares it dropped unused, not the emptied ones it kept for reuse.
//!
//! A binary of its own: other tests' executors would hold cgroups of this
//! process while the check runs.

mod common;

use std::path::PathBuf;

use common::{executor, is_root, shell};
use sandbox_exec::{Limits, Status};

/// This process's cgroups (`<pid>-…` under the `sandbox` group next to our
/// own memory and pids cgroups) that exist.
fn our_cgroups() -> Vec<PathBuf> {
    let prefix = format!("{}-", std::process::id());
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut found = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        for controller in ["memory", "pids"] {
            if controllers.is_some_and(|c| c.split(',').any(|c| c == controller)) {
                let dir = std::path::Path::new("/sys/fs/cgroup")
                    .join(controller)
                    .join(path.unwrap_or("/").trim_start_matches('/'))
                    .join("sandbox");
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    if entry.file_name().to_string_lossy().starts_with(&prefix) {
                        found.push(entry.path());
                    }
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn no_cgroup_is_left_once_the_executor_is_dropped() {
    if !is_root() {
        return; // no cgroups without root here
    }
    let executor = executor();
    let limits = Limits {
        memory: Some(64 << 20),
        pids: Some(16),
        ..Limits::default()
    };
    for _ in 0..4 {
        let outcome = executor
            .evaluate(shell("true").limits(limits.clone()))
            .await
            .unwrap();
        assert_eq!(outcome.status, Status::Exited { code: 0 });
    }
    // Give the emptied cgroups time to be kept for reuse.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !our_cgroups().is_empty(),
        "no cgroups while the executor lives: the check below would prove nothing"
    );
    // Switching the number of spares drops the waiting one unused.
    for _ in 0..3 {
        executor
            .evaluate(shell("true").limits(limits.clone()))
            .await
            .unwrap();
        executor.set_prewarm(0);
        executor.set_prewarm(1);
    }
    drop(executor);
    assert_eq!(our_cgroups(), Vec::<PathBuf>::new());
}
