//! The manager's event stream: what happened to which sandbox, for dashboards,
//! logs and tests ([`Manager::subscribe`](super::Manager::subscribe)).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::supervise::ServiceExit;
use crate::{EvalId, Status};

/// Something that happened to a named sandbox.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ManagerEvent {
    /// When.
    pub time: SystemTime,
    /// The sandbox.
    pub sandbox: String,
    /// What.
    pub kind: EventKind,
}

/// What happened. Serialized tagged by `event`, e.g. `{"event":"service_crashed",…}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The sandbox was created.
    Created,
    /// The sandbox was destroyed.
    Destroyed,
    /// [`Manager::restart`](super::Manager::restart) restarted it.
    Restarted,
    /// Its service started (first start, after a reload or a rollback).
    ServiceStarted {
        /// Host pid of the service, when the launcher knows it.
        pid: Option<u32>,
    },
    /// Its service exited without being asked to.
    ServiceCrashed {
        /// How it ended.
        exit: ServiceExit,
    },
    /// The supervisor restarted the crashed service.
    ServiceRestarted {
        /// Host pid of the new process.
        pid: Option<u32>,
        /// Restarts within the current intensity period, this one included.
        attempt: u32,
        /// The backoff waited before it.
        #[serde(with = "super::metrics::duration_ms", rename = "after_ms")]
        after: Duration,
    },
    /// The service crashed more often than its restart intensity allows (or
    /// could not be started again); it stays down until restarted.
    ServiceFailed {
        /// Why.
        reason: String,
    },
    /// The service was stopped on request.
    ServiceStopped,
    /// A module version was activated by a hot reload.
    Reloaded {
        /// The module.
        module: String,
        /// The version active before.
        from: Option<u32>,
        /// The version active now.
        to: u32,
        /// Whether the service's state was migrated.
        migrated: bool,
    },
    /// A module went back to an earlier version: on request
    /// ([`Manager::rollback_module`](super::Manager::rollback_module)) or
    /// because a reload failed.
    RolledBack {
        /// The module.
        module: String,
        /// The version that was active (or attempted).
        from: Option<u32>,
        /// The version active now.
        to: Option<u32>,
        /// Why.
        reason: String,
    },
    /// An evaluation was counted by [`Manager::record_outcome`](super::Manager::record_outcome).
    EvaluationFinished {
        /// The evaluation.
        eval: EvalId,
        /// How it ended.
        status: Status,
        /// Denied actions it caused.
        violations: u64,
    },
    /// A snapshot was taken.
    SnapshotTaken {
        /// Its name.
        snapshot: String,
    },
    /// A snapshot was restored.
    SnapshotRestored {
        /// Its name.
        snapshot: String,
    },
}

/// Fan-out to every live subscriber.
#[derive(Debug, Default)]
pub(crate) struct EventBus {
    subscribers: Mutex<Vec<Sender<ManagerEvent>>>,
}

impl EventBus {
    pub fn subscribe(&self) -> Receiver<ManagerEvent> {
        let (tx, rx) = channel();
        self.lock().push(tx);
        rx
    }

    pub fn emit(&self, event: ManagerEvent) {
        self.lock().retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sender<ManagerEvent>>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }
}
