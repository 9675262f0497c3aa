//! Turning how the command ended, and what the limits counted, into a [`Status`].

use std::time::Duration;

use sandbox_core::{Limits, Mechanism, Status, Termination};

/// Evidence about one finished command.
#[derive(Debug, Clone, Default)]
pub(crate) struct Evidence {
    /// Processes the cgroup's OOM killer killed.
    pub oom_kills: u64,
    /// Forks the cgroup's pids limit refused.
    pub pids_refused: u64,
    /// How the memory limit was enforced, if it was set.
    pub memory_mechanism: Option<Mechanism>,
    /// CPU time used by the command's processes.
    pub cpu: Duration,
    /// Largest resident set of one process, in bytes.
    pub max_rss: Option<u64>,
}

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;
const SIGXFSZ: i32 = 25;
const SIGABRT: i32 = 6;
const SIGBUS: i32 = 7;
const SIGSEGV: i32 = 11;

/// The status of a command that ran to an end the kernel reported.
pub(crate) fn classify(termination: Termination, limits: &Limits, evidence: &Evidence) -> Status {
    let failed = termination != Termination::Exited(0);
    if evidence.oom_kills > 0 {
        return Status::MemoryLimit;
    }
    // A shell (or any wrapper) whose child died of signal N exits 128+N; the
    // limits' signals are read through that convention too, so that
    // `sh -c 'big-writer > file'` is a file-size verdict like `big-writer` is.
    let signal = match termination {
        Termination::Signaled(signal) => Some(signal),
        Termination::Exited(code) if (129..160).contains(&code) => Some(code - 128),
        Termination::Exited(_) => None,
    };
    match signal {
        Some(SIGXCPU) if limits.cpu_time.is_some() => return Status::CpuLimit,
        // The hard RLIMIT_CPU is a SIGKILL one second after the soft SIGXCPU,
        // for programs that catch or ignore SIGXCPU.
        Some(SIGKILL) if limits.cpu_time.is_some_and(|limit| evidence.cpu >= limit) => {
            return Status::CpuLimit
        }
        Some(SIGXFSZ) if limits.file_size.is_some() => return Status::FileSizeLimit,
        _ => {}
    }
    if failed && evidence.pids_refused > 0 {
        return Status::PidsLimit;
    }
    // RLIMIT_AS makes allocations fail rather than counting anything, so with
    // an rlimit the verdict is inferred: the command failed the way programs fail
    // when memory runs out (abort, segfault, or an error exit) after growing to
    // at least half its limit.
    if let (Some(limit), Some(Mechanism::Rlimit), Some(rss)) =
        (limits.memory, evidence.memory_mechanism, evidence.max_rss)
    {
        let out_of_memory_end = matches!(
            termination,
            Termination::Signaled(SIGABRT | SIGBUS | SIGSEGV | SIGKILL) | Termination::Exited(1..)
        );
        if out_of_memory_end && rss >= limit / 2 {
            return Status::MemoryLimit;
        }
    }
    match termination {
        Termination::Exited(code) => Status::Exited { code },
        Termination::Signaled(signal) => Status::Signaled { signal },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            memory: Some(100 << 20),
            cpu_time: Some(Duration::from_secs(1)),
            pids: Some(10),
            file_size: Some(1 << 20),
            open_files: None,
        }
    }

    #[test]
    fn a_plain_exit_is_exited() {
        let s = classify(Termination::Exited(3), &limits(), &Evidence::default());
        assert_eq!(s, Status::Exited { code: 3 });
    }

    #[test]
    fn an_oom_kill_is_memory_limit_whatever_the_exit() {
        let e = Evidence {
            oom_kills: 1,
            ..Evidence::default()
        };
        assert_eq!(
            classify(Termination::Exited(1), &limits(), &e),
            Status::MemoryLimit
        );
    }

    #[test]
    fn sigxcpu_is_cpu_limit_and_so_is_the_hard_limit_kill() {
        let e = Evidence {
            cpu: Duration::from_millis(2010),
            ..Evidence::default()
        };
        assert_eq!(
            classify(Termination::Signaled(24), &limits(), &e),
            Status::CpuLimit
        );
        assert_eq!(
            classify(Termination::Signaled(9), &limits(), &e),
            Status::CpuLimit
        );
    }

    #[test]
    fn a_shell_reporting_a_limit_signal_as_128_plus_n_counts_as_the_signal() {
        let e = Evidence::default();
        assert_eq!(
            classify(Termination::Exited(153), &limits(), &e),
            Status::FileSizeLimit
        );
        assert_eq!(
            classify(Termination::Exited(152), &limits(), &e),
            Status::CpuLimit
        );
        let none = Limits::default();
        assert_eq!(
            classify(Termination::Exited(153), &none, &e),
            Status::Exited { code: 153 }
        );
    }

    #[test]
    fn a_kill_before_the_cpu_limit_is_a_plain_signal() {
        let e = Evidence {
            cpu: Duration::from_millis(10),
            ..Evidence::default()
        };
        assert_eq!(
            classify(Termination::Signaled(9), &limits(), &e),
            Status::Signaled { signal: 9 }
        );
    }

    #[test]
    fn sigxfsz_is_file_size_limit() {
        let s = classify(Termination::Signaled(25), &limits(), &Evidence::default());
        assert_eq!(s, Status::FileSizeLimit);
    }

    #[test]
    fn refused_forks_and_a_failure_are_pids_limit() {
        let e = Evidence {
            pids_refused: 3,
            ..Evidence::default()
        };
        assert_eq!(
            classify(Termination::Exited(2), &limits(), &e),
            Status::PidsLimit
        );
        assert_eq!(
            classify(Termination::Exited(0), &limits(), &e),
            Status::Exited { code: 0 }
        );
    }

    #[test]
    fn an_rlimit_memory_failure_after_growing_is_memory_limit() {
        let e = Evidence {
            memory_mechanism: Some(Mechanism::Rlimit),
            max_rss: Some(80 << 20),
            ..Evidence::default()
        };
        assert_eq!(
            classify(Termination::Exited(1), &limits(), &e),
            Status::MemoryLimit
        );
    }

    #[test]
    fn a_small_failing_program_under_an_rlimit_is_not_memory_limit() {
        let e = Evidence {
            memory_mechanism: Some(Mechanism::Rlimit),
            max_rss: Some(4 << 20),
            ..Evidence::default()
        };
        assert_eq!(
            classify(Termination::Exited(1), &limits(), &e),
            Status::Exited { code: 1 }
        );
    }

    #[test]
    fn signals_without_a_matching_limit_stay_signals() {
        let none = Limits::default();
        assert_eq!(
            classify(Termination::Signaled(24), &none, &Evidence::default()),
            Status::Signaled { signal: 24 }
        );
    }
}
