//! The violations one evaluation lists in its outcome: the first
//! [`MAX_LISTED`], and a count of the rest.
//!
//! A sandboxed loop can be denied tens of thousands of times a second; the
//! outcome (and the persistent log the CLI appends it to) must not grow with
//! it. The executor's [`ViolationLog`](sandbox_core::ViolationLog), bounded on
//! its own, still sees every one.

use std::sync::Mutex;

use sandbox_core::Violation;

/// Most violations an outcome lists.
pub(crate) const MAX_LISTED: usize = 1000;

/// One evaluation's violations, shared by whatever records them.
#[derive(Debug, Default)]
pub(crate) struct Recorded(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    listed: Vec<Violation>,
    unlisted: u64,
}

impl Recorded {
    /// Lists `violation`, or counts it once the list is full.
    pub fn push(&self, violation: Violation) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if inner.listed.len() < MAX_LISTED {
            inner.listed.push(violation);
        } else {
            inner.unlisted += 1;
        }
    }

    /// The listed violations and how many more were recorded, leaving
    /// nothing behind.
    pub fn take(&self) -> (Vec<Violation>, u64) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (
            std::mem::take(&mut inner.listed),
            std::mem::take(&mut inner.unlisted),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_core::ViolationKind;

    fn violation(n: usize) -> Violation {
        Violation {
            time: std::time::SystemTime::now(),
            eval: None,
            sandbox: None,
            kind: ViolationKind::Filesystem,
            target: format!("read /secret/{n}"),
            rule: "r".into(),
            command: "c".into(),
        }
    }

    #[test]
    fn violations_past_the_limit_are_counted_not_listed() {
        let recorded = Recorded::default();
        for n in 0..MAX_LISTED + 5 {
            recorded.push(violation(n));
        }
        let (listed, unlisted) = recorded.take();
        assert_eq!((listed.len(), unlisted), (MAX_LISTED, 5));
        assert_eq!(listed[0].target, "read /secret/0");
        assert_eq!(recorded.take(), (Vec::new(), 0));
    }
}
