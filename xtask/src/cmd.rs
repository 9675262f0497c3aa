//! Child commands: echo them, run them, read their output; and where cargo puts things.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context, Result};

/// The workspace root (the parent of `xtask/`), whatever the caller's directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// A `cargo` command run in the workspace root, with the cargo that started xtask.
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(workspace_root());
    cmd
}

/// The command line as a shell would read it, program shown by its file name.
pub fn display(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    let program = program.file_name().unwrap_or(program.as_os_str());
    std::iter::once(program)
        .chain(cmd.get_args())
        .map(|arg| quote(&arg.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-+=/.,:@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Prints the command line, prefixed by `$`.
pub fn echo(cmd: &Command) {
    println!("$ {}", display(cmd));
}

/// Echoes and runs `cmd` with inherited stdio; returns how it ended.
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    echo(cmd);
    cmd.status()
        .with_context(|| format!("cannot start `{}`", display(cmd)))
}

/// Echoes and runs `cmd` with inherited stdio; an error unless it exits with 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = status(cmd)?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Echoes and runs `cmd`, stderr inherited, and returns its stdout lines; an error
/// unless it exits with 0.
pub fn stdout_lines(cmd: &mut Command) -> Result<Vec<String>> {
    echo(cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let lines = BufReader::new(stdout)
        .lines()
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("reading the output of `{}`", display(cmd)))?;
    let status = child.wait()?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(lines)
}

/// Cargo's target directory, as `cargo metadata` reports it.
pub fn target_dir() -> Result<PathBuf> {
    let mut cmd = cargo(["metadata", "--format-version=1", "--no-deps", "--quiet"]);
    let lines = stdout_lines(&mut cmd)?;
    let metadata: serde_json::Value =
        serde_json::from_str(&lines.concat()).context("parsing `cargo metadata` output")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` reported no target_directory")
}

/// The first executable file called `name` in `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
