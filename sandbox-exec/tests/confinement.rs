//! Filesystem and namespace confinement, enforced by the real kernel: each
//! test runs a real command under a policy and checks what it could do.

mod common;

use std::path::Path;

use common::{executor, policy, shell, unique_tag};
use sandbox_exec::{EvalRequest, Status};

/// A scratch directory outside /tmp (which every confined evaluation sees
/// as a private, empty tmpfs).
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sbx-confine-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

fn edit(dir: &Path) -> Vec<String> {
    vec![format!("Edit({})", dir.display())]
}

async fn run(request: EvalRequest) -> sandbox_exec::Outcome {
    let outcome = executor().evaluate(request).await.unwrap();
    assert!(
        !matches!(outcome.status, Status::NoConnection { .. }),
        "{:?}",
        outcome.status
    );
    outcome
}

/// Runs `line` under a policy whose only writable root is a fresh scratch
/// directory (kept alive for the run).
async fn run_confined(line: &str) -> sandbox_exec::Outcome {
    let writable = scratch();
    run(shell(line).policy(policy(&edit(writable.path()), &[]))).await
}

#[tokio::test]
async fn writes_outside_the_writable_roots_are_refused() {
    let (writable, other) = (scratch(), scratch());
    let target = other.path().join("escaped");
    let outcome = run(shell(&format!("echo x > {}", target.display()))
        .policy(policy(&edit(writable.path()), &[])))
    .await;
    assert_ne!(
        outcome.status,
        Status::Exited { code: 0 },
        "{}",
        outcome.output_text()
    );
    // The executor's judgement answers first (EACCES, recorded); the mounts
    // would answer EROFS (next test).
    assert!(
        outcome.output_text().contains("Permission denied"),
        "{}",
        outcome.output_text()
    );
    assert!(!target.exists());
}

/// A Python program that opens `dir` with `O_PATH` (not judged: it reads
/// nothing) and then `dir/name` through `/proc/self/fd` (the sandbox's own
/// `/proc`, never judged), so that only the kernel's mounts decide, and
/// prints `ok` or the errno name.
fn past_the_judgement(dir: &Path, name: &str, write: bool) -> String {
    let act = if write {
        "os.write(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644), b'x'); print('ok')"
    } else {
        "print(os.read(os.open(p, os.O_RDONLY), 100).decode())"
    };
    format!(
        "/usr/bin/python3 -c \"import errno, os\nd = os.open('{dir}', os.O_PATH)\np = '/proc/self/fd/%d/{name}' % d\ntry:\n    {act}\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\"",
        dir = dir.display()
    )
}

#[tokio::test]
async fn the_mounts_refuse_a_write_outside_the_writable_roots_by_themselves() {
    let (writable, other) = (scratch(), scratch());
    let outcome = run(shell(&past_the_judgement(other.path(), "escaped", true))
        .policy(policy(&edit(writable.path()), &[])))
    .await;
    assert_eq!(outcome.output_text(), "EROFS\n");
    assert!(!other.path().join("escaped").exists());
    // The control: the same path to the writable root writes.
    let outcome = run(shell(&past_the_judgement(writable.path(), "kept", true))
        .policy(policy(&edit(writable.path()), &[])))
    .await;
    assert_eq!(outcome.output_text(), "ok\n");
    assert!(writable.path().join("kept").exists());
}

#[tokio::test]
async fn writes_inside_a_writable_root_reach_the_host() {
    let writable = scratch();
    let target = writable.path().join("out");
    let outcome = run(shell(&format!("echo kept > {}", target.display()))
        .policy(policy(&edit(writable.path()), &[])))
    .await;
    assert_eq!(
        outcome.status,
        Status::Exited { code: 0 },
        "{}",
        outcome.output_text()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept\n");
}

#[tokio::test]
async fn a_denied_read_region_shows_nothing() {
    let secret_dir = scratch();
    std::fs::write(secret_dir.path().join("secret"), "hunter2").unwrap();
    let outcome = run(shell(&format!(
        "ls -A {dir}; cat {dir}/secret",
        dir = secret_dir.path().display()
    ))
    .policy(policy(
        &[],
        &[format!("Read({})", secret_dir.path().display())],
    )))
    .await;
    assert!(
        !outcome.output_text().contains("hunter2"),
        "{}",
        outcome.output_text()
    );
    assert!(
        outcome.output_text().contains("Permission denied"),
        "{}",
        outcome.output_text()
    );
}

#[tokio::test]
async fn the_mask_hides_a_denied_region_by_itself() {
    let secret_dir = scratch();
    std::fs::write(secret_dir.path().join("secret"), "hunter2").unwrap();
    let outcome = run(
        shell(&past_the_judgement(secret_dir.path(), "secret", false)).policy(policy(
            &[],
            &[format!("Read({})", secret_dir.path().display())],
        )),
    )
    .await;
    assert_eq!(outcome.output_text(), "ENOENT\n");
    // The control: unconfined, the same program reads the secret.
    let outcome = run(shell(&past_the_judgement(
        secret_dir.path(),
        "secret",
        false,
    )))
    .await;
    assert_eq!(outcome.output_text(), "hunter2\n");
}

#[tokio::test]
async fn tmp_is_private_to_the_evaluation() {
    let name = unique_tag("tmp");
    let outcome = run_confined(&format!("echo x > /tmp/{name} && cat /tmp/{name}")).await;
    assert_eq!(
        outcome.status,
        Status::Exited { code: 0 },
        "{}",
        outcome.output_text()
    );
    assert!(!Path::new("/tmp").join(&name).exists());
}

#[tokio::test]
async fn the_network_namespace_has_only_loopback() {
    let outcome = run_confined("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '").await;
    assert_eq!(outcome.output_text(), "lo\n");
}

#[tokio::test]
async fn the_command_has_no_capabilities_and_cannot_gain_privileges() {
    let outcome =
        run_confined("grep -E '^(NoNewPrivs|CapEff|CapPrm|CapBnd):' /proc/self/status").await;
    let text = outcome.output_text();
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    for field in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            text.contains(&format!("{field}:\t0000000000000000")),
            "{text}"
        );
    }
}

#[tokio::test]
async fn host_processes_are_invisible() {
    let outcome = run_confined("ls /proc | grep -c '^[0-9]'").await;
    let count: u32 = outcome.output_text().trim().parse().unwrap();
    // init, the shell, ls and grep at most.
    assert!(count <= 4, "{count} processes visible");
}

#[tokio::test]
async fn a_policy_free_evaluation_is_not_confined() {
    let dir = scratch();
    let target = dir.path().join("free");
    let outcome = run(shell(&format!("echo x > {}", target.display()))).await;
    assert_eq!(
        outcome.status,
        Status::Exited { code: 0 },
        "{}",
        outcome.output_text()
    );
}
