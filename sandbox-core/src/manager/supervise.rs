//! Supervision of a sandbox's long-lived service: start it through a
//! [`ServiceLauncher`], watch it, restart it after a crash with exponential
//! backoff until the restart intensity ([`RestartIntensity`]) is exceeded, then
//! leave it `Failed`.
//!
//! The launcher is the exec layer's business: the confined launcher lives in
//! `sandbox-exec`; this module only decides *when* to launch and kill. Each
//! supervised service has one monitor thread that polls
//! [`ServiceProcess::try_wait`] every 10 ms (a crash is noticed within that)
//! and sleeps through the backoff; stopping wakes it at once.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::error::{ManagerError, Result};
use super::events::EventKind;
use super::protocol::Control;
use super::spec::RestartStrategy;
use super::{store, Shared};
use crate::{Command, EvalRequest};

/// How often a running service is checked for an exit.
const POLL: Duration = Duration::from_millis(10);

/// How a service process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceExit {
    /// Its exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that killed it, when it was killed.
    pub signal: Option<i32>,
    /// The resource limit that ended it, when the launcher knows (the
    /// memory cgroup's OOM killer, the pids limit refusing a fork, the CPU or
    /// file-size rlimit's signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<crate::LimitKind>,
}

impl std::fmt::Display for ServiceExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exited with code {code}")?,
            (None, Some(signal)) => write!(f, "killed by signal {signal}")?,
            (None, None) => f.write_str("ended")?,
        }
        match self.limit {
            Some(limit) => write!(f, " ({limit} limit)"),
            None => Ok(()),
        }
    }
}

/// Why a launcher could not start a service.
pub type LaunchError = Box<dyn std::error::Error + Send + Sync>;

/// What to start: the service command of a sandbox as an [`EvalRequest`]
/// built like [`Manager::eval_request`](super::Manager::eval_request) (policy
/// with a writable workspace, limits, environment with `SANDBOX_CODE_DIR`,
/// working directory). Its `timeout`, `max_output` and `stdin` do not apply to a
/// long-lived service.
#[derive(Debug, Clone)]
pub struct ServiceLaunch {
    /// The sandbox.
    pub sandbox: String,
    /// Command, policy, limits, environment and working directory.
    pub request: EvalRequest,
    /// The code directory, to be visible read-only at the same path.
    pub code_dir: PathBuf,
}

/// Starts service processes. `sandbox-exec` implements it with a confined
/// process; tests use a plain child process.
pub trait ServiceLauncher: Send + Sync + 'static {
    /// Starts the service described by `launch`. Its standard input and output
    /// must be returned by [`ServiceProcess::take_control`] (the control
    /// channel, see [`PROTOCOL_DOC`](super::PROTOCOL_DOC)); its standard error
    /// is the launcher's to keep or log.
    fn launch(&self, launch: &ServiceLaunch) -> Result<Box<dyn ServiceProcess>, LaunchError>;
}

/// A running service process, as the manager sees it.
pub trait ServiceProcess: Send {
    /// Host pid of the service (of its top process), when there is one.
    fn pid(&self) -> Option<u32>;
    /// Whether it has ended, without blocking. Called every 10 ms while it runs.
    fn try_wait(&mut self) -> io::Result<Option<ServiceExit>>;
    /// Kills the service with every process it started and reaps them: when it
    /// returns, nothing of the service remains.
    fn kill(&mut self) -> io::Result<()>;
    /// Hands over the control channel (the service's standard input and
    /// output); `None` after the first call, or when the launcher keeps none.
    fn take_control(&mut self) -> Option<ControlChannel>;
}

/// The manager's end of a service's standard input and output.
pub struct ControlChannel {
    /// Writes to the service's standard input.
    pub to_service: Box<dyn Write + Send>,
    /// Reads the service's standard output.
    pub from_service: Box<dyn Read + Send>,
}

impl std::fmt::Debug for ControlChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlChannel")
    }
}

/// What the supervisor does after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start the service again after this backoff.
    Restart {
        /// How long to wait first.
        after: Duration,
    },
    /// Too many crashes within the period: leave it failed.
    GiveUp,
}

/// The restart intensity of one service: the crashes within the strategy's
/// period, and the backoff they earn.
#[derive(Debug, Clone)]
pub struct RestartIntensity {
    strategy: RestartStrategy,
    crashes: VecDeque<Instant>,
}

impl RestartIntensity {
    /// No crash recorded yet.
    pub fn new(strategy: RestartStrategy) -> Self {
        RestartIntensity {
            strategy,
            crashes: VecDeque::new(),
        }
    }

    /// Records a crash at `now` and decides: give up when more than
    /// `max_restarts` crashes fall within the last `period`, otherwise restart
    /// after `backoff_initial × 2^(n-1)` capped at `backoff_max`, `n` being
    /// the crashes within the period.
    pub fn record(&mut self, now: Instant) -> Decision {
        while let Some(&first) = self.crashes.front() {
            if now.saturating_duration_since(first) >= self.strategy.period {
                self.crashes.pop_front();
            } else {
                break;
            }
        }
        self.crashes.push_back(now);
        let n = self.crashes.len() as u32;
        if n > self.strategy.max_restarts {
            return Decision::GiveUp;
        }
        let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
        let after = self
            .strategy
            .backoff_initial
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.strategy.backoff_max);
        Decision::Restart { after }
    }

    /// Crashes within the period as of the last [`RestartIntensity::record`].
    pub fn recent(&self) -> u32 {
        self.crashes.len() as u32
    }
}

/// The state of a sandbox's service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServiceStatus {
    /// The spec has no service.
    None,
    /// Not started (no launcher, never started, stopped, or a new manager).
    Stopped,
    /// Running.
    Running {
        /// Host pid, when the launcher knows it.
        pid: Option<u32>,
        /// Since when.
        since: SystemTime,
    },
    /// Crashed; waiting out the backoff before the next start.
    Restarting {
        /// Crashes within the intensity period.
        attempt: u32,
        /// The backoff.
        #[serde(with = "super::metrics::duration_ms", rename = "after_ms")]
        after: Duration,
    },
    /// Crashed more often than the restart intensity allows.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A running service process with its control channel.
pub(crate) struct Running {
    pub process: Box<dyn ServiceProcess>,
    pub control: Option<Control>,
    pub since: SystemTime,
}

impl Running {
    /// Kills the process; errors are ignored because the process is then gone or unreachable.
    pub fn kill(mut self) {
        let _ = self.process.kill();
    }
}

pub(crate) enum Phase {
    Running(Running),
    Backoff {
        until: Instant,
        after: Duration,
        attempt: u32,
    },
    Failed(String),
    Stopped,
}

pub(crate) struct Slot {
    pub phase: Phase,
    pub intensity: RestartIntensity,
    stop: bool,
}

pub(crate) struct Core {
    pub name: String,
    pub shared: Arc<Shared>,
    launcher: Arc<dyn ServiceLauncher>,
    slot: Mutex<Slot>,
    wake: Condvar,
}

/// The supervisor of one sandbox's service and its monitor thread.
pub(crate) struct Supervisor {
    pub core: Arc<Core>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Supervisor {
    /// Launches the service (an error here is returned, not retried) and
    /// starts watching it.
    pub fn start(
        name: &str,
        shared: Arc<Shared>,
        launcher: Arc<dyn ServiceLauncher>,
        strategy: RestartStrategy,
    ) -> Result<Supervisor> {
        let core = Arc::new(Core {
            name: name.to_string(),
            shared,
            launcher,
            slot: Mutex::new(Slot {
                phase: Phase::Stopped,
                intensity: RestartIntensity::new(strategy),
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let running = core.launch().map_err(|reason| ManagerError::Launch {
            name: name.to_string(),
            reason,
        })?;
        let pid = running.process.pid();
        core.lock().phase = Phase::Running(running);
        core.shared.emit(name, EventKind::ServiceStarted { pid });
        let monitor = core.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sandbox-supervise-{name}"))
            .spawn(move || monitor.watch())
            .map_err(|e| ManagerError::Launch {
                name: name.to_string(),
                reason: format!("starting the monitor thread: {e}"),
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                if let Phase::Running(r) = std::mem::replace(&mut core.lock().phase, Phase::Stopped)
                {
                    r.kill();
                }
                return Err(e);
            }
        };
        Ok(Supervisor {
            core,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn status(&self) -> ServiceStatus {
        match &self.core.lock().phase {
            Phase::Running(r) => ServiceStatus::Running {
                pid: r.process.pid(),
                since: r.since,
            },
            Phase::Backoff { after, attempt, .. } => ServiceStatus::Restarting {
                attempt: *attempt,
                after: *after,
            },
            Phase::Failed(reason) => ServiceStatus::Failed {
                reason: reason.clone(),
            },
            Phase::Stopped => ServiceStatus::Stopped,
        }
    }

    /// Running or waiting to restart.
    pub fn is_alive(&self) -> bool {
        matches!(
            self.core.lock().phase,
            Phase::Running(_) | Phase::Backoff { .. }
        )
    }

    /// Kills the service and ends the monitor thread; returns once both are gone.
    pub fn stop(&self) {
        self.core.lock().stop = true;
        self.core.wake.notify_all();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
        // The monitor has ended; whatever it left running is killed here.
        let mut slot = self.core.lock();
        if let Phase::Running(r) = std::mem::replace(&mut slot.phase, Phase::Stopped) {
            r.kill();
        }
    }

    /// Asks the running service for its state.
    pub fn export_state(&self, timeout: Duration) -> Result<Vec<u8>> {
        let mut slot = self.core.lock();
        let name = &self.core.name;
        let Phase::Running(running) = &mut slot.phase else {
            return Err(ManagerError::ServiceNotRunning(name.clone()));
        };
        let control = running
            .control
            .as_mut()
            .ok_or_else(|| ManagerError::Protocol {
                name: name.clone(),
                reason: "the launcher gave no control channel".into(),
            })?;
        control
            .export(timeout)
            .map_err(|reason| ManagerError::Protocol {
                name: name.clone(),
                reason,
            })
    }

    /// The slot, for a reload; the monitor waits while it is held.
    pub fn lock_slot(&self) -> MutexGuard<'_, Slot> {
        self.core.lock()
    }
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a process of the service with the sandbox's current spec and code.
    pub fn launch(&self) -> std::result::Result<Running, String> {
        let (command, code_dir) = self
            .shared
            .with(&self.name, |sb| {
                let service = sb.record.spec.service.clone();
                Ok((service.map(|s| s.command), sb.paths.code()))
            })
            .map_err(|e| e.to_string())?;
        let command = command.ok_or("the spec has no service")?;
        let request = self
            .shared
            .request(&self.name, Command::Argv(command))
            .map_err(|e| e.to_string())?;
        let launch = ServiceLaunch {
            sandbox: self.name.clone(),
            request,
            code_dir,
        };
        let mut process = self.launcher.launch(&launch).map_err(|e| e.to_string())?;
        let control = process.take_control().map(Control::new);
        Ok(Running {
            process,
            control,
            since: SystemTime::now(),
        })
    }

    fn count(&self, f: impl FnOnce(&mut super::SandboxMetrics)) {
        // Best effort: the service goes on even when its counters cannot be saved.
        let _ = self.shared.with(&self.name, |sb| {
            f(&mut sb.metrics);
            store::save(&sb.paths.metrics(), "metrics", &sb.metrics)
        });
    }

    /// Records a crash (or a failed restart) and picks what comes next.
    pub(crate) fn crashed(&self, slot: &mut Slot, exit: Option<ServiceExit>, why: String) {
        let limit_hit = exit.is_some_and(|e| e.limit.is_some());
        self.count(|m| {
            m.service_crashes += 1;
            if limit_hit {
                m.limit_hits += 1;
            }
        });
        if let Some(exit) = exit {
            self.shared
                .emit(&self.name, EventKind::ServiceCrashed { exit });
        }
        let now = Instant::now();
        slot.phase = match slot.intensity.record(now) {
            Decision::GiveUp => {
                let reason = format!(
                    "{why}; {} crashes within {} ms exceed the restart intensity ({} restarts)",
                    slot.intensity.recent(),
                    slot.intensity.strategy.period.as_millis(),
                    slot.intensity.strategy.max_restarts
                );
                self.shared.emit(
                    &self.name,
                    EventKind::ServiceFailed {
                        reason: reason.clone(),
                    },
                );
                Phase::Failed(reason)
            }
            Decision::Restart { after } => Phase::Backoff {
                until: now + after,
                after,
                attempt: slot.intensity.recent(),
            },
        };
    }

    /// The monitor thread: watches the process, restarts it, stops on request.
    fn watch(self: Arc<Self>) {
        let mut slot = self.lock();
        loop {
            if slot.stop {
                if let Phase::Running(r) = std::mem::replace(&mut slot.phase, Phase::Stopped) {
                    r.kill();
                    self.shared.emit(&self.name, EventKind::ServiceStopped);
                }
                return;
            }
            let now = Instant::now();
            let mut wait = POLL;
            match &mut slot.phase {
                Phase::Running(r) => match r.process.try_wait() {
                    Ok(None) => {}
                    Ok(Some(exit)) => {
                        self.crashed(&mut slot, Some(exit), format!("the service {exit}"))
                    }
                    Err(e) => {
                        if let Phase::Running(r) =
                            std::mem::replace(&mut slot.phase, Phase::Stopped)
                        {
                            r.kill();
                        }
                        self.crashed(&mut slot, None, format!("watching the service: {e}"));
                    }
                },
                Phase::Backoff {
                    until,
                    after,
                    attempt,
                } => {
                    if now >= *until {
                        let (after, attempt) = (*after, *attempt);
                        match self.launch() {
                            Ok(running) => {
                                let pid = running.process.pid();
                                slot.phase = Phase::Running(running);
                                self.count(|m| m.service_restarts += 1);
                                self.shared.emit(
                                    &self.name,
                                    EventKind::ServiceRestarted {
                                        pid,
                                        attempt,
                                        after,
                                    },
                                );
                            }
                            Err(reason) => self.crashed(
                                &mut slot,
                                None,
                                format!("restarting the service failed: {reason}"),
                            ),
                        }
                    } else {
                        wait = wait.min(*until - now);
                    }
                }
                Phase::Failed(_) | Phase::Stopped => return,
            }
            slot = self
                .wake
                .wait_timeout(slot, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(max: u32, period_ms: u64, initial_ms: u64, max_ms: u64) -> RestartStrategy {
        RestartStrategy {
            max_restarts: max,
            period: Duration::from_millis(period_ms),
            backoff_initial: Duration::from_millis(initial_ms),
            backoff_max: Duration::from_millis(max_ms),
        }
    }

    fn restart(ms: u64) -> Decision {
        Decision::Restart {
            after: Duration::from_millis(ms),
        }
    }

    #[test]
    fn backoff_doubles_per_crash_within_the_period_up_to_the_maximum() {
        let mut i = RestartIntensity::new(strategy(10, 60_000, 100, 500));
        let t = Instant::now();
        let got: Vec<Decision> = (0..5)
            .map(|k| i.record(t + Duration::from_millis(k)))
            .collect();
        assert_eq!(
            got,
            [
                restart(100),
                restart(200),
                restart(400),
                restart(500),
                restart(500)
            ]
        );
    }

    #[test]
    fn one_crash_more_than_max_restarts_within_the_period_gives_up() {
        let mut i = RestartIntensity::new(strategy(3, 1_000, 1, 10));
        let t = Instant::now();
        for k in 0..3 {
            assert!(matches!(
                i.record(t + Duration::from_millis(k)),
                Decision::Restart { .. }
            ));
        }
        assert_eq!(i.record(t + Duration::from_millis(3)), Decision::GiveUp);
    }

    #[test]
    fn crashes_older_than_the_period_are_forgotten() {
        let mut i = RestartIntensity::new(strategy(2, 1_000, 100, 10_000));
        let t = Instant::now();
        i.record(t);
        i.record(t + Duration::from_millis(10));
        // Both earlier crashes are out of the window: back to the first backoff.
        assert_eq!(i.record(t + Duration::from_millis(1_500)), restart(100));
        assert_eq!(i.recent(), 1);
    }

    #[test]
    fn zero_max_restarts_gives_up_at_the_first_crash() {
        let mut i = RestartIntensity::new(strategy(0, 1_000, 1, 1));
        assert_eq!(i.record(Instant::now()), Decision::GiveUp);
    }
}
