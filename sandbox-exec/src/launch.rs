//! Starting a runner child: its endpoint, its pipes, the process itself, and
//! the handshake that proves the peer is that child.
//!
//! A launch owns only plain descriptors, no runtime objects, so a runner can be
//! started ahead of time (pre-warmed) and taken by an evaluation running on any
//! tokio runtime. It is used for exactly one evaluation.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use interprocess::local_socket::tokio::Stream;
use interprocess::os::unix::uds_local_socket;
use tracing::debug;

use crate::cgroup::Cgroup;
use crate::endpoint::{self, Endpoint, PrivateDir};
use crate::pidfd::{ChildProcess, Pidfd};
use crate::protocol::RunnerSpec;
use crate::runner::{CGROUP_ENV, CONFINED_ENV, ENDPOINT_ENV, PARENT_ENV, TOKEN_ENV, USERNS_ENV};
use crate::zygote::Zygote;
use crate::ExecError;

/// Pipes are enlarged to this so a fast writer needs fewer wake-ups.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// What starts runners: the program and where their sockets live.
#[derive(Debug)]
pub(crate) struct Launcher {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub dir: PrivateDir,
    /// Whether runners create a user namespace: when the executor is not root.
    pub user_namespace: bool,
    /// Forks runners once started (see [`Launcher::start_zygote`]).
    zygote: Mutex<ZygoteState>,
}

/// Whether runners are forked by a zygote or executed.
#[derive(Debug, Default)]
enum ZygoteState {
    /// None started yet: runners are executed.
    #[default]
    NotStarted,
    Running(Zygote),
    /// It could not be started, or failed: runners are executed from now on
    /// (a failing zygote is not restarted over and over).
    Failed,
}

pub(crate) use crate::protocol::Preparation;

impl Preparation {
    /// What `job` needs.
    pub fn of(job: &crate::protocol::Job) -> Preparation {
        match &job.confinement {
            None => Preparation::Plain,
            Some(c) => Preparation::Confined {
                watch_reads: c.watch_reads,
            },
        }
    }

    /// What an evaluation under `policy` needs.
    pub fn for_policy(policy: &sandbox_policy::Policy) -> Preparation {
        if policy.is_unrestricted() {
            Preparation::Plain
        } else {
            Preparation::Confined {
                watch_reads: crate::fsaccess::watches_reads(&policy.filesystem),
            }
        }
    }

    /// The runner's [`CONFINED_ENV`].
    fn env(self) -> &'static str {
        match self {
            Preparation::Plain => "0",
            Preparation::Confined { watch_reads: false } => "1",
            Preparation::Confined { watch_reads: true } => "reads",
        }
    }
}

/// A started runner that has not been given a job yet.
#[derive(Debug)]
pub(crate) struct Launched {
    pub process: ChildProcess,
    /// What its init prepares (it can run no other kind of job).
    pub preparation: Preparation,
    channel: Channel,
    token: [u8; 16],
    /// Write end of the runner's stdin.
    pub stdin: OwnedFd,
    /// Read end of the runner's stdout.
    pub stdout: OwnedFd,
    /// Read end of the runner's stderr.
    pub stderr: OwnedFd,
    /// The cgroups a spare's init waits in (see [`Cgroup::spare`]).
    pub cgroup: SpareCgroup,
    /// A forked confined init's network namespace, for a later spare once
    /// the evaluation is over (see [`crate::network_shelf`]).
    pub network: Option<OwnedFd>,
}

/// How the executor reaches a runner.
#[derive(Debug)]
enum Channel {
    /// An executed runner connects to this endpoint.
    Endpoint(Endpoint),
    /// A forked runner was handed the other end of this socket; `None` once
    /// taken by [`Launched::connect`].
    Connected(Option<OwnedFd>),
}

/// A spare's cgroups: taken by the evaluation that uses the spare, or removed
/// (once the runner and its init are gone) when the spare is dropped unused.
/// They come with the limits of the evaluation before, already set: the
/// next is likely to ask for the same.
#[derive(Debug, Default)]
pub(crate) struct SpareCgroup(Option<Cgroup>);

impl SpareCgroup {
    /// The cgroups, while the spare still owns them.
    pub fn get_mut(&mut self) -> Option<&mut Cgroup> {
        self.0.as_mut()
    }

    /// The cgroups, for the evaluation that takes the spare.
    pub fn take(&mut self) -> Option<Cgroup> {
        self.0.take()
    }
}

impl Drop for SpareCgroup {
    fn drop(&mut self) {
        if let Some(cgroup) = self.0.take() {
            // The runner is being killed with the rest of the spare and its
            // init follows through its parent-death signal; the cgroups can
            // go once they are empty, which [`remove_orphaned_cgroups`]
            // waits for off the caller's path.
            orphans().push(cgroup);
        }
    }
}

/// Cgroups of spares dropped unused, waiting to be removed.
fn orphans() -> std::sync::MutexGuard<'static, Vec<Cgroup>> {
    static ORPHANS: std::sync::Mutex<Vec<Cgroup>> = std::sync::Mutex::new(Vec::new());
    ORPHANS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the cgroups of spares dropped unused (each retries while its
/// processes are still going): called by the pre-warming thread between
/// spares, and by the pool when it is dropped, so none outlives the executor.
pub(crate) fn remove_orphaned_cgroups() {
    let orphaned = std::mem::take(&mut *orphans());
    for cgroup in orphaned {
        cgroup.remove();
    }
}

fn prepare_err(what: &'static str) -> impl FnOnce(std::io::Error) -> ExecError {
    move |source| ExecError::Prepare {
        what: what.to_string(),
        source,
    }
}

/// A pipe whose ends are close-on-exec (the child gets dup2'ed copies).
fn pipe(what: &'static str) -> Result<(OwnedFd, OwnedFd), ExecError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| prepare_err(what)(e.into()))
}

impl Launcher {
    pub fn new(
        program: PathBuf,
        args: Vec<OsString>,
        dir: PrivateDir,
        user_namespace: bool,
    ) -> Self {
        Launcher {
            program,
            args,
            dir,
            user_namespace,
            zygote: Mutex::default(),
        }
    }

    /// Starts the zygote, which forks runners from then on instead of the
    /// executor executing each (see [`crate::zygote`]). Called by the
    /// pre-warming thread: runners forked by the zygote get their
    /// parent-death signal from the thread that started it.
    pub fn start_zygote(&self) {
        let mut zygote = self.zygote();
        if matches!(*zygote, ZygoteState::NotStarted) {
            *zygote = match Zygote::start(&self.program, &self.args, self.user_namespace) {
                Ok(started) => ZygoteState::Running(started),
                Err(error) => {
                    debug!(%error, program = %self.program.display(), "cannot start the zygote; executing runners");
                    ZygoteState::Failed
                }
            };
        }
    }

    fn zygote(&self) -> std::sync::MutexGuard<'_, ZygoteState> {
        // A panic while holding the lock leaves a usable state.
        self.zygote.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the zygote (if one runs) for the runner of `spec`, with
    /// `stdio`; returns it and the executor's end of its channel, or `None`
    /// when the runner must be executed instead.
    fn fork_from_zygote(
        &self,
        spec: &RunnerSpec,
        stdio: [BorrowedFd<'_>; 3],
        network: Option<OwnedFd>,
    ) -> Option<(ChildProcess, OwnedFd, Option<OwnedFd>)> {
        let mut state = self.zygote();
        let ZygoteState::Running(zygote) = &mut *state else {
            return None;
        };
        // Our end is served by tokio, which needs it non-blocking; the
        // runner's stays blocking.
        let pair = std::os::unix::net::UnixStream::pair()
            .and_then(|pair| pair.0.set_nonblocking(true).map(|()| pair))
            .inspect_err(|error| debug!(%error, "no socket pair for a forked runner"))
            .ok()?;
        let (ours, theirs) = (OwnedFd::from(pair.0), OwnedFd::from(pair.1));
        let [stdin, stdout, stderr] = stdio;
        let network = network.as_ref().map(AsFd::as_fd);
        match zygote.fork(spec, [stdin, stdout, stderr, theirs.as_fd()], network) {
            Ok((runner, network)) => Some((runner, ours, network)),
            Err(error) => {
                debug!(%error, "the zygote failed; executing runners from now on");
                *state = ZygoteState::Failed;
                None
            }
        }
    }

    /// Starts a runner for jobs of one `preparation`: forked by the zygote
    /// (and handed a connected channel) when one runs, else executed (and
    /// connecting to an endpoint of its own). [`Launched::connect`]
    /// completes the handshake.
    ///
    /// With `cgroup`, the runner moves its init into it before the spare
    /// waits (see [`Cgroup::spare`]); a confined init forked by the zygote
    /// may reuse the idle `network` namespace (see [`crate::network_shelf`]).
    pub fn launch(
        &self,
        preparation: Preparation,
        cgroup: Option<Cgroup>,
        network: Option<OwnedFd>,
    ) -> Result<Launched, ExecError> {
        let cgroup = SpareCgroup(cgroup);
        let cgroup_procs: Vec<String> = cgroup
            .0
            .iter()
            .flat_map(Cgroup::procs_files)
            .map(|procs| procs.display().to_string())
            .collect();
        let token = endpoint::new_token().map_err(prepare_err("a token"))?;
        let (stdin_r, stdin_w) = pipe("the stdin pipe")?;
        let (stdout_r, stdout_w) = pipe("an output pipe")?;
        let (stderr_r, stderr_w) = pipe("an output pipe")?;
        for fd in [&stdout_w, &stderr_w] {
            // Best effort: a bigger pipe halves the wake-ups of a flooding child.
            // SAFETY: fcntl on a descriptor we own.
            unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        }
        let mut spec = RunnerSpec {
            endpoint: None,
            token,
            user_namespace: self.user_namespace,
            preparation,
            cgroup_procs,
        };
        let forked = self.fork_from_zygote(
            &spec,
            [stdin_r.as_fd(), stdout_w.as_fd(), stderr_w.as_fd()],
            network,
        );
        let (process, channel, network) = match forked {
            Some((process, ours, network)) => (process, Channel::Connected(Some(ours)), network),
            None => {
                let endpoint =
                    Endpoint::bind(&self.dir, &endpoint::token_hex(&token)).map_err(|source| {
                        ExecError::Endpoint {
                            dir: self.dir.path().to_path_buf(),
                            source,
                        }
                    })?;
                spec.endpoint = Some(endpoint.path().as_os_str().as_bytes().to_vec());
                let process = self.execute(&spec, stdin_r, stdout_w, stderr_w)?;
                (process, Channel::Endpoint(endpoint), None)
            }
        };
        debug!(runner_pid = process.pid(), "runner started");
        Ok(Launched {
            process,
            preparation,
            channel,
            token,
            stdin: stdin_w,
            stdout: stdout_r,
            stderr: stderr_r,
            cgroup,
            network,
        })
    }

    /// Executes the runner of `spec`, with the given ends of its pipes.
    fn execute(
        &self,
        spec: &RunnerSpec,
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<ChildProcess, ExecError> {
        let child = std::process::Command::new(&self.program)
            .args(&self.args)
            .env_clear()
            .env(
                ENDPOINT_ENV,
                OsStr::from_bytes(spec.endpoint.as_deref().unwrap_or_default()),
            )
            .env(TOKEN_ENV, endpoint::token_hex(&spec.token))
            .env(PARENT_ENV, std::process::id().to_string())
            .env(USERNS_ENV, if spec.user_namespace { "1" } else { "0" })
            .env(CONFINED_ENV, spec.preparation.env())
            .env(CGROUP_ENV, spec.cgroup_procs.join("\n"))
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|source| ExecError::SpawnRunner {
                program: self.program.clone(),
                source,
            })?;
        // Not reaped yet, so the pid cannot have been recycled.
        match Pidfd::open(child.id()) {
            Ok(pidfd) => Ok(ChildProcess::new(pidfd)),
            Err(source) => {
                // SAFETY: kill a child we own and have not reaped.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
                let mut child = child;
                let _ = child.wait();
                Err(prepare_err("a pidfd for the runner")(source))
            }
        }
    }
}

impl Launched {
    /// Waits until the runner has connected and proved who it is.
    pub async fn connect(
        &mut self,
        program: &Path,
        patience: Duration,
    ) -> Result<Stream, ExecError> {
        let handshake = |reason: String| ExecError::Handshake {
            program: program.to_path_buf(),
            reason,
        };
        let pid = self.process.pid();
        let token = self.token;
        let channel = &mut self.channel;
        let hello = async move {
            match channel {
                Channel::Endpoint(endpoint) => endpoint.accept_runner(pid, &token).await,
                Channel::Connected(fd) => {
                    let fd = fd.take().ok_or("its channel was already taken")?;
                    let stream = uds_local_socket::tokio::Stream::try_from(fd)
                        .map_err(|e| format!("cannot watch its channel: {e}"))?;
                    let mut stream = Stream::from(stream);
                    endpoint::check_hello(&mut stream, &token).await?;
                    Ok(stream)
                }
            }
        };
        let stream = tokio::select! {
            accepted = hello => accepted.map_err(handshake)?,
            status = self.process.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                return Err(handshake(format!(
                    "it ended ({status}) before connecting; a program used as its own runner \
                     must call sandbox_exec::dispatch() first thing in main"
                )));
            }
            _ = tokio::time::sleep(patience) => {
                self.process.kill();
                return Err(handshake(format!(
                    "it did not connect within the evaluation's timeout of {patience:?}"
                )));
            }
        };
        debug!("runner connected");
        Ok(stream)
    }
}
