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

/// Captured output as text (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
