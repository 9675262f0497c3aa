//! Long-lived confined processes whose standard input and output belong to
//! the caller: the services of named sandboxes.
//!
//! A service starts exactly like an evaluation — a fresh runner, the same
//! namespaces, mounts, Landlock, seccomp and limits, from the same
//! [`EvalRequest`] — but nothing captures its output and no timeout applies:
//! its standard input and output are handed to the caller (the manager's
//! control channel), its standard error is kept as a bounded tail for
//! diagnostics, and it runs until it exits or is killed. Killing it kills its
//! pid namespace, so nothing it started survives.
//!
//! [`ConfinedLauncher`] implements the manager's
//! [`ServiceLauncher`](sandbox_core::manager::ServiceLauncher) with it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandbox_core::manager::{
    ControlChannel, LaunchError, ServiceExit, ServiceLaunch, ServiceLauncher, ServiceProcess,
};
use sandbox_core::{EvalRequest, LimitKind, Termination, ViolationLog};
use tokio::runtime::Runtime;
use tracing::debug;

use crate::cgroup::Cgroup;
use crate::error::ExecError;
use crate::frame::{self, FrameError};
use crate::handover::{self, HandedOver};
use crate::pidfd::{ChildProcess, Pidfd};
use crate::placeholder::StandIns;
use crate::prewarm::Pool;
use crate::protocol::Report;
use crate::Executor;

/// How long a service may take to get its runner started and connected.
const STARTUP_PATIENCE: Duration = Duration::from_secs(30);

/// How much of a service's standard error is kept.
const STDERR_TAIL: usize = 64 * 1024;

/// How long [`ConfinedService::kill`] waits for the runner and init to go.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Starts services confined by their sandbox's policy and limits, through an
/// [`Executor`]'s runners.
///
/// ```no_run
/// use std::sync::Arc;
/// use sandbox_core::manager::Manager;
/// use sandbox_exec::{ConfinedLauncher, Executor};
///
/// let launcher = ConfinedLauncher::new(Executor::new()?)?;
/// let manager = Manager::open("/var/tmp/sandboxes")?.with_launcher(Arc::new(launcher));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConfinedLauncher {
    executor: Executor,
    runtime: Arc<ServiceRuntime>,
}

/// The launcher's runtime, shut down without blocking when the last service
/// and launcher let go of it: that may happen inside a caller's runtime,
/// where dropping a runtime the ordinary way panics.
#[derive(Debug)]
struct ServiceRuntime(Option<Runtime>);

impl ServiceRuntime {
    fn get(&self) -> &Runtime {
        self.0.as_ref().expect("the runtime lives until drop")
    }
}

impl Drop for ServiceRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl ConfinedLauncher {
    /// A launcher starting services through `executor`'s runners.
    pub fn new(executor: Executor) -> Result<Self, ExecError> {
        // The manager calls from plain threads; the runner channels need a
        // reactor, so the launcher brings its own small runtime.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sandbox-service")
            .enable_all()
            .build()
            .map_err(ExecError::Runtime)?;
        Ok(ConfinedLauncher {
            executor,
            runtime: Arc::new(ServiceRuntime(Some(runtime))),
        })
    }

    /// Starts `request` as a service: confined like an evaluation, its
    /// standard input and output the caller's, no timeout.
    pub fn spawn(&self, request: EvalRequest) -> Result<ConfinedService, ExecError> {
        let executor = self.executor.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        // Spawned on the runtime and awaited through a channel, so this
        // works from any thread, a runtime's own included.
        self.runtime.get().spawn(async move {
            let _ = tx.send(executor.start_service(request).await);
        });
        let started = rx.recv().map_err(|_| ExecError::RunnerFailed {
            reason: "the service runtime stopped while the service was starting".into(),
        })??;
        Ok(ConfinedService::new(started, Arc::clone(&self.runtime)))
    }
}

impl ServiceLauncher for ConfinedLauncher {
    fn launch(&self, launch: &ServiceLaunch) -> Result<Box<dyn ServiceProcess>, LaunchError> {
        let request = launch.request.clone().visible(&launch.code_dir);
        Ok(Box::new(self.spawn(request)?))
    }
}

/// What [`start`] hands over: a runner that has taken the service's job.
pub(crate) struct Started {
    handed: HandedOver,
    cgroup: Option<Cgroup>,
    stand_ins: StandIns,
    attached: crate::evaluation::Attached,
}

/// Starts the service's runner: the same preparation as an evaluation's.
pub(crate) async fn start(
    pool: &Pool,
    log: &Arc<ViolationLog>,
    request: EvalRequest,
) -> Result<Started, ExecError> {
    let argv = crate::validate::request(&request, &|dir| dir.is_dir())?;
    let privileged = !pool.launcher().user_namespace;
    let name = format!("{}-{}", std::process::id(), request.id.0);
    let mut spare = pool
        .take_or_await(
            crate::launch::Preparation::for_policy(&request.policy),
            crate::prewarm::SPARE_PATIENCE,
        )
        .await;
    let mut limits = crate::limits::plan(
        &request.limits,
        &name,
        privileged,
        spare.as_mut().map(|s| &mut s.cgroup),
        pool.shelf(),
    )?;
    let crate::evaluation::Prepared {
        job,
        stand_ins,
        weakened,
    } = crate::evaluation::prepare(&request, argv, &limits, pool.plans())?;
    if !weakened.is_empty() {
        debug!(
            ?weakened,
            "service runs with weaker confinement, as accepted"
        );
    }
    let cgroup_procs = limits
        .cgroup
        .as_ref()
        .map(|c| c.procs_files())
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + STARTUP_PATIENCE;
    let handed = match handover::hand_over(
        pool,
        &job,
        &cgroup_procs,
        limits.preattached,
        deadline,
        spare,
    )
    .await
    {
        Ok(handed) => handed,
        Err(error) => {
            if let Some(cgroup) = limits.cgroup.take() {
                cgroup.remove();
            }
            return Err(error);
        }
    };
    // Its denied calls are answered, and its network bridged, like an
    // evaluation's.
    let attached = crate::evaluation::attach(
        &handed.stream,
        &job,
        &request,
        log,
        deadline,
        false,
        handed.init_pid,
    )
    .await
    .map_err(|attempt| match attempt {
        crate::evaluation::Attempt::Failed(error) => error,
        crate::evaluation::Attempt::SpareLost(reason) => ExecError::RunnerFailed { reason },
    });
    let attached = match attached {
        Ok(attached) => attached,
        Err(error) => {
            if let Some(cgroup) = limits.cgroup.take() {
                cgroup.remove();
            }
            return Err(error);
        }
    };
    Ok(Started {
        handed,
        cgroup: limits.cgroup.take(),
        stand_ins,
        attached,
    })
}

/// A running confined service (see the module docs).
#[derive(Debug)]
pub struct ConfinedService {
    runner: ChildProcess,
    init: Option<Pidfd>,
    control: Option<(File, File)>,
    exit: Arc<Mutex<Option<ServiceExit>>>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    cgroup: Option<Cgroup>,
    stand_ins: StandIns,
    /// The limit that ended it, once judged.
    limit: Option<Option<LimitKind>>,
    /// Answers its denied calls and serves its proxy bridge while it runs.
    _attached: crate::evaluation::Attached,
    /// Reads the final report; kept alive as long as the service, even when
    /// the launcher that started it is gone.
    _runtime: Arc<ServiceRuntime>,
}

impl ConfinedService {
    fn new(started: Started, runtime: Arc<ServiceRuntime>) -> Self {
        let HandedOver {
            launched,
            mut stream,
            init,
            ..
        } = started.handed;
        let exit = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&exit);
        runtime.get().spawn(async move {
            let ended = read_exit(&mut stream).await;
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(ended);
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr);
        let mut errors = File::from(launched.stderr);
        let _ = std::thread::Builder::new()
            .name("sandbox-service-stderr".into())
            .spawn(move || keep_tail(&mut errors, &tail));
        ConfinedService {
            runner: launched.process,
            init,
            control: Some((File::from(launched.stdin), File::from(launched.stdout))),
            exit,
            stderr,
            cgroup: started.cgroup,
            stand_ins: started.stand_ins,
            limit: None,
            _attached: started.attached,
            _runtime: runtime,
        }
    }

    /// The last bytes (at most 64 KiB) the service wrote to standard error.
    pub fn stderr_tail(&self) -> Vec<u8> {
        let tail = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().copied().collect()
    }

    /// How the service ended, if it has.
    pub fn exit(&self) -> Option<ServiceExit> {
        *self.exit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes what the service leaves on the host once its init is gone.
    fn clean_up(&mut self) {
        if let Some(init) = &self.init {
            crate::reclaim::wait_exited(init, KILL_GRACE);
        }
        self.stand_ins = StandIns::default();
        if let Some(cgroup) = self.cgroup.take() {
            cgroup.remove();
        }
    }
}

impl ServiceProcess for ConfinedService {
    fn pid(&self) -> Option<u32> {
        Some(self.init.as_ref().map_or(self.runner.pid(), Pidfd::pid))
    }

    fn try_wait(&mut self) -> std::io::Result<Option<ServiceExit>> {
        let Some(mut exit) = self.exit() else {
            return Ok(None);
        };
        // Judged once, while the cgroups and their counters still exist.
        let limit = *self
            .limit
            .get_or_insert_with(|| limit_of(self.cgroup.as_ref(), &exit));
        exit.limit = limit;
        if self.cgroup.is_some() || !self.stand_ins.is_empty() {
            // Init reports after everything else of the service is gone.
            self.clean_up();
        }
        Ok(Some(exit))
    }

    fn kill(&mut self) -> std::io::Result<()> {
        if let Some(init) = &self.init {
            init.kill();
        }
        self.runner.kill();
        crate::reclaim::wait_exited(self.runner.pidfd(), KILL_GRACE);
        let _ = self.runner.try_wait();
        self.clean_up();
        let mut exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        exit.get_or_insert(ServiceExit {
            code: None,
            signal: Some(libc::SIGKILL),
            limit: None,
        });
        Ok(())
    }

    fn take_control(&mut self) -> Option<ControlChannel> {
        let (to_service, from_service) = self.control.take()?;
        Some(ControlChannel {
            to_service: Box::new(to_service),
            from_service: Box::new(from_service),
        })
    }
}

impl Drop for ConfinedService {
    fn drop(&mut self) {
        if self.exit().is_none() {
            let _ = ServiceProcess::kill(self);
        } else {
            self.clean_up();
        }
    }
}

/// How the service ended, from init's final report; a runner lost without
/// one counts as killed.
async fn read_exit(stream: &mut interprocess::local_socket::tokio::Stream) -> ServiceExit {
    loop {
        match frame::read_async::<_, Report>(stream).await {
            Ok(Report::Accepted) => continue,
            Ok(Report::Finished { termination, .. })
            | Ok(Report::SetupFailed { termination, .. }) => {
                return match termination {
                    Termination::Exited(code) => ServiceExit {
                        code: Some(code),
                        signal: None,
                        limit: None,
                    },
                    Termination::Signaled(signal) => ServiceExit {
                        code: None,
                        signal: Some(signal),
                        limit: None,
                    },
                }
            }
            Ok(Report::SpawnFailed { reason, code }) => {
                debug!(%reason, "the service could not be started");
                return ServiceExit {
                    code: Some(code),
                    signal: None,
                    limit: None,
                };
            }
            Ok(Report::Failed { reason }) => {
                debug!(%reason, "the service's runner failed");
                return ServiceExit {
                    code: Some(125),
                    signal: None,
                    limit: None,
                };
            }
            Ok(other) => {
                debug!(?other, "unexpected report from a service's runner");
                continue;
            }
            Err(FrameError::Closed) | Err(_) => {
                return ServiceExit {
                    code: None,
                    signal: Some(libc::SIGKILL),
                    limit: None,
                }
            }
        }
    }
}

/// The resource limit that ended a service, from its cgroups' counters and
/// the rlimit signals: the resource monitor's verdict.
fn limit_of(cgroup: Option<&Cgroup>, exit: &ServiceExit) -> Option<LimitKind> {
    let stats = cgroup.map(Cgroup::stats).unwrap_or_default();
    if stats.oom_kills > 0 {
        return Some(LimitKind::Memory);
    }
    match exit.signal {
        Some(libc::SIGXCPU) => Some(LimitKind::CpuTime),
        Some(libc::SIGXFSZ) => Some(LimitKind::FileSize),
        _ if stats.pids_refused > 0 => Some(LimitKind::Pids),
        _ => None,
    }
}

/// Reads `from` to its end, keeping the last [`STDERR_TAIL`] bytes.
fn keep_tail(from: &mut File, tail: &Mutex<VecDeque<u8>>) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                tail.extend(&buf[..n]);
                let excess = tail.len().saturating_sub(STDERR_TAIL);
                tail.drain(..excess);
            }
        }
    }
}
