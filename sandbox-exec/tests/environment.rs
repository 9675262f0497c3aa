//! What the command sees: a scrubbed environment, its stdin, its cwd, its argv.

mod common;

use common::{executor, scratch, shell};
use sandbox_exec::{Command, EvalRequest, Status};

#[tokio::test]
async fn host_secrets_do_not_reach_the_command() {
    // This test binary's only test that touches the environment.
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "hunter2");
    let outcome = executor().evaluate(shell("env")).await.unwrap();
    let env = outcome.output_text();
    assert!(!env.contains("AWS_SECRET_ACCESS_KEY"), "{env}");
    assert!(!env.contains("hunter2"), "{env}");
    assert!(
        !env.contains("SANDBOX_RUNNER"),
        "runner plumbing leaked: {env}"
    );
    assert!(env.contains("PATH="), "{env}");
}

#[tokio::test]
async fn only_the_standard_descriptors_reach_the_command() {
    // /proc/self/fd lists the descriptor ls opens to read it, too.
    let outcome = executor()
        .evaluate(shell("ls /proc/self/fd | wc -l"))
        .await
        .unwrap();
    assert_eq!(outcome.output_text().trim(), "4");
}

#[tokio::test]
async fn explicit_variables_reach_the_command() {
    let outcome = executor()
        .evaluate(shell("echo \"$GREETING\"").env("GREETING", "hello there"))
        .await
        .unwrap();
    assert_eq!(outcome.output_text(), "hello there\n");
}

#[tokio::test]
async fn stdin_is_fed_to_the_command() {
    let outcome = executor()
        .evaluate(shell("tr a-z A-Z").stdin("shout\n"))
        .await
        .unwrap();
    assert_eq!(outcome.output_text(), "SHOUT\n");
}

#[tokio::test]
async fn a_command_that_ignores_a_large_stdin_still_finishes() {
    let outcome = executor()
        .evaluate(shell("echo ignored").stdin(vec![b'x'; 4 << 20]))
        .await
        .unwrap();
    assert_eq!(outcome.status, Status::Exited { code: 0 });
}

#[tokio::test]
async fn the_command_runs_in_the_requested_directory() {
    let dir = scratch();
    let outcome = executor()
        .evaluate(shell("pwd").cwd(dir.path()))
        .await
        .unwrap();
    let expected = dir.path().canonicalize().unwrap();
    assert_eq!(outcome.output_text().trim(), expected.to_str().unwrap());
}

#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let err = executor()
        .evaluate(shell("pwd").cwd("/no/such/dir"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/no/such/dir"), "{err}");
}

#[tokio::test]
async fn argv_commands_run_without_a_shell() {
    let request = EvalRequest::new(Command::argv(["printf", "%s|", "a b", "$HOME"]));
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.output_text(), "a b|$HOME|");
}

#[tokio::test]
async fn a_missing_program_is_spawn_failed_127() {
    let request = EvalRequest::new(Command::argv(["no-such-program-xyz"]));
    let outcome = executor().evaluate(request).await.unwrap();
    let Status::SpawnFailed { reason, code } = &outcome.status else {
        panic!("{:?}", outcome.status);
    };
    assert_eq!(*code, 127);
    assert!(
        reason.contains("no-such-program-xyz: command not found"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_executable_is_spawn_failed_126() {
    let dir = scratch();
    let file = dir.path().join("script");
    std::fs::write(&file, "#!/bin/sh\necho hi\n").unwrap();
    let request = EvalRequest::new(Command::argv([file.to_str().unwrap()]));
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.exit_code(), 126, "{:?}", outcome.status);
}

#[tokio::test]
async fn sigpipe_has_its_default_action_in_the_command() {
    let outcome = executor().evaluate(shell("yes | head -n 2")).await.unwrap();
    assert_eq!(outcome.output_text(), "y\ny\n");
    assert_eq!(outcome.status, Status::Exited { code: 0 });
}

#[tokio::test]
async fn concurrent_evaluations_each_get_their_own_child() {
    let executor = executor();
    let runs = (0..8).map(|i| {
        let executor = executor.clone();
        tokio::spawn(async move { executor.evaluate(shell(&format!("echo {i}"))).await })
    });
    for (i, run) in runs.enumerate() {
        let outcome = run.await.unwrap().unwrap();
        assert_eq!(outcome.output_text(), format!("{i}\n"));
    }
}

#[test]
fn the_blocking_api_refuses_to_run_inside_a_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = rt
        .block_on(async { executor().evaluate_blocking(shell("true")) })
        .unwrap_err();
    assert!(err.to_string().contains("inside a tokio runtime"), "{err}");
}

#[test]
fn the_blocking_api_runs_an_evaluation() {
    let outcome = executor()
        .evaluate_blocking(shell("echo blocking"))
        .unwrap();
    assert_eq!(outcome.output_text(), "blocking\n");
}
