//! Helpers shared by the integration tests: every test runs real runner
//! processes against the real kernel.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use sandbox_exec::{Command, EvalRequest, Executor, RunnerProgram};
use sandbox_policy::{Context, HostFs, Policy};

/// The runner binary: `SANDBOX_RUNNER_BIN` when set (the unprivileged pass of
/// `cargo xtask test` runs copies from a world-readable directory), else the one
/// cargo built.
pub fn runner_bin() -> PathBuf {
    std::env::var_os("SANDBOX_RUNNER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sandbox-runner")))
}

pub fn executor() -> Executor {
    Executor::with_runner(RunnerProgram::path(runner_bin())).expect("executor")
}

pub fn shell(line: &str) -> EvalRequest {
    EvalRequest::new(Command::shell(line)).timeout(Duration::from_secs(20))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A string no other process on the machine has in its command line.
pub fn unique_tag(what: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sbxtest-{what}-{hex}")
}

/// Host pids of the processes whose command line contains `tag`.
pub fn processes_tagged(tag: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(tag) && pid != std::process::id() {
            pids.push(pid);
        }
    }
    pids
}

/// A scratch directory the test's own uid can write, removed on drop.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sbx-test-")
        .tempdir_in(std::env::temp_dir())
        .unwrap()
}

/// The policy of `allow` and `deny` permission strings, with the test's home
/// and working directory.
pub fn policy(allow: &[String], deny: &[String]) -> Policy {
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
    for d in deny {
        builder = builder.deny(d.clone());
    }
    builder.build(&HostFs).expect("policy").0
}
