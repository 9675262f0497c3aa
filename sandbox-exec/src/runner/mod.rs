//! The runner child: receives one request, runs it, reports, exits.

/// Becomes the runner when this process was started as one, and never returns
/// then; returns at once otherwise. Call it first thing in `main` when the
/// executor uses [`RunnerProgram::CurrentExe`](crate::RunnerProgram::CurrentExe).
pub fn dispatch() {
    if std::env::var_os(ENDPOINT_ENV).is_some() {
        runner_main()
    }
}

/// Runs the runner and exits. For a dedicated runner binary's `main`.
pub fn runner_main() -> ! {
    todo!()
}

pub(crate) const ENDPOINT_ENV: &str = "SANDBOX_RUNNER_ENDPOINT";
