//! Cgroups kept between evaluations instead of removed and created again.
//!
//! Creating a v1 memory and pids cgroup pair and removing it costs the kernel
//! about 0.3 ms of CPU (per-CPU counters allocated and freed, control files
//! added and removed, the teardown's RCU work), nearly a tenth of a confined
//! evaluation's. Once every process of an evaluation is gone its cgroups are
//! as good as new, except for their counters, which [`Cgroup::reset`] turns
//! into a baseline, and for memory the kernel still charges to them (page
//! cache, dentries), which is small and bounded here: cgroups holding more
//! than [`LEFTOVER_AT_MOST`] are removed rather than reused.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::cgroup::Cgroup;

/// Idle cgroup pairs kept at most: back to back an executor needs one for
/// the evaluation, one for the spare and one being emptied.
const CAPACITY: usize = 4;

/// Memory still charged to an emptied cgroup beyond which it is not reused:
/// it counts against the next evaluation's limit until reclaimed. Typical
/// leftovers after a short evaluation are 0.3–0.6 MiB of kernel objects.
pub(crate) const LEFTOVER_AT_MOST: u64 = 2 << 20;

/// How long [`Shelf::put`] waits for the last processes to leave.
const EMPTY_WITHIN: Duration = Duration::from_millis(200);

/// One executor's idle cgroups; removed when it is dropped.
#[derive(Debug, Default)]
pub(crate) struct Shelf {
    idle: Mutex<Vec<Cgroup>>,
}

impl Shelf {
    /// Idle cgroups with the memory controller if `memory` and the pids
    /// controller if `pids`, their counters reset; their limits are whatever
    /// they were last set to. They keep the name of their first use
    /// (renaming costs about as much as a third of what reuse saves).
    pub fn take(&self, memory: bool, pids: bool) -> Option<Cgroup> {
        let mut idle = self.lock();
        let at = idle.iter().position(|c| c.covers(memory, pids))?;
        Some(idle.swap_remove(at))
    }

    /// Keeps an evaluation's cgroups for another once its processes are gone
    /// (waiting a little for the last to leave), or removes them if they
    /// cannot be reused. Blocks: call it off the evaluation's path.
    pub fn put(&self, mut cgroup: Cgroup) {
        let deadline = Instant::now() + EMPTY_WITHIN;
        while !cgroup.is_empty() {
            if Instant::now() >= deadline {
                debug!(?cgroup, "processes linger in a cgroup: removing it");
                cgroup.remove();
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.lock().len() >= CAPACITY {
            cgroup.remove();
            return;
        }
        match cgroup.reset() {
            Ok(left) if left <= LEFTOVER_AT_MOST => self.lock().push(cgroup),
            Ok(left) => {
                debug!(left, "not reusing a cgroup that still has memory charged");
                cgroup.remove();
            }
            Err(error) => {
                debug!(%error, "not reusing a cgroup");
                cgroup.remove();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Cgroup>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Shelf {
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        for cgroup in idle {
            cgroup.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::support;

    /// Real cgroups, where this process may create them (root with the v1
    /// memory controller); `None` elsewhere, and the test has nothing to do.
    fn memory_cgroup(name: &str) -> Option<Cgroup> {
        if !nix::unistd::geteuid().is_root() || support().memory.is_none() {
            return None;
        }
        let name = format!("{}-shelf-test-{name}", std::process::id());
        Some(Cgroup::create(support(), &name, Some(64 << 20), None).unwrap())
    }

    fn exists(cgroup: &Cgroup) -> bool {
        cgroup.procs_files().iter().all(|f| f.exists())
    }

    #[test]
    fn an_emptied_cgroup_is_handed_out_again() {
        let Some(cgroup) = memory_cgroup("again") else {
            return;
        };
        let shelf = Shelf::default();
        shelf.put(cgroup);
        let again = shelf.take(true, false).expect("kept for reuse");
        assert!(exists(&again));
        again.remove();
    }

    #[test]
    fn a_kept_cgroup_is_only_handed_out_for_controllers_it_has() {
        let Some(cgroup) = memory_cgroup("controllers") else {
            return;
        };
        let shelf = Shelf::default();
        shelf.put(cgroup);
        if support().pids.is_some() {
            assert!(shelf.take(true, true).is_none());
        }
        assert!(shelf.take(true, false).is_some_and(|c| {
            c.remove();
            true
        }));
    }

    #[test]
    fn a_dropped_shelf_removes_its_cgroups() {
        let Some(cgroup) = memory_cgroup("dropped") else {
            return;
        };
        let procs = cgroup.procs_files();
        let shelf = Shelf::default();
        shelf.put(cgroup);
        assert!(procs[0].exists());
        drop(shelf);
        assert!(!procs[0].exists());
    }

    #[test]
    fn a_cgroup_a_process_stays_in_is_not_kept() {
        let Some(cgroup) = memory_cgroup("busy") else {
            return;
        };
        let procs = cgroup.procs_files()[0].clone();
        let mut sleeper = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("echo $$ > {}; exec sleep 30", procs.display()))
            .spawn()
            .unwrap();
        while std::fs::read_to_string(&procs).unwrap().trim().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let shelf = Shelf::default();
        shelf.put(cgroup);
        assert!(shelf.take(true, false).is_none());
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        // The removal gave up while the process lived.
        let dir = procs.parent().unwrap();
        for _ in 0..200 {
            if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
