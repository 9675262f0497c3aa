//! The command-line grammar: clap types for every subcommand and the value
//! parsers that turn flag text into sizes, durations and environment entries.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sandbox_core::{Limits, OutputLimitAction, Protection, TruncateMode};

const ABOUT: &str = "Run untrusted commands in a fresh, confined child process, with hard limits.";

const RUN_LONG_ABOUT: &str = "\
Run one command, confined, in a fresh child process.

  sandbox run [OPTIONS] 'shell command'     one argument: run through /bin/sh -c
  sandbox run [OPTIONS] -- CMD [ARGS...]    after `--`, or several arguments: run CMD directly

Options go before the command; to pass arguments starting with `-` to the
command, put them after `--`.

The command's standard output and standard error are merged, in arrival order,
and streamed to standard output as they arrive; past --max-output the rest is
dropped (but counted) and a marker such as
`...(truncated, showing first 48.8KB of 1.2MB)` is printed instead. When the
command did not simply exit, one line on standard error says why (timeout,
limit, setup failure, signal...).

The environment is scrubbed: only PATH, HOME, LANG, LC_ALL, TERM, TZ and USER
are passed from the host, plus what --env adds.

Sizes take binary units: 50000, 50KB (= 51,200 bytes), 1.5MiB, 2G.
Durations: 500ms, 30s, 1.5m, 1h30m; a bare number means seconds.

Exit status: the command's own; 124 timeout; 125 the sandbox itself failed;
126 not executable; 127 not found; 128+N killed by signal N.";

const JSON_HELP: &str = "\
Print one JSON object describing the outcome on standard output instead of the
output itself (no live streaming, no status line). Fields: id, status {kind, ...},
termination, output (merged, truncated, with the marker), streams
{stdout_bytes, stderr_bytes}, truncation {kept_bytes, total_bytes, marker, mode}
or null, wall_time_ms, usage {cpu_user_ms, cpu_sys_ms, peak_memory_bytes},
limits [{limit, mechanism, detail}], violations [...]. The exit status is the
same as without --json. Every field is described in sandbox-cli/JSON.md.";

/// The `sandbox` command line.
#[derive(Debug, Parser)]
#[command(name = "sandbox", version, about = ABOUT)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: CliCommand,

    /// The state directory of named sandboxes (default: $SANDBOX_STATE_DIR,
    /// else $XDG_DATA_HOME/sandbox, else ~/.local/share/sandbox).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The subcommands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run one command, confined, in a fresh child process.
    #[command(long_about = RUN_LONG_ABOUT)]
    Run(RunArgs),
    /// Show or check the effective filesystem and network policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// What this machine supports and what the sandbox enforces on it.
    #[command(long_about = PLATFORM_LONG_ABOUT)]
    Platform(PlatformArgs),
    /// The log of what sandboxes were denied (network, filesystem, syscall).
    Violations(ViolationsArgs),
    /// Named sandboxes: create, exec, deploy, rollback, snapshot, up, …
    #[command(flatten)]
    Manage(crate::manage::args::ManageCommand),
}

/// The resource limits of `run`, `exec` and `create` (a sandbox's own).
#[derive(Debug, Clone, Default, Args)]
pub struct LimitArgs {
    /// Memory limit of the whole evaluation.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub memory: Option<u64>,

    /// CPU-time limit (user + system).
    #[arg(long, value_name = "DUR", value_parser = positive_duration)]
    pub cpu_time: Option<Duration>,

    /// Maximum number of processes (and threads) alive at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub pids: Option<u32>,

    /// Largest file the command may write.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub file_size: Option<u64>,

    /// Maximum number of open file descriptors per process.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub open_files: Option<u64>,
}

impl LimitArgs {
    /// These limits over `base`, limit by limit.
    pub fn over(&self, base: Limits) -> Limits {
        Limits {
            memory: self.memory.or(base.memory),
            cpu_time: self.cpu_time.or(base.cpu_time),
            pids: self.pids.or(base.pids),
            file_size: self.file_size.or(base.file_size),
            open_files: self.open_files.or(base.open_files),
        }
    }
}

/// `sandbox violations`.
#[derive(Debug, Args)]
pub struct ViolationsArgs {
    /// Only violations of this kind.
    #[arg(long = "type", value_enum, value_name = "KIND")]
    pub r#type: Option<ViolationType>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Empty the log instead of printing it.
    #[arg(long, conflicts_with_all = ["type", "json"])]
    pub clear: bool,
}

/// What `sandbox violations --type` filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViolationType {
    /// Connections the proxies refused.
    Network,
    /// File accesses the policy denied.
    Filesystem,
    /// System calls the seccomp filter refused.
    Syscall,
}

const POLICY_INPUTS_HELP: &str = "\
The policy is merged from, in order: the user settings (~/.sandbox/settings.json),
the project settings (./.sandbox/settings.json), --settings FILE, then --allow and
--deny. Later layers add rules; deny rules win whatever their layer. Without any
settings file or flag, `sandbox run` applies no filesystem or network policy.";

const PLATFORM_LONG_ABOUT: &str = "\
What this machine supports (kernel, user namespaces, Landlock, seccomp, cgroups,
root) and, derived from it, what the sandbox enforces and can observe here.
With --json, one JSON object (described in sandbox-cli/POLICY.md).";

/// Where a policy comes from besides the default settings files: shared by
/// `run`, `policy show` and `policy check`.
#[derive(Debug, Clone, Default, Args)]
#[command(after_long_help = POLICY_INPUTS_HELP)]
pub struct PolicyInputs {
    /// A settings JSON file, applied after the user and project settings.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,

    /// Allow a permission: Read(PATH), Edit(PATH), WebFetch(domain:NAME),
    /// WebFetch(tcp:HOST:PORT), UnixSocket(PATH) (repeatable).
    #[arg(long, value_name = "PERM")]
    pub allow: Vec<String>,

    /// Deny a permission, e.g. Read(~/.ssh) hides ~/.ssh (repeatable); deny beats allow.
    #[arg(long, value_name = "PERM")]
    pub deny: Vec<String>,

    /// Have the proxies resolve HOST to ADDR instead of asking DNS, like curl's
    /// --resolve (repeatable): api.test:127.0.0.1, api.test:[::1].
    #[arg(long, value_name = "HOST:ADDR", value_parser = parse_resolve)]
    pub resolve: Vec<(String, IpAddr)>,

    /// Let allowed names reach loopback, private, link-local and cloud
    /// metadata addresses (refused by default: a DNS-rebinding defence).
    #[arg(long)]
    pub allow_private_destinations: bool,
}

/// `HOST:ADDR` for `--resolve`.
fn parse_resolve(text: &str) -> Result<(String, IpAddr), String> {
    let (host, addr) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not HOST:ADDR, e.g. api.test:127.0.0.1"))?;
    if host.is_empty() {
        return Err(format!("{text:?} has no host before the colon"));
    }
    let bare = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let addr = bare.parse::<IpAddr>().map_err(|_| {
        format!("{addr:?} in {text:?} is not an IP address (e.g. 127.0.0.1 or [::1])")
    })?;
    Ok((host.to_string(), addr))
}

#[cfg(test)]
impl PolicyInputs {
    /// Inputs made of `--allow` and `--deny` flags only.
    pub fn flags(allow: &[&str], deny: &[&str]) -> Self {
        PolicyInputs {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            ..PolicyInputs::default()
        }
    }
}

/// `sandbox policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The effective policy, each rule with the layer it came from, and what the
    /// Linux enforcement cannot apply exactly.
    Show(PolicyShowArgs),
    /// Validate the settings files and flags: exit 0 when valid (warnings
    /// allowed), 1 when there are errors.
    Check(PolicyCheckArgs),
}

/// Arguments of `sandbox policy show`.
#[derive(Debug, Clone, Args)]
pub struct PolicyShowArgs {
    #[command(flatten)]
    /// The policy inputs.
    pub inputs: PolicyInputs,

    /// Print one JSON object (described in sandbox-cli/POLICY.md).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sandbox policy check`.
#[derive(Debug, Clone, Args)]
pub struct PolicyCheckArgs {
    #[command(flatten)]
    /// The policy inputs.
    pub inputs: PolicyInputs,

    /// Print one JSON object (described in sandbox-cli/POLICY.md).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sandbox platform`.
#[derive(Debug, Clone, Args)]
pub struct PlatformArgs {
    /// Print one JSON object instead of `key: value` lines.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sandbox run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Wall-clock limit for setup and command together; the whole process tree is
    /// killed when it expires (exit status 124).
    #[arg(long, value_name = "DUR", default_value = "60s", value_parser = positive_duration)]
    pub timeout: Duration,

    /// Keep at most this much output (stdout and stderr together).
    #[arg(long, value_name = "SIZE", default_value = "50000", value_parser = size)]
    pub max_output: u64,

    /// Which part of an over-long output to keep: the beginning, or the
    /// beginning and the end around the marker.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = TruncateArg::Head)]
    pub truncate: TruncateArg,

    /// What to do when the output passes --max-output: keep running and drop the
    /// rest, or kill the command.
    #[arg(long, value_name = "ACTION", value_enum, default_value_t = OnOutputLimitArg::Truncate)]
    pub on_output_limit: OnOutputLimitArg,

    #[command(flatten)]
    pub limits: LimitArgs,

    /// A shell command run before the command, in the same fresh child
    /// (repeatable, run in order). Its output is shown only when it fails.
    #[arg(long, value_name = "CMD")]
    pub setup: Vec<String>,

    /// Set K to V in the command's environment; a bare K passes the host's K
    /// through when it is set (repeatable).
    #[arg(long, value_name = "K=V", value_parser = env_entry)]
    pub env: Vec<EnvArg>,

    /// Working directory of the command.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Feed this file to the command's standard input; `-` passes our own
    /// standard input. By default the command's standard input is empty.
    #[arg(long, value_name = "FILE")]
    pub stdin: Option<StdinSource>,

    #[command(flatten)]
    /// The filesystem and network policy.
    pub policy: PolicyInputs,

    /// Run with no filesystem or network confinement at all: only the
    /// timeout, output and resource limits apply.
    #[arg(long, conflicts_with_all = ["settings", "allow", "deny", "accept_weaker"])]
    pub unconfined: bool,

    /// Run even though this machine cannot apply PROTECTION (landlock,
    /// seccomp, or all); without it such an evaluation is refused. The
    /// outcome lists what was weakened (repeatable).
    #[arg(long, value_name = "PROTECTION", value_parser = protections)]
    pub accept_weaker: Vec<Protections>,

    #[arg(long, long_help = JSON_HELP)]
    /// Print the outcome as one JSON object instead of the output.
    pub json: bool,

    /// Log what the sandbox does, to standard error (RUST_LOG is honoured too).
    #[arg(long)]
    pub debug: bool,

    /// The command: a single shell string, or a program and its arguments.
    #[arg(value_name = "COMMAND", required_unless_present = "argv")]
    pub words: Vec<String>,

    /// A program and its arguments, given after `--`; never run through a shell.
    #[arg(value_name = "ARGS", last = true)]
    pub argv: Vec<String>,
}

/// `--truncate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TruncateArg {
    /// Keep the first bytes.
    Head,
    /// Keep the first and the last half, with the marker between them.
    HeadTail,
}

impl From<TruncateArg> for TruncateMode {
    fn from(arg: TruncateArg) -> Self {
        match arg {
            TruncateArg::Head => TruncateMode::Head,
            TruncateArg::HeadTail => TruncateMode::HeadTail,
        }
    }
}

/// `--on-output-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOutputLimitArg {
    /// Keep running, drop the rest of the output but count it.
    Truncate,
    /// Kill the whole process tree at once (status `output_limit`).
    Kill,
}

impl From<OnOutputLimitArg> for OutputLimitAction {
    fn from(arg: OnOutputLimitArg) -> Self {
        match arg {
            OnOutputLimitArg::Truncate => OutputLimitAction::Truncate,
            OnOutputLimitArg::Kill => OutputLimitAction::Kill,
        }
    }
}

/// One `--env` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvArg {
    /// `K=V`: set K to V.
    Set(String, String),
    /// `K`: pass the host's K through when it is set.
    PassThrough(String),
}

/// Where the command's standard input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdinSource {
    /// Our own standard input (`--stdin -`).
    Inherit,
    /// The contents of a file.
    File(PathBuf),
}

impl From<&std::ffi::OsStr> for StdinSource {
    fn from(value: &std::ffi::OsStr) -> Self {
        if value == "-" {
            StdinSource::Inherit
        } else {
            StdinSource::File(PathBuf::from(value))
        }
    }
}

/// The protections one `--accept-weaker` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protections(pub Vec<Protection>);

pub(crate) fn protections(text: &str) -> Result<Protections, String> {
    if text == "all" {
        return Ok(Protections(Protection::ALL.to_vec()));
    }
    text.parse::<Protection>()
        .map(|p| Protections(vec![p]))
        .map_err(|err| err.to_string())
}

pub(crate) fn size(text: &str) -> Result<u64, String> {
    sandbox_core::parse_size(text).map_err(|err| err.to_string())
}

/// A duration that is not zero: a zero timeout or CPU limit would kill every
/// command before it starts, which is never what was meant.
pub(crate) fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = sandbox_core::parse_duration(text).map_err(|err| err.to_string())?;
    if duration.is_zero() {
        return Err(format!(
            "invalid duration {text:?}: it must be greater than zero"
        ));
    }
    Ok(duration)
}

pub(crate) fn env_entry(text: &str) -> Result<EnvArg, String> {
    let (key, value) = match text.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (text, None),
    };
    if key.is_empty() {
        return Err(format!(
            "invalid environment entry {text:?}: the variable name is empty; use K=V, or K to pass the host's K through"
        ));
    }
    // The kernel takes environment entries as C strings.
    if text.contains('\0') {
        return Err(format!(
            "invalid environment entry {text:?}: it contains a NUL byte"
        ));
    }
    Ok(match value {
        Some(value) => EnvArg::Set(key.to_owned(), value.to_owned()),
        None => EnvArg::PassThrough(key.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let cli = Cli::try_parse_from(["sandbox", "run"].iter().chain(args))?;
        let CliCommand::Run(run) = cli.command else {
            panic!("not a run command")
        };
        Ok(run)
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_follow_the_seed() {
        let run = parse(&["true"]).unwrap();
        assert_eq!(run.timeout, Duration::from_secs(60));
        assert_eq!(run.max_output, 50_000);
        assert_eq!(run.truncate, TruncateArg::Head);
        assert_eq!(run.on_output_limit, OnOutputLimitArg::Truncate);
        assert_eq!(run.stdin, None);
        assert!(!run.json && !run.debug);
    }

    #[test]
    fn words_and_args_after_the_separator_are_kept_apart() {
        let run = parse(&["echo hi"]).unwrap();
        assert_eq!(run.words, ["echo hi"]);
        assert!(run.argv.is_empty());

        let run = parse(&["--", "echo", "-n", "hi"]).unwrap();
        assert!(run.words.is_empty());
        assert_eq!(run.argv, ["echo", "-n", "hi"]);

        let run = parse(&["python3", "--", "-c", "print(1)"]).unwrap();
        assert_eq!(run.words, ["python3"]);
        assert_eq!(run.argv, ["-c", "print(1)"]);
    }

    #[test]
    fn options_after_the_command_still_belong_to_sandbox() {
        let run = parse(&["echo hi", "--json"]).unwrap();
        assert!(run.json);
        assert_eq!(run.words, ["echo hi"]);
    }

    #[test]
    fn a_command_is_required() {
        let err = parse(&["--json"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn units_are_parsed() {
        let run = parse(&[
            "--timeout",
            "1.5s",
            "--max-output",
            "1KB",
            "--memory",
            "256MiB",
            "--cpu-time",
            "2",
            "--file-size",
            "1M",
            "x",
        ])
        .unwrap();
        assert_eq!(run.timeout, Duration::from_millis(1500));
        assert_eq!(run.max_output, 1024);
        assert_eq!(run.limits.memory, Some(256 << 20));
        assert_eq!(run.limits.cpu_time, Some(Duration::from_secs(2)));
        assert_eq!(run.limits.file_size, Some(1 << 20));
    }

    #[test]
    fn bad_units_name_the_flag_and_the_accepted_forms() {
        let err = parse(&["--timeout", "5parsecs", "x"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--timeout <DUR>"), "{err}");
        assert!(err.contains("unknown unit \"parsecs\""), "{err}");
        assert!(err.contains("500ms, 30s"), "{err}");

        let err = parse(&["--memory", "12XB", "x"]).unwrap_err().to_string();
        assert!(err.contains("--memory <SIZE>"), "{err}");
        assert!(err.contains("unknown unit \"XB\""), "{err}");
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let err = parse(&["--timeout", "0s", "x"]).unwrap_err().to_string();
        assert!(err.contains("must be greater than zero"), "{err}");
    }

    #[test]
    fn zero_process_limits_are_refused() {
        assert!(parse(&["--pids", "0", "x"]).is_err());
        assert!(parse(&["--open-files", "0", "x"]).is_err());
        assert_eq!(parse(&["--pids", "8", "x"]).unwrap().limits.pids, Some(8));
    }

    #[test]
    fn env_entries_set_or_pass_through() {
        let run = parse(&["--env", "A=1", "--env", "B==x", "--env", "HOME", "x"]).unwrap();
        assert_eq!(
            run.env,
            [
                EnvArg::Set("A".into(), "1".into()),
                EnvArg::Set("B".into(), "=x".into()),
                EnvArg::PassThrough("HOME".into()),
            ]
        );
        assert_eq!(
            parse(&["--env", "A=", "x"]).unwrap().env,
            [EnvArg::Set("A".into(), String::new())]
        );
        let err = parse(&["--env", "=v", "x"]).unwrap_err().to_string();
        assert!(err.contains("variable name is empty"), "{err}");
    }

    #[test]
    fn stdin_dash_means_our_own_stdin() {
        assert_eq!(
            parse(&["--stdin", "-", "x"]).unwrap().stdin,
            Some(StdinSource::Inherit)
        );
        assert_eq!(
            parse(&["--stdin", "in.txt", "x"]).unwrap().stdin,
            Some(StdinSource::File("in.txt".into()))
        );
    }

    #[test]
    fn setup_steps_keep_their_order() {
        let run = parse(&["--setup", "a", "--setup", "b c", "x"]).unwrap();
        assert_eq!(run.setup, ["a", "b c"]);
    }
}
