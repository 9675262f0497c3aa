//! Rendering an [`Outcome`] for people (the rest of the output and a status
//! line) and for programs (one JSON object, documented in `JSON.md`).

use std::io::Write;
use std::time::Duration;

use sandbox_core::{format_bytes, format_duration, EvalRequest, Limits, Outcome, Status};

/// What the status line needs to know about the request, kept apart because the
/// executor consumes the request itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFacts {
    /// The wall-clock timeout.
    pub timeout: Duration,
    /// The output limit in bytes.
    pub max_output: usize,
    /// The resource limits.
    pub limits: Limits,
    /// Each setup step, as the user wrote it.
    pub setup: Vec<String>,
}

impl RequestFacts {
    /// The facts of `request`.
    pub fn of(request: &EvalRequest) -> Self {
        RequestFacts {
            timeout: request.timeout,
            max_output: request.max_output,
            limits: request.limits.clone(),
            setup: request.setup.iter().map(|step| step.display()).collect(),
        }
    }
}

/// The outcome as one compact JSON object and a newline: what `--json` prints.
pub fn json_line(outcome: &Outcome) -> serde_json::Result<String> {
    let mut line = serde_json::to_string(outcome)?;
    line.push('\n');
    Ok(line)
}

/// Ends a human-mode run whose first `streamed` output bytes were already
/// written to `out`: writes the rest of the output (the truncation marker, and
/// the tail in head-tail mode), then the status line, if any, to `err`.
///
/// A failed setup step's output goes to `err` after the status line, because
/// it is the explanation of that line, not output of the command. `terminal`
/// says both streams share a terminal: a line left open by the output is then
/// closed before the status line so the two do not run together.
pub fn finish_human(
    outcome: &Outcome,
    facts: &RequestFacts,
    streamed: usize,
    terminal: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) {
    let rest = outcome.output.get(streamed..).unwrap_or_default();
    let open_line = !outcome.output.is_empty() && !outcome.output.ends_with(b"\n");
    let setup_failed = matches!(outcome.status, Status::SetupFailed { .. });
    let status = status_line(outcome, facts);

    // Write failures are ignored throughout: a reader that went away cannot be
    // told, and the exit status still carries the outcome.
    if !setup_failed {
        let _ = out.write_all(rest);
        // The marker is ours, not the command's: finish its line.
        let close = open_line && (outcome.truncation.is_some() || (terminal && status.is_some()));
        if close {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
    }
    for weakening in &outcome.weakened {
        let _ = writeln!(err, "sandbox: warning: {weakening}");
    }
    for violation in &outcome.violations {
        let _ = writeln!(
            err,
            "sandbox: denied: {}",
            crate::violations_cmd::describe(violation)
        );
    }
    if outcome.violations_unlisted > 0 {
        let _ = writeln!(
            err,
            "sandbox: denied: {} more, not listed (an evaluation lists at most {})",
            outcome.violations_unlisted,
            outcome.violations.len()
        );
    }
    if let Some(line) = status {
        let _ = writeln!(err, "{line}");
    }
    if setup_failed && !rest.is_empty() {
        let _ = err.write_all(rest);
        if !rest.ends_with(b"\n") {
            let _ = err.write_all(b"\n");
        }
    }
    let _ = err.flush();
}

/// The one line printed on standard error when the command did not simply exit
/// on its own; `None` for a plain exit, whatever its code.
pub fn status_line(outcome: &Outcome, facts: &RequestFacts) -> Option<String> {
    let limit = |value: Option<String>| value.map(|v| format!(" ({v})")).unwrap_or_default();
    let line = match &outcome.status {
        Status::Exited { .. } => return None,
        Status::Signaled { signal } => format!("killed by {}", describe_signal(*signal)),
        Status::TimedOut => format!(
            "timed out after {} (output kept: {})",
            format_duration(facts.timeout),
            kept_output(outcome)
        ),
        Status::MemoryLimit => format!(
            "memory limit{} reached",
            limit(facts.limits.memory.map(format_bytes))
        ),
        Status::CpuLimit => format!(
            "CPU time limit{} reached",
            limit(facts.limits.cpu_time.map(format_duration))
        ),
        Status::OutputLimit => format!(
            "output limit ({}) reached; the command was killed",
            format_bytes(facts.max_output as u64)
        ),
        Status::FileSizeLimit => format!(
            "file size limit{} reached",
            limit(facts.limits.file_size.map(format_bytes))
        ),
        Status::PidsLimit => format!(
            "process limit{} reached",
            limit(facts.limits.pids.map(|n| n.to_string()))
        ),
        Status::SetupFailed { step, code, signal } => {
            let how = match (code, signal) {
                (Some(code), _) => format!("failed with exit code {code}"),
                (None, Some(signal)) => format!("was killed by {}", describe_signal(*signal)),
                (None, None) => "failed".to_owned(),
            };
            // Steps are counted from 1 for people, in the order of --setup.
            let command = facts
                .setup
                .get(*step)
                .map(|command| format!(" ({})", shorten(command, 60)))
                .unwrap_or_default();
            format!("setup step {}{command} {how}", step + 1)
        }
        Status::SpawnFailed { reason, .. } => format!("cannot start the command: {reason}"),
        Status::NoConnection { reason } => format!("lost the runner: {reason}"),
    };
    Some(format!("sandbox: {line}"))
}

fn kept_output(outcome: &Outcome) -> String {
    match &outcome.truncation {
        Some(t) => format!(
            "{} of {}",
            format_bytes(t.kept_bytes),
            format_bytes(t.total_bytes)
        ),
        None => format_bytes(outcome.output.len() as u64),
    }
}

/// `signal 9 (SIGKILL)`. Only numbers that are the same on Linux and the BSDs
/// (macOS) get a name, so a name is never wrong.
fn describe_signal(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return format!("signal {signal}"),
    };
    format!("signal {signal} ({name})")
}

/// Keeps a status line on one line: the first line of `text`, at most `max`
/// characters.
fn shorten(text: &str, max: usize) -> String {
    let first_line = text.lines().next().unwrap_or_default();
    let mut short: String = first_line.chars().take(max).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use sandbox_core::{
        Command, EvalId, ResourceUsage, StreamCounts, Termination, TruncateMode, Truncation,
    };

    use super::*;

    fn outcome(status: Status, output: &str) -> Outcome {
        let termination = match &status {
            Status::Exited { code } => Some(Termination::Exited(*code)),
            Status::TimedOut | Status::MemoryLimit | Status::Signaled { .. } => {
                Some(Termination::Signaled(9))
            }
            _ => None,
        };
        Outcome {
            id: EvalId(7),
            status,
            termination,
            output: output.as_bytes().to_vec(),
            streams: StreamCounts {
                stdout_bytes: output.len() as u64,
                stderr_bytes: 0,
            },
            truncation: None,
            wall_time: Duration::from_millis(5),
            usage: ResourceUsage::default(),
            limits: Vec::new(),
            violations: Vec::new(),
            violations_unlisted: 0,
            weakened: Vec::new(),
        }
    }

    fn facts() -> RequestFacts {
        let request = EvalRequest::new(Command::shell("x"))
            .timeout(Duration::from_secs(2))
            .max_output(50_000)
            .setup(Command::shell("make deps"))
            .setup(Command::shell("exit 3"))
            .limits(Limits {
                memory: Some(256 << 20),
                cpu_time: Some(Duration::from_secs(1)),
                pids: Some(8),
                file_size: Some(1 << 20),
                open_files: None,
            });
        RequestFacts::of(&request)
    }

    fn status(status: Status, output: &str) -> Option<String> {
        status_line(&outcome(status, output), &facts())
    }

    /// (stdout, stderr) of `finish_human`.
    fn finish(outcome: &Outcome, streamed: usize, terminal: bool) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        finish_human(outcome, &facts(), streamed, terminal, &mut out, &mut err);
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn plain_exits_print_no_status_line() {
        assert_eq!(status(Status::Exited { code: 0 }, "hi\n"), None);
        assert_eq!(status(Status::Exited { code: 3 }, ""), None);
    }

    #[test]
    fn each_other_status_has_one_concise_line() {
        let lines = [
            (
                Status::TimedOut,
                "sandbox: timed out after 2s (output kept: 120B)",
            ),
            (
                Status::MemoryLimit,
                "sandbox: memory limit (256.0MB) reached",
            ),
            (Status::CpuLimit, "sandbox: CPU time limit (1s) reached"),
            (
                Status::OutputLimit,
                "sandbox: output limit (48.8KB) reached; the command was killed",
            ),
            (
                Status::FileSizeLimit,
                "sandbox: file size limit (1.0MB) reached",
            ),
            (Status::PidsLimit, "sandbox: process limit (8) reached"),
            (
                Status::Signaled { signal: 9 },
                "sandbox: killed by signal 9 (SIGKILL)",
            ),
            (
                Status::Signaled { signal: 64 },
                "sandbox: killed by signal 64",
            ),
            (
                Status::SetupFailed {
                    step: 1,
                    code: Some(3),
                    signal: None,
                },
                "sandbox: setup step 2 (exit 3) failed with exit code 3",
            ),
            (
                Status::SetupFailed {
                    step: 0,
                    code: None,
                    signal: Some(15),
                },
                "sandbox: setup step 1 (make deps) was killed by signal 15 (SIGTERM)",
            ),
            (
                Status::SpawnFailed {
                    reason: "nope: command not found".into(),
                    code: 127,
                },
                "sandbox: cannot start the command: nope: command not found",
            ),
            (
                Status::NoConnection {
                    reason: "runner exited early".into(),
                },
                "sandbox: lost the runner: runner exited early",
            ),
        ];
        for (st, expected) in lines {
            let line = status(st, &"x".repeat(120)).unwrap();
            assert_eq!(line, expected);
        }
    }

    #[test]
    fn limits_not_requested_are_not_invented() {
        let outcome = outcome(Status::MemoryLimit, "");
        let facts = RequestFacts {
            limits: Limits::default(),
            ..facts()
        };
        assert_eq!(
            status_line(&outcome, &facts).unwrap(),
            "sandbox: memory limit reached"
        );
    }

    #[test]
    fn timeouts_report_kept_and_total_output_when_truncated() {
        let mut outcome = outcome(Status::TimedOut, "");
        outcome.truncation = Some(Truncation {
            kept_bytes: 50_000,
            total_bytes: 1_258_291,
            marker: "...(truncated, showing first 48.8KB of 1.2MB)".into(),
            mode: TruncateMode::Head,
        });
        assert_eq!(
            status_line(&outcome, &facts()).unwrap(),
            "sandbox: timed out after 2s (output kept: 48.8KB of 1.2MB)"
        );
    }

    #[test]
    fn long_setup_commands_are_shortened_to_their_first_line() {
        assert_eq!(shorten("short", 60), "short");
        assert_eq!(shorten("line one\nline two", 60), "line one…");
        assert_eq!(shorten(&"y".repeat(70), 60), format!("{}…", "y".repeat(60)));
    }

    #[test]
    fn only_the_unstreamed_rest_is_written() {
        let done = outcome(Status::Exited { code: 0 }, "hello\nworld\n");
        assert_eq!(finish(&done, 6, false), ("world\n".into(), String::new()));
        assert_eq!(finish(&done, 12, false), (String::new(), String::new()));
        // A count past the end (never expected) writes nothing rather than panic.
        assert_eq!(finish(&done, 99, false), (String::new(), String::new()));
    }

    #[test]
    fn output_without_a_final_newline_is_left_as_the_command_wrote_it() {
        let done = outcome(Status::Exited { code: 0 }, "no newline");
        assert_eq!(finish(&done, 0, true).0, "no newline");
    }

    #[test]
    fn the_marker_line_is_finished() {
        let marker = "...(truncated, showing first 5B of 10B)";
        let mut done = outcome(Status::Exited { code: 0 }, &format!("hello\n{marker}"));
        done.truncation = Some(Truncation {
            kept_bytes: 5,
            total_bytes: 10,
            marker: marker.into(),
            mode: TruncateMode::Head,
        });
        assert_eq!(finish(&done, 5, false).0, format!("\n{marker}\n"));
    }

    #[test]
    fn status_lines_start_on_a_fresh_terminal_line() {
        let timed_out = outcome(Status::TimedOut, "partial");
        let (out, err) = finish(&timed_out, 7, true);
        assert_eq!(out, "\n");
        assert_eq!(err, "sandbox: timed out after 2s (output kept: 7B)\n");
        // Piped output is left byte-exact.
        assert_eq!(finish(&timed_out, 7, false).0, "");
    }

    #[test]
    fn setup_failures_show_the_step_output_after_the_status_line() {
        let failed = outcome(
            Status::SetupFailed {
                step: 0,
                code: Some(3),
                signal: None,
            },
            "make: *** no rule",
        );
        let (out, err) = finish(&failed, 0, false);
        assert_eq!(out, "");
        assert_eq!(
            err,
            "sandbox: setup step 1 (make deps) failed with exit code 3\nmake: *** no rule\n"
        );
    }

    #[test]
    fn json_is_one_compact_line() {
        let line = json_line(&outcome(Status::Exited { code: 0 }, "hi\n")).unwrap();
        assert!(line.ends_with("}\n"));
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["status"]["kind"], "exited");
        assert_eq!(value["output"], "hi\n");
    }

    /// The example in JSON.md must stay a valid outcome, and name every field
    /// an outcome serializes to.
    #[test]
    fn json_doc_example_matches_the_outcome_type() {
        let doc = include_str!("../JSON.md");
        let start = doc.find("```json\n").expect("JSON.md has a json block") + 8;
        let len = doc[start..].find("```").expect("the json block ends");
        let example = &doc[start..start + len];
        let parsed: Outcome = serde_json::from_str(example).expect("example is an Outcome");
        let reserialized = serde_json::to_value(&parsed).unwrap();
        let original: serde_json::Value = serde_json::from_str(example).unwrap();
        assert_eq!(reserialized, original);
        for key in reserialized.as_object().unwrap().keys() {
            assert!(
                doc.contains(&format!("`{key}`")),
                "JSON.md does not describe `{key}`"
            );
        }
    }
}
