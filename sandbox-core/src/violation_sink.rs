//! Where enforcement layers send the violations they record.

use std::sync::{mpsc, Mutex};

use crate::Violation;

/// Receives every [`Violation`] an enforcement layer records (the network proxy, and
/// later other layers), as soon as it is denied.
///
/// `record` is called on the thread or task that denied the action, often inside an
/// async runtime, so an implementation must return quickly and never block on I/O:
/// hand the violation to a channel or an in-memory store and persist it elsewhere.
/// It cannot fail: a sink that loses a violation should say so itself (log it).
///
/// Provided implementations: any `Fn(Violation) + Send + Sync` closure, a
/// [`std::sync::mpsc::Sender`] (a closed receiver drops the violation), and a
/// `Mutex<Vec<Violation>>` that collects them in order (handy in tests).
///
/// ```
/// use std::sync::Mutex;
/// use sandbox_core::{Violation, ViolationKind, ViolationSink};
///
/// let store: Mutex<Vec<Violation>> = Mutex::default();
/// let sink: &dyn ViolationSink = &store;
/// sink.record(Violation {
///     time: std::time::SystemTime::now(),
///     eval: None,
///     sandbox: None,
///     kind: ViolationKind::Network,
///     target: "evil.com:443".into(),
///     rule: "no matching rule".into(),
///     command: "curl https://evil.com".into(),
/// });
/// assert_eq!(store.lock().unwrap()[0].target, "evil.com:443");
/// ```
pub trait ViolationSink: Send + Sync {
    /// Takes one denied action.
    fn record(&self, violation: Violation);
}

impl<F> ViolationSink for F
where
    F: Fn(Violation) + Send + Sync,
{
    fn record(&self, violation: Violation) {
        self(violation)
    }
}

impl ViolationSink for mpsc::Sender<Violation> {
    fn record(&self, violation: Violation) {
        // A dropped receiver means nobody is listening any more; the denial itself
        // already happened, so there is nothing useful to do with the error.
        let _ = self.send(violation);
    }
}

impl ViolationSink for Mutex<Vec<Violation>> {
    fn record(&self, violation: Violation) {
        // A panic elsewhere while holding the lock must not lose later violations.
        self.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(violation);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::ViolationKind;

    fn violation(target: &str) -> Violation {
        Violation {
            time: SystemTime::now(),
            eval: None,
            sandbox: None,
            kind: ViolationKind::Network,
            target: target.into(),
            rule: "no matching rule".into(),
            command: "true".into(),
        }
    }

    #[test]
    fn a_sender_passes_violations_to_its_receiver() {
        let (tx, rx) = mpsc::channel();
        let sink: Arc<dyn ViolationSink> = Arc::new(tx);
        sink.record(violation("a:1"));
        assert_eq!(rx.recv().unwrap().target, "a:1");
    }

    #[test]
    fn a_sender_whose_receiver_is_gone_drops_silently() {
        let (tx, rx) = mpsc::channel();
        drop(rx);
        tx.record(violation("a:1"));
    }

    #[test]
    fn a_closure_is_a_sink() {
        let seen = Mutex::new(Vec::new());
        let sink = |v: Violation| seen.lock().unwrap().push(v.target);
        sink.record(violation("b:2"));
        assert_eq!(*seen.lock().unwrap(), ["b:2"]);
    }

    #[test]
    fn a_mutex_vec_collects_in_order() {
        let store: Mutex<Vec<Violation>> = Mutex::default();
        store.record(violation("a:1"));
        store.record(violation("b:2"));
        let targets: Vec<_> = store
            .lock()
            .unwrap()
            .iter()
            .map(|v| v.target.clone())
            .collect();
        assert_eq!(targets, ["a:1", "b:2"]);
    }
}
