use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use sandbox_policy::Policy;

use crate::{EvalId, Limits, Protection};

/// Default wall-clock timeout of an evaluation (the seed's 60 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Default output limit in bytes (the seed's 50,000).
pub const DEFAULT_MAX_OUTPUT: usize = 50_000;

/// Host variables passed to the evaluation when they are set; everything else is
/// scrubbed so that host secrets (tokens, cloud keys) never leak by default.
pub const DEFAULT_ENV_ALLOWLIST: &[&str] =
    &["PATH", "HOME", "LANG", "LC_ALL", "TERM", "TZ", "USER"];

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// A program and its arguments, run without a shell. The program is looked
    /// up in the evaluation's `PATH` when it has no slash.
    Argv(Vec<String>),
    /// A shell command line, run as `/bin/sh -c LINE`.
    Shell(String),
}

impl Command {
    /// A command run without a shell.
    pub fn argv<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command::Argv(args.into_iter().map(Into::into).collect())
    }

    /// A shell command line.
    pub fn shell(line: impl Into<String>) -> Self {
        Command::Shell(line.into())
    }

    /// The program that will be executed.
    pub fn program(&self) -> &str {
        match self {
            Command::Argv(args) => args.first().map(String::as_str).unwrap_or(""),
            Command::Shell(_) => "/bin/sh",
        }
    }

    /// The full argument vector, program first.
    pub fn to_argv(&self) -> Vec<String> {
        match self {
            Command::Argv(args) => args.clone(),
            Command::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
        }
    }

    /// A one-line rendering for logs and violation records.
    pub fn display(&self) -> String {
        match self {
            Command::Argv(args) => args.join(" "),
            Command::Shell(line) => line.clone(),
        }
    }
}

/// Which part of an over-long output is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncateMode {
    /// The first `max_output` bytes (the seed's behaviour).
    #[default]
    Head,
    /// The first and the last half of `max_output`, with the marker between them:
    /// errors at the end of a long build log stay visible.
    HeadTail,
}

/// What happens when the output passes the output limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputLimitAction {
    /// Keep running; keep only `max_output` bytes but count everything.
    #[default]
    Truncate,
    /// Kill the whole process tree at once; the status is `output_limit`.
    Kill,
}

/// One evaluation to run: what, with which inputs, under which limits.
///
/// Build it with [`EvalRequest::new`] and the chained setters; every field is
/// public for callers that prefer struct syntax.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalRequest {
    /// Identifies the evaluation in spans, events and violations.
    pub id: EvalId,
    /// What to run.
    pub command: Command,
    /// Commands run before `command` in the same fresh child; their output is not
    /// captured unless one fails.
    pub setup: Vec<Command>,
    /// Bytes fed to the command's standard input (then end of file).
    pub stdin: Vec<u8>,
    /// Variables set for the evaluation, on top of the allowlisted host ones.
    pub env: BTreeMap<String, String>,
    /// Host variables passed through when set (default [`DEFAULT_ENV_ALLOWLIST`]).
    pub env_allowlist: Vec<String>,
    /// Working directory; the runner's when `None`.
    pub cwd: Option<PathBuf>,
    /// Wall-clock timeout of setup and command together.
    pub timeout: Duration,
    /// Output limit in bytes (stdout and stderr together).
    pub max_output: usize,
    /// What to keep of an output over the limit.
    pub truncate_mode: TruncateMode,
    /// What to do when the output passes `max_output`.
    pub on_output_limit: OutputLimitAction,
    /// Resource limits.
    pub limits: Limits,
    /// Confinement policy.
    pub policy: Policy,
    /// Protections the caller agrees to go without when this machine cannot
    /// apply them (default: none, so such an evaluation is refused).
    #[serde(default)]
    pub accept_weaker: BTreeSet<Protection>,
    /// Host directories the evaluation must see even where the sandbox has a
    /// private, empty directory of its own (`/tmp`, `/dev/shm`): a code
    /// directory, inputs. They stay read-only (unless a writable root covers
    /// them) and stay hidden when the policy denies reading them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visible: Vec<PathBuf>,
}

impl EvalRequest {
    /// A request with the seed's defaults: 60 s timeout, 50,000 bytes of output,
    /// no resource limits, default environment allowlist.
    pub fn new(command: Command) -> Self {
        EvalRequest {
            id: EvalId::next(),
            command,
            setup: Vec::new(),
            stdin: Vec::new(),
            env: BTreeMap::new(),
            env_allowlist: DEFAULT_ENV_ALLOWLIST
                .iter()
                .map(|s| s.to_string())
                .collect(),
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
            truncate_mode: TruncateMode::Head,
            on_output_limit: OutputLimitAction::Truncate,
            limits: Limits::default(),
            policy: Policy::default(),
            accept_weaker: BTreeSet::new(),
            visible: Vec::new(),
        }
    }

    /// Sets the wall-clock timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the output limit in bytes.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Sets what is kept of an over-long output.
    pub fn truncate_mode(mut self, mode: TruncateMode) -> Self {
        self.truncate_mode = mode;
        self
    }

    /// Sets what happens when the output passes the limit.
    pub fn on_output_limit(mut self, action: OutputLimitAction) -> Self {
        self.on_output_limit = action;
        self
    }

    /// Adds a setup step.
    pub fn setup(mut self, step: Command) -> Self {
        self.setup.push(step);
        self
    }

    /// Sets standard input.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets the resource limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the confinement policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Lets the evaluation run without `protection` when this machine cannot
    /// apply it (the outcome then lists it in [`crate::Outcome::weakened`]).
    pub fn accept_weaker(mut self, protection: Protection) -> Self {
        self.accept_weaker.insert(protection);
        self
    }

    /// Keeps the host directory `dir` visible (see [`EvalRequest::visible`]).
    pub fn visible(mut self, dir: impl Into<PathBuf>) -> Self {
        self.visible.push(dir.into());
        self
    }

    /// The environment the evaluation starts with: allowlisted variables taken
    /// from `host`, then the explicit ones (which win).
    pub fn effective_env<I, K, V>(&self, host: I) -> BTreeMap<String, String>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut env: BTreeMap<String, String> = host
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, _)| self.env_allowlist.iter().any(|allowed| allowed == k))
            .collect();
        env.extend(self.env.clone());
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_commands_run_through_sh_c() {
        assert_eq!(
            Command::shell("echo hi").to_argv(),
            ["/bin/sh", "-c", "echo hi"]
        );
    }

    #[test]
    fn new_request_uses_the_seed_defaults() {
        let req = EvalRequest::new(Command::argv(["true"]));
        assert_eq!(req.timeout, Duration::from_secs(60));
        assert_eq!(req.max_output, 50_000);
        assert_eq!(req.truncate_mode, TruncateMode::Head);
    }

    #[test]
    fn effective_env_drops_host_secrets() {
        let req = EvalRequest::new(Command::argv(["env"]));
        let env = req.effective_env([("PATH", "/bin"), ("AWS_SECRET_ACCESS_KEY", "hunter2")]);
        assert_eq!(env.get("PATH").map(String::as_str), Some("/bin"));
        assert!(!env.contains_key("AWS_SECRET_ACCESS_KEY"));
    }

    #[test]
    fn explicit_env_overrides_host_values() {
        let req = EvalRequest::new(Command::argv(["env"])).env("PATH", "/opt/bin");
        let env = req.effective_env([("PATH", "/bin")]);
        assert_eq!(env["PATH"], "/opt/bin");
    }
}
