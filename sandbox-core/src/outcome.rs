use std::borrow::Cow;
use std::time::Duration;

use crate::{EvalId, LimitEnforcement, TruncateMode, Violation, Weakening};

/// How an evaluation ended, classified precisely.
///
/// Serialized as an object tagged by `kind`, e.g. `{"kind":"exited","code":0}` or
/// `{"kind":"timed_out"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Status {
    /// The command exited on its own with this code.
    Exited {
        /// Exit code, 0–255.
        code: i32,
    },
    /// The command was killed by a signal that no limit explains.
    Signaled {
        /// Signal number.
        signal: i32,
    },
    /// The wall-clock timeout expired; the whole process tree was killed.
    TimedOut,
    /// The evaluation ran out of its memory limit.
    MemoryLimit,
    /// The evaluation used up its CPU-time limit.
    CpuLimit,
    /// The output passed the output limit and the request asked to stop there
    /// ([`OutputLimitAction::Kill`](crate::OutputLimitAction::Kill)); the tree was killed.
    OutputLimit,
    /// A file write passed the file-size limit (`SIGXFSZ`).
    FileSizeLimit,
    /// The command failed after the process limit refused it a new process.
    PidsLimit,
    /// A setup step failed; the command did not run.
    SetupFailed {
        /// Index of the failing step.
        step: usize,
        /// Its exit code, when it exited.
        code: Option<i32>,
        /// The signal that killed it, when it was killed.
        signal: Option<i32>,
    },
    /// The command could not be started (not found, not executable, …).
    SpawnFailed {
        /// What went wrong, with the program name.
        reason: String,
        /// The shell-convention exit code: 127 not found, 126 not executable,
        /// 125 anything else.
        code: i32,
    },
    /// The runner died or the channel to it broke before the evaluation ended.
    NoConnection {
        /// What broke.
        reason: String,
    },
}

impl Status {
    /// The snake_case name of the variant, as in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Exited { .. } => "exited",
            Status::Signaled { .. } => "signaled",
            Status::TimedOut => "timed_out",
            Status::MemoryLimit => "memory_limit",
            Status::CpuLimit => "cpu_limit",
            Status::OutputLimit => "output_limit",
            Status::FileSizeLimit => "file_size_limit",
            Status::PidsLimit => "pids_limit",
            Status::SetupFailed { .. } => "setup_failed",
            Status::SpawnFailed { .. } => "spawn_failed",
            Status::NoConnection { .. } => "no_connection",
        }
    }

    /// True for the statuses that say a resource limit ended the evaluation.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Status::MemoryLimit
                | Status::CpuLimit
                | Status::OutputLimit
                | Status::FileSizeLimit
                | Status::PidsLimit
        )
    }

    /// True only for a command that exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, Status::Exited { code: 0 })
    }
}

/// How the command's process ended, as the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// Byte counts per stream, counted in full even when the output was truncated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamCounts {
    /// Bytes the evaluation wrote to standard output.
    pub stdout_bytes: u64,
    /// Bytes the evaluation wrote to standard error.
    pub stderr_bytes: u64,
}

impl StreamCounts {
    /// Both streams together.
    pub fn total(&self) -> u64 {
        self.stdout_bytes + self.stderr_bytes
    }
}

/// Facts about a truncated output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Truncation {
    /// Bytes of evaluation output kept (without the marker).
    pub kept_bytes: u64,
    /// Bytes the evaluation wrote in all.
    pub total_bytes: u64,
    /// The marker text inserted, e.g. `...(truncated, showing first 48.8KB of 1.2MB)`.
    pub marker: String,
    /// Which part was kept.
    pub mode: TruncateMode,
}

/// Resources the evaluation used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceUsage {
    /// User CPU time of all its processes.
    #[serde(with = "duration_ms", rename = "cpu_user_ms")]
    pub cpu_user: Duration,
    /// System CPU time of all its processes.
    #[serde(with = "duration_ms", rename = "cpu_sys_ms")]
    pub cpu_sys: Duration,
    /// Peak memory in bytes: the cgroup's peak when a cgroup measured it,
    /// otherwise the largest resident set of one process.
    pub peak_memory_bytes: Option<u64>,
}

/// Everything known about one finished evaluation.
///
/// This is the object `sandbox run --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// The evaluation.
    pub id: EvalId,
    /// How it ended.
    pub status: Status,
    /// How the command's process ended, when it ran to an end the kernel reported.
    pub termination: Option<Termination>,
    /// Standard output and error merged in arrival order (as the executor reads
    /// them: writes to both within the same instant may come either way),
    /// truncated as requested, with the marker included. For `setup_failed`, the failing step's output.
    #[serde(with = "lossy_text")]
    pub output: Vec<u8>,
    /// Bytes per stream.
    pub streams: StreamCounts,
    /// Present when the output was truncated.
    pub truncation: Option<Truncation>,
    /// Wall-clock time from spawn to the end.
    #[serde(with = "duration_ms", rename = "wall_time_ms")]
    pub wall_time: Duration,
    /// Resource usage.
    pub usage: ResourceUsage,
    /// How each requested limit was enforced.
    pub limits: Vec<LimitEnforcement>,
    /// Denied actions recorded during the evaluation (at most 1,000; see
    /// [`Outcome::violations_unlisted`]).
    pub violations: Vec<Violation>,
    /// Denied actions recorded beyond those listed in
    /// [`Outcome::violations`]: a loop of denials must not grow the outcome
    /// without bound. The executor's violation log saw them all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub violations_unlisted: u64,
    /// Protections of the policy this machine applied only in part, or not at
    /// all because the request accepted that ([`crate::EvalRequest::accept_weaker`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weakened: Vec<Weakening>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Outcome {
    /// The output as text (invalid UTF-8 replaced by U+FFFD).
    pub fn output_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.output)
    }

    /// The exit code a shell would report for this outcome: the command's code;
    /// 128+N for signal N; 124 timeout; 125 when the sandbox itself failed;
    /// 126/127 for a command not executable / not found.
    ///
    /// A limit never reads as success: when the command exited 0 anyway (a
    /// child of it was killed for the limit) or was killed by the sandbox
    /// without a reported end, the code is 137, as for a SIGKILL.
    pub fn exit_code(&self) -> i32 {
        const KILLED: i32 = 128 + 9;
        match (&self.status, self.termination) {
            (Status::TimedOut, _) => 124,
            (Status::NoConnection { .. }, _) => 125,
            (Status::SpawnFailed { code, .. }, _) => *code,
            (status, termination) if status.is_limit() => match termination {
                Some(Termination::Signaled(signal)) => 128 + signal,
                Some(Termination::Exited(code)) if code != 0 => code,
                _ => KILLED,
            },
            (_, Some(Termination::Exited(code))) => code,
            (_, Some(Termination::Signaled(signal))) => 128 + signal,
            (
                Status::SetupFailed {
                    code: Some(code), ..
                },
                None,
            ) => *code,
            (
                Status::SetupFailed {
                    signal: Some(signal),
                    ..
                },
                None,
            ) => 128 + signal,
            // A limit that killed the tree without a reported termination.
            (_, None) => 125,
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms / 1000.0).map_err(serde::de::Error::custom)
    }
}

mod lossy_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Status, termination: Option<Termination>) -> Outcome {
        Outcome {
            id: EvalId(1),
            status,
            termination,
            output: b"hi\n".to_vec(),
            streams: StreamCounts {
                stdout_bytes: 3,
                stderr_bytes: 0,
            },
            truncation: None,
            wall_time: Duration::from_millis(12),
            usage: ResourceUsage::default(),
            limits: Vec::new(),
            violations: Vec::new(),
            violations_unlisted: 0,
            weakened: Vec::new(),
        }
    }

    #[test]
    fn exit_code_follows_shell_conventions() {
        assert_eq!(
            outcome(Status::Exited { code: 3 }, Some(Termination::Exited(3))).exit_code(),
            3
        );
        assert_eq!(
            outcome(
                Status::Signaled { signal: 15 },
                Some(Termination::Signaled(15))
            )
            .exit_code(),
            143
        );
        assert_eq!(
            outcome(Status::TimedOut, Some(Termination::Signaled(9))).exit_code(),
            124
        );
        assert_eq!(
            outcome(Status::NoConnection { reason: "x".into() }, None).exit_code(),
            125
        );
        let not_found = Status::SpawnFailed {
            reason: "nope: not found".into(),
            code: 127,
        };
        assert_eq!(outcome(not_found, None).exit_code(), 127);
    }

    #[test]
    fn a_limit_never_exits_zero() {
        assert_eq!(
            outcome(Status::MemoryLimit, Some(Termination::Exited(0))).exit_code(),
            137
        );
        assert_eq!(outcome(Status::OutputLimit, None).exit_code(), 137);
        assert_eq!(
            outcome(Status::PidsLimit, Some(Termination::Exited(2))).exit_code(),
            2
        );
    }

    #[test]
    fn memory_limit_keeps_the_kill_signal_in_the_exit_code() {
        assert_eq!(
            outcome(Status::MemoryLimit, Some(Termination::Signaled(9))).exit_code(),
            137
        );
    }

    #[test]
    fn json_tags_status_by_kind_and_times_in_milliseconds() {
        let json = serde_json::to_value(outcome(
            Status::Exited { code: 0 },
            Some(Termination::Exited(0)),
        ))
        .unwrap();
        assert_eq!(
            json["status"],
            serde_json::json!({"kind": "exited", "code": 0})
        );
        assert_eq!(json["wall_time_ms"], 12.0);
        assert_eq!(json["output"], "hi\n");
    }
}
