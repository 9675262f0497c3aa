//! `cargo xtask test`: every test once, then (as root) the integration tests again
//! as an unprivileged user.
//!
//! Why the second pass: sandboxing code takes other paths when it runs without
//! privileges (user namespaces instead of plain ones, cgroup delegation, rlimits),
//! and that is how users run it. CI runs as root, so the integration tests of the
//! crates that enforce things are run once more under `setpriv` as uid/gid 65534.
//!
//! The unprivileged user may not be able to traverse `/root` or the checkout, so
//! the test executables are built here (as root), then copied with the `sandbox`
//! and `sandbox-runner` binaries into a fresh world-readable temp dir:
//!
//! ```text
//! $TMPDIR/xtask-unprivileged-XXXXXX/     0755, removed afterwards
//!   bin/        test executables, sandbox, sandbox-runner (0755)
//!   home/       HOME of the tests, owned by the unprivileged user
//!   workspace/  a copy of each crate's tests/ dir (snapshots, fixtures); the
//!               cwd, CARGO_MANIFEST_DIR and INSTA_WORKSPACE_ROOT point here
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cmd::{self, build, copy_executable, copy_tree, Artifact, NOBODY};

/// Crates whose integration tests (`tests/*.rs`) also run unprivileged.
const UNPRIVILEGED_CRATES: &[&str] = &["sandbox-exec", "sandbox-cli"];

/// Binaries the integration tests start, with the variable that tells them where.
const BINARIES: &[(&str, &str, &str)] = &[
    ("sandbox-cli", "sandbox", "SANDBOX_BIN"),
    ("sandbox-exec", "sandbox-runner", "SANDBOX_RUNNER_BIN"),
];

/// Options of `cargo xtask test` (and `cargo xtask ci`).
#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// Skip the second, unprivileged pass.
    #[arg(long, conflicts_with = "unprivileged_only")]
    pub no_unprivileged: bool,
    /// Run only the unprivileged pass (needs root).
    #[arg(long)]
    pub unprivileged_only: bool,
    /// The uid of the unprivileged pass.
    #[arg(long, default_value_t = NOBODY)]
    pub uid: u32,
    /// The gid of the unprivileged pass.
    #[arg(long, default_value_t = NOBODY)]
    pub gid: u32,
    /// Arguments for every test harness, e.g. a test name filter or `--nocapture`.
    #[arg(last = true)]
    pub harness_args: Vec<String>,
}

pub fn run(args: &TestArgs) -> Result<()> {
    let euid = unsafe { libc::geteuid() }; // SAFETY: geteuid cannot fail.
    let root = euid == 0;
    if args.unprivileged_only && !root {
        bail!("--unprivileged-only needs root; as uid {euid} the normal pass already runs unprivileged");
    }
    let unprivileged = root && !args.no_unprivileged;
    let setpriv = if unprivileged {
        Some(cmd::find_in_path("setpriv").context(
            "setpriv not found: install util-linux (apt-get install util-linux), \
             or pass --no-unprivileged",
        )?)
    } else {
        None
    };

    let mut failures = Vec::new();
    if !args.unprivileged_only {
        if root {
            println!("== tests as root ==");
        } else {
            println!("== tests as uid {euid} ==");
        }
        for kind in ["--all-targets", "--doc"] {
            let mut cargo = cmd::cargo(["test", "--workspace", kind, "--no-fail-fast"]);
            if !args.harness_args.is_empty() {
                cargo.arg("--").args(&args.harness_args);
            }
            if let Err(e) = cmd::run(&mut cargo) {
                failures.push(format!("{e:#}"));
            }
        }
    }

    match setpriv {
        Some(setpriv) => {
            println!("== integration tests as uid {} ==", args.uid);
            match unprivileged_pass(args, &setpriv) {
                Ok(failed) => failures.extend(failed),
                Err(e) => failures.push(format!("unprivileged pass: {e:#}")),
            }
        }
        None if root => println!("note: unprivileged pass skipped (--no-unprivileged)"),
        None => println!(
            "note: unprivileged pass skipped: not root, the tests above already ran as uid {euid}"
        ),
    }

    if failures.is_empty() {
        println!("== all tests passed ==");
        Ok(())
    } else {
        bail!("tests failed:\n  - {}", failures.join("\n  - "))
    }
}

/// Builds the integration tests and the binaries as the current user, copies them
/// where `args.uid` can read them, and runs each test executable as that user.
/// Returns one message per failed test executable.
fn unprivileged_pass(args: &TestArgs, setpriv: &Path) -> Result<Vec<String>> {
    let artifacts = build(&["test", "--workspace", "--no-run"])?;
    let tests: Vec<&Artifact> = artifacts
        .iter()
        .filter(|a| a.test && a.kinds.iter().any(|k| k == "test"))
        .filter(|a| UNPRIVILEGED_CRATES.contains(&a.package.as_str()))
        .collect();
    if tests.is_empty() {
        println!(
            "no integration tests in {} yet: nothing to run",
            UNPRIVILEGED_CRATES.join(", ")
        );
        return Ok(Vec::new());
    }

    let scratch = tempfile::Builder::new()
        .prefix("xtask-unprivileged-")
        .tempdir()
        .context("creating the temp dir of the unprivileged pass")?;
    let dir = scratch.path();
    let bin = dir.join("bin");
    let home = dir.join("home");
    let workspace = dir.join("workspace");
    for d in [dir, &bin, &home, &workspace] {
        fs::create_dir_all(d)?;
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
    }
    std::os::unix::fs::chown(&home, Some(args.uid), Some(args.gid))
        .with_context(|| format!("chown {} to {}:{}", home.display(), args.uid, args.gid))?;

    // The binaries the tests start, copied too.
    let mut env = BTreeMap::new();
    for &(package, name, var) in BINARIES {
        let built = artifacts
            .iter()
            .find(|a| !a.test && a.package == package && a.name == name);
        let path = match built {
            Some(a) => a.executable.clone(),
            None => build_binary(package, name)?,
        };
        env.insert(var, copy_executable(&path, &bin)?);
    }

    let root = cmd::workspace_root();
    for package in UNPRIVILEGED_CRATES {
        let tests_dir = root.join(package).join("tests");
        if tests_dir.is_dir() {
            copy_tree(&tests_dir, &workspace.join(package).join("tests"))?;
        }
    }

    let mut failures = Vec::new();
    for test in tests {
        let exe = copy_executable(&test.executable, &bin)?;
        let crate_dir = workspace.join(&test.package);
        fs::create_dir_all(&crate_dir)?;
        let source = test
            .src_path
            .strip_prefix(root.join(&test.package))
            .unwrap_or(&test.src_path)
            .display();
        println!("-- {} {source} as uid {}", test.package, args.uid);

        let mut run = cmd::as_user(setpriv, args.uid, args.gid, &exe);
        run.args(&args.harness_args)
            .current_dir(&crate_dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("HOME", &home)
            .env("CI", "true")
            .env("INSTA_UPDATE", "no")
            .env("INSTA_WORKSPACE_ROOT", &workspace)
            .env("CARGO_MANIFEST_DIR", &crate_dir)
            .envs(&env);
        for var in ["RUST_BACKTRACE", "RUST_LOG"] {
            if let Some(value) = std::env::var_os(var) {
                run.env(var, value);
            }
        }
        let status = cmd::status(&mut run)?;
        if !status.success() {
            failures.push(format!(
                "{} integration test `{}` ({source}, {}) as uid {}: {status}",
                test.package,
                test.name,
                test.executable.display(),
                args.uid
            ));
        }
    }

    let path = dir.to_path_buf();
    scratch
        .close()
        .with_context(|| format!("removing {}", path.display()))?;
    Ok(failures)
}

/// Builds one binary that the test build did not produce; returns its path.
fn build_binary(package: &str, name: &str) -> Result<PathBuf> {
    build(&["build", "-p", package, "--bin", name])?
        .into_iter()
        .find(|a| a.name == name && a.kinds.iter().any(|k| k == "bin"))
        .map(|a| a.executable)
        .with_context(|| format!("cargo built no binary `{name}` in {package}"))
}
