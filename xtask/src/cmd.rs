//! Child commands: echo them, run them, read their output; where cargo puts
//! things; and what the unprivileged passes of `test` and `bench` share.

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
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
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// uid and gid of `nobody` / `nogroup` on Debian and Ubuntu.
pub const NOBODY: u32 = 65534;

/// `setpriv` starting `program` as `uid`:`gid`, without supplementary groups
/// or inheritable capabilities.
pub fn as_user(setpriv: &Path, uid: u32, gid: u32, program: &Path) -> Command {
    let mut cmd = Command::new(setpriv);
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "--inh-caps=-all", "--"])
        .arg(program);
    cmd
}

/// An executable that cargo built.
#[derive(Debug)]
pub struct Artifact {
    /// Name of the package directory, e.g. `sandbox-exec`.
    pub package: String,
    /// Target name, e.g. `executor` for `tests/executor.rs`.
    pub name: String,
    /// Source file of the target.
    pub src_path: PathBuf,
    pub executable: PathBuf,
    /// Built with the test harness.
    pub test: bool,
    /// Target kinds, e.g. `["test"]` or `["bin"]`.
    pub kinds: Vec<String>,
}

/// Runs `cargo <args> --message-format=json-render-diagnostics` and returns the
/// executables it reports.
pub fn build(args: &[&str]) -> Result<Vec<Artifact>> {
    let mut cargo = cargo(args);
    cargo.arg("--message-format=json-render-diagnostics");
    let mut artifacts = Vec::new();
    for line in stdout_lines(&mut cargo)? {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(executable) = msg["executable"].as_str() else {
            continue;
        };
        let package = Path::new(msg["manifest_path"].as_str().unwrap_or_default())
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target = &msg["target"];
        artifacts.push(Artifact {
            package,
            name: target["name"].as_str().unwrap_or_default().to_string(),
            src_path: PathBuf::from(target["src_path"].as_str().unwrap_or_default()),
            executable: PathBuf::from(executable),
            test: msg["profile"]["test"] == true,
            kinds: target["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(String::from))
                .collect(),
        });
    }
    Ok(artifacts)
}

/// Copies an executable into `dir`, mode 0755; returns the copy's path.
pub fn copy_executable(exe: &Path, dir: &Path) -> Result<PathBuf> {
    let to = dir.join(exe.file_name().context("executable without a file name")?);
    fs::copy(exe, &to).with_context(|| format!("copying {} to {}", exe.display(), to.display()))?;
    fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
    Ok(to)
}

/// Copies a directory tree, making it world-readable (executable files stay
/// executable).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
            let exec = entry.metadata()?.permissions().mode() & 0o111 != 0;
            let mode = if exec { 0o755 } else { 0o644 };
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}
