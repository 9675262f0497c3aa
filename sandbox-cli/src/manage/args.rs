//! The grammar of the named-sandbox subcommands (`create`, `list`, `info`,
//! `exec`, `deploy`, …, `up`). They are flattened into the top-level
//! [`CliCommand`](crate::args::CliCommand) so they read as `sandbox create …`,
//! and kept here so the lifecycle commands stay one module.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::args::{
    env_entry, positive_duration, protections, size, EnvArg, LimitArgs, OnOutputLimitArg,
    PolicyInputs, Protections, StdinSource, TruncateArg,
};

const MANAGE_HELP: &str = "\
Named sandboxes live in a state directory: --state-dir, else $SANDBOX_STATE_DIR,
else $XDG_DATA_HOME/sandbox, else ~/.local/share/sandbox. Services need the
supervisor `sandbox up` running on that directory; every other command talks to
it when it runs and opens the state directly when it does not.";

/// The named-sandbox subcommands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ManageCommand {
    /// Create a named sandbox (policy, limits, workspace, optional service).
    #[command(after_long_help = MANAGE_HELP)]
    Create(CreateArgs),
    /// List the named sandboxes.
    List(JsonFlag),
    /// Facts about a named sandbox: spec, modules, service, metrics.
    Info(NameJson),
    /// Run one command as an evaluation in a named sandbox (its policy,
    /// limits, workspace as working directory, modules in $SANDBOX_CODE_DIR).
    #[command(long_about = EXEC_LONG_ABOUT)]
    Exec(ExecArgs),
    /// Start the service of a sandbox (needs `sandbox up`).
    Start(NameArg),
    /// Stop the service of a sandbox.
    Stop(NameArg),
    /// Restart a sandbox: its service stops, its failure count clears, it starts again.
    Restart(NameArg),
    /// Destroy a sandbox: its service, state, snapshots and default workspace.
    Destroy(NameArg),
    /// Install FILE as the new version of MODULE (hot reload of a running service).
    #[command(long_about = DEPLOY_LONG_ABOUT)]
    Deploy(DeployArgs),
    /// The versions of a sandbox's modules (or of one module).
    Versions(VersionsArgs),
    /// Make an earlier version of a module active again (exact bytes).
    Rollback(RollbackArgs),
    /// Run a build confined, writing only to its output directory.
    #[command(long_about = COMPILE_LONG_ABOUT)]
    Compile(CompileArgs),
    /// Save the workspace and the active module versions under a name.
    Snapshot(SnapshotArgs),
    /// Put back the workspace and module versions of a snapshot.
    Restore(SnapshotArgs),
    /// List a sandbox's snapshots, or delete one.
    Snapshots(SnapshotsArgs),
    /// What happened to a sandbox (kept and streamed by `sandbox up`).
    Events(EventsArgs),
    /// Run the supervisor in the foreground: services, control socket, events.
    #[command(long_about = up_long_about())]
    Up(UpArgs),
}

const EXEC_LONG_ABOUT: &str = "\
Run one command as an evaluation in a named sandbox, in a fresh confined child:
the sandbox's policy (its workspace writable), its limits (flags below tighten or
replace them for this run), the workspace as working directory, and the active
modules read-only in the directory $SANDBOX_CODE_DIR names. Output, --json and
the exit status are those of `sandbox run`; the outcome is counted in the
sandbox's metrics (`sandbox info`).";

const DEPLOY_LONG_ABOUT: &str = "\
Install FILE as the new version of MODULE and make it active. A running service
is replaced by one on the new code; with --migrate, its state moves across: the
old service exports it, CMD transforms it, the new service imports it (see the
control protocol in `sandbox up --help`). CMD runs confined as an evaluation in
the sandbox, with the old state on standard input, SANDBOX_OLD_VERSION and
SANDBOX_NEW_VERSION in its environment, and prints the new state on standard
output (standard error is shown only when it fails). If the new version does not
start, exits within the grace period, or the migration fails, the previous
version is active and running again with its state, and deploy exits 1.";

const COMPILE_LONG_ABOUT: &str = "\
Run a build command confined: it reads what the sandbox may read, writes only to
its output directory (named by $SANDBOX_OUTPUT_DIR; the executor's private /tmp
too), reaches the network only where the policy allows, under the sandbox's
limits and --timeout. TARGET is a sandbox name (the build runs in its
workspace, counted in its metrics) or a directory (the build runs there, under
the policy of --settings/--allow/--deny). The build command follows `--`; without
one, `make` runs when TARGET has a Makefile. The default output directory is
`build` inside the workspace or directory. Exit status: the build's own, 125
when the sandbox failed.";

fn up_long_about() -> String {
    format!("{UP_LONG_ABOUT}\n{}", sandbox_core::manager::PROTOCOL_DOC)
}

const UP_LONG_ABOUT: &str = "\
Run the supervisor of a state directory in the foreground until SIGINT or
SIGTERM: it holds the directory's lock, starts the service of every sandbox that
has one, restarts crashed services (restart intensity, backoff), serves the other
`sandbox` commands on STATE_DIR/control.sock (mode 0600), keeps the recent events
for `sandbox events` and logs them to standard error. A second `sandbox up` on the
same directory is refused. On SIGINT/SIGTERM every service is stopped (no process
of it remains) and the socket removed.

Services talk to the supervisor on their standard input and output:";

/// `--json` alone.
#[derive(Debug, Clone, Args)]
pub struct JsonFlag {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A sandbox name alone.
#[derive(Debug, Clone, Args)]
pub struct NameArg {
    /// The sandbox.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// A sandbox name and `--json`.
#[derive(Debug, Clone, Args)]
pub struct NameJson {
    /// The sandbox.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sandbox create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// The name: 1-63 characters from a-z, 0-9, '_' and '-', starting with a letter or digit.
    #[arg(value_name = "NAME")]
    pub name: String,

    #[command(flatten)]
    /// The policy, resolved now against this directory and $HOME and stored with the sandbox.
    pub policy: PolicyInputs,

    /// No filesystem or network confinement for its evaluations and service:
    /// only the limits apply.
    #[arg(long, conflicts_with_all = ["settings", "allow", "deny"])]
    pub unconfined: bool,

    #[command(flatten)]
    /// The sandbox's limits.
    pub limits: LimitArgs,

    /// A long-lived service, a shell command run with /bin/sh -c, supervised by `sandbox up`.
    #[arg(long, value_name = "CMD")]
    pub service: Option<String>,

    /// Restarts allowed within --restart-period before the service is left failed.
    #[arg(long, value_name = "N", default_value_t = 3, requires = "service")]
    pub max_restarts: u32,

    /// The window in which --max-restarts counts crashes.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = positive_duration, requires = "service")]
    pub restart_period: Duration,

    /// The working directory of its evaluations, writable by them; kept when the
    /// sandbox is destroyed. Default: a directory in the state directory,
    /// removed with the sandbox.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// The entry command (a shell command), stored with the sandbox; `sandbox
    /// exec NAME` without a command runs it.
    #[arg(long, value_name = "CMD")]
    pub entry: Option<String>,

    /// Set K to V in the environment of its evaluations and service (repeatable).
    #[arg(long, value_name = "K=V", value_parser = env_entry)]
    pub env: Vec<EnvArg>,

    /// Print the new sandbox's facts as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sandbox exec`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// The sandbox.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Wall-clock limit for setup and command together (exit status 124).
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = positive_duration)]
    pub timeout: Duration,

    /// Keep at most this much output (stdout and stderr together).
    #[arg(long, value_name = "SIZE", default_value = "50000", value_parser = size)]
    pub max_output: u64,

    /// Which part of an over-long output to keep.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = TruncateArg::Head)]
    pub truncate: TruncateArg,

    /// What to do when the output passes --max-output.
    #[arg(long, value_name = "ACTION", value_enum, default_value_t = OnOutputLimitArg::Truncate)]
    pub on_output_limit: OnOutputLimitArg,

    #[command(flatten)]
    /// Limits for this run, replacing the sandbox's own one by one.
    pub limits: LimitArgs,

    /// A shell command run before the command, in the same fresh child (repeatable).
    #[arg(long, value_name = "CMD")]
    pub setup: Vec<String>,

    /// Set K to V, or pass the host's K through (repeatable).
    #[arg(long, value_name = "K=V", value_parser = env_entry)]
    pub env: Vec<EnvArg>,

    /// Feed this file to the command's standard input; `-` passes ours.
    #[arg(long, value_name = "FILE")]
    pub stdin: Option<StdinSource>,

    /// Run even though this machine cannot apply PROTECTION (repeatable).
    #[arg(long, value_name = "PROTECTION", value_parser = protections)]
    pub accept_weaker: Vec<Protections>,

    /// Print the outcome as one JSON object (as `sandbox run --json`).
    #[arg(long)]
    pub json: bool,

    /// Log what the sandbox does, to standard error.
    #[arg(long)]
    pub debug: bool,

    /// The command: one shell string, or a program and its arguments after
    /// `--`. Without one, the sandbox's entry command runs.
    #[arg(value_name = "COMMAND")]
    pub words: Vec<String>,

    /// A program and its arguments, given after `--`; never run through a shell.
    #[arg(value_name = "ARGS", last = true)]
    pub argv: Vec<String>,
}

/// Arguments of `sandbox deploy`.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// The sandbox.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The module: a file name in $SANDBOX_CODE_DIR, e.g. app.py.
    #[arg(value_name = "MODULE")]
    pub module: String,
    /// The new contents; `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Migrate the running service's state with this shell command (see above).
    #[arg(long, value_name = "CMD")]
    pub migrate: Option<String>,
    /// How long the new service must stay up to count as started.
    #[arg(long, value_name = "DUR", default_value = "100ms", value_parser = sandbox_core::parse_duration)]
    pub grace: Duration,
    /// Wait for the new service's READY line before importing the state.
    #[arg(long)]
    pub wait_ready: bool,
    /// Print the reload report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sandbox versions`.
#[derive(Debug, Clone, Args)]
pub struct VersionsArgs {
    /// The sandbox.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Only this module.
    #[arg(value_name = "MODULE")]
    pub module: Option<String>,
    /// Print JSON (an array of histories).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sandbox rollback`.
#[derive(Debug, Clone, Args)]
pub struct RollbackArgs {
    /// The sandbox.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The module.
    #[arg(value_name = "MODULE")]
    pub module: String,
    /// The version to make active (as `sandbox versions` numbers them).
    #[arg(value_name = "VERSION", value_parser = version_number)]
    pub version: u32,
}

/// Arguments of `sandbox compile`.
#[derive(Debug, Clone, Args)]
pub struct CompileArgs {
    /// A sandbox name, or a directory (anything containing '/' or naming an
    /// existing directory).
    #[arg(value_name = "NAME|DIR")]
    pub target: String,

    /// Where the build writes (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Wall-clock limit of the build.
    #[arg(long, value_name = "DUR", default_value = "300s", value_parser = positive_duration)]
    pub timeout: Duration,

    /// Keep at most this much of the build's output.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = size)]
    pub max_output: u64,

    #[command(flatten)]
    /// The policy of a directory build (a sandbox's build uses the sandbox's).
    pub policy: PolicyInputs,

    /// Print {artifacts, output, duration_ms, outcome} as one JSON object.
    #[arg(long)]
    pub json: bool,

    /// The build command and its arguments, after `--` (one word runs through /bin/sh -c).
    #[arg(value_name = "BUILD", last = true)]
    pub build: Vec<String>,
}

/// Arguments of `sandbox snapshot` and `sandbox restore`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// The sandbox.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The snapshot.
    #[arg(value_name = "SNAP")]
    pub snapshot: String,
}

/// Arguments of `sandbox snapshots`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotsArgs {
    /// The sandbox.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Delete this snapshot instead of listing.
    #[arg(long, value_name = "SNAP")]
    pub delete: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sandbox events`.
#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// The sandbox.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Keep printing new events until interrupted (or the supervisor stops).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sandbox up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Do not start the services of existing sandboxes (start them with `sandbox start`).
    #[arg(long)]
    pub no_autostart: bool,
}

fn version_number(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix('v').unwrap_or(text);
    match digits.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid version {text:?}: a version number from `sandbox versions`, 1 or more (e.g. 2 or v2)"
        )),
    }
}
