use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one evaluation within the process that ran it.
///
/// Ids are unique per process and increase, which keeps them short in logs and
/// `tracing` spans; they are not secrets and never used as one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct EvalId(pub u64);

impl EvalId {
    /// A fresh id, distinct from every other id this process handed out.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        EvalId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for EvalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "eval-{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::EvalId;

    #[test]
    fn successive_ids_differ_and_increase() {
        let a = EvalId::next();
        let b = EvalId::next();
        assert!(b > a);
    }
}
