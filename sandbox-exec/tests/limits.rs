//! Resource limits: each is enforced by the kernel, reported with its
//! mechanism, and classified with its own status.

mod common;

use std::time::Duration;

use common::{executor, is_root, scratch, shell};
use sandbox_core::{LimitKind, Mechanism};
use sandbox_exec::{Limits, Status};

fn mechanism(outcome: &sandbox_exec::Outcome, limit: LimitKind) -> Mechanism {
    outcome
        .limits
        .iter()
        .find(|e| e.limit == limit)
        .unwrap_or_else(|| panic!("no enforcement reported for {limit}"))
        .mechanism
}

#[tokio::test]
async fn a_memory_hog_hits_memory_limit() {
    // `tail` keeps the last line in memory, and zeros have no newline: it
    // grows until refused.
    let request = shell("head -c 1000000000 /dev/zero | tail -n 1 >/dev/null").limits(Limits {
        memory: Some(64 << 20),
        ..Limits::default()
    });
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(
        outcome.status,
        Status::MemoryLimit,
        "{}",
        outcome.output_text()
    );
    let expected = if is_root() {
        Mechanism::CgroupV1
    } else {
        Mechanism::Rlimit
    };
    assert_eq!(mechanism(&outcome, LimitKind::Memory), expected);
}

#[tokio::test]
async fn a_small_program_runs_normally_under_a_memory_limit() {
    let request = shell("echo fine").limits(Limits {
        memory: Some(64 << 20),
        ..Limits::default()
    });
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.status, Status::Exited { code: 0 });
}

#[tokio::test]
async fn a_busy_loop_hits_cpu_limit() {
    let request = shell("while :; do :; done")
        .timeout(Duration::from_secs(20))
        .limits(Limits {
            cpu_time: Some(Duration::from_secs(1)),
            ..Limits::default()
        });
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.status, Status::CpuLimit);
    // getrusage's split of CPU time is sampled, so it may read a little under
    // the limit the kernel enforced on exact run time.
    let cpu = outcome.usage.cpu_user + outcome.usage.cpu_sys;
    assert!(cpu >= Duration::from_millis(700), "cpu {cpu:?}");
    assert_eq!(mechanism(&outcome, LimitKind::CpuTime), Mechanism::Rlimit);
}

#[tokio::test]
async fn a_sleeping_command_is_not_charged_cpu() {
    let request = shell("sleep 0.3").limits(Limits {
        cpu_time: Some(Duration::from_secs(1)),
        ..Limits::default()
    });
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.status, Status::Exited { code: 0 });
}

#[tokio::test]
async fn a_large_write_hits_file_size_limit() {
    let dir = scratch();
    let file = dir.path().join("big");
    let request =
        shell(&format!("head -c 10000000 /dev/zero > {}", file.display())).limits(Limits {
            file_size: Some(1 << 20),
            ..Limits::default()
        });
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.status, Status::FileSizeLimit);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 1 << 20);
}

#[tokio::test]
async fn a_fork_storm_is_held_to_the_pids_limit() {
    let request = shell("for i in $(seq 1 40); do sleep 2 & done; wait")
        .timeout(Duration::from_secs(20))
        .limits(Limits {
            pids: Some(8),
            ..Limits::default()
        });
    let outcome = executor().evaluate(request).await.unwrap();
    let text = outcome.output_text();
    assert!(text.contains("fork"), "forks were not refused: {text}");
    if is_root() {
        // The cgroup counts refused forks, so the verdict is certain.
        assert_eq!(mechanism(&outcome, LimitKind::Pids), Mechanism::CgroupV1);
        assert_eq!(outcome.status, Status::PidsLimit);
    } else {
        // RLIMIT_NPROC refuses forks (EAGAIN) but counts nothing: the status is
        // the shell's own failure.
        assert_eq!(mechanism(&outcome, LimitKind::Pids), Mechanism::Rlimit);
        assert!(!outcome.status.success());
    }
}

#[tokio::test]
async fn the_open_files_limit_is_set_for_the_command() {
    let request = shell("ulimit -n").limits(Limits {
        open_files: Some(32),
        ..Limits::default()
    });
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.output_text(), "32\n");
    assert_eq!(mechanism(&outcome, LimitKind::OpenFiles), Mechanism::Rlimit);
}

#[tokio::test]
async fn a_zero_limit_is_refused_with_a_clear_error() {
    let request = shell("true").limits(Limits {
        pids: Some(0),
        ..Limits::default()
    });
    let err = executor().evaluate(request).await.unwrap_err();
    assert!(err.to_string().contains("pids limit is zero"), "{err}");
}

#[tokio::test]
async fn a_plain_signal_is_not_mistaken_for_a_limit() {
    let request = shell("kill -TERM $$").limits(Limits {
        memory: Some(64 << 20),
        cpu_time: Some(Duration::from_secs(5)),
        ..Limits::default()
    });
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.status, Status::Signaled { signal: 15 });
    assert_eq!(outcome.exit_code(), 143);
}

/// The cgroups of evaluation `id` of this process that still exist
/// (`<pid>-<id>` under the `sandbox` group next to our own memory and pids
/// cgroups).
fn cgroups_of(id: &sandbox_core::EvalId) -> Vec<std::path::PathBuf> {
    let name = format!("{}-{}", std::process::id(), id.0);
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
                    .join("sandbox")
                    .join(&name);
                if dir.exists() {
                    found.push(dir);
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn an_evaluations_cgroups_are_removed_by_the_time_its_executor_is_dropped() {
    if !is_root() {
        return; // rlimits only: no cgroup to remove
    }
    let executor = executor();
    let limits = Limits {
        memory: Some(64 << 20),
        pids: Some(16),
        ..Limits::default()
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let outcome = executor
            .evaluate(shell("true").limits(limits.clone()))
            .await
            .unwrap();
        assert_eq!(outcome.status, Status::Exited { code: 0 });
        assert_eq!(mechanism(&outcome, LimitKind::Memory), Mechanism::CgroupV1);
        ids.push(outcome.id);
    }
    drop(executor);
    for id in &ids {
        assert_eq!(cgroups_of(id), Vec::<std::path::PathBuf>::new());
    }
}

/// This process's spare cgroups (`<pid>-spare-<n>`) that still exist.
fn spare_cgroups() -> Vec<std::path::PathBuf> {
    let prefix = format!("{}-spare-", std::process::id());
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
async fn spares_dropped_unused_leave_no_cgroups_once_the_executor_is_dropped() {
    if !is_root() {
        return; // no cgroups without root here
    }
    let executor = executor();
    let limits = Limits {
        memory: Some(64 << 20),
        ..Limits::default()
    };
    // Switching kinds drops the spare prepared for the other kind unused.
    for request in [shell("true"), shell("true"), shell("true")] {
        executor
            .evaluate(request.limits(limits.clone()))
            .await
            .unwrap();
        executor.set_prewarm(0);
        executor.set_prewarm(1);
    }
    drop(executor);
    // Other tests of this binary may still hold spares of their own: only
    // this process's orphans are checked, and they are all gone.
    let left = spare_cgroups();
    assert!(
        left.iter()
            .all(|dir| std::fs::read_to_string(dir.join("cgroup.procs"))
                .map(|p| !p.trim().is_empty())
                .unwrap_or(true)),
        "empty spare cgroups left behind: {left:?}"
    );
}
