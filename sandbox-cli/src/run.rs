//! `sandbox run`: turns the arguments into an [`EvalRequest`], runs it with the
//! executor while streaming its output, and renders the outcome.

use std::io::{self, IsTerminal, Read, Write};

use anyhow::Context;
use sandbox_core::{Command, EvalRequest, Limits};
use sandbox_exec::{Executor, NoObserver, Observer, OutputStream};

use crate::args::{EnvArg, Protections, RunArgs, StdinSource};
use crate::render::{self, RequestFacts};

/// Exit status when the sandbox itself failed (shell convention, as `timeout(1)`).
pub const EXIT_SANDBOX_FAILED: i32 = 125;

/// Runs `sandbox run` and returns the process exit status.
pub fn run(args: RunArgs) -> i32 {
    match run_inner(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sandbox: error: {err:#}");
            EXIT_SANDBOX_FAILED
        }
    }
}

fn run_inner(mut args: RunArgs) -> anyhow::Result<i32> {
    let stdin = match &args.stdin {
        None => Vec::new(),
        Some(source) => read_stdin(source)?,
    };
    if let Some(cwd) = &args.cwd {
        // The runner may start elsewhere than we do; anchor a relative directory
        // here, where the user typed it.
        args.cwd = Some(
            std::path::absolute(cwd)
                .with_context(|| format!("cannot resolve --cwd {}", cwd.display()))?,
        );
    }
    let ctx = crate::policy_build::host_context()?;
    let (policy, report) = crate::policy_build::build(&args.policy, ctx)
        .map_err(|err| anyhow::anyhow!(crate::policy_build::describe(&err)))?;
    crate::policy_cmd::print_warnings(&report.warnings);
    let mut request = build_request(&args, stdin);
    // Numbered across runs, so the persistent log tells runs apart; without
    // it the process's own count stands (every run is evaluation 1).
    match crate::violations_cmd::next_eval_id() {
        Ok(id) => request.id = id,
        Err(reason) => tracing::debug!(%reason, "evaluation id not numbered across runs"),
    }
    // Confined unless asked otherwise: with no settings and no flag the policy
    // is the mandatory one (read-only host, private /tmp, no network).
    if !args.unconfined {
        request = request.policy(policy);
    }
    let facts = RequestFacts::of(&request);
    tracing::debug!(
        id = %request.id,
        command = %request.command.display(),
        stdin_bytes = request.stdin.len(),
        "built request"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let executor = Executor::new()?;
    // One evaluation per invocation: a spare runner would only be killed unused.
    executor.set_prewarm(0);

    if args.json {
        let outcome = runtime.block_on(executor.evaluate_observed(request, &mut NoObserver))?;
        crate::violations_cmd::record(&outcome, &mut io::stderr());
        let line = render::json_line(&outcome)?;
        write_ignoring_broken_pipe(&mut io::stdout(), line.as_bytes());
        return Ok(outcome.exit_code());
    }

    let mut live = LiveOutput::new(io::stdout());
    let outcome = runtime.block_on(executor.evaluate_observed(request, &mut live))?;
    crate::violations_cmd::record(&outcome, &mut io::stderr());
    let terminal = io::stdout().is_terminal() && io::stderr().is_terminal();
    render::finish_human(
        &outcome,
        &facts,
        live.streamed,
        terminal,
        &mut live.out,
        &mut io::stderr(),
    );
    Ok(outcome.exit_code())
}

/// The options `run` shares with `exec`: protections accepted as weaker,
/// setup steps and environment.
pub fn with_shared_options(
    mut request: EvalRequest,
    accept_weaker: &[Protections],
    setup: &[String],
    env: &[EnvArg],
) -> EvalRequest {
    for protection in accept_weaker.iter().flat_map(|p| &p.0) {
        request = request.accept_weaker(*protection);
    }
    for step in setup {
        request = request.setup(Command::shell(step.as_str()));
    }
    for entry in env {
        match entry {
            EnvArg::Set(key, value) => request = request.env(key.as_str(), value.as_str()),
            // Allowlisting rather than copying the value keeps "only when set"
            // and non-UTF-8 values the executor's business, as for PATH or HOME.
            EnvArg::PassThrough(key) => {
                if !request.env_allowlist.contains(key) {
                    request.env_allowlist.push(key.clone());
                }
            }
        }
    }
    request
}

/// Builds the request `args` describe, with `stdin` already read. Pure: the
/// host environment is consulted later, by the executor, through the allowlist.
pub fn build_request(args: &RunArgs, stdin: Vec<u8>) -> EvalRequest {
    let mut request = EvalRequest::new(command_of(&args.words, &args.argv))
        .timeout(args.timeout)
        // Only a 32-bit host could fail this, and there the largest buffer it
        // can hold is the right limit anyway.
        .max_output(usize::try_from(args.max_output).unwrap_or(usize::MAX))
        .truncate_mode(args.truncate.into())
        .on_output_limit(args.on_output_limit.into())
        .limits(args.limits.over(Limits::default()))
        .stdin(stdin);
    request = with_shared_options(request, &args.accept_weaker, &args.setup, &args.env);
    if let Some(cwd) = &args.cwd {
        request = request.cwd(cwd);
    }
    request
}

/// One word without `--` is a shell command line; `--` or several words mean a
/// program and its arguments, run directly (`words` then what followed `--`).
pub fn command_of(words: &[String], after_separator: &[String]) -> Command {
    match (words, after_separator) {
        ([line], []) => Command::shell(line.as_str()),
        _ => Command::argv(words.iter().chain(after_separator).cloned()),
    }
}

fn read_stdin(source: &StdinSource) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    match source {
        StdinSource::Inherit => {
            io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("cannot read our standard input for --stdin -")?;
        }
        StdinSource::File(path) => {
            bytes = std::fs::read(path)
                .with_context(|| format!("cannot read --stdin {}", path.display()))?;
        }
    }
    Ok(bytes)
}

/// Streams the kept output to a writer as it arrives, and counts what it was
/// given so that the end of the output can be printed without repeating it.
struct LiveOutput<W> {
    out: W,
    /// Bytes received so far: the length of the prefix of `Outcome::output`
    /// already handled, whether or not writing them succeeded.
    streamed: usize,
    /// Set once a write fails (a closed pipe, as in `sandbox run … | head`):
    /// the evaluation goes on, only its output has nowhere to go.
    broken: bool,
}

impl<W: Write> LiveOutput<W> {
    fn new(out: W) -> Self {
        LiveOutput {
            out,
            streamed: 0,
            broken: false,
        }
    }
}

impl<W: Write + Send> Observer for LiveOutput<W> {
    fn output(&mut self, _stream: OutputStream, bytes: &[u8]) {
        self.streamed += bytes.len();
        if !self.broken {
            // Flush every chunk: a prompt without a newline, or a progress
            // line, must show up now, not when the buffer fills.
            let written = self.out.write_all(bytes).and_then(|()| self.out.flush());
            self.broken = written.is_err();
        }
    }
}

/// Writes and flushes, ignoring failures: when our reader went away there is no
/// one left to tell, and the exit status still reports the outcome.
fn write_ignoring_broken_pipe(out: &mut impl Write, bytes: &[u8]) {
    let _ = out.write_all(bytes).and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use clap::Parser;
    use sandbox_core::{OutputLimitAction, TruncateMode, DEFAULT_ENV_ALLOWLIST};

    use super::*;
    use crate::args::{Cli, CliCommand};

    fn request(args: &[&str]) -> EvalRequest {
        let cli = Cli::try_parse_from(["sandbox", "run"].iter().chain(args)).unwrap();
        let CliCommand::Run(run) = cli.command else {
            panic!("not a run command")
        };
        build_request(&run, Vec::new())
    }

    #[test]
    fn one_word_runs_through_the_shell() {
        assert_eq!(
            request(&["echo hi; exit 3"]).command,
            Command::shell("echo hi; exit 3")
        );
    }

    #[test]
    fn several_words_run_directly() {
        assert_eq!(
            request(&["echo", "hi"]).command,
            Command::argv(["echo", "hi"])
        );
    }

    #[test]
    fn the_separator_means_argv_even_for_one_word() {
        assert_eq!(
            request(&["--", "echo hi"]).command,
            Command::argv(["echo hi"])
        );
        assert_eq!(
            request(&["--", "echo", "-n", "hi"]).command,
            Command::argv(["echo", "-n", "hi"])
        );
    }

    #[test]
    fn words_before_the_separator_lead_the_argv() {
        assert_eq!(
            request(&["python3", "--", "-c", "print(1)"]).command,
            Command::argv(["python3", "-c", "print(1)"])
        );
    }

    #[test]
    fn defaults_are_the_libraries_defaults() {
        let req = request(&["true"]);
        let default = EvalRequest::new(Command::shell("true"));
        assert_eq!(req.timeout, default.timeout);
        assert_eq!(req.max_output, default.max_output);
        assert_eq!(req.truncate_mode, TruncateMode::Head);
        assert_eq!(req.on_output_limit, OutputLimitAction::Truncate);
        assert_eq!(req.limits, Limits::default());
        assert!(req.stdin.is_empty());
        assert!(req.setup.is_empty());
        assert!(req.env.is_empty());
        assert_eq!(req.env_allowlist, DEFAULT_ENV_ALLOWLIST);
        assert_eq!(req.cwd, None);
    }

    #[test]
    fn every_option_lands_in_the_request() {
        let req = request(&[
            "--timeout",
            "2s",
            "--max-output",
            "1KB",
            "--truncate",
            "head-tail",
            "--on-output-limit",
            "kill",
            "--memory",
            "256MB",
            "--cpu-time",
            "1.5s",
            "--pids",
            "16",
            "--file-size",
            "1MB",
            "--open-files",
            "64",
            "--setup",
            "mkdir -p out",
            "--setup",
            "touch out/x",
            "--cwd",
            "/tmp",
            "ls out",
        ]);
        assert_eq!(req.timeout, Duration::from_secs(2));
        assert_eq!(req.max_output, 1024);
        assert_eq!(req.truncate_mode, TruncateMode::HeadTail);
        assert_eq!(req.on_output_limit, OutputLimitAction::Kill);
        assert_eq!(
            req.limits,
            Limits {
                memory: Some(256 << 20),
                cpu_time: Some(Duration::from_millis(1500)),
                pids: Some(16),
                file_size: Some(1 << 20),
                open_files: Some(64),
            }
        );
        assert_eq!(
            req.setup,
            [
                Command::shell("mkdir -p out"),
                Command::shell("touch out/x")
            ]
        );
        assert_eq!(req.cwd, Some(PathBuf::from("/tmp")));
        assert_eq!(req.command, Command::shell("ls out"));
    }

    #[test]
    fn env_sets_values_and_allowlists_pass_throughs() {
        let req = request(&[
            "--env",
            "GREETING=hi",
            "--env",
            "EDITOR",
            "--env",
            "PATH",
            "env",
        ]);
        assert_eq!(req.env.get("GREETING").map(String::as_str), Some("hi"));
        assert!(!req.env.contains_key("EDITOR"));
        assert!(req.env_allowlist.iter().any(|k| k == "EDITOR"));
        // Already allowlisted names are not repeated.
        assert_eq!(req.env_allowlist.iter().filter(|k| *k == "PATH").count(), 1);
        // The effective environment still drops everything else.
        let env = req.effective_env([("EDITOR", "vi"), ("AWS_SECRET_ACCESS_KEY", "s")]);
        assert_eq!(env.get("EDITOR").map(String::as_str), Some("vi"));
        assert!(!env.contains_key("AWS_SECRET_ACCESS_KEY"));
    }

    #[test]
    fn stdin_bytes_are_passed_along() {
        let cli = Cli::try_parse_from(["sandbox", "run", "cat"]).unwrap();
        let CliCommand::Run(run) = cli.command else {
            panic!("not a run command")
        };
        assert_eq!(build_request(&run, b"data".to_vec()).stdin, b"data");
    }

    #[test]
    fn live_output_counts_what_it_cannot_write() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut live = LiveOutput::new(Closed);
        live.output(OutputStream::Stdout, b"abc");
        live.output(OutputStream::Stderr, b"de");
        assert_eq!(live.streamed, 5);
        assert!(live.broken);
    }

    #[test]
    fn live_output_writes_chunks_in_order() {
        let mut live = LiveOutput::new(Vec::new());
        live.output(OutputStream::Stdout, b"out ");
        live.output(OutputStream::Stderr, b"err\n");
        assert_eq!(live.out, b"out err\n");
        assert_eq!(live.streamed, 8);
    }
}
