//! The one in-memory store of violations: network, filesystem and syscall
//! denials from every enforcement layer, bounded, with subscribers.

use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use crate::{EvalId, Violation, ViolationKind, ViolationSink};

/// Violations kept by default by [`ViolationLog::default`].
pub const DEFAULT_LOG_CAPACITY: usize = 10_000;

/// Every recorded [`Violation`], newest last, at most `capacity` of them (the
/// oldest go first, and are counted); each one is also sent to every
/// subscriber and emitted as a `tracing` event (target `sandbox::violation`).
///
/// ```
/// use sandbox_core::{Violation, ViolationKind, ViolationLog, ViolationSink};
///
/// let log = ViolationLog::new(2);
/// let events = log.subscribe(16);
/// for target in ["a.com:443", "b.com:443", "c.com:443"] {
///     log.record(Violation {
///         time: std::time::SystemTime::now(),
///         eval: None,
///         sandbox: None,
///         kind: ViolationKind::Network,
///         target: target.into(),
///         rule: "no matching rule".into(),
///         command: "curl".into(),
///     });
/// }
/// let kept: Vec<String> = log.recent().into_iter().map(|v| v.target).collect();
/// assert_eq!(kept, ["b.com:443", "c.com:443"]);
/// assert_eq!(log.dropped(), 1);
/// assert_eq!(events.try_iter().count(), 3);
/// ```
#[derive(Debug)]
pub struct ViolationLog {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    kept: VecDeque<Violation>,
    capacity: usize,
    dropped: u64,
    subscribers: Vec<Subscriber>,
}

#[derive(Debug)]
struct Subscriber {
    sender: SyncSender<Violation>,
    /// Violations this subscriber missed because it did not keep up.
    missed: u64,
}

impl Default for ViolationLog {
    fn default() -> Self {
        ViolationLog::new(DEFAULT_LOG_CAPACITY)
    }
}

impl ViolationLog {
    /// A log keeping the last `capacity` violations (at least one).
    pub fn new(capacity: usize) -> Self {
        ViolationLog {
            inner: Mutex::new(Inner {
                kept: VecDeque::new(),
                capacity: capacity.max(1),
                dropped: 0,
                subscribers: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock in a way that breaks the log.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A channel receiving every violation recorded from now on. A subscriber
    /// that falls `bound` violations behind misses the next ones rather than
    /// holding up the layer that records them; dropping the receiver
    /// unsubscribes.
    pub fn subscribe(&self, bound: usize) -> Receiver<Violation> {
        let (sender, receiver) = sync_channel(bound.max(1));
        self.lock()
            .subscribers
            .push(Subscriber { sender, missed: 0 });
        receiver
    }

    /// The violations kept, oldest first.
    pub fn recent(&self) -> Vec<Violation> {
        self.lock().kept.iter().cloned().collect()
    }

    /// The kept violations of evaluation `eval`, oldest first.
    pub fn of_evaluation(&self, eval: EvalId) -> Vec<Violation> {
        self.lock()
            .kept
            .iter()
            .filter(|v| v.eval == Some(eval))
            .cloned()
            .collect()
    }

    /// The kept violations of `kind`, oldest first.
    pub fn of_kind(&self, kind: ViolationKind) -> Vec<Violation> {
        self.lock()
            .kept
            .iter()
            .filter(|v| v.kind == kind)
            .cloned()
            .collect()
    }

    /// How many violations were let go to stay within the capacity.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Forgets every kept violation (subscribers stay).
    pub fn clear(&self) {
        self.lock().kept.clear();
    }
}

impl ViolationSink for ViolationLog {
    fn record(&self, violation: Violation) {
        tracing::warn!(
            target: "sandbox::violation",
            kind = ?violation.kind,
            target_ = %violation.target,
            rule = %violation.rule,
            eval = ?violation.eval.map(|e| e.0),
            sandbox = violation.sandbox.as_deref(),
            command = %violation.command,
            "denied"
        );
        let mut inner = self.lock();
        inner
            .subscribers
            .retain_mut(|s| match s.sender.try_send(violation.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    s.missed += 1;
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        if inner.kept.len() == inner.capacity {
            inner.kept.pop_front();
            inner.dropped += 1;
        }
        inner.kept.push_back(violation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violation(kind: ViolationKind, eval: u64, target: &str) -> Violation {
        Violation {
            time: std::time::SystemTime::UNIX_EPOCH,
            eval: Some(EvalId(eval)),
            sandbox: None,
            kind,
            target: target.into(),
            rule: "no matching rule".into(),
            command: "true".into(),
        }
    }

    #[test]
    fn violations_are_kept_in_order_and_found_by_evaluation_and_kind() {
        let log = ViolationLog::new(10);
        log.record(violation(ViolationKind::Network, 1, "a:1"));
        log.record(violation(ViolationKind::Syscall, 2, "ptrace"));
        log.record(violation(ViolationKind::Network, 2, "b:2"));
        let of_two: Vec<String> = log
            .of_evaluation(EvalId(2))
            .into_iter()
            .map(|v| v.target)
            .collect();
        assert_eq!(of_two, ["ptrace", "b:2"]);
        assert_eq!(log.of_kind(ViolationKind::Network).len(), 2);
    }

    #[test]
    fn a_slow_subscriber_misses_violations_without_blocking_the_recorder() {
        let log = ViolationLog::new(10);
        let slow = log.subscribe(1);
        for n in 0..5 {
            log.record(violation(ViolationKind::Network, n, "x:1"));
        }
        assert_eq!(slow.try_iter().count(), 1);
        assert_eq!(log.recent().len(), 5);
    }

    #[test]
    fn a_dropped_subscriber_is_forgotten() {
        let log = ViolationLog::new(10);
        drop(log.subscribe(4));
        log.record(violation(ViolationKind::Network, 1, "x:1"));
        assert!(log.lock().subscribers.is_empty());
    }

    #[test]
    fn clear_forgets_the_kept_violations() {
        let log = ViolationLog::new(10);
        log.record(violation(ViolationKind::Filesystem, 1, "/etc/shadow"));
        log.clear();
        assert!(log.recent().is_empty());
    }
}
