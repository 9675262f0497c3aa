//! Teardown that need not delay an outcome: emptying an evaluation's cgroups
//! (for reuse, see [`Shelf`]) and removing its stand-ins for protected paths.
//!
//! A cgroup can only be removed once every task has left it, and init leaves
//! only by exiting, which takes the kernel a good half millisecond (the pid,
//! mount and network namespaces are torn down with it); a stand-in removed
//! while the sandbox's mount namespace still exists makes the kernel detach
//! its bind there first, which costs as much again. Nothing of the evaluation
//! runs by then — init killed and reaped the rest before its report — and the
//! cgroup's figures are final, so the outcome is returned at once and one
//! thread per executor waits for init and removes both. Dropping the executor
//! finishes every pending removal first, so nothing outlives it.

use std::os::fd::AsRawFd;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::debug;

use crate::cgroup::Cgroup;
use crate::cgroup_shelf::Shelf;
use crate::network_shelf::Networks;
use crate::pidfd::Pidfd;
use crate::placeholder::StandIns;

/// How long the thread waits for an init to exit before removing its cgroups
/// anyway (the removal then retries on its own while tasks remain).
const INIT_EXIT_GRACE: Duration = Duration::from_secs(2);

/// One evaluation's leftovers.
#[derive(Debug)]
pub(crate) struct Leftovers {
    /// The evaluation's init, whose exit the removal waits for.
    pub init: Option<Pidfd>,
    /// The cgroups to remove.
    pub cgroup: Option<Cgroup>,
    /// The stand-ins to release.
    pub stand_ins: StandIns,
    /// Whether init reported: then nothing of the evaluation runs any more
    /// and the stand-ins may go even if init's exit cannot be waited for.
    pub reported: bool,
    /// A confined init's network namespace, kept for a later spare once
    /// init has exited.
    pub network: Option<std::os::fd::OwnedFd>,
}

impl Leftovers {
    /// Whether there is anything to remove.
    pub fn anything(&self) -> bool {
        self.cgroup.is_some() || !self.stand_ins.is_empty() || self.network.is_some()
    }
}

/// The reclaiming thread of one executor, started on first use.
#[derive(Debug)]
pub(crate) struct Reclaimer {
    worker: Mutex<Option<(Sender<Leftovers>, JoinHandle<()>)>>,
    /// Where emptied cgroups go for the next evaluations.
    shelf: Arc<Shelf>,
    networks: Arc<Networks>,
}

impl Reclaimer {
    pub fn new(shelf: Arc<Shelf>, networks: Arc<Networks>) -> Self {
        Reclaimer {
            worker: Mutex::new(None),
            shelf,
            networks,
        }
    }

    /// Removes `leftovers` once their init has exited, off the caller's path.
    pub fn submit(&self, leftovers: Leftovers) {
        let mut worker = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if worker.is_none() {
            let (tx, rx) = channel::<Leftovers>();
            let shelf = self.shelf.clone();
            let networks = self.networks.clone();
            let spawned = std::thread::Builder::new()
                .name("sandbox-reclaim".into())
                .spawn(move || {
                    for leftovers in rx {
                        reclaim(leftovers, &shelf, &networks);
                    }
                });
            match spawned {
                Ok(handle) => *worker = Some((tx, handle)),
                // No thread: do it here, late rather than never.
                Err(error) => {
                    debug!(%error, "cannot start the reclaiming thread");
                    drop(worker);
                    reclaim(leftovers, &self.shelf, &self.networks);
                    return;
                }
            }
        }
        if let Some((tx, _)) = worker.as_ref() {
            if let Err(returned) = tx.send(leftovers) {
                reclaim(returned.0, &self.shelf, &self.networks);
            }
        }
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        let worker = self.worker.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((tx, handle)) = worker.take() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

fn reclaim(mut leftovers: Leftovers, shelf: &Shelf, networks: &Networks) {
    let exited = leftovers
        .init
        .as_ref()
        .is_some_and(|init| wait_exited(init, INIT_EXIT_GRACE));
    if !exited && !leftovers.reported {
        // Init was killed and is not gone: its mount namespace may still hold
        // the binds. The next evaluation in the same place adopts them.
        leftovers.stand_ins.leave_in_place();
    }
    drop(leftovers.stand_ins);
    if let Some(network) = leftovers.network.take().filter(|_| exited) {
        networks.put(network);
    }
    match leftovers.cgroup {
        Some(cgroup) if exited => shelf.put(cgroup),
        Some(cgroup) => cgroup.remove(),
        None => {}
    }
}

/// Blocks until `process` has exited or `grace` has passed; whether it has.
pub(crate) fn wait_exited(process: &Pidfd, grace: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd: process.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = grace.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one pollfd for a descriptor that outlives the call.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        if ready >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return ready > 0;
        }
    }
}
