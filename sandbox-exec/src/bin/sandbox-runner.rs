//! The bundled runner: what `RunnerProgram::path` points at when the calling
//! program does not call `sandbox_exec::dispatch` itself.

fn main() {
    sandbox_exec::runner_main()
}
