//! End-to-end tests of `sandbox run`: each spawns the real binary, which spawns
//! a real confined child. Nothing here reads the source tree at run time, so the
//! tests also run from a copied directory as another user (the xtask does that,
//! pointing SANDBOX_BIN at the binary to test).

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use sandbox_core::Outcome;

use common::sandbox_bin;

/// Longest any single test may take before it is declared hung; generous
/// because CI machines are slow and the tests run in parallel on two cores.
const DEADLINE: Duration = Duration::from_secs(60);

/// `sandbox run ARGS…` with no standard input and a known secret in its
/// environment, as an agent host would have.
fn sandbox_run<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(sandbox_bin());
    cmd.arg("run")
        .args(args)
        .env("AWS_SECRET_ACCESS_KEY", "hunter2-do-not-leak")
        .env("XDG_STATE_HOME", common::shared_state_home())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Reads a pipe to the end on its own thread so that neither pipe can fill up
/// and stall the child while we wait on the other.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child`, killing it and failing the test past the deadline.
fn wait(mut child: Child, started: Instant) -> Finished {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for sandbox") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sandbox did not finish within {DEADLINE:?}; stderr so far:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Finished {
        // A signal-killed sandbox has no code; -1 makes any assertion fail loudly.
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        elapsed: started.elapsed(),
    }
}

fn run(cmd: &mut Command) -> Finished {
    let started = Instant::now();
    let child = cmd.spawn().expect("spawn the sandbox binary");
    wait(child, started)
}

fn run_json(cmd: &mut Command) -> (Finished, serde_json::Value) {
    let finished = run(cmd);
    let value = serde_json::from_str(&finished.stdout)
        .unwrap_or_else(|err| panic!("stdout is not one JSON object ({err}): {finished:?}"));
    (finished, value)
}

#[test]
fn echo_prints_its_output_and_exits_zero() {
    let done = run(&mut sandbox_run(["echo hello"]));
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout, "hello\n", "{done:?}");
    assert_eq!(done.stderr, "", "{done:?}");
}

#[test]
fn arguments_after_the_separator_run_without_a_shell() {
    let done = run(&mut sandbox_run([
        "--", "printf", "%s|", "a b", "$HOME", "-n",
    ]));
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout, "a b|$HOME|-n|", "{done:?}");
}

#[test]
fn several_words_run_without_a_shell() {
    let done = run(&mut sandbox_run(["echo", "$HOME;", "exit", "9"]));
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout, "$HOME; exit 9\n", "{done:?}");
}

#[test]
fn the_exit_code_is_the_commands_and_nothing_is_added() {
    let done = run(&mut sandbox_run(["echo out; echo err >&2; exit 3"]));
    assert_eq!(done.code, 3, "{done:?}");
    // Both streams are merged on stdout; stderr is the sandbox's own.
    assert!(done.stdout.contains("out\n"), "{done:?}");
    assert!(done.stdout.contains("err\n"), "{done:?}");
    assert_eq!(done.stderr, "", "{done:?}");
}

#[test]
fn a_timeout_exits_124_and_keeps_the_partial_output() {
    let done = run(&mut sandbox_run([
        "--timeout",
        "1s",
        "echo partial; sleep 30; echo never",
    ]));
    assert_eq!(done.code, 124, "{done:?}");
    assert_eq!(done.stdout, "partial\n", "{done:?}");
    assert_eq!(
        done.stderr, "sandbox: timed out after 1s (output kept: 8B)\n",
        "{done:?}"
    );
    assert!(done.elapsed < Duration::from_secs(15), "{done:?}");
}

#[test]
fn a_timeout_kills_background_children_too() {
    // The shell exits at once but leaves a child holding the output pipe: the
    // evaluation ends only when the timeout kills the whole tree.
    let done = run(&mut sandbox_run([
        "--timeout",
        "1s",
        "(sleep 30; echo late) & echo started",
    ]));
    assert!(done.elapsed < Duration::from_secs(15), "{done:?}");
    assert!(!done.stdout.contains("late"), "{done:?}");
}

#[test]
fn output_is_streamed_while_the_command_runs() {
    let started = Instant::now();
    let mut child = sandbox_run(["echo first; sleep 3; echo second"])
        .spawn()
        .expect("spawn the sandbox binary");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read first line");
    let first_at = started.elapsed();
    assert_eq!(first, "first\n");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read the rest");
    let rest_at = started.elapsed();
    assert_eq!(rest, "second\n");
    // Measured between the two lines, not from the start, so that a slow
    // start on a loaded machine cannot fail the test.
    assert!(
        rest_at - first_at > Duration::from_secs(2),
        "the first line arrived at {first_at:?}, only shortly before the end at {rest_at:?}"
    );
    let done = wait(child, started);
    assert_eq!(done.code, 0, "{done:?}");
}

#[test]
fn json_prints_one_outcome_object() {
    let (done, json) = run_json(&mut sandbox_run(["--json", "echo hi; exit 4"]));
    assert_eq!(done.code, 4, "{done:?}");
    assert_eq!(done.stdout.matches('\n').count(), 1, "{done:?}");
    assert_eq!(json["status"]["kind"], "exited", "{done:?}");
    assert_eq!(json["status"]["code"], 4, "{done:?}");
    assert_eq!(json["output"], "hi\n", "{done:?}");
    assert_eq!(json["streams"]["stdout_bytes"], 3, "{done:?}");
    assert!(json["truncation"].is_null(), "{done:?}");
    let outcome: Outcome = serde_json::from_str(&done.stdout).expect("an Outcome");
    assert_eq!(outcome.exit_code(), 4);
}

#[test]
fn json_reports_a_timeout_with_the_same_exit_code() {
    let (done, json) = run_json(&mut sandbox_run([
        "--json",
        "--timeout",
        "500ms",
        "sleep 30",
    ]));
    assert_eq!(done.code, 124, "{done:?}");
    assert_eq!(json["status"]["kind"], "timed_out", "{done:?}");
    // Machine mode adds nothing for people.
    assert_eq!(done.stderr, "", "{done:?}");
}

#[test]
fn a_bad_duration_names_the_flag_and_the_accepted_forms() {
    let done = run(&mut sandbox_run(["--timeout", "5parsecs", "true"]));
    assert_eq!(done.code, 2, "{done:?}");
    assert_eq!(done.stdout, "");
    insta::assert_snapshot!(done.stderr, @r#"
    error: invalid value '5parsecs' for '--timeout <DUR>': invalid duration "5parsecs": unknown unit "parsecs"; use a number with a unit: ms, s, m, h, e.g. 500ms, 30s, 1.5m, 1h30m (a bare number means seconds)

    For more information, try '--help'.
    "#);
}

#[test]
fn a_bad_size_names_the_flag_and_the_accepted_forms() {
    let done = run(&mut sandbox_run(["--memory", "12XB", "true"]));
    assert_eq!(done.code, 2, "{done:?}");
    insta::assert_snapshot!(done.stderr, @r#"
    error: invalid value '12XB' for '--memory <SIZE>': invalid size "12XB": unknown unit "XB"; use a number with an optional unit: B, KB, MB, GB, TB (binary: 1KB = 1KiB = 1024 bytes; K, KiB, M, MiB, ... also accepted), e.g. 50000, 50KB, 1.5MiB

    For more information, try '--help'.
    "#);
}

#[test]
fn env_values_reach_the_command_and_host_secrets_do_not() {
    let done = run(&mut sandbox_run([
        "--env",
        "GREETING=hello world",
        r#"echo "$GREETING"; echo "secret=${AWS_SECRET_ACCESS_KEY-unset}""#,
    ]));
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout, "hello world\nsecret=unset\n", "{done:?}");
}

#[test]
fn a_bare_env_name_passes_the_host_value_through_when_set() {
    let done = run(sandbox_run([
        "--env",
        "SANDBOX_TEST_PASSED",
        "--env",
        "SANDBOX_TEST_NOT_SET",
        r#"echo "${SANDBOX_TEST_PASSED-unset} ${SANDBOX_TEST_NOT_SET-unset}""#,
    ])
    .env("SANDBOX_TEST_PASSED", "through")
    .env_remove("SANDBOX_TEST_NOT_SET"));
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout, "through unset\n", "{done:?}");
}

#[test]
fn output_past_the_limit_is_truncated_with_the_marker() {
    let done = run(&mut sandbox_run([
        "--max-output",
        "10B",
        "printf 0123456789abcdefghij",
    ]));
    assert_eq!(done.code, 0, "{done:?}");
    assert!(
        done.stdout
            .starts_with("0123456789\n...(truncated, showing first 10B of 20B)"),
        "{done:?}"
    );
    assert_eq!(done.stderr, "", "{done:?}");
}

#[test]
fn head_tail_truncation_keeps_the_end() {
    let done = run(&mut sandbox_run([
        "--max-output",
        "20B",
        "--truncate",
        "head-tail",
        "seq 1 1000",
    ]));
    assert_eq!(done.code, 0, "{done:?}");
    assert!(done.stdout.starts_with("1\n2\n"), "{done:?}");
    assert!(
        done.stdout.contains("...(truncated, showing first"),
        "{done:?}"
    );
    assert!(done.stdout.trim_end().ends_with("1000"), "{done:?}");
}

#[test]
fn the_output_limit_can_kill_the_command() {
    let done = run(&mut sandbox_run([
        "--max-output",
        "100B",
        "--on-output-limit",
        "kill",
        "--timeout",
        "30s",
        "yes",
    ]));
    assert_ne!(done.code, 0, "{done:?}");
    assert_ne!(done.code, 124, "{done:?}");
    assert!(
        done.stderr
            .starts_with("sandbox: output limit (100B) reached"),
        "{done:?}"
    );
    assert!(done.elapsed < Duration::from_secs(15), "{done:?}");
}

#[test]
fn a_failing_setup_step_is_reported_with_its_output() {
    let done = run(&mut sandbox_run([
        "--setup",
        "true",
        "--setup",
        "echo preparing; exit 3",
        "echo never",
    ]));
    assert_eq!(done.code, 3, "{done:?}");
    assert!(!done.stdout.contains("never"), "{done:?}");
    assert!(
        done.stderr.starts_with(
            "sandbox: setup step 2 (echo preparing; exit 3) failed with exit code 3\n"
        ),
        "{done:?}"
    );
    assert!(done.stderr.contains("preparing"), "{done:?}");
}

#[test]
fn setup_steps_run_before_the_command_in_the_same_child() {
    let dir = tempfile::tempdir().expect("temp dir");
    let writable = format!("Edit({})", dir.path().display());
    let done = run(&mut sandbox_run([
        "--allow".as_ref(),
        writable.as_ref(),
        "--cwd".as_ref(),
        dir.path().as_os_str(),
        "--setup".as_ref(),
        "echo quiet; echo made > note".as_ref(),
        "cat note".as_ref(),
    ]));
    assert_eq!(done.code, 0, "{done:?}");
    // A successful setup step's output is not shown.
    assert_eq!(done.stdout, "made\n", "{done:?}");
}

#[test]
fn cwd_sets_the_working_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("here.txt"), "found\n").expect("write file");
    let done = run(&mut sandbox_run([
        "--cwd".as_ref(),
        dir.path().as_os_str(),
        "cat here.txt".as_ref(),
    ]));
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout, "found\n", "{done:?}");
}

#[test]
fn stdin_is_empty_by_default() {
    // `cat` would wait forever on an inherited terminal; here it sees EOF.
    let done = run(sandbox_run(["cat; echo done"]).stdin(Stdio::inherit()));
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout, "done\n", "{done:?}");
}

#[test]
fn stdin_can_come_from_a_file_or_from_our_stdin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("input.txt");
    std::fs::write(&file, "from file\n").expect("write file");
    let done = run(&mut sandbox_run([
        "--stdin".as_ref(),
        file.as_os_str(),
        "cat".as_ref(),
    ]));
    assert_eq!(done.stdout, "from file\n", "{done:?}");

    let started = Instant::now();
    let mut child = sandbox_run(["--stdin", "-", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn the sandbox binary");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(b"piped\n").expect("write stdin");
    drop(input);
    let done = wait(child, started);
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout, "PIPED\n", "{done:?}");
}

#[test]
fn a_missing_stdin_file_is_a_sandbox_error() {
    let done = run(&mut sandbox_run([
        "--stdin",
        "/nonexistent/input.txt",
        "cat",
    ]));
    assert_eq!(done.code, 125, "{done:?}");
    assert!(
        done.stderr
            .starts_with("sandbox: error: cannot read --stdin /nonexistent/input.txt: "),
        "{done:?}"
    );
}

#[test]
fn a_missing_program_exits_127() {
    let done = run(&mut sandbox_run(["--", "/nonexistent/program", "arg"]));
    assert_eq!(done.code, 127, "{done:?}");
    assert!(
        done.stderr
            .starts_with("sandbox: cannot start the command: "),
        "{done:?}"
    );
    assert!(done.stderr.contains("/nonexistent/program"), "{done:?}");
}

#[test]
fn a_signal_exits_128_plus_its_number() {
    let done = run(&mut sandbox_run([
        "--",
        "sh",
        "-c",
        "kill -TERM $$; sleep 5",
    ]));
    assert_eq!(done.code, 143, "{done:?}");
    assert_eq!(
        done.stderr, "sandbox: killed by signal 15 (SIGTERM)\n",
        "{done:?}"
    );
}

#[test]
fn debug_logs_go_to_stderr_only() {
    let done = run(&mut sandbox_run(["--debug", "echo hi"]));
    assert_eq!(done.code, 0, "{done:?}");
    assert_eq!(done.stdout, "hi\n", "{done:?}");
}
