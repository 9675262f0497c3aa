//! The named-sandbox commands: `create`, `list`, `info`, `exec`, `start`,
//! `stop`, `restart`, `destroy`, `deploy`, `versions`, `rollback`, `compile`,
//! `snapshot`, `restore`, `snapshots`, `events` (and `up`, in [`crate::up`]).
//!
//! # Where they run
//!
//! Services need a process that outlives one command: the foreground
//! supervisor `sandbox up` (see [`crate::up`]). Each command first tries the
//! supervisor's socket in the state directory ([`crate::control`]); when no
//! supervisor answers it opens the state directory itself for the length of
//! the operation (the manager's lock serializes such commands; one that finds
//! the lock held waits up to [`LOCK_WAIT`] for it). Without a supervisor
//! everything works except services: `start` says that no supervisor runs,
//! `create --service` notes the service is not running, and `events` has
//! nothing to show (events are kept by the supervisor only).
//!
//! We chose an explicit foreground supervisor over a daemon started on demand:
//! the user sees and owns the process that runs their services (a terminal, a
//! systemd unit, a container's entry point), its log is its standard error, and
//! Ctrl-C stops every service with it. An on-demand daemon would outlive the
//! shell that started it, be a second place where services could be running
//! unnoticed, and race with other commands starting it at the same time.
//!
//! Evaluations (`exec`, `compile`) always run in this process, with its own
//! executor, so their output streams straight to the terminal; the supervisor
//! (or the manager) only describes the request and counts the outcome.

pub mod args;
pub mod render;
pub mod request;
pub mod serve;

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sandbox_core::manager::{
    check_artifact, validate_sandbox_name, ArtifactError, ArtifactKind, Manager, ManagerError,
    RestartStrategy, SandboxSpec, ServiceSpec, StateDir,
};
use sandbox_core::{Command, EvalRequest, Limits, Outcome};
use sandbox_exec::{Executor, NoObserver, Observer, OutputStream};

use self::args::{CompileArgs, CreateArgs, DeployArgs, ExecArgs, ManageCommand};
use self::request::Request;
use self::serve::Served;
use crate::args::{EnvArg, StdinSource};
use crate::control::{self, Sink, StdSink};
use crate::render::RequestFacts;
use crate::run::EXIT_SANDBOX_FAILED;

/// How long a command waits for another command that holds the state directory.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Runs a named-sandbox command and returns the exit status.
pub fn main(command: ManageCommand, state_dir: Option<PathBuf>) -> i32 {
    match run(command, state_dir) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sandbox: error: {err:#}");
            EXIT_SANDBOX_FAILED
        }
    }
}

fn run(command: ManageCommand, state_dir: Option<PathBuf>) -> anyhow::Result<i32> {
    let dir = resolve_state_dir(state_dir)?;
    let state = State { dir };
    let simple = |request: Request| state.call(&request, &mut StdSink::default());
    match command {
        ManageCommand::Up(args) => Ok(crate::up::up(args, state.dir)),
        ManageCommand::Create(args) => simple(create_request(args)?),
        ManageCommand::List(a) => simple(Request::List { json: a.json }),
        ManageCommand::Info(a) => simple(Request::Info {
            name: a.name,
            json: a.json,
        }),
        ManageCommand::Start(a) => simple(Request::Start { name: a.name }),
        ManageCommand::Stop(a) => simple(Request::Stop { name: a.name }),
        ManageCommand::Restart(a) => simple(Request::Restart { name: a.name }),
        ManageCommand::Destroy(a) => simple(Request::Destroy { name: a.name }),
        ManageCommand::Deploy(args) => simple(deploy_request(args)?),
        ManageCommand::Versions(a) => simple(Request::Versions {
            name: a.name,
            module: a.module,
            json: a.json,
        }),
        ManageCommand::Rollback(a) => simple(Request::Rollback {
            name: a.name,
            module: a.module,
            version: a.version,
        }),
        ManageCommand::Snapshot(a) => simple(Request::Snapshot {
            name: a.name,
            snapshot: a.snapshot,
        }),
        ManageCommand::Restore(a) => simple(Request::Restore {
            name: a.name,
            snapshot: a.snapshot,
        }),
        ManageCommand::Snapshots(a) => simple(Request::Snapshots {
            name: a.name,
            delete: a.delete,
            json: a.json,
        }),
        ManageCommand::Events(a) => simple(Request::Events {
            name: a.name,
            follow: a.follow,
            json: a.json,
        }),
        ManageCommand::Exec(args) => exec(&state, args),
        ManageCommand::Compile(args) => compile(&state, args),
    }
}

/// The state directory: `--state-dir`, `SANDBOX_STATE_DIR`, the XDG data dir,
/// made absolute (it is stored in requests and printed).
pub fn resolve_state_dir(explicit: Option<PathBuf>) -> anyhow::Result<StateDir> {
    let dir = StateDir::resolve(explicit)?;
    let path = std::path::absolute(dir.path()).with_context(|| {
        format!(
            "cannot resolve the state directory {}",
            dir.path().display()
        )
    })?;
    Ok(StateDir::new(path))
}

/// The state directory, reached through its supervisor or opened directly.
struct State {
    dir: StateDir,
}

impl State {
    /// Runs `request` in the supervisor, or on a manager opened here.
    fn call(&self, request: &Request, sink: &mut dyn Sink) -> anyhow::Result<i32> {
        let started = Instant::now();
        loop {
            if let Some(stream) = control::connect(self.dir.path())? {
                return control::call(stream, request, sink);
            }
            match Manager::open_state_dir(self.dir.clone()) {
                Ok(manager) => {
                    let served = Served {
                        manager: &manager,
                        supervision: None,
                    };
                    return Ok(served.handle(request.clone(), sink));
                }
                // Another command holds it for a moment, or a supervisor is
                // starting and has not bound its socket yet: try both again.
                Err(ManagerError::Locked { .. }) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err @ ManagerError::Locked { .. }) => {
                    bail!("{err} (waited {}; a supervisor that holds the lock but does not answer on {} may be stuck)",
                        sandbox_core::format_duration(LOCK_WAIT),
                        control::socket_path(self.dir.path()).display())
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Runs `request` and returns its data answer, or the exit status of its failure.
    fn data<T: serde::de::DeserializeOwned>(
        &self,
        request: &Request,
    ) -> anyhow::Result<Result<T, i32>> {
        let mut sink = StdSink::default();
        let code = self.call(request, &mut sink)?;
        match sink.data {
            Some(value) if code == 0 => Ok(Ok(serde_json::from_value(value)
                .context("the supervisor's answer is not what this `sandbox` expects")?)),
            _ => Ok(Err(if code == 0 { EXIT_SANDBOX_FAILED } else { code })),
        }
    }
}

/// The spec `create` stores: the policy resolved here, where the user typed it.
fn create_request(args: CreateArgs) -> anyhow::Result<Request> {
    // Checked before the policy is built, so a bad name is the error shown.
    validate_sandbox_name(&args.name)?;
    let policy = if args.unconfined {
        sandbox_policy::Policy::default()
    } else {
        let ctx = crate::policy_build::host_context()?;
        let (policy, report) = crate::policy_build::build(&args.policy, ctx)
            .map_err(|err| anyhow::anyhow!(crate::policy_build::describe(&err)))?;
        crate::policy_cmd::print_warnings(&report.warnings);
        policy
    };
    let mut spec = SandboxSpec::new(policy).limits(args.limits.over(Limits::default()));
    if let Some(entry) = &args.entry {
        spec = spec.entry(["/bin/sh", "-c", entry]);
    }
    if let Some(dir) = &args.workspace {
        spec = spec.workspace(
            std::path::absolute(dir)
                .with_context(|| format!("cannot resolve --workspace {}", dir.display()))?,
        );
    }
    for entry in &args.env {
        match entry {
            EnvArg::Set(k, v) => spec = spec.env(k.as_str(), v.as_str()),
            EnvArg::PassThrough(k) => {
                // The value is taken now: the service starts later, elsewhere.
                if let Some(v) = std::env::var_os(k) {
                    let v = v
                        .into_string()
                        .map_err(|_| anyhow::anyhow!("--env {k}: the value of {k} is not UTF-8"))?;
                    spec = spec.env(k.as_str(), v);
                }
            }
        }
    }
    if let Some(service) = &args.service {
        spec = spec.service(ServiceSpec::new(["/bin/sh", "-c", service]).restart(
            RestartStrategy {
                max_restarts: args.max_restarts,
                period: args.restart_period,
                ..RestartStrategy::default()
            },
        ));
    }
    Ok(Request::Create {
        name: args.name,
        spec,
        json: args.json,
    })
}

fn deploy_request(args: DeployArgs) -> anyhow::Result<Request> {
    let bytes = if args.file == Path::new("-") {
        let mut bytes = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("cannot read the module from standard input")?;
        bytes
    } else {
        std::fs::read(&args.file)
            .with_context(|| format!("cannot read the module file {}", args.file.display()))?
    };
    Ok(Request::Deploy {
        name: args.name,
        module: args.module,
        bytes,
        migrate: args.migrate,
        grace_ms: args.grace.as_millis().try_into().unwrap_or(u64::MAX),
        wait_ready: args.wait_ready,
        json: args.json,
    })
}

/// `sandbox exec`: the sandbox's request, with this run's options, evaluated here.
fn exec(state: &State, args: ExecArgs) -> anyhow::Result<i32> {
    crate::logging::init(args.debug);
    let command = if args.words.is_empty() && args.argv.is_empty() {
        None
    } else {
        Some(crate::run::command_of(&args.words, &args.argv))
    };
    let stdin = match &args.stdin {
        None => Vec::new(),
        Some(StdinSource::Inherit) => {
            let mut bytes = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("cannot read our standard input for --stdin -")?;
            bytes
        }
        Some(StdinSource::File(path)) => std::fs::read(path)
            .with_context(|| format!("cannot read --stdin {}", path.display()))?,
    };
    let name = args.name.clone();
    let mut request: EvalRequest = match state.data(&Request::Evaluation {
        name: name.clone(),
        command,
    })? {
        Ok(request) => request,
        Err(code) => return Ok(code),
    };
    request = request
        .timeout(args.timeout)
        .max_output(usize::try_from(args.max_output).unwrap_or(usize::MAX))
        .truncate_mode(args.truncate.into())
        .on_output_limit(args.on_output_limit.into())
        .stdin(stdin);
    request.limits = args.limits.over(request.limits.clone());
    request = crate::run::with_shared_options(request, &args.accept_weaker, &args.setup, &args.env);
    let shown = if args.json {
        Shown::Json
    } else {
        Shown::Streamed
    };
    let outcome = evaluate(request, shown)?;
    record(state, &name, &outcome);
    Ok(outcome.exit_code())
}

/// How an evaluation run here is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// The output as it arrives, then the status line (as `sandbox run`).
    Streamed,
    /// The outcome as one JSON line (as `sandbox run --json`).
    Json,
    /// Nothing: the caller prints what it needs.
    Quiet,
}

/// Runs `request` here, with our own executor.
fn evaluate(request: EvalRequest, shown: Shown) -> anyhow::Result<Outcome> {
    let facts = RequestFacts::of(&request);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let executor = Executor::new()?;
    // One evaluation per invocation: a spare runner would only be killed unused.
    executor.set_prewarm(0);
    if shown != Shown::Streamed {
        let outcome = runtime.block_on(executor.evaluate_observed(request, &mut NoObserver))?;
        if shown == Shown::Json {
            let line = crate::render::json_line(&outcome)?;
            let _ = io::stdout().write_all(line.as_bytes());
        }
        return Ok(outcome);
    }
    let mut live = Live::default();
    let outcome = runtime.block_on(executor.evaluate_observed(request, &mut live))?;
    let terminal = io::stdout().is_terminal() && io::stderr().is_terminal();
    crate::render::finish_human(
        &outcome,
        &facts,
        live.streamed,
        terminal,
        &mut io::stdout(),
        &mut io::stderr(),
    );
    Ok(outcome)
}

/// Counts the outcome in the sandbox's metrics; a failure to do so is worth a
/// warning but does not change the exit status of the evaluation that ran.
fn record(state: &State, name: &str, outcome: &Outcome) {
    let request = Request::RecordOutcome {
        name: name.to_string(),
        outcome: outcome.clone(),
    };
    match state.call(&request, &mut StdSink::default()) {
        Ok(0) => {}
        Ok(_) => eprintln!("sandbox: warning: the outcome was not counted in {name}'s metrics"),
        Err(err) => {
            eprintln!("sandbox: warning: the outcome was not counted in {name}'s metrics: {err:#}")
        }
    }
}

/// Streams the output as it arrives, counting it so the end is not repeated.
#[derive(Default)]
struct Live {
    streamed: usize,
    broken: bool,
}

impl Observer for Live {
    fn output(&mut self, _stream: OutputStream, bytes: &[u8]) {
        self.streamed += bytes.len();
        if !self.broken {
            let mut out = io::stdout().lock();
            self.broken = out.write_all(bytes).and_then(|()| out.flush()).is_err();
        }
    }
}

/// `sandbox compile NAME|DIR`.
fn compile(state: &State, args: CompileArgs) -> anyhow::Result<i32> {
    let build = match args.build.as_slice() {
        [] => None,
        [line] => Some(Command::shell(line.as_str())),
        argv => Some(Command::argv(argv.iter().cloned())),
    };
    let out = match &args.out {
        Some(dir) => Some(
            std::path::absolute(dir)
                .with_context(|| format!("cannot resolve --out {}", dir.display()))?,
        ),
        None => None,
    };
    let is_dir = args.target.contains('/') || Path::new(&args.target).is_dir();
    let (request, name) = if is_dir {
        (dir_compile_request(&args, build, out)?, None)
    } else {
        let request = Request::Build {
            name: args.target.clone(),
            build,
            out,
        };
        match state.data::<EvalRequest>(&request)? {
            Ok(request) => (request, Some(args.target.clone())),
            Err(code) => return Ok(code),
        }
    };
    let out_dir = PathBuf::from(
        request
            .env
            .get(sandbox_core::manager::OUTPUT_DIR_ENV)
            .cloned()
            .unwrap_or_default(),
    );
    let request = request
        .timeout(args.timeout)
        .max_output(usize::try_from(args.max_output).unwrap_or(usize::MAX));
    let shown = if args.json {
        Shown::Quiet
    } else {
        Shown::Streamed
    };
    let outcome = evaluate(request, shown)?;
    if let Some(name) = &name {
        record(state, name, &outcome);
    }
    let artifacts = artifacts(&out_dir)?;
    // A build that exits 0 must also have produced well-formed artifacts.
    let checks: Vec<(PathBuf, Result<ArtifactKind, ArtifactError>)> = artifacts
        .iter()
        .map(|a| (a.clone(), check_artifact(a)))
        .collect();
    let malformed = outcome.status.success()
        && (artifacts.is_empty() || checks.iter().any(|(_, c)| c.is_err()));
    if args.json {
        let validation: Vec<serde_json::Value> = checks
            .iter()
            .map(|(path, check)| match check {
                Ok(kind) => serde_json::json!({"path": path, "kind": format!("{kind:?}")}),
                Err(e) => serde_json::json!({"path": path, "problem": e.problem}),
            })
            .collect();
        let value = serde_json::json!({
            "artifacts": artifacts,
            "validation": validation,
            "output": outcome.output_text(),
            "duration_ms": outcome.wall_time.as_millis() as u64,
            "output_dir": out_dir,
            "outcome": outcome,
        });
        println!("{}", serde_json::to_string(&value)?);
    } else if outcome.status.success() {
        println!(
            "sandbox: built in {}; artifacts in {}:",
            sandbox_core::format_duration(outcome.wall_time),
            out_dir.display()
        );
        for (a, check) in &checks {
            let shown = a.strip_prefix(&out_dir).unwrap_or(a).display();
            match check {
                Ok(kind) => println!("  {shown} ({kind:?})"),
                Err(e) => println!("  {shown}: {}", e.problem),
            }
        }
        if artifacts.is_empty() {
            eprintln!("sandbox: the build produced no artifact");
        }
    } else {
        eprintln!(
            "sandbox: the build {} (artifacts so far in {})",
            render::status_text(&outcome.status),
            out_dir.display()
        );
    }
    if malformed {
        return Ok(1);
    }
    Ok(outcome.exit_code())
}

/// A build of a plain directory: a throwaway manager gives it exactly the
/// confinement of a named sandbox's build (the policy of the flags, writes
/// only to the output directory), without touching the real state directory.
fn dir_compile_request(
    args: &CompileArgs,
    build: Option<Command>,
    out: Option<PathBuf>,
) -> anyhow::Result<EvalRequest> {
    let dir = std::path::absolute(&args.target)
        .with_context(|| format!("cannot resolve the directory {}", args.target))?;
    if !dir.is_dir() {
        bail!(
            "{} is not a directory (compile takes a sandbox name or a directory)",
            dir.display()
        );
    }
    let build = match build {
        Some(build) => build,
        None if dir.join("Makefile").is_file() => Command::argv(["make"]),
        None => bail!(
            "no build command for {}: give one after `--` (e.g. `sandbox compile DIR -- cc -o \"$SANDBOX_OUTPUT_DIR/app\" app.c`); without one, `make` runs when the directory has a Makefile",
            dir.display()
        ),
    };
    let ctx = crate::policy_build::host_context()?;
    let (policy, report) = crate::policy_build::build(&args.policy, ctx)
        .map_err(|err| anyhow::anyhow!(crate::policy_build::describe(&err)))?;
    crate::policy_cmd::print_warnings(&report.warnings);
    let scratch = tempfile::Builder::new()
        .prefix("sandbox-compile-")
        .tempdir()
        .context("cannot create a scratch state directory")?;
    let manager = Manager::open(scratch.path())?;
    manager.create("build", SandboxSpec::new(policy).workspace(&dir))?;
    let out = out.unwrap_or_else(|| dir.join("build"));
    let mut request = manager.compile_request("build", build, &out)?;
    // The scratch state is gone after this function: so are these.
    for key in [
        sandbox_core::manager::NAME_ENV,
        sandbox_core::manager::CODE_DIR_ENV,
    ] {
        request.env.remove(key);
    }
    Ok(request)
}

fn artifacts(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}
