//! Network namespaces of evaluations whose init has exited, kept for later
//! spares: creating and tearing down a namespace costs the kernel about
//! 0.7 ms of CPU. The zygote enters one only once it finds no socket left
//! in it (see `runner/network.rs`); the others are closed, which frees them.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// How many idle namespaces an executor keeps: enough for the spares and
/// the evaluations running beside each other.
const KEEP: usize = 4;

/// One executor's idle network namespaces.
#[derive(Debug)]
pub(crate) struct Networks {
    idle: Mutex<Vec<OwnedFd>>,
    /// Off: every evaluation gets a new namespace.
    reuse: AtomicBool,
}

impl Default for Networks {
    fn default() -> Self {
        Networks {
            idle: Mutex::default(),
            reuse: AtomicBool::new(true),
        }
    }
}

impl Networks {
    /// An idle namespace, if one is kept.
    pub fn take(&self) -> Option<OwnedFd> {
        self.lock().pop()
    }

    /// Keeps the namespace of an evaluation whose processes are all gone,
    /// or closes it when enough are kept (or reuse is off).
    pub fn put(&self, namespace: OwnedFd) {
        let mut idle = self.lock();
        if idle.len() < KEEP && self.reuse.load(Ordering::Relaxed) {
            idle.push(namespace);
        }
    }

    /// Turns reuse on or off; off closes the namespaces kept.
    pub fn set_reuse(&self, reuse: bool) {
        self.reuse.store(reuse, Ordering::Relaxed);
        if !reuse {
            self.lock().clear();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<OwnedFd>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace() -> OwnedFd {
        std::fs::File::open("/proc/self/ns/net").unwrap().into()
    }

    #[test]
    fn a_kept_namespace_is_handed_out_once() {
        let networks = Networks::default();
        networks.put(namespace());
        assert!(networks.take().is_some());
        assert!(networks.take().is_none());
    }

    #[test]
    fn nothing_is_kept_with_reuse_off() {
        let networks = Networks::default();
        networks.put(namespace());
        networks.set_reuse(false);
        assert!(networks.take().is_none());
        networks.put(namespace());
        assert!(networks.take().is_none());
    }

    #[test]
    fn no_more_than_a_few_are_kept() {
        let networks = Networks::default();
        for _ in 0..KEEP + 3 {
            networks.put(namespace());
        }
        let kept = std::iter::from_fn(|| networks.take()).count();
        assert_eq!(kept, KEEP);
    }
}
