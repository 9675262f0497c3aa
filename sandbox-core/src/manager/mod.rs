//! The manager of named sandboxes: create, list, inspect, restart and destroy
//! them; version their modules and hot-reload them; supervise their services;
//! snapshot their workspaces; count what their evaluations did.
//!
//! A named sandbox is a [`SandboxSpec`] (policy, limits, entry command,
//! workspace, optional service) plus its state in a state directory
//! ([`StateDir`], which describes the layout and the file format). A new
//! [`Manager`] on the same directory sees the same sandboxes, module versions,
//! snapshots and metrics; only running services belong to the manager that
//! started them and are stopped when it is dropped.
//!
//! The manager runs nothing confined itself: evaluations are described by
//! [`Manager::eval_request`] for an [`Executor`](crate::Executor), and services
//! are started through a [`ServiceLauncher`] (the confined one lives in
//! `sandbox-exec`). Its operations block (file I/O, fsync, waiting for a
//! service's answer) and are safe to call from several threads.
//!
//! ```
//! use sandbox_core::manager::{Manager, SandboxSpec};
//! use sandbox_core::Command;
//!
//! let dir = tempfile::tempdir()?;
//! let manager = Manager::open(dir.path())?;
//! manager.create("demo", SandboxSpec::default().entry(["python3", "app.py"]))?;
//!
//! let report = manager.hot_reload("demo", "app.py", b"print('v1')\n", Default::default())?;
//! assert_eq!(report.to, 1);
//! manager.hot_reload("demo", "app.py", b"print('v2')\n", Default::default())?;
//! manager.rollback_module("demo", "app.py", 1)?;
//! let code = manager.code_dir("demo")?;
//! assert_eq!(std::fs::read(code.join("app.py"))?, b"print('v1')\n");
//!
//! let request = manager.eval_request("demo", Command::argv(["python3", "app.py"]))?;
//! assert_eq!(request.env["SANDBOX_CODE_DIR"], code.display().to_string());
//! manager.destroy("demo")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod artifact;
mod compile;
mod error;
mod events;
mod lock;
mod metrics;
mod modules;
mod name;
mod protocol;
mod reload;
mod snapshot;
mod spec;
mod store;
mod supervise;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use sandbox_policy::{Layer, Origin, PathPattern, PathRule, Policy};

pub use artifact::{check_artifact, ArtifactError, ArtifactKind};
pub use compile::{CompileInfo, OUTPUT_DIR_ENV};
pub use error::{ManagerError, Result};
pub use events::{EventKind, ManagerEvent};
pub use metrics::SandboxMetrics;
pub use modules::{ModuleVersion, VersionHistory};
pub use name::{
    validate_module_name, validate_sandbox_name, validate_snapshot_name, MODULE_NAME_RULE,
    SANDBOX_NAME_RULE,
};
pub use protocol::PROTOCOL_DOC;
pub use reload::{ReloadOptions, ReloadReport, StateHandler};
pub use snapshot::SnapshotInfo;
pub use spec::{RestartStrategy, SandboxSpec, ServiceSpec};
pub use store::{StateDir, FORMAT_VERSION};
pub use supervise::{
    ControlChannel, Decision, LaunchError, RestartIntensity, ServiceExit, ServiceLaunch,
    ServiceLauncher, ServiceProcess, ServiceStatus,
};

use crate::{Command, EvalRequest, Outcome};
use events::EventBus;
use lock::StateLock;
use modules::ModulesRecord;
use store::SandboxPaths;
use supervise::Supervisor;

/// Environment variable naming the read-only directory of a sandbox's active modules.
pub const CODE_DIR_ENV: &str = "SANDBOX_CODE_DIR";
/// Environment variable naming the sandbox's workspace (also the working directory).
pub const WORKSPACE_ENV: &str = "SANDBOX_WORKSPACE";
/// Environment variable naming the sandbox.
pub const NAME_ENV: &str = "SANDBOX_NAME";

/// Facts about one named sandbox.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SandboxInfo {
    /// Its name.
    pub name: String,
    /// Its spec as created.
    pub spec: SandboxSpec,
    /// When it was created.
    pub created_at: SystemTime,
    /// The workspace directory (writable by evaluations, their working directory).
    pub workspace: PathBuf,
    /// The directory of the active module versions (read-only to evaluations).
    pub code_dir: PathBuf,
    /// Each module and its active version (`None` when deactivated).
    pub modules: BTreeMap<String, Option<u32>>,
    /// The service, if the spec has one.
    pub service: ServiceStatus,
    /// How many times [`Manager::restart`] restarted it.
    pub restarts: u32,
    /// Counters of evaluations and service crashes.
    pub metrics: SandboxMetrics,
}

/// The stored part of a sandbox (`sandbox.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct SandboxRecord {
    pub name: String,
    pub spec: SandboxSpec,
    pub created_at: SystemTime,
    pub workspace: PathBuf,
    pub restarts: u32,
}

/// A loaded sandbox.
#[derive(Debug)]
pub(crate) struct Sandbox {
    pub record: SandboxRecord,
    pub modules: ModulesRecord,
    pub metrics: SandboxMetrics,
    pub paths: SandboxPaths,
}

/// A sandbox directory as found on open.
#[derive(Debug)]
pub(crate) enum Entry {
    Ok(Box<Sandbox>),
    /// Its store files did not validate; only `destroy` works on it.
    Broken {
        path: PathBuf,
        reason: String,
    },
}

/// What the supervisors share with the manager: the store and the event bus.
#[derive(Debug)]
pub(crate) struct Shared {
    pub dir: StateDir,
    pub state: Mutex<BTreeMap<String, Entry>>,
    pub events: EventBus,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock leaves the in-memory index as the last
        // completed write left it: each mutation persists before it updates it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the sandbox `name`, or says why it cannot.
    pub fn with<T>(&self, name: &str, f: impl FnOnce(&mut Sandbox) -> Result<T>) -> Result<T> {
        let mut state = self.lock();
        match state.get_mut(name) {
            Some(Entry::Ok(sandbox)) => f(sandbox),
            Some(Entry::Broken { path, reason }) => {
                Err(ManagerError::corrupt(path.clone(), reason.clone()))
            }
            None => Err(ManagerError::NotFound(name.to_string())),
        }
    }

    pub fn emit(&self, sandbox: &str, kind: EventKind) {
        self.events.emit(ManagerEvent {
            time: SystemTime::now(),
            sandbox: sandbox.to_string(),
            kind,
        });
    }

    /// The request an evaluation (or the service) of `name` runs with.
    pub fn request(&self, name: &str, command: Command) -> Result<EvalRequest> {
        let (record, paths) = self.with(name, |sb| Ok((sb.record.clone(), sb.paths.clone())))?;
        let spec = record.spec;
        let mut request = EvalRequest::new(command)
            .limits(spec.limits)
            .policy(writable_workspace(
                spec.policy,
                &record.workspace,
                &paths.record(),
            )?)
            .cwd(&record.workspace)
            // A state dir under /tmp would otherwise be hidden by the
            // sandbox's private /tmp.
            .visible(paths.code());
        request.env.extend(spec.env);
        request.env.insert(NAME_ENV.into(), name.to_string());
        request
            .env
            .insert(CODE_DIR_ENV.into(), paths.code().display().to_string());
        request
            .env
            .insert(WORKSPACE_ENV.into(), record.workspace.display().to_string());
        Ok(request)
    }
}

/// A restricted policy gains a write rule for the workspace (its origin: the
/// sandbox's own `sandbox.json`); the unrestricted policy stays unrestricted.
fn writable_workspace(mut policy: Policy, workspace: &Path, record: &Path) -> Result<Policy> {
    if policy.is_unrestricted() || policy.filesystem.can_write(workspace) {
        return Ok(policy);
    }
    let text = workspace.display().to_string();
    let pattern = PathPattern::new(&text).map_err(|e| ManagerError::InvalidSpec {
        name: text.clone(),
        reason: format!("the workspace path cannot be a policy rule: {e}"),
    })?;
    policy.filesystem.allow_write.push(PathRule {
        pattern,
        origin: Origin::new(Layer::SettingsFile(record.to_path_buf()), "workspace", text),
    });
    Ok(policy)
}

/// The manager of the named sandboxes in one state directory.
///
/// It holds an exclusive lock on the directory while it lives (see
/// [`ManagerError::Locked`]); dropping it stops the services it started.
pub struct Manager {
    shared: Arc<Shared>,
    launcher: Option<Arc<dyn ServiceLauncher>>,
    supervisors: Mutex<BTreeMap<String, Arc<Supervisor>>>,
    _lock: StateLock,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("state_dir", &self.shared.dir.path())
            .field("launcher", &self.launcher.is_some())
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Opens (creating it when missing) the state directory `dir`, takes its
    /// lock and loads every sandbox in it.
    ///
    /// A sandbox whose store files fail validation does not stop the others
    /// from loading: it is left out of [`Manager::list`], every operation on it
    /// returns the [`ManagerError::Corrupt`] error naming the file, and
    /// [`Manager::destroy`] removes it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Manager> {
        Self::open_state_dir(StateDir::new(dir.as_ref()))
    }

    /// Opens the directory picked by [`StateDir::resolve`].
    pub fn open_state_dir(dir: StateDir) -> Result<Manager> {
        store::create_dir_all(dir.path())?;
        let lock = StateLock::acquire(&dir.lock_file())?;
        store::create_dir_all(&dir.objects())?;
        store::create_dir_all(&dir.sandboxes())?;
        let mut state = BTreeMap::new();
        let root = dir.sandboxes();
        let entries = fs::read_dir(&root).map_err(|e| ManagerError::io("listing", &root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ManagerError::io("listing", &root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if store::is_temp_name(&name) {
                // A create or destroy interrupted by a crash.
                store::remove_tree(&entry.path())?;
                continue;
            }
            let paths = dir.sandbox(&name);
            remove_temp_entries(&paths.snapshots())?;
            let loaded = load_sandbox(&paths).and_then(|sandbox| {
                modules::materialise_all(&dir, &sandbox)?;
                Ok(sandbox)
            });
            let entry = match loaded {
                Ok(sandbox) => Entry::Ok(Box::new(sandbox)),
                Err(ManagerError::Corrupt { path, reason }) => Entry::Broken { path, reason },
                Err(ManagerError::UnsupportedFormat {
                    path,
                    found,
                    supported,
                }) => Entry::Broken {
                    path,
                    reason: format!("format version {found}, this build reads up to {supported}"),
                },
                Err(other) => return Err(other),
            };
            state.insert(name, entry);
        }
        Ok(Manager {
            shared: Arc::new(Shared {
                dir,
                state: Mutex::new(state),
                events: EventBus::default(),
            }),
            launcher: None,
            supervisors: Mutex::new(BTreeMap::new()),
            _lock: lock,
        })
    }

    /// Uses `launcher` to start services. Without one, sandboxes with a
    /// service can be created and used for evaluations, but their services
    /// cannot start ([`ManagerError::NoLauncher`]).
    pub fn with_launcher(mut self, launcher: Arc<dyn ServiceLauncher>) -> Self {
        self.launcher = Some(launcher);
        self
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        self.shared.dir.path()
    }

    /// Subscribes to the manager's events, from now on. A receiver that is
    /// dropped unsubscribes; events are queued for a receiver that is slow.
    pub fn subscribe(&self) -> std::sync::mpsc::Receiver<ManagerEvent> {
        self.shared.events.subscribe()
    }

    /// Creates a sandbox: validates the name and the spec, writes its state
    /// (all at once: a crash leaves either no sandbox or a complete one),
    /// creates its workspace, and starts its service when it has one and the
    /// manager has a launcher. When the launcher cannot start the service, the
    /// sandbox is removed again and the launch error returned.
    pub fn create(&self, name: &str, spec: SandboxSpec) -> Result<SandboxInfo> {
        validate_sandbox_name(name)?;
        spec.validate(name)?;
        {
            let mut state = self.shared.lock();
            if state.contains_key(name) {
                return Err(ManagerError::AlreadyExists(name.to_string()));
            }
            let paths = self.shared.dir.sandbox(name);
            let workspace = spec
                .workspace
                .clone()
                .unwrap_or_else(|| paths.default_workspace());
            let record = SandboxRecord {
                name: name.to_string(),
                spec: spec.clone(),
                created_at: SystemTime::now(),
                workspace,
                restarts: 0,
            };
            let sandbox = Sandbox {
                record,
                modules: ModulesRecord::default(),
                metrics: SandboxMetrics::default(),
                paths,
            };
            write_new_sandbox(&self.shared.dir, &sandbox)?;
            state.insert(name.to_string(), Entry::Ok(Box::new(sandbox)));
        }
        self.shared.emit(name, EventKind::Created);
        if spec.service.is_some() && self.launcher.is_some() {
            if let Err(e) = self.start_service(name) {
                // All or nothing: a sandbox whose service cannot even be launched is not left half made.
                let _ = self.destroy(name);
                return Err(e);
            }
        }
        self.info(name)
    }

    /// Every loadable sandbox, by name.
    pub fn list(&self) -> Vec<SandboxInfo> {
        let names: Vec<String> = self
            .shared
            .lock()
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Ok(_)))
            .map(|(n, _)| n.clone())
            .collect();
        names.iter().filter_map(|n| self.info(n).ok()).collect()
    }

    /// The sandboxes whose state failed to load, with the error naming the file.
    pub fn broken(&self) -> Vec<(String, ManagerError)> {
        self.shared
            .lock()
            .iter()
            .filter_map(|(name, entry)| match entry {
                Entry::Broken { path, reason } => Some((
                    name.clone(),
                    ManagerError::corrupt(path.clone(), reason.clone()),
                )),
                Entry::Ok(_) => None,
            })
            .collect()
    }

    /// Facts about the sandbox `name`.
    pub fn info(&self, name: &str) -> Result<SandboxInfo> {
        let mut info = self.shared.with(name, |sb| {
            Ok(SandboxInfo {
                name: name.to_string(),
                spec: sb.record.spec.clone(),
                created_at: sb.record.created_at,
                workspace: sb.record.workspace.clone(),
                code_dir: sb.paths.code(),
                modules: sb
                    .modules
                    .modules
                    .iter()
                    .map(|(m, r)| (m.clone(), r.current))
                    .collect(),
                service: if sb.record.spec.service.is_some() {
                    ServiceStatus::Stopped
                } else {
                    ServiceStatus::None
                },
                restarts: sb.record.restarts,
                metrics: sb.metrics.clone(),
            })
        })?;
        if let Some(sup) = self.supervisor(name) {
            info.service = sup.status();
        }
        Ok(info)
    }

    /// Restarts the sandbox: stops its service (if running), clears a
    /// `Failed` status and the restart intensity, and starts the service again.
    /// Counts the restart in [`SandboxInfo::restarts`].
    pub fn restart(&self, name: &str) -> Result<SandboxInfo> {
        let has_service = self.shared.with(name, |sb| {
            sb.record.restarts += 1;
            store::save(&sb.paths.record(), "sandbox", &sb.record)?;
            Ok(sb.record.spec.service.is_some())
        })?;
        self.stop_supervisor(name);
        if has_service {
            self.start_service(name)?;
        }
        self.shared.emit(name, EventKind::Restarted);
        self.info(name)
    }

    /// Destroys the sandbox: stops its service (no process of it remains),
    /// removes its state, its snapshots and its default workspace, and the
    /// module objects no other sandbox uses. A workspace given in the spec is
    /// left in place.
    pub fn destroy(&self, name: &str) -> Result<()> {
        self.stop_supervisor(name);
        let mut state = self.shared.lock();
        let entry = state
            .remove(name)
            .ok_or_else(|| ManagerError::NotFound(name.to_string()))?;
        let dir = self.shared.dir.sandbox(name).dir;
        let trash = store::temp_sibling(&dir, "trash");
        if let Err(e) = fs::rename(&dir, &trash) {
            state.insert(name.to_string(), entry);
            return Err(ManagerError::io("moving away", dir, e));
        }
        store::sync_parent(&dir)?;
        store::remove_tree(&trash)?;
        let referenced = |state: &BTreeMap<String, Entry>| -> BTreeSet<String> {
            state
                .values()
                .filter_map(|e| match e {
                    Entry::Ok(sb) => Some(sb.modules.hashes()),
                    Entry::Broken { .. } => None,
                })
                .flatten()
                .collect()
        };
        match &entry {
            Entry::Ok(sb) => {
                let keep = referenced(&state);
                let garbage = sb.modules.hashes().filter(|h| !keep.contains(h));
                modules::remove_objects(&self.shared.dir, garbage)?;
            }
            // Its references are unknown: collect everything unreferenced, unless
            // another broken sandbox might still need some of it.
            Entry::Broken { .. } => {
                if !state.values().any(|e| matches!(e, Entry::Broken { .. })) {
                    let keep = referenced(&state);
                    modules::collect_garbage(&self.shared.dir, &keep)?;
                }
            }
        }
        drop(state);
        self.shared.emit(name, EventKind::Destroyed);
        Ok(())
    }

    /// The request to evaluate `command` in the sandbox `name`: its policy
    /// (plus a write rule for the workspace when the policy is restricted), its
    /// limits, its environment plus `SANDBOX_NAME`, `SANDBOX_CODE_DIR` and
    /// `SANDBOX_WORKSPACE`, and the workspace as working directory. The executor
    /// has to add a read-only view of the code directory (it is under the state
    /// directory, outside any write rule).
    pub fn eval_request(&self, name: &str, command: Command) -> Result<EvalRequest> {
        self.shared.request(name, command)
    }

    /// [`Manager::eval_request`] for the spec's entry command.
    pub fn entry_request(&self, name: &str) -> Result<EvalRequest> {
        let entry = self
            .shared
            .with(name, |sb| Ok(sb.record.spec.entry.clone()))?;
        if entry.is_empty() {
            return Err(ManagerError::InvalidSpec {
                name: name.to_string(),
                reason: "the spec has no entry command".into(),
            });
        }
        self.eval_request(name, Command::Argv(entry))
    }

    /// Counts a finished evaluation of sandbox `name` in its metrics (saved at
    /// once) and announces it.
    pub fn record_outcome(&self, name: &str, outcome: &Outcome) -> Result<SandboxMetrics> {
        let metrics = self.shared.with(name, |sb| {
            sb.metrics.record(outcome);
            store::save(&sb.paths.metrics(), "metrics", &sb.metrics)?;
            Ok(sb.metrics.clone())
        })?;
        self.shared.emit(
            name,
            EventKind::EvaluationFinished {
                eval: outcome.id,
                status: outcome.status.clone(),
                violations: outcome.violations.len() as u64,
            },
        );
        Ok(metrics)
    }

    /// The metrics of sandbox `name`.
    pub fn metrics(&self, name: &str) -> Result<SandboxMetrics> {
        self.shared.with(name, |sb| Ok(sb.metrics.clone()))
    }

    /// Starts the service of sandbox `name` (a no-op when it runs already).
    pub fn start_service(&self, name: &str) -> Result<ServiceStatus> {
        let service = self
            .shared
            .with(name, |sb| Ok(sb.record.spec.service.clone()))?;
        let service = service.ok_or_else(|| ManagerError::NoService(name.to_string()))?;
        let launcher = self
            .launcher
            .clone()
            .ok_or_else(|| ManagerError::NoLauncher(name.to_string()))?;
        let mut sups = self.supervisors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sup) = sups.get(name) {
            if sup.is_alive() {
                return Ok(sup.status());
            }
            sup.stop();
        }
        let sup = Supervisor::start(name, self.shared.clone(), launcher, service.restart)?;
        let status = sup.status();
        sups.insert(name.to_string(), Arc::new(sup));
        Ok(status)
    }

    /// Stops the service of sandbox `name`; its processes are gone on return.
    pub fn stop_service(&self, name: &str) -> Result<()> {
        self.shared.with(name, |_| Ok(()))?;
        self.stop_supervisor(name);
        Ok(())
    }

    /// The state the running service of `name` exports now (the `EXPORT`
    /// request of the service protocol, see [`PROTOCOL_DOC`]).
    pub fn service_state(&self, name: &str, timeout: std::time::Duration) -> Result<Vec<u8>> {
        let sup = self
            .supervisor(name)
            .ok_or_else(|| ManagerError::ServiceNotRunning(name.to_string()))?;
        sup.export_state(timeout)
    }

    fn supervisor(&self, name: &str) -> Option<Arc<Supervisor>> {
        self.supervisors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn stop_supervisor(&self, name: &str) {
        let sup = self
            .supervisors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(sup) = sup {
            sup.stop();
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let sups = std::mem::take(&mut *self.supervisors.lock().unwrap_or_else(|e| e.into_inner()));
        for sup in sups.values() {
            sup.stop();
        }
    }
}

/// Removes what an interrupted snapshot or snapshot deletion left in `dir`.
fn remove_temp_entries(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if store::is_temp_name(&entry.file_name().to_string_lossy()) {
            store::remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

fn load_sandbox(paths: &SandboxPaths) -> Result<Sandbox> {
    let record: SandboxRecord = store::load(&paths.record(), "sandbox")?;
    let modules: ModulesRecord = store::load(&paths.modules(), "modules")?;
    let metrics: SandboxMetrics = store::load(&paths.metrics(), "metrics")?;
    Ok(Sandbox {
        record,
        modules,
        metrics,
        paths: paths.clone(),
    })
}

/// Writes the whole directory of a new sandbox under a hidden name, then
/// renames it into place: the sandbox appears complete or not at all.
fn write_new_sandbox(dir: &StateDir, sandbox: &Sandbox) -> Result<()> {
    let final_dir = &sandbox.paths.dir;
    let tmp = store::temp_sibling(final_dir, "create");
    let staged = SandboxPaths { dir: tmp.clone() };
    let result = (|| {
        store::create_dir_all(&staged.code())?;
        if sandbox.record.spec.workspace.is_none() {
            store::create_dir_all(&staged.default_workspace())?;
        } else {
            store::create_dir_all(&sandbox.record.workspace)?;
        }
        // The staged directory is renamed into place whole, so its files need
        // no rename of their own: one fsync each, one for the directory.
        let record = store::encode("sandbox", &sandbox.record);
        store::write_new_file(&staged.record(), &record)?;
        store::write_new_file(
            &staged.modules(),
            &store::encode("modules", &sandbox.modules),
        )?;
        store::write_new_file(
            &staged.metrics(),
            &store::encode("metrics", &sandbox.metrics),
        )?;
        store::sync_dir(&tmp)?;
        fs::rename(&tmp, final_dir)
            .map_err(|e| ManagerError::io("renaming into place", final_dir, e))
    })();
    if result.is_err() {
        let _ = store::remove_tree(&tmp);
    }
    result?;
    store::sync_dir(&dir.sandboxes())
}
