//! The bundled runner: what `RunnerProgram::path` points at when the calling
//! program does not call `sandbox_exec::dispatch` itself.
//!
//! `no_main` skips the Rust runtime's start-up (stack-guard discovery through
//! `/proc/self/maps`, signal setup), which a runner never needs: every spare
//! runner pays it, on a core the running evaluations want.
#![no_main]

#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    sandbox_exec::runner_main()
}
