//! The runner channel: a runner that dies, and peers that send garbage.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{executor, shell};
use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericFilePath, Stream};
use sandbox_exec::{ExecError, Executor, Observer, OutputStream, RunnerProgram, Status};

/// Kills the runner once the evaluation has printed something.
struct KillRunnerAfterOutput {
    runner: Option<u32>,
    killed: bool,
}

impl Observer for KillRunnerAfterOutput {
    fn runner_started(&mut self, pid: u32) {
        self.runner = Some(pid);
    }

    fn output(&mut self, _: OutputStream, _: &[u8]) {
        if let (Some(pid), false) = (self.runner, self.killed) {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            self.killed = true;
        }
    }
}

#[tokio::test]
async fn a_runner_killed_mid_evaluation_gives_no_connection_with_partial_output() {
    let mut killer = KillRunnerAfterOutput {
        runner: None,
        killed: false,
    };
    let request = shell("echo partial; sleep 30").timeout(Duration::from_secs(20));
    let outcome = executor()
        .evaluate_observed(request, &mut killer)
        .await
        .unwrap();
    assert!(killer.killed);
    let Status::NoConnection { reason } = &outcome.status else {
        panic!("expected no_connection, got {:?}", outcome.status);
    };
    assert!(reason.contains("runner"), "{reason}");
    assert_eq!(outcome.output_text(), "partial\n");
    assert!(outcome.wall_time < Duration::from_secs(10));
    assert_eq!(outcome.exit_code(), 125);
}

/// A runner that is this test binary again, running only the test `fake_runner`.
fn fake_runner_executor(mode: &str) -> Executor {
    let exe = std::env::current_exe().unwrap();
    Executor::with_runner(RunnerProgram::Path {
        program: exe,
        args: [
            "fake_runner",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--",
            mode,
        ]
        .map(Into::into)
        .to_vec(),
    })
    .unwrap()
}

/// Not a test of its own: the entry point of the fake runners. It does
/// nothing unless started by `fake_runner` (the executor sets the endpoint
/// variable and passes the mode as the last argument).
#[test]
fn fake_runner() {
    let Some(endpoint) = std::env::var_os("SANDBOX_RUNNER_ENDPOINT") else {
        return;
    };
    let mode = std::env::args().next_back().unwrap();
    let name = endpoint
        .as_os_str()
        .to_fs_name::<GenericFilePath>()
        .unwrap();
    let mut stream = Stream::connect(name).unwrap();
    match mode.as_str() {
        "garbage-hello" => {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
        }
        "garbage-after-job" | "garbage-before-accepting" => {
            let token = std::env::var("SANDBOX_RUNNER_TOKEN").unwrap();
            stream.write_all(&hello_frame(&token)).unwrap();
            // Started { init_pid: our own pid } (varint: 252 then a u32).
            let mut started = vec![6, 0, 0, 0, 0, 252];
            started.extend(std::process::id().to_le_bytes());
            stream.write_all(&started).unwrap();
            let mut prefix = [0u8; 4];
            std::io::Read::read_exact(&mut stream, &mut prefix).unwrap();
            let mut job = vec![0u8; u32::from_le_bytes(prefix) as usize];
            std::io::Read::read_exact(&mut stream, &mut job).unwrap();
            if mode == "garbage-after-job" {
                // Accepted.
                stream.write_all(&[1, 0, 0, 0, 1]).unwrap();
            }
            // A plausible length followed by bytes that decode to nothing.
            stream
                .write_all(&[8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .unwrap();
        }
        other => panic!("unknown mode {other}"),
    }
    std::thread::sleep(Duration::from_secs(2));
    std::process::exit(0);
}

/// The runner's hello as bincode 2 (standard config) encodes it: 8 magic
/// bytes, the varint version 1, and 16 token bytes.
fn hello_frame(token_hex: &str) -> Vec<u8> {
    let mut payload = b"sbx-runr".to_vec();
    payload.push(1);
    for i in 0..16 {
        payload.push(u8::from_str_radix(&token_hex[2 * i..2 * i + 2], 16).unwrap());
    }
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend(payload);
    frame
}

#[tokio::test]
async fn a_garbage_hello_is_a_clear_handshake_error() {
    let err = fake_runner_executor("garbage-hello")
        .evaluate(shell("true"))
        .await
        .unwrap_err();
    assert!(matches!(err, ExecError::Handshake { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("malformed frame"), "{message}");
    assert!(message.contains("exceeds"), "{message}");
}

/// The `no_connection` reason of an evaluation run by the fake runner `mode`.
async fn no_connection_reason(mode: &str) -> String {
    let outcome = fake_runner_executor(mode)
        .evaluate(shell("true").timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    let Status::NoConnection { reason } = outcome.status else {
        panic!("expected no_connection, got {:?}", outcome.status);
    };
    reason
}

#[tokio::test]
async fn a_garbage_report_is_no_connection_with_the_reason() {
    let reason = no_connection_reason("garbage-after-job").await;
    assert!(reason.contains("malformed frame"), "{reason}");
}

#[tokio::test]
async fn a_garbage_answer_to_the_job_is_no_connection_with_the_reason() {
    let reason = no_connection_reason("garbage-before-accepting").await;
    assert!(reason.contains("malformed frame"), "{reason}");
}

#[tokio::test]
async fn a_runner_that_never_connects_is_a_clear_error() {
    let executor = Executor::with_runner(RunnerProgram::path("/bin/true")).unwrap();
    let err = executor.evaluate(shell("true")).await.unwrap_err();
    assert!(err.to_string().contains("dispatch"), "{err}");
}
