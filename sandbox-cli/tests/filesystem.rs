//! `sandbox run` with filesystem rules end to end, started from the
//! directories a user would start it from, and the denials it reports.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{sandbox_bin, text};

/// A scratch directory outside `/tmp` (the sandbox's `/tmp` is its own),
/// with `secret/key` and an empty `work/`.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("sbx-cli-fs-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::create_dir(dir.path().join("secret")).unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    std::fs::write(dir.path().join("secret/key"), "SECRET KEY").unwrap();
    dir
}

/// `sandbox ARGS…` started in `cwd` (no `--cwd`), its violation log in
/// `state`.
fn sandbox_in(cwd: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(sandbox_bin())
        .args(args)
        .current_dir(cwd)
        .env("XDG_STATE_HOME", state)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_run_started_inside_a_denied_directory_cannot_read_it_by_relative_paths() {
    let (tree, state) = (tree(), tempfile::tempdir().unwrap());
    let deny = format!("Read({})", tree.path().join("secret").display());
    // `O_PATH` reads nothing, so only the mounts can refuse what follows:
    // the working directory must be the sandbox's mask, not the host
    // directory beneath it.
    let probe =
        "import os\nfd = os.open('key', os.O_PATH)\nprint(open('/proc/self/fd/%d' % fd).read())";
    let out = sandbox_in(
        &tree.path().join("secret"),
        state.path(),
        &[
            "run",
            "--deny",
            &deny,
            "--",
            "/usr/bin/python3",
            "-c",
            probe,
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!stdout.contains("SECRET"), "{stdout}");
    assert!(stdout.contains("No such file"), "{stdout}\n{stderr}");
    // The control: unconfined, the same probe reads the key.
    let out = sandbox_in(
        &tree.path().join("secret"),
        state.path(),
        &["run", "--", "/usr/bin/python3", "-c", probe],
    );
    assert_eq!(text(&out.stdout), "SECRET KEY\n", "{}", text(&out.stderr));
}

#[test]
fn a_run_started_in_its_writable_root_writes_there_by_relative_paths() {
    let (tree, state) = (tree(), tempfile::tempdir().unwrap());
    let work = tree.path().join("work");
    let allow = format!("Edit({})", work.display());
    let out = sandbox_in(
        &work,
        state.path(),
        &["run", "--allow", &allow, "echo kept > out.txt"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(work.join("out.txt")).unwrap(),
        "kept\n"
    );
}

#[test]
fn a_denied_read_is_reported_and_logged_as_a_filesystem_violation() {
    let (tree, state) = (tree(), tempfile::tempdir().unwrap());
    let secret = tree.path().join("secret");
    let deny = format!("Read({})", secret.display());
    let key = secret.join("key").display().to_string();
    let out = sandbox_in(
        tree.path(),
        state.path(),
        &["run", "--deny", &deny, "--", "cat", &key],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let real_key = std::fs::canonicalize(&key).unwrap();
    let line = format!("sandbox: denied: filesystem read {}", real_key.display());
    assert!(stderr.contains(&line), "{stderr}");
    // The command's own output, merged on standard output.
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Permission denied"), "{stdout}");

    let listed = sandbox_in(
        tree.path(),
        state.path(),
        &["violations", "--type", "filesystem", "--json"],
    );
    let listed = text(&listed.stdout);
    assert!(listed.contains(&real_key.display().to_string()), "{listed}");
    let none = sandbox_in(
        tree.path(),
        state.path(),
        &["violations", "--type", "network"],
    );
    assert!(
        !text(&none.stdout).contains("secret"),
        "{}",
        text(&none.stdout)
    );
}

#[test]
fn each_run_logs_its_violations_under_an_evaluation_id_of_its_own() {
    let (tree, state) = (tree(), tempfile::tempdir().unwrap());
    let secret = tree.path().join("secret");
    let deny = format!("Read({})", secret.display());
    let key = secret.join("key").display().to_string();
    for _ in 0..2 {
        let out = sandbox_in(
            tree.path(),
            state.path(),
            &["run", "--deny", &deny, "--", "cat", &key],
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    }
    let listed = sandbox_in(tree.path(), state.path(), &["violations", "--json"]);
    let ids: Vec<u64> = text(&listed.stdout)
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["eval"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 2, "{}", text(&listed.stdout));
    assert_ne!(ids[0], ids[1], "{}", text(&listed.stdout));
}
