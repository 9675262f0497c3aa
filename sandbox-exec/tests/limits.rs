//! Resource limits: each is enforced by the kernel, reported with its
//! mechanism, and classified with its own status.

mod common;

use std::time::Duration;

use common::{executor, is_root, scratch, shell};
use sandbox_core::{LimitKind, Mechanism};
use sandbox_exec::{Limits, Outcome, Status};

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
async fn the_pids_limit_allows_exactly_that_many_processes() {
    // The shell and three children are four processes; init, ours, is not
    // counted against the evaluation (cgroup or RLIMIT_NPROC alike).
    let limits = Limits {
        pids: Some(4),
        ..Limits::default()
    };
    let fits = shell("sleep 0.3 & sleep 0.3 & sleep 0.3 & wait").limits(limits.clone());
    let outcome = executor().evaluate(fits).await.unwrap();
    assert_eq!(
        outcome.status,
        Status::Exited { code: 0 },
        "{}",
        outcome.output_text()
    );
    let over = shell("sleep 0.3 & sleep 0.3 & sleep 0.3 & sleep 0.3 & wait").limits(limits);
    let outcome = executor().evaluate(over).await.unwrap();
    let text = outcome.output_text();
    assert!(
        text.contains("fork"),
        "a fifth process was not refused: {text}"
    );
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

/// The memory cgroup an evaluation ran in, as its first output line says.
fn memory_cgroup(outcome: &sandbox_exec::Outcome) -> String {
    let text = outcome.output_text();
    let line = text.lines().next().unwrap_or_default();
    assert!(line.contains(":memory:"), "no cgroup line: {text}");
    line.to_string()
}

/// Runs `first`, then evaluations of `next` until one runs in the cgroups
/// `first` ran in (an executor keeps emptied cgroups for reuse), and returns
/// both outcomes. Both commands print their memory cgroup first.
async fn reused_after(first: &str, next: &str, limits: Limits) -> (Outcome, Outcome) {
    let executor = executor();
    // Without spares each evaluation takes its cgroups itself, from the
    // emptied ones when there are any.
    executor.set_prewarm(0);
    let cgroup_line = "grep memory /proc/self/cgroup; ";
    let first = executor
        .evaluate(shell(&format!("{cgroup_line}{first}")).limits(limits.clone()))
        .await
        .unwrap();
    let used = memory_cgroup(&first);
    // The first evaluation's cgroups are emptied off its outcome's path.
    for _ in 0..40 {
        let outcome = executor
            .evaluate(shell(&format!("{cgroup_line}{next}")).limits(limits.clone()))
            .await
            .unwrap();
        if memory_cgroup(&outcome) == used {
            return (first, outcome);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cgroups {used} were never reused");
}

/// Runs `first`, which hits a limit and ends as `status`, then `exit 3` in
/// the same cgroups: the second's verdict is its own exit, not the limit
/// the first hit.
async fn next_is_judged_alone(first: &str, status: Status, limits: Limits) {
    let (first, next) = reused_after(first, "exit 3", limits).await;
    assert_eq!(first.status, status, "{}", first.output_text());
    let own = Status::Exited { code: 3 };
    assert_eq!(next.status, own, "{}", next.output_text());
}

#[tokio::test]
async fn an_oom_kill_is_not_held_against_the_next_evaluation_in_the_same_cgroups() {
    if !is_root() {
        return; // no cgroups without root here
    }
    let limits = Limits {
        memory: Some(64 << 20),
        ..Limits::default()
    };
    let hog = "head -c 1000000000 /dev/zero | tail -n 1 >/dev/null";
    next_is_judged_alone(hog, Status::MemoryLimit, limits).await;
}

#[tokio::test]
async fn refused_forks_are_not_held_against_the_next_evaluation_in_the_same_cgroups() {
    if !is_root() {
        return; // no cgroups without root here
    }
    let limits = Limits {
        pids: Some(8),
        memory: Some(256 << 20),
        ..Limits::default()
    };
    let storm = "for i in $(seq 1 40); do sleep 0.2 & done; wait";
    next_is_judged_alone(storm, Status::PidsLimit, limits).await;
}

#[tokio::test]
async fn the_peak_memory_in_reused_cgroups_is_the_evaluations_own() {
    if !is_root() {
        return; // no cgroups without root here
    }
    let limits = Limits {
        memory: Some(256 << 20),
        ..Limits::default()
    };
    // 64 MiB held by one process at once.
    let big = "head -c 67108864 /dev/zero | tail -n 1 >/dev/null";
    let (first, next) = reused_after(big, "true", limits).await;
    let peak = |o: &Outcome| o.usage.peak_memory_bytes.unwrap_or(0);
    assert!(peak(&first) >= 64 << 20, "first peak {}", peak(&first));
    assert!(peak(&next) < 16 << 20, "next peak {}", peak(&next));
}
