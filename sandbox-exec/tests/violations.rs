//! Violations: what the seccomp filter refuses is answered `EPERM` by the
//! executor and recorded in the outcome and the executor's log; a filesystem
//! call the policy denies is answered `EACCES` and recorded with the path it
//! names and the rule that denies it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{executor, policy};
use sandbox_core::{Outcome, ViolationKind};
use sandbox_exec::{Command, EvalRequest};
use sandbox_policy::{Context, HostFs, Policy};

const PYTHON: &str = "/usr/bin/python3";

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
        policy(&[], &[]),
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
        policy(&[], &[]),
        "try:\n    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n    print('created')\nexcept PermissionError:\n    print('refused')",
    )
    .await;
    assert_eq!(outcome.output_text(), "refused\n");
    assert_eq!(syscall_targets(&outcome), ["socket(AF_INET, SOCK_RAW)"]);
}

#[tokio::test]
async fn a_unix_socket_is_refused_quietly_without_a_rule_and_created_with_one() {
    let probe = "try:\n    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n    print('created')\nexcept PermissionError:\n    print('refused')";
    let refused = python(policy(&[], &[]), probe).await;
    assert_eq!(refused.output_text(), "refused\n");
    assert!(
        syscall_targets(&refused).is_empty(),
        "{:?}",
        refused.violations
    );
    let allowed = python(
        policy(&["UnixSocket(/run/sbx-test.sock)".into()], &[]),
        probe,
    )
    .await;
    assert_eq!(allowed.output_text(), "created\n");
}

#[tokio::test]
async fn an_allowed_system_call_is_not_recorded() {
    let outcome = python(policy(&[], &[]), "syscall('getpid', 39)").await;
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
            .policy(policy(&[], &[]))
            .timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap();
    let seen = events.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(seen.target, "ptrace");
    assert_eq!(seen.eval, Some(outcome.id));
    assert_eq!(executor.violations().of_evaluation(outcome.id).len(), 1);
}

// ---------------------------------------------------------------------------
// Filesystem violations
// ---------------------------------------------------------------------------

/// A world-readable scratch tree under `/var/tmp` (the sandbox's `/tmp` is
/// its own), for root and uid 65534 alike:
///
/// ```text
/// secret/key      denied:   deny Read(<secret>)
/// secret/public   re-opened: allow Read(<secret>/public)
/// work/           the writable root
/// outside         readable, not writable
/// ```
struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::Builder::new()
            .prefix("sbx-fsviol-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let tree = Tree(dir);
        for d in ["", "secret", "work"] {
            std::fs::create_dir_all(tree.path(d)).unwrap();
            std::fs::set_permissions(tree.path(d), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        for (file, content) in [
            ("secret/key", "SECRET KEY"),
            ("secret/public", "PUBLIC PART"),
            ("outside", "OUTSIDE"),
        ] {
            std::fs::write(tree.path(file), content).unwrap();
            std::fs::set_permissions(tree.path(file), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        tree
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.0.path().join(relative)
    }

    fn p(&self, relative: &str) -> String {
        self.path(relative).display().to_string()
    }

    fn policy(&self) -> Policy {
        let ctx = Context {
            home: self.path("work"),
            cwd: self.path("work"),
        };
        Policy::builder(ctx)
            .allow(format!("Edit({})", self.p("work")))
            .deny(format!("Read({})", self.p("secret")))
            .allow(format!("Read({})", self.p("secret/public")))
            .build(&HostFs)
            .expect("policy")
            .0
    }

    /// `line` run by `/bin/sh` (errors on standard output) from `work`.
    async fn shell(&self, line: &str) -> Outcome {
        executor()
            .evaluate(
                EvalRequest::new(Command::shell(format!("exec 2>&1\n{line}")))
                    .policy(self.policy())
                    .cwd(self.path("work"))
                    .timeout(Duration::from_secs(20)),
            )
            .await
            .unwrap()
    }
}

/// `(target, rule)` of each filesystem violation.
fn filesystem(outcome: &Outcome) -> Vec<(String, String)> {
    outcome
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::Filesystem)
        .map(|v| (v.target.clone(), v.rule.clone()))
        .collect()
}

/// The path as the host resolves it (`/var/tmp` may be a link).
fn real(path: &Path) -> String {
    std::fs::canonicalize(path.parent().unwrap())
        .unwrap()
        .join(path.file_name().unwrap())
        .display()
        .to_string()
}

#[tokio::test]
async fn reading_a_denied_file_fails_with_eacces_and_is_recorded_with_its_rule() {
    let tree = Tree::new();
    let outcome = tree.shell(&format!("cat {}", tree.p("secret/key"))).await;
    let text = outcome.output_text();
    assert!(text.contains("Permission denied"), "{text}");
    assert!(!text.contains("SECRET KEY"), "{text}");
    let recorded = filesystem(&outcome);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(
        recorded[0].0,
        format!("read {}", real(&tree.path("secret/key")))
    );
    assert!(
        recorded[0]
            .1
            .contains(&format!("Read({})", tree.p("secret"))),
        "{recorded:?}"
    );
    assert_eq!(outcome.violations[0].eval, Some(outcome.id));
}

#[tokio::test]
async fn a_hole_reopened_in_a_denied_directory_reads_without_a_record() {
    // Init creates the hole's mount point inside the mask: its own calls are
    // not judged, and the allowed read is not a violation.
    let tree = Tree::new();
    let outcome = tree
        .shell(&format!("cat {}", tree.p("secret/public")))
        .await;
    assert_eq!(outcome.output_text(), "PUBLIC PART");
    assert_eq!(filesystem(&outcome), []);
}

#[tokio::test]
async fn a_write_outside_the_writable_roots_is_recorded_as_read_only() {
    let tree = Tree::new();
    let outcome = tree
        .shell(&format!(
            "echo x > {outside}; rm -f {outside}; mkdir {dir}; echo ok > mine && cat mine",
            outside = tree.p("outside"),
            dir = tree.p("newdir"),
        ))
        .await;
    let text = outcome.output_text();
    assert!(text.ends_with("ok\n"), "{text}");
    assert_eq!(
        std::fs::read_to_string(tree.path("outside")).unwrap(),
        "OUTSIDE"
    );
    let read_only = "no rule allows writing here (the host is read-only)".to_string();
    assert_eq!(
        filesystem(&outcome),
        [
            (
                format!("write {}", real(&tree.path("outside"))),
                read_only.clone()
            ),
            (
                format!("unlink {}", real(&tree.path("outside"))),
                read_only.clone()
            ),
            (format!("mkdir {}", real(&tree.path("newdir"))), read_only),
        ]
    );
}

#[tokio::test]
async fn a_write_through_a_link_in_the_writable_root_is_recorded_at_its_target() {
    let tree = Tree::new();
    let outcome = tree
        .shell(&format!(
            "ln -s {} link && echo x >> link",
            tree.p("outside")
        ))
        .await;
    assert!(
        outcome.output_text().contains("Permission denied"),
        "{}",
        outcome.output_text()
    );
    assert!(tree.path("work/link").is_symlink());
    let targets: Vec<String> = filesystem(&outcome).into_iter().map(|(t, _)| t).collect();
    assert_eq!(targets, [format!("write {}", real(&tree.path("outside")))]);
}

#[tokio::test]
async fn writes_in_the_writable_root_and_the_private_tmp_are_not_recorded() {
    let tree = Tree::new();
    let outcome = tree
        .shell("mkdir d && echo a > d/f && mv d/f d/g && rm -r d && echo b > /tmp/x && cat /tmp/x")
        .await;
    assert_eq!(outcome.output_text(), "b\n");
    assert_eq!(filesystem(&outcome), []);
}

#[tokio::test]
async fn a_loop_of_denials_lists_a_thousand_and_counts_the_rest() {
    let tree = Tree::new();
    let outcome = executor()
        .evaluate(
            EvalRequest::new(Command::argv([
                PYTHON,
                "-c",
                &format!(
                    "import os\nfor _ in range(1100):\n    try:\n        os.open('{}', os.O_RDONLY)\n    except PermissionError:\n        pass",
                    tree.p("secret/key")
                ),
            ]))
            .policy(tree.policy())
            .timeout(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert!(outcome.status.success(), "{:?}", outcome.status);
    assert_eq!(filesystem(&outcome).len(), 1000);
    assert_eq!(outcome.violations_unlisted, 100);
}
