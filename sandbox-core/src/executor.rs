use std::future::Future;

use crate::{EvalRequest, Outcome};

/// Runs evaluations, each in a fresh child.
///
/// The CLI and the manager of named sandboxes program against this trait;
/// `sandbox-exec` provides the real implementation. An `Err` means the executor
/// itself could not do its job (bad request, runner not startable); everything
/// that happened to the evaluated code — including a crash of the runner — is an
/// [`Outcome`] with the matching [`Status`](crate::Status).
pub trait Executor: Send + Sync {
    /// Why the executor could not run an evaluation at all.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Runs `request` to completion (or timeout) and reports what happened.
    fn evaluate(
        &self,
        request: EvalRequest,
    ) -> impl Future<Output = Result<Outcome, Self::Error>> + Send;
}
