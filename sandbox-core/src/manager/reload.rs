//! Hot reload and rollback of a module, with the service swapped to the new
//! code and its state migrated.
//!
//! With a running service, a reload goes: the old process exports its state
//! (`EXPORT`, only when a state handler is given), the old process is killed,
//! the new version becomes active in the code directory, a new process starts,
//! the handler transforms the state and the new process imports it
//! (`IMPORT`, acknowledged by `IMPORTED`), and the new process must stay up for
//! the grace period. If any step after the kill fails — the new process does
//! not start, exits within the grace period, refuses or never acknowledges
//! the import, or the handler fails — the previous version is re-activated
//! and started again with the *unchanged* old state, and the report says why
//! (`rolled_back`). The new version stays in the history, inactive.
//!
//! The supervisor's monitor waits while a reload runs, so the killed old
//! process is never mistaken for a crash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::Result;
use super::events::EventKind;
use super::supervise::{Phase, Running, Supervisor};
use super::Manager;

/// Transforms the exported state of the old version (`old_state`,
/// `old_version`, `new_version`) into the state the new version imports. The
/// old version is 0 when the module had no active version.
pub type StateHandler = Arc<dyn Fn(Vec<u8>, u32, u32) -> Result<Vec<u8>, String> + Send + Sync>;

/// How a hot reload runs.
#[derive(Clone)]
pub struct ReloadOptions {
    /// Migrates the running service's state; without it the new process starts
    /// fresh and the old one is not asked for its state.
    pub state_handler: Option<StateHandler>,
    /// How long the new process must stay up to count as started (default 100 ms).
    pub grace: Duration,
    /// How long to wait for each answer of the service (default 5 s).
    pub timeout: Duration,
    /// Wait for the new process's `READY` before importing (default false);
    /// the report then tells the service's own start-up time apart.
    pub wait_ready: bool,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        ReloadOptions {
            state_handler: None,
            grace: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
            wait_ready: false,
        }
    }
}

impl std::fmt::Debug for ReloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadOptions")
            .field("state_handler", &self.state_handler.is_some())
            .field("grace", &self.grace)
            .field("timeout", &self.timeout)
            .field("wait_ready", &self.wait_ready)
            .finish()
    }
}

impl ReloadOptions {
    /// Sets the state handler (the seed's `state_handler:`).
    pub fn state_handler(
        mut self,
        handler: impl Fn(Vec<u8>, u32, u32) -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) -> Self {
        self.state_handler = Some(Arc::new(handler));
        self
    }

    /// Sets the grace period.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the answer timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Waits for `READY` before importing.
    pub fn wait_ready(mut self, wait: bool) -> Self {
        self.wait_ready = wait;
        self
    }
}

/// What a reload (or a rollback) did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// The module.
    pub module: String,
    /// The version active before.
    pub from: Option<u32>,
    /// The version installed (active unless `rolled_back`).
    pub to: u32,
    /// Whether the service's state was exported, transformed and imported.
    pub migrated: bool,
    /// Whether a running service was replaced by a process of the new version.
    pub service_restarted: bool,
    /// Why the new version was abandoned and `from` re-activated.
    pub rolled_back: Option<String>,
    /// The whole call, grace period included.
    #[serde(with = "super::metrics::duration_ms", rename = "duration_ms")]
    pub duration: Duration,
    /// From the call to the new process serving (its import acknowledged, or
    /// its `READY`, or its launch), before the grace period.
    #[serde(skip)]
    pub serving_after: Option<Duration>,
    /// The new process's own start-up (launch to `READY`), with `wait_ready`.
    #[serde(skip)]
    pub service_startup: Option<Duration>,
}

impl ReloadReport {
    /// True when the report leaves `to` active.
    pub fn succeeded(&self) -> bool {
        self.rolled_back.is_none()
    }
}

impl Manager {
    /// Installs `bytes` as the new version of `module` and makes it active;
    /// a running service is replaced by one on the new code, its state
    /// migrated when `opts` has a state handler. Bytes equal to the active
    /// version change nothing (`from == Some(to)`).
    ///
    /// With a running service: the old process exports its state (`EXPORT`,
    /// only with a state handler; see [`PROTOCOL_DOC`](super::PROTOCOL_DOC)),
    /// is killed, the new version becomes active in the code directory, a new
    /// process starts, the handler's result is imported (`IMPORT`, answered by
    /// `IMPORTED`), and the new process must stay up for the grace period. If
    /// any step after the kill fails, the previous version is re-activated and
    /// started again with its unchanged state: that is not an `Err`, the
    /// report's `rolled_back` says why. The new version stays in the history,
    /// inactive.
    pub fn hot_reload(
        &self,
        name: &str,
        module: &str,
        bytes: &[u8],
        opts: ReloadOptions,
    ) -> Result<ReloadReport> {
        let start = Instant::now();
        let (from, to, new) = self.shared.add_version(name, module, bytes)?;
        let mut report = ReloadReport {
            module: module.to_string(),
            from,
            to,
            migrated: false,
            service_restarted: false,
            rolled_back: None,
            duration: Duration::ZERO,
            serving_after: None,
            service_startup: None,
        };
        if new {
            match self.supervisor(name) {
                Some(sup) => sup.switch(&mut report, false, &opts, start)?,
                None => {
                    self.shared.activate(name, module, Some(to), false)?;
                }
            }
            if report.succeeded() {
                self.shared.emit(
                    name,
                    EventKind::Reloaded {
                        module: module.to_string(),
                        from,
                        to,
                        migrated: report.migrated,
                    },
                );
            }
        }
        report.duration = start.elapsed();
        Ok(report)
    }

    /// Re-activates `version` of `module` (the seed's `rollback_module`): its
    /// bytes are checked against their sha256 and put back in the code
    /// directory, and a running service restarts on them (without state
    /// migration). The history keeps every version.
    pub fn rollback_module(&self, name: &str, module: &str, version: u32) -> Result<ReloadReport> {
        let start = Instant::now();
        let from = self.shared.with(name, |sb| {
            Ok(sb.modules.modules.get(module).and_then(|m| m.current))
        })?;
        let mut report = ReloadReport {
            module: module.to_string(),
            from,
            to: version,
            migrated: false,
            service_restarted: false,
            rolled_back: None,
            duration: Duration::ZERO,
            serving_after: None,
            service_startup: None,
        };
        match self.supervisor(name) {
            Some(sup) => sup.switch(&mut report, true, &ReloadOptions::default(), start)?,
            None => {
                self.shared.activate(name, module, Some(version), true)?;
            }
        }
        if report.succeeded() {
            self.shared.emit(
                name,
                EventKind::RolledBack {
                    module: module.to_string(),
                    from,
                    to: Some(version),
                    reason: "requested".into(),
                },
            );
        }
        report.duration = start.elapsed();
        Ok(report)
    }
}

impl Supervisor {
    /// Activates `report.to` of `report.module` and swaps the service onto it.
    pub(crate) fn switch(
        &self,
        report: &mut ReloadReport,
        verify: bool,
        opts: &ReloadOptions,
        start: Instant,
    ) -> Result<()> {
        let core = &self.core;
        let module = report.module.clone();
        let (name, module) = (core.name.as_str(), module.as_str());
        let mut slot = self.lock_slot();
        let mut old = match std::mem::replace(&mut slot.phase, Phase::Stopped) {
            Phase::Running(old) => old,
            other => {
                // Not running: the next (re)start picks up the new code.
                slot.phase = other;
                core.shared
                    .activate(name, module, Some(report.to), verify)?;
                return Ok(());
            }
        };

        let mut old_state = None;
        if opts.state_handler.is_some() {
            let exported = match old.control.as_mut() {
                Some(control) => control.export(opts.timeout),
                None => Err("the launcher gave no control channel".to_string()),
            };
            match exported {
                Ok(state) => old_state = Some(state),
                Err(reason) => {
                    // Nothing changed yet: the old process keeps serving.
                    slot.phase = Phase::Running(old);
                    let reason = format!("the old version did not export its state: {reason}");
                    abandon(self, report, reason);
                    return Ok(());
                }
            }
        }
        old.kill();

        if let Err(e) = core.shared.activate(name, module, Some(report.to), verify) {
            self.restart_previous(&mut slot, old_state.as_deref(), opts);
            return Err(e);
        }
        report.service_restarted = true;
        match self.start_new(report, old_state.as_deref(), opts, start) {
            Ok(running) => {
                let pid = running.process.pid();
                slot.phase = Phase::Running(running);
                report.migrated = old_state.is_some();
                core.shared.emit(name, EventKind::ServiceStarted { pid });
                Ok(())
            }
            Err(reason) => {
                let back = core.shared.activate(name, module, report.from, false);
                self.restart_previous(&mut slot, old_state.as_deref(), opts);
                back?;
                abandon(self, report, reason);
                Ok(())
            }
        }
    }

    /// Launches the new version, migrates the state into it and sits out the grace period.
    fn start_new(
        &self,
        report: &mut ReloadReport,
        old_state: Option<&[u8]>,
        opts: &ReloadOptions,
        start: Instant,
    ) -> std::result::Result<Running, String> {
        let launched = Instant::now();
        let mut running = self
            .core
            .launch()
            .map_err(|e| format!("the new version did not start: {e}"))?;
        let result = (|| {
            if opts.wait_ready {
                control(&mut running)?.wait_ready(opts.timeout)?;
                report.service_startup = Some(launched.elapsed());
            }
            if let (Some(state), Some(handler)) = (old_state, &opts.state_handler) {
                let migrated = handler(state.to_vec(), report.from.unwrap_or(0), report.to)
                    .map_err(|e| format!("the state handler failed: {e}"))?;
                control(&mut running)?
                    .import(&migrated, opts.timeout)
                    .map_err(|e| format!("the new version did not import the state: {e}"))?;
            }
            report.serving_after = Some(start.elapsed());
            let deadline = Instant::now() + opts.grace;
            loop {
                if let Some(exit) = running.process.try_wait().map_err(|e| e.to_string())? {
                    return Err(format!(
                        "the new version {exit} within the grace period of {} ms",
                        opts.grace.as_millis()
                    ));
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(());
                }
                std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
            }
        })();
        match result {
            Ok(()) => Ok(running),
            Err(reason) => {
                running.kill();
                Err(reason)
            }
        }
    }

    /// Starts the previous version again (its code is active again) with its
    /// unchanged state; if that fails too, the supervisor's restart policy takes over.
    fn restart_previous(
        &self,
        slot: &mut super::supervise::Slot,
        old_state: Option<&[u8]>,
        opts: &ReloadOptions,
    ) {
        let core = &self.core;
        match core.launch() {
            Ok(mut running) => {
                if let (Some(state), Some(control)) = (old_state, running.control.as_mut()) {
                    // Best effort: the previous version runs even if it cannot take its state back.
                    let _ = control.import(state, opts.timeout);
                }
                let pid = running.process.pid();
                slot.phase = Phase::Running(running);
                core.shared
                    .emit(&core.name, EventKind::ServiceStarted { pid });
            }
            Err(reason) => core.crashed(
                slot,
                None,
                format!("restarting the previous version failed: {reason}"),
            ),
        }
    }
}

fn control(running: &mut Running) -> std::result::Result<&mut super::protocol::Control, String> {
    running
        .control
        .as_mut()
        .ok_or_else(|| "the launcher gave no control channel".to_string())
}

fn abandon(sup: &Supervisor, report: &mut ReloadReport, reason: String) {
    sup.core.shared.emit(
        &sup.core.name,
        EventKind::RolledBack {
            module: report.module.clone(),
            from: Some(report.to),
            to: report.from,
            reason: reason.clone(),
        },
    );
    report.rolled_back = Some(reason);
}
