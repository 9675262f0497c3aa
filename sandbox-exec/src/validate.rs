//! Checks of a request that hold on every platform, made before anything
//! starts: the error names the field, what is wrong and what would do.

use std::path::Path;

use sandbox_core::{EvalRequest, LimitKind};

use crate::ExecError;

/// Checks `request` (`is_dir` answers for its working directory) and returns
/// the command's argument vector.
pub(crate) fn request(
    request: &EvalRequest,
    is_dir: &dyn Fn(&Path) -> bool,
) -> Result<Vec<String>, ExecError> {
    let argv = request.command.to_argv();
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err(ExecError::InvalidRequest {
            field: "command",
            reason: "the command is empty; give a program to run".into(),
        });
    }
    if request.timeout.is_zero() {
        return Err(ExecError::InvalidRequest {
            field: "timeout",
            reason: "the timeout is zero; give a positive duration such as 500ms or 30s".into(),
        });
    }
    if let Some(cwd) = &request.cwd {
        if !is_dir(cwd) {
            return Err(ExecError::InvalidRequest {
                field: "cwd",
                reason: format!("{} is not an existing directory", cwd.display()),
            });
        }
    }
    for (kind, zero) in [
        (LimitKind::Pids, request.limits.pids == Some(0)),
        (LimitKind::Memory, request.limits.memory == Some(0)),
        (LimitKind::OpenFiles, request.limits.open_files == Some(0)),
    ] {
        if zero {
            return Err(ExecError::InvalidRequest {
                field: "limits",
                reason: format!("the {kind} limit is zero; nothing could run under it"),
            });
        }
    }
    Ok(argv)
}
