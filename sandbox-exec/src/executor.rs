//! The parent side: spawning runners and turning what they report into outcomes.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use sandbox_core::{EvalRequest, Outcome, ViolationLog};
use tracing::Instrument;

use crate::{ExecError, NoObserver, Observer};

/// Which program the executor starts as the runner child.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunnerProgram {
    /// The running program itself; its `main` must call [`dispatch`](crate::dispatch) first.
    #[default]
    CurrentExe,
    /// Another program that acts as the runner, such as the bundled `sandbox-runner`.
    Path {
        /// The program.
        program: PathBuf,
        /// Arguments passed before anything the executor adds.
        args: Vec<OsString>,
    },
}

impl RunnerProgram {
    /// A runner program started without extra arguments.
    pub fn path(program: impl Into<PathBuf>) -> Self {
        RunnerProgram::Path {
            program: program.into(),
            args: Vec::new(),
        }
    }
}

/// Runs evaluations, each in a fresh runner child. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    #[cfg(target_os = "linux")]
    pool: crate::prewarm::Pool,
    #[cfg(target_os = "linux")]
    reclaimer: crate::reclaim::Reclaimer,
    #[cfg(target_os = "linux")]
    networks: Arc<crate::network_shelf::Networks>,
    violations: Arc<ViolationLog>,
}

/// Spare runners an executor keeps by default (see [`Executor::set_prewarm`]).
pub const DEFAULT_PREWARM: usize = 1;

impl Executor {
    /// An executor whose runner is the running program (see [`dispatch`](crate::dispatch)).
    pub fn new() -> Result<Self, ExecError> {
        Self::with_runner(RunnerProgram::CurrentExe)
    }

    /// An executor that starts `runner` for each evaluation.
    pub fn with_runner(runner: RunnerProgram) -> Result<Self, ExecError> {
        let (program, args) = match runner {
            RunnerProgram::CurrentExe => (
                std::env::current_exe().map_err(ExecError::CurrentExe)?,
                Vec::new(),
            ),
            RunnerProgram::Path { program, args } => (program, args),
        };
        #[cfg(target_os = "linux")]
        let dir = crate::endpoint::PrivateDir::create().map_err(|source| ExecError::Endpoint {
            dir: std::env::temp_dir(),
            source,
        })?;
        #[cfg(not(target_os = "linux"))]
        let _ = (program, args);
        #[cfg(target_os = "linux")]
        let shelf = Arc::new(crate::cgroup_shelf::Shelf::default());
        #[cfg(target_os = "linux")]
        let networks = Arc::new(crate::network_shelf::Networks::default());
        #[cfg(target_os = "linux")]
        if nix::unistd::geteuid().is_root() {
            crate::cgroup::remove_stale(crate::cgroup::support());
        }
        Ok(Executor {
            inner: Arc::new(Inner {
                #[cfg(target_os = "linux")]
                pool: crate::prewarm::Pool::new(
                    crate::launch::Launcher::new(
                        program,
                        args,
                        dir,
                        !nix::unistd::geteuid().is_root(),
                    ),
                    DEFAULT_PREWARM,
                    shelf.clone(),
                    networks.clone(),
                ),
                #[cfg(target_os = "linux")]
                reclaimer: crate::reclaim::Reclaimer::new(shelf, networks.clone()),
                #[cfg(target_os = "linux")]
                networks,
                violations: Arc::new(ViolationLog::default()),
            }),
        })
    }

    /// Keeps `count` spare runners started ahead of time (default
    /// [`DEFAULT_PREWARM`]; 0 turns pre-warming off).
    ///
    /// A spare is a runner process that has started and connected but has no
    /// job yet; an evaluation takes one instead of waiting for a program to
    /// start, and a replacement starts while the evaluation runs. Spares are
    /// never reused: each runs exactly one evaluation. They cost an idle
    /// process each; a program that evaluates once (like the `sandbox` CLI)
    /// should turn them off. Spares are killed when the last clone of the
    /// executor is dropped. If a spare dies anyway, an evaluation quietly
    /// starts a fresh runner instead.
    pub fn set_prewarm(&self, count: usize) {
        #[cfg(target_os = "linux")]
        self.inner.pool.set_capacity(count);
        #[cfg(not(target_os = "linux"))]
        let _ = count;
    }

    /// Whether a confined evaluation may get the network namespace of an
    /// earlier one of this executor (on by default; Linux).
    ///
    /// Making a network namespace and tearing it down costs the kernel about
    /// 0.7 ms of CPU, a quarter of a confined evaluation's. A namespace is
    /// reused only once the evaluation that had it is over, every process
    /// of it gone, and only if nothing is left in it: no socket of any kind
    /// (one passed out to a process outside keeps it from reuse) and no
    /// remnant of a closed connection. What stays is the namespace's own
    /// counters (`/proc/net/snmp`: how many packets and connections there
    /// were), which a later evaluation can read; turn reuse off when
    /// evaluations must not learn even that of each other.
    pub fn set_network_reuse(&self, reuse: bool) {
        #[cfg(target_os = "linux")]
        self.inner.networks.set_reuse(reuse);
        #[cfg(not(target_os = "linux"))]
        let _ = reuse;
    }

    /// Runs `request` in a fresh runner child and reports what happened.
    pub async fn evaluate(&self, request: EvalRequest) -> Result<Outcome, ExecError> {
        self.evaluate_observed(request, &mut NoObserver).await
    }

    /// Starts `request` as a service (see [`ConfinedLauncher`](crate::ConfinedLauncher)).
    #[cfg(target_os = "linux")]
    pub(crate) async fn start_service(
        &self,
        request: EvalRequest,
    ) -> Result<crate::service::Started, ExecError> {
        let span =
            tracing::info_span!("service", id = %request.id, command = %request.command.display());
        crate::service::start(&self.inner.pool, &self.inner.violations, request)
            .instrument(span)
            .await
    }

    /// Every violation this executor's evaluations recorded (the last
    /// [`DEFAULT_LOG_CAPACITY`](sandbox_core::DEFAULT_LOG_CAPACITY)), to read
    /// or [`subscribe`](ViolationLog::subscribe) to. Each
    /// [`Outcome::violations`](sandbox_core::Outcome::violations) lists its
    /// evaluation's own.
    pub fn violations(&self) -> &ViolationLog {
        &self.inner.violations
    }

    /// Like [`evaluate`](Self::evaluate), telling `observer` what happens as it happens.
    pub async fn evaluate_observed(
        &self,
        request: EvalRequest,
        observer: &mut dyn Observer,
    ) -> Result<Outcome, ExecError> {
        let span =
            tracing::info_span!("evaluate", id = %request.id, command = %request.command.display());
        #[cfg(target_os = "linux")]
        {
            crate::evaluation::evaluate(
                &self.inner.pool,
                &self.inner.reclaimer,
                &self.inner.violations,
                request,
                observer,
            )
            .instrument(span)
            .await
        }
        // macOS has no runner: each program runs under sandbox-exec (Seatbelt).
        #[cfg(target_os = "macos")]
        {
            crate::macos::evaluate(request, observer)
                .instrument(span)
                .await
        }
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        {
            let _ = (request, observer, span);
            Err(ExecError::Unsupported(std::env::consts::OS))
        }
    }

    /// Runs `request` on a private single-threaded runtime, blocking the caller.
    ///
    /// Returns [`ExecError::BlockingInsideRuntime`] when called from inside a tokio
    /// runtime: use [`evaluate`](Self::evaluate) there.
    pub fn evaluate_blocking(&self, request: EvalRequest) -> Result<Outcome, ExecError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ExecError::BlockingInsideRuntime);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ExecError::Runtime)?;
        runtime.block_on(self.evaluate(request))
    }
}

impl sandbox_core::Executor for Executor {
    type Error = ExecError;

    fn evaluate(
        &self,
        request: EvalRequest,
    ) -> impl std::future::Future<Output = Result<Outcome, ExecError>> + Send {
        Executor::evaluate(self, request)
    }
}
