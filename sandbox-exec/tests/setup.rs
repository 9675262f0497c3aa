//! Setup steps run in the same fresh child before the command.

mod common;

use common::{executor, scratch, shell};
use sandbox_exec::{Command, Status};

#[tokio::test]
async fn setup_output_is_not_captured() {
    let request = shell("echo command").setup(Command::shell("echo setup noise; echo more >&2"));
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.output_text(), "command\n");
    assert_eq!(outcome.status, Status::Exited { code: 0 });
}

#[tokio::test]
async fn setup_steps_run_in_order_before_the_command() {
    let dir = scratch();
    let file = dir.path().join("log");
    let request = shell(&format!("cat {}", file.display()))
        .setup(Command::shell(format!("echo one >> {}", file.display())))
        .setup(Command::shell(format!("echo two >> {}", file.display())));
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(outcome.output_text(), "one\ntwo\n");
}

#[tokio::test]
async fn a_failing_setup_step_is_reported_with_its_output() {
    let dir = scratch();
    let marker = dir.path().join("command-ran");
    let request = shell(&format!("touch {}", marker.display()))
        .setup(Command::shell("true"))
        .setup(Command::shell("echo cannot prepare; exit 3"));
    let outcome = executor().evaluate(request).await.unwrap();
    assert_eq!(
        outcome.status,
        Status::SetupFailed {
            step: 1,
            code: Some(3),
            signal: None
        }
    );
    assert_eq!(outcome.output_text(), "cannot prepare\n");
    assert_eq!(outcome.exit_code(), 3);
    assert!(!marker.exists(), "the command ran after a failed setup");
}

#[tokio::test]
async fn a_setup_step_that_cannot_start_is_a_setup_failure() {
    let request = shell("true").setup(Command::argv(["/nonexistent/tool"]));
    let outcome = executor().evaluate(request).await.unwrap();
    assert!(matches!(
        outcome.status,
        Status::SetupFailed {
            step: 0,
            code: Some(127),
            ..
        }
    ));
    assert!(outcome.output_text().contains("/nonexistent/tool"));
}
