//! Isolated compilation (the seed's `compile_sandbox` / `compile_file`): a
//! build command runs as an evaluation of the sandbox that may write only to
//! its output directory, and its result is a [`CompileInfo`] whose artifacts
//! can then be installed with [`Manager::hot_reload`].
//!
//! The build's policy is the sandbox's policy with every write rule replaced
//! by one for the output directory: it reads what the sandbox reads, reaches
//! the network only where the sandbox may, and writes nowhere else (the
//! executor adds its private `/tmp`). It runs under the sandbox's limits, in
//! the workspace, with `SANDBOX_OUTPUT_DIR` set.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sandbox_policy::{Layer, Origin, PathPattern, PathRule};

use super::artifact::{check_artifact, ArtifactError, ArtifactKind};
use super::error::{ManagerError, Result};
use super::Manager;
use crate::{Command, EvalRequest, Executor, Outcome};

/// Environment variable naming the build's output directory.
pub const OUTPUT_DIR_ENV: &str = "SANDBOX_OUTPUT_DIR";

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileInfo {
    /// The regular files in the output directory after the build, sorted.
    pub artifacts: Vec<PathBuf>,
    /// The build's merged output (truncated as the request says).
    pub output: String,
    /// Wall-clock time of the build.
    pub duration: Duration,
    /// Everything the executor reported.
    pub outcome: Outcome,
}

impl CompileInfo {
    /// True when the build exited 0.
    pub fn success(&self) -> bool {
        self.outcome.status.success()
    }

    /// Checks that the build produced artifacts and that each is
    /// well-formed for its kind ([`check_artifact`]): their kinds, or the
    /// first problem.
    pub fn validate(&self) -> std::result::Result<Vec<(PathBuf, ArtifactKind)>, ArtifactError> {
        if self.artifacts.is_empty() {
            return Err(ArtifactError {
                path: PathBuf::from("(output directory)"),
                problem: "the build produced no artifact".into(),
            });
        }
        self.artifacts
            .iter()
            .map(|path| check_artifact(path).map(|kind| (path.clone(), kind)))
            .collect()
    }
}

impl Manager {
    /// The request that runs `build` in sandbox `name` with write access only
    /// to `output_dir` (absolute; created when missing).
    pub fn compile_request(
        &self,
        name: &str,
        build: Command,
        output_dir: &Path,
    ) -> Result<EvalRequest> {
        let invalid = |reason: String| ManagerError::InvalidSpec {
            name: name.to_string(),
            reason,
        };
        if !output_dir.is_absolute() {
            return Err(invalid(format!(
                "the output directory {} is not absolute",
                output_dir.display()
            )));
        }
        let record = self.shared.with(name, |sb| Ok(sb.paths.record()))?;
        super::store::create_dir_all(output_dir)?;
        let mut request = self.shared.request(name, build)?;
        let text = output_dir.display().to_string();
        let pattern = PathPattern::new(&text)
            .map_err(|e| invalid(format!("the output directory cannot be a policy rule: {e}")))?;
        request.policy.filesystem.allow_write = vec![PathRule {
            pattern,
            origin: Origin::new(Layer::SettingsFile(record), "output_dir", text.clone()),
        }];
        request.env.insert(OUTPUT_DIR_ENV.into(), text);
        Ok(request)
    }

    /// Runs `build` through `executor` as [`Manager::compile_request`]
    /// describes, counts it in the sandbox's metrics and lists the artifacts.
    /// A build that fails is still a `CompileInfo` (see [`CompileInfo::success`]).
    pub async fn compile<E: Executor>(
        &self,
        executor: &E,
        name: &str,
        build: Command,
        output_dir: &Path,
    ) -> Result<CompileInfo> {
        let request = self.compile_request(name, build, output_dir)?;
        let outcome = executor
            .evaluate(request)
            .await
            .map_err(|e| ManagerError::Launch {
                name: name.to_string(),
                reason: format!("running the build: {e}"),
            })?;
        self.record_outcome(name, &outcome)?;
        let mut artifacts = Vec::new();
        list_files(output_dir, &mut artifacts)?;
        artifacts.sort();
        Ok(CompileInfo {
            artifacts,
            output: outcome.output_text().into_owned(),
            duration: outcome.wall_time,
            outcome,
        })
    }
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| ManagerError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ManagerError::io("listing", dir, e))?;
        let kind = entry
            .file_type()
            .map_err(|e| ManagerError::io("inspecting", entry.path(), e))?;
        if kind.is_dir() {
            list_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}
