//! Violations of system calls: what the seccomp filter refuses is answered
//! `EPERM` by the executor and recorded in the outcome and the executor's log.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::executor;
use sandbox_core::{Outcome, ViolationKind};
use sandbox_exec::{Command, EvalRequest};
use sandbox_policy::{Context, HostFs, Policy};

const PYTHON: &str = "/usr/bin/python3";

fn policy(allow: &[String]) -> Policy {
    let ctx = Context {
        home: std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/".into()),
        cwd: std::env::current_dir().unwrap(),
    };
    let mut builder = Policy::builder(ctx);
    for a in allow {
        builder = builder.allow(a.clone());
    }
    builder.build(&HostFs).expect("policy").0
}

/// Runs `script` in python3 with `syscall(nr, *args)` printing the errno name.
async fn python(policy: Policy, script: &str) -> Outcome {
    let program = format!(
        "import ctypes, errno, os, socket\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         def syscall(name, nr, *args):\n\
         \x20   r = libc.syscall(nr, *args)\n\
         \x20   print(name, 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()])\n\
         {script}"
    );
    executor()
        .evaluate(
            EvalRequest::new(Command::argv([PYTHON, "-c", &program]))
                .policy(policy)
                .timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap()
}

fn syscall_targets(outcome: &Outcome) -> Vec<String> {
    outcome
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::Syscall)
        .map(|v| v.target.clone())
        .collect()
}

#[tokio::test]
async fn a_refused_system_call_fails_with_eperm_and_is_recorded() {
    // ptrace(PTRACE_TRACEME) = 101 on x86-64; unshare(CLONE_NEWUSER) = 272.
    let outcome = python(
        policy(&[]),
        "syscall('ptrace', 101, 0, 0, 0, 0)\nsyscall('unshare', 272, 0x10000000)",
    )
    .await;
    assert_eq!(
        outcome.output_text(),
        "ptrace EPERM\nunshare EPERM\n",
        "{:?}",
        outcome.status
    );
    assert_eq!(syscall_targets(&outcome), ["ptrace", "unshare"]);
    let ptrace = &outcome.violations[0];
    assert_eq!(ptrace.rule, "seccomp: refused for every evaluation");
    assert_eq!(ptrace.eval, Some(outcome.id));
}

#[tokio::test]
async fn a_raw_socket_is_recorded_with_its_family_and_type() {
    let outcome = python(
        policy(&[]),
        "try:\n    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n    print('created')\nexcept PermissionError:\n    print('refused')",
    )
    .await;
    assert_eq!(outcome.output_text(), "refused\n");
    assert_eq!(syscall_targets(&outcome), ["socket(AF_INET, SOCK_RAW)"]);
}

#[tokio::test]
async fn a_unix_socket_is_refused_quietly_without_a_rule_and_created_with_one() {
    let probe = "try:\n    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n    print('created')\nexcept PermissionError:\n    print('refused')";
    let refused = python(policy(&[]), probe).await;
    assert_eq!(refused.output_text(), "refused\n");
    assert!(
        syscall_targets(&refused).is_empty(),
        "{:?}",
        refused.violations
    );
    let allowed = python(policy(&["UnixSocket(/run/sbx-test.sock)".into()]), probe).await;
    assert_eq!(allowed.output_text(), "created\n");
}

#[tokio::test]
async fn an_allowed_system_call_is_not_recorded() {
    let outcome = python(policy(&[]), "syscall('getpid', 39)").await;
    assert_eq!(outcome.output_text(), "getpid ok\n");
    assert!(outcome.violations.is_empty(), "{:?}", outcome.violations);
}

#[tokio::test]
async fn the_executor_log_gets_the_violations_of_every_evaluation() {
    let executor = executor();
    let events = executor.violations().subscribe(16);
    let outcome = executor
        .evaluate(
            EvalRequest::new(Command::argv([
                PYTHON,
                "-c",
                "import ctypes; ctypes.CDLL(None).syscall(101, 0, 0, 0, 0)",
            ]))
            .policy(policy(&[]))
            .timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap();
    let seen = events.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(seen.target, "ptrace");
    assert_eq!(seen.eval, Some(outcome.id));
    assert_eq!(executor.violations().of_evaluation(outcome.id).len(), 1);
}
