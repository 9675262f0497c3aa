//! Spare runners started ahead of time, so an evaluation does not wait for a
//! program to start. Each spare is still used for exactly one evaluation.
//!
//! Spares are started by one long-lived thread per executor: starting a
//! process costs the starting thread a few hundred microseconds, which must not
//! land on an evaluation's path, and a runner's parent-death signal follows the
//! thread that started it, so that thread must live as long as the spares.
//!
//! When a spare is prepared matters on a machine with few CPUs: preparing
//! one (namespaces, mounts, seccomp) takes a CPU for about a millisecond, and
//! alongside an evaluation it competes with it, delaying the evaluation's
//! own wake-ups. So while evaluations arrive one at a time with pauses
//! between them (an agent, a user), the next spare is prepared after the
//! evaluation ends, in the pause; when they arrive back to back or
//! overlap, there is no pause to use, and it is prepared at once, alongside.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::cgroup::CgroupLimits;
use crate::cgroup_shelf::Shelf;
use crate::launch::{Launched, Launcher, Preparation};
use crate::network_shelf::Networks;
use crate::plan_cache::PlanCache;

/// The spares of one executor and the thread that starts them.
#[derive(Debug)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// Kept here, beside the spares, as every evaluation takes both.
    plans: PlanCache,
}

#[derive(Debug)]
struct Shared {
    launcher: Launcher,
    /// Where spares' cgroups come from, as evaluations' do.
    shelf: Arc<Shelf>,
    /// Network namespaces for confined spares to reuse.
    networks: Arc<Networks>,
    state: Mutex<State>,
    wake: Condvar,
    /// Told each time the worker is done starting a spare.
    started: tokio::sync::Notify,
}

/// How long an evaluation waits for a spare being started before starting a
/// runner of its own. A spare is cloned in well under a millisecond, and the
/// zygote starts in a few; a zygote that hangs holds up a runner of the
/// evaluation's own as well (it asks the zygote too), for up to the
/// zygote's own patience.
pub(crate) const SPARE_PATIENCE: Duration = Duration::from_millis(500);

/// Evaluations that start within this of the previous one's end are back
/// to back: a spare prepared only after each ended would make the next wait.
const BACK_TO_BACK: Duration = Duration::from_millis(5);

/// How long a spare asked for by a lone evaluation waits for it to end: a
/// long evaluation should not leave the next without a spare.
const DEFER_AT_MOST: Duration = Duration::from_millis(20);

#[derive(Debug)]
struct State {
    spares: Vec<Launched>,
    capacity: usize,
    /// When the worker should start spares up to the capacity; `None` when
    /// none are wanted.
    due: Option<Instant>,
    /// Evaluations between [`Pool::begin`] and the end of their [`Running`].
    running: usize,
    /// When the last evaluation ended.
    last_end: Option<Instant>,
    /// What new spares prepare: like the last evaluation.
    preparation: Preparation,
    /// The cgroup limits new spares are set to: the last evaluation's.
    limits: CgroupLimits,
    /// The kind of the spare the worker is starting, while it does.
    starting: Option<Preparation>,
    closed: bool,
}

impl Pool {
    pub fn new(
        launcher: Launcher,
        capacity: usize,
        shelf: Arc<Shelf>,
        networks: Arc<Networks>,
    ) -> Self {
        Pool {
            shared: Arc::new(Shared {
                launcher,
                shelf,
                networks,
                state: Mutex::new(State {
                    spares: Vec::new(),
                    capacity,
                    due: None,
                    running: 0,
                    last_end: None,
                    preparation: Preparation::Plain,
                    limits: CgroupLimits::default(),
                    starting: None,
                    closed: false,
                }),
                wake: Condvar::new(),
                started: tokio::sync::Notify::new(),
            }),
            worker: Mutex::new(None),
            plans: PlanCache::default(),
        }
    }

    pub fn launcher(&self) -> &Launcher {
        &self.shared.launcher
    }

    /// The idle cgroups evaluations and spares take theirs from.
    pub fn shelf(&self) -> &Shelf {
        &self.shared.shelf
    }

    /// The last plan this executor's evaluations derived.
    pub fn plans(&self) -> &PlanCache {
        &self.plans
    }

    /// Changes how many spares are kept, killing any excess.
    pub fn set_capacity(&self, capacity: usize) {
        let excess: Vec<Launched> = {
            let mut state = self.shared.lock();
            state.capacity = capacity;
            let keep = state.spares.len().min(capacity);
            state.spares.drain(keep..).collect()
        };
        drop(excess);
    }

    /// A spare that is still alive and made for jobs of `preparation`, if
    /// there is one. Spares of another kind are dropped: the executor has
    /// switched kinds.
    pub fn take(&self, preparation: Preparation) -> Option<Launched> {
        loop {
            let mut spare = self.shared.lock().spares.pop()?;
            if spare.preparation != preparation {
                debug!(
                    ?preparation,
                    "dropping a spare runner prepared for another kind"
                );
                continue;
            }
            match spare.process.try_wait() {
                Ok(None) => return Some(spare),
                status => debug!(?status, "dropping a dead spare runner"),
            }
        }
    }

    /// Like [`take`](Self::take), but when a spare of this kind is being
    /// started, or asked for, waits for it (at most `patience`) rather than
    /// returning `None`: the one under way is ready sooner than a runner the
    /// evaluation would start itself, which would also cost a CPU the
    /// millisecond a spare takes to prepare, beside the evaluation.
    pub async fn take_or_await(
        &self,
        preparation: Preparation,
        patience: Duration,
    ) -> Option<Launched> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let started = self.shared.started.notified();
            tokio::pin!(started);
            // Registered before looking, so a spare started in between is seen.
            started.as_mut().enable();
            if let Some(spare) = self.take(preparation) {
                return Some(spare);
            }
            {
                let mut state = self.shared.lock();
                // Being started, or asked for and about to be.
                let coming = state.starting == Some(preparation)
                    || (state.due.is_some() && state.preparation == preparation && !state.closed);
                if !coming {
                    return None;
                }
                // An evaluation waits for it: no reason to defer it any longer.
                let now = Instant::now();
                if state.due.is_some_and(|due| due > now) {
                    state.due = Some(now);
                    self.shared.wake.notify_one();
                }
            }
            if tokio::time::timeout_at(deadline, started).await.is_err() {
                return None;
            }
        }
    }

    /// Makes new spares' cgroups carry `limits` (those of the evaluation
    /// under way: the next is likely to ask for the same).
    pub fn expect_limits(&self, limits: CgroupLimits) {
        self.shared.lock().limits = limits;
    }

    /// Marks an evaluation as running until the returned guard is dropped.
    pub fn begin(&self) -> Running<'_> {
        self.shared.lock().running += 1;
        Running(self)
    }

    /// Asks for spares up to the capacity, started in the background and
    /// prepared for evaluations like the last one. Called once an
    /// evaluation has its runner: the spares are started at once if
    /// evaluations are arriving back to back (or overlap), else when it ends
    /// (see the module's documentation).
    pub fn refill(&self, preparation: Preparation) {
        let (stale, wanted) = {
            let mut state = self.shared.lock();
            state.preparation = preparation;
            let (keep, stale): (Vec<Launched>, Vec<Launched>) = std::mem::take(&mut state.spares)
                .into_iter()
                .partition(|s| s.preparation == preparation);
            state.spares = keep;
            let wanted = state.capacity > 0 && state.spares.len() < state.capacity;
            if wanted {
                let now = Instant::now();
                // This evaluation itself is one of those running.
                let others = state.running.saturating_sub(1);
                let at = if back_to_back(others, state.last_end, now) {
                    now
                } else {
                    now + DEFER_AT_MOST
                };
                state.due = Some(state.due.map_or(at, |due| due.min(at)));
            }
            (stale, wanted)
        };
        // Killed and reaped outside the lock.
        drop(stale);
        if !wanted {
            return;
        }
        self.shared.wake.notify_one();
        let mut worker = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if worker.is_none() {
            let shared = Arc::clone(&self.shared);
            match std::thread::Builder::new()
                .name("sandbox-prewarm".into())
                .spawn(move || shared.work())
            {
                Ok(handle) => *worker = Some(handle),
                Err(error) => debug!(%error, "cannot start the pre-warming thread"),
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock in a way that breaks the state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cgroups for the next spare, when evaluations here use cgroups (root,
    /// with the v1 controllers); `None` leaves the move to the evaluation.
    fn spare_cgroup(&self, limits: CgroupLimits) -> Option<crate::cgroup::Cgroup> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        if self.launcher.user_namespace {
            return None;
        }
        let support = crate::cgroup::support();
        if support.memory.is_none() && support.pids.is_none() {
            return None;
        }
        let shelved = self
            .shelf
            .take(support.memory.is_some(), support.pids.is_some());
        let mut cgroup = match shelved {
            Some(cgroup) => cgroup,
            None => {
                let name = format!(
                    "{}-spare-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                crate::cgroup::Cgroup::spare(support, &name)
                    .inspect_err(|error| debug!(%error, "no cgroups for the spare"))
                    .ok()?
            }
        };
        if let Err(error) = cgroup.set_limits(limits) {
            // The evaluation sets them again.
            debug!(%error, "cannot preset the spare's limits");
        }
        Some(cgroup)
    }

    fn work(&self) {
        let mut state = self.lock();
        loop {
            if state.closed {
                return;
            }
            let due = match state.due {
                Some(due) if state.spares.len() < state.capacity => due,
                _ => {
                    state.due = None;
                    state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
            };
            let now = Instant::now();
            if due > now {
                state = self
                    .wake
                    .wait_timeout(state, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            let (preparation, limits) = (state.preparation, state.limits);
            state.starting = Some(preparation);
            drop(state);
            // Started here, as this thread outlives every init the zygote
            // clones; and while `starting` is set, so that an evaluation
            // waits for the first spare too.
            self.launcher.start_zygote();
            crate::launch::remove_orphaned_cgroups();
            let network = match preparation {
                Preparation::Confined { .. } => self.networks.take(),
                Preparation::Plain => None,
            };
            let launched = self
                .launcher
                .launch(preparation, self.spare_cgroup(limits), network);
            state = self.lock();
            state.starting = None;
            // Evaluations waiting for this spare look again, whatever became of it.
            self.started.notify_waiters();
            match launched {
                Ok(spare)
                    if !state.closed
                        && state.spares.len() < state.capacity
                        && spare.preparation == state.preparation =>
                {
                    state.spares.push(spare)
                }
                Ok(_) => {}
                Err(error) => {
                    // The next evaluation starts its own runner and reports
                    // the problem; try again when it asks.
                    debug!(%error, "cannot start a spare runner");
                    state.due = None;
                }
            }
        }
    }
}

/// Whether an evaluation that starts at `now`, while `others` run and the
/// last ended at `last_end`, is part of a run of evaluations with no pause
/// for preparing spares in between.
fn back_to_back(others: usize, last_end: Option<Instant>, now: Instant) -> bool {
    others > 0 || last_end.is_some_and(|end| now.saturating_duration_since(end) < BACK_TO_BACK)
}

/// An evaluation under way (see [`Pool::begin`]); its end starts any spare
/// it deferred.
pub(crate) struct Running<'a>(&'a Pool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self.0.shared.lock();
        let now = Instant::now();
        state.running = state.running.saturating_sub(1);
        state.last_end = Some(now);
        if let Some(due) = state.due {
            if due > now {
                state.due = Some(now);
                self.0.shared.wake.notify_one();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        let worker = self.worker.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(worker) = worker.take() {
            let _ = worker.join();
        }
        // The spares go here rather than with the last reference to
        // `shared`, and their cgroups with them, waited for: a removal left
        // for later would not survive the process exiting right after.
        drop(std::mem::take(&mut self.shared.lock().spares));
        crate::launch::remove_orphaned_cgroups();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_evaluation_is_not_back_to_back() {
        assert!(!back_to_back(0, None, Instant::now()));
    }

    #[test]
    fn an_evaluation_after_a_pause_is_not_back_to_back() {
        let now = Instant::now();
        assert!(!back_to_back(0, Some(now - Duration::from_millis(20)), now));
    }

    #[test]
    fn an_evaluation_right_after_another_is_back_to_back() {
        let now = Instant::now();
        assert!(back_to_back(0, Some(now - Duration::from_millis(1)), now));
    }

    #[test]
    fn an_evaluation_beside_another_is_back_to_back() {
        let now = Instant::now();
        assert!(back_to_back(1, Some(now - Duration::from_secs(1)), now));
    }
}
