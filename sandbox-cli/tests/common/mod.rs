//! Helpers shared by the CLI's integration tests, which run the real
//! `sandbox` binary.
#![allow(dead_code)]

use std::path::PathBuf;

/// The binary under test: `SANDBOX_BIN` when set (the unprivileged pass of
/// `cargo xtask test` runs a copy from a world-readable directory), else the
/// one cargo built.
pub fn sandbox_bin() -> PathBuf {
    std::env::var_os("SANDBOX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sandbox")))
}

/// A state directory (`XDG_STATE_HOME`) for runs whose state no test looks
/// at, so that no test writes into the real home's: one per user, reused
/// from run to run rather than left behind each time.
pub fn shared_state_home() -> PathBuf {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("sandbox-cli-tests-state-{uid}"));
    std::fs::create_dir_all(&dir).expect("creating the tests' state directory");
    dir
}

/// Captured output as text (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
