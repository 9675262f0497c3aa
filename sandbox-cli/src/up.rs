//! `sandbox up`: the foreground supervisor of a state directory.
//!
//! It opens the [`Manager`] (so it holds the directory's lock: a second `sandbox
//! up`, or any other manager, is refused with the lock error), gives it the
//! confined service launcher, starts the service of every sandbox that has
//! one, and then serves the other `sandbox` commands on
//! `STATE_DIR/control.sock` ([`crate::control`]), one thread per connection.
//! It keeps the last [`EVENTS_KEPT`] events for `sandbox events` and streams new
//! ones to `sandbox events --follow`, and logs each to standard error.
//!
//! SIGINT and SIGTERM stop it: every service is stopped (the launcher kills
//! each service's whole process tree), the socket is removed, and the lock is
//! released when the process exits. Why a foreground process rather than a
//! daemon started on demand is explained in [`crate::manage`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use sandbox_core::manager::{Manager, ManagerError, ManagerEvent, ServiceLauncher, StateDir};
use sandbox_exec::Executor;

use crate::manage::args::UpArgs;
use crate::manage::render;
use crate::manage::serve::{Served, Supervision};
use crate::run::EXIT_SANDBOX_FAILED;

/// Events kept for `sandbox events` (all sandboxes together).
pub const EVENTS_KEPT: usize = 10_000;

/// Runs the supervisor until SIGINT or SIGTERM; returns the exit status.
pub fn up(args: UpArgs, dir: StateDir) -> i32 {
    match supervise(args, dir) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("sandbox up: error: {err:#}");
            EXIT_SANDBOX_FAILED
        }
    }
}

fn supervise(args: UpArgs, dir: StateDir) -> anyhow::Result<()> {
    let path = dir.path().to_path_buf();
    let manager = match Manager::open_state_dir(dir) {
        Ok(m) => m,
        Err(err @ ManagerError::Locked { .. }) => {
            return Err(anyhow::anyhow!(
                "{err}; is `sandbox up` already running for {}?",
                path.display()
            ))
        }
        Err(err) => return Err(err.into()),
    };
    let executor = Executor::new().context("cannot create the executor")?;
    // Services and migrations start now and then: a spare runner would idle.
    executor.set_prewarm(0);
    let manager = Arc::new(manager.with_launcher(launcher(&executor)?));
    let events = EventLog::start(manager.subscribe());
    let supervision = Arc::new(Supervision { events, executor });
    stop_on_signals()?;

    let listener = crate::control::bind(&path)?;
    {
        let (manager, supervision) = (manager.clone(), supervision.clone());
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let (manager, supervision) = (manager.clone(), supervision.clone());
                    let _ = std::thread::Builder::new()
                        .name("client".into())
                        .spawn(move || {
                            crate::control::serve(stream, |request, sink| {
                                Served {
                                    manager: &manager,
                                    supervision: Some(&supervision),
                                }
                                .handle(request, sink)
                            })
                        });
                }
            })
            .context("cannot start the control thread")?;
    }

    let sandboxes = manager.list();
    let mut services = 0;
    for info in sandboxes.iter().filter(|i| i.spec.service.is_some()) {
        if args.no_autostart {
            continue;
        }
        match manager.start_service(&info.name) {
            Ok(_) => services += 1,
            Err(err) => eprintln!(
                "sandbox up: the service of {} did not start: {err}",
                info.name
            ),
        }
    }
    for (name, err) in manager.broken() {
        eprintln!("sandbox up: warning: sandbox {name:?} cannot be loaded: {err}");
    }
    eprintln!(
        "sandbox up: supervising {} ({} sandboxes, {services} services running); control socket {}; Ctrl-C stops",
        path.display(),
        sandboxes.len(),
        crate::control::socket_path(&path).display()
    );

    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("sandbox up: stopping");
    // New clients find no socket and no answer from here on.
    let _ = std::fs::remove_file(crate::control::socket_path(&path));
    for info in manager.list() {
        if info.spec.service.is_some() {
            let _ = manager.stop_service(&info.name);
        }
    }
    supervision.events.close();
    eprintln!("sandbox up: every service stopped");
    Ok(())
}

/// The confined launcher of `sandbox-exec`: a service runs like an
/// evaluation of its sandbox (policy, limits, namespaces) without a timeout.
fn launcher(executor: &Executor) -> anyhow::Result<Arc<dyn ServiceLauncher>> {
    let launcher = sandbox_exec::ConfinedLauncher::new(executor.clone())
        .context("cannot create the service launcher")?;
    Ok(Arc::new(launcher))
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

fn stop_on_signals() -> anyhow::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic; the sigaction struct is
        // fully initialised. Handlers reset to default in exec'd children.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            return Err(std::io::Error::last_os_error())
                .context("cannot install the SIGINT/SIGTERM handler");
        }
    }
    Ok(())
}

/// The recent events of every sandbox, and the followers of new ones.
pub struct EventLog {
    inner: Mutex<Log>,
}

struct Log {
    recent: VecDeque<ManagerEvent>,
    followers: Vec<Sender<ManagerEvent>>,
}

impl EventLog {
    /// Collects the events of `events` on a thread of its own.
    fn start(events: Receiver<ManagerEvent>) -> Arc<EventLog> {
        let log = Arc::new(EventLog {
            inner: Mutex::new(Log {
                recent: VecDeque::new(),
                followers: Vec::new(),
            }),
        });
        let collector = log.clone();
        let _ = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                for event in events {
                    if let Ok(line) = render::event(&event, false) {
                        eprint!("sandbox up: {line}");
                    }
                    collector.push(event);
                }
            });
        log
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, event: ManagerEvent) {
        let mut log = self.lock();
        if log.recent.len() == EVENTS_KEPT {
            log.recent.pop_front();
        }
        log.followers.retain(|tx| tx.send(event.clone()).is_ok());
        log.recent.push_back(event);
    }

    /// The events kept so far and, with `follow`, a receiver of every later
    /// one: taken together, so none is missed or seen twice.
    pub fn follow(&self, follow: bool) -> (Vec<ManagerEvent>, Option<Receiver<ManagerEvent>>) {
        let mut log = self.lock();
        let history = log.recent.iter().cloned().collect();
        let live = follow.then(|| {
            let (tx, rx) = channel();
            log.followers.push(tx);
            rx
        });
        (history, live)
    }

    /// Ends every follower's stream.
    fn close(&self) {
        self.lock().followers.clear();
    }
}
