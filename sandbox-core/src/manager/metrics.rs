//! Per-sandbox counters: evaluations and how they ended, denied actions,
//! resources used, service crashes and restarts. Saved in `metrics.json` on
//! every update, so they survive the manager.

use std::time::{Duration, SystemTime};

use crate::{Outcome, Status};

/// What the evaluations and the service of one sandbox did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxMetrics {
    /// Evaluations recorded.
    pub evaluations: u64,
    /// Evaluations that did not exit 0 (timeouts and limits included).
    pub failures: u64,
    /// Evaluations ended by the wall-clock timeout.
    pub timeouts: u64,
    /// Evaluations ended by a resource limit (memory, CPU, output, file size, pids).
    pub limit_hits: u64,
    /// Denied actions reported by evaluations.
    pub violations: u64,
    /// Largest peak memory of one evaluation, in bytes.
    pub peak_memory_bytes: Option<u64>,
    /// CPU time (user + system) of all evaluations.
    #[serde(with = "duration_ms", rename = "cpu_time_ms")]
    pub cpu_time: Duration,
    /// Wall-clock time of all evaluations.
    #[serde(with = "duration_ms", rename = "wall_time_ms")]
    pub wall_time: Duration,
    /// When the last evaluation was recorded.
    pub last_evaluation: Option<SystemTime>,
    /// Times the service exited without being asked to.
    pub service_crashes: u64,
    /// Times the supervisor restarted the service after a crash.
    pub service_restarts: u64,
}

impl SandboxMetrics {
    /// Counts one finished evaluation.
    pub fn record(&mut self, outcome: &Outcome) {
        self.evaluations += 1;
        if !outcome.status.success() {
            self.failures += 1;
        }
        if outcome.status == Status::TimedOut {
            self.timeouts += 1;
        }
        if outcome.status.is_limit() {
            self.limit_hits += 1;
        }
        self.violations += outcome.violations.len() as u64;
        if let Some(peak) = outcome.usage.peak_memory_bytes {
            self.peak_memory_bytes = Some(self.peak_memory_bytes.map_or(peak, |p| p.max(peak)));
        }
        self.cpu_time += outcome.usage.cpu_user + outcome.usage.cpu_sys;
        self.wall_time += outcome.wall_time;
        self.last_evaluation = Some(SystemTime::now());
    }
}

/// Durations as whole milliseconds: integers keep store files exact (a float
/// may not read back to the same value, which would fail nothing but a test).
pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis().min(u64::MAX as u128) as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EvalId, ResourceUsage, StreamCounts, Termination};

    fn outcome(status: Status, peak: Option<u64>) -> Outcome {
        Outcome {
            id: EvalId(1),
            status,
            termination: Some(Termination::Exited(0)),
            output: Vec::new(),
            streams: StreamCounts::default(),
            truncation: None,
            wall_time: Duration::from_millis(10),
            usage: ResourceUsage {
                cpu_user: Duration::from_millis(3),
                cpu_sys: Duration::from_millis(1),
                peak_memory_bytes: peak,
            },
            limits: Vec::new(),
            violations: Vec::new(),
            violations_unlisted: 0,
            weakened: Vec::new(),
        }
    }

    #[test]
    fn outcomes_are_counted_by_how_they_ended() {
        let mut m = SandboxMetrics::default();
        m.record(&outcome(Status::Exited { code: 0 }, Some(100)));
        m.record(&outcome(Status::TimedOut, Some(300)));
        m.record(&outcome(Status::MemoryLimit, None));
        m.record(&outcome(Status::Exited { code: 1 }, Some(200)));
        assert_eq!(m.evaluations, 4);
        assert_eq!(m.failures, 3);
        assert_eq!(m.timeouts, 1);
        assert_eq!(m.limit_hits, 1);
        assert_eq!(m.peak_memory_bytes, Some(300));
        assert_eq!(m.cpu_time, Duration::from_millis(16));
        assert_eq!(m.wall_time, Duration::from_millis(40));
    }
}
