//! Diagnostics of the sandbox itself, on standard error via `tracing`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// What `--debug` turns on: everything the sandbox crates log at debug level.
const DEBUG_DIRECTIVES: &str = "warn,sandbox=debug,sandbox_exec=debug,sandbox_core=debug";

/// What is logged without `--debug`: warnings, except the `tracing` event
/// each violation emits, which the commands print themselves as one
/// `sandbox: denied: …` line.
const DEFAULT_DIRECTIVES: &str = "warn,sandbox::violation=off";

/// Installs the global subscriber: warnings only by default, the sandbox crates
/// at debug level with `debug`. `RUST_LOG`, when set, is applied on top, so it
/// can narrow or widen either.
pub fn init(debug: bool) {
    let base = if debug {
        DEBUG_DIRECTIVES
    } else {
        DEFAULT_DIRECTIVES
    };
    let directives = match std::env::var("RUST_LOG") {
        Ok(extra) if !extra.trim().is_empty() => format!("{base},{extra}"),
        _ => base.to_owned(),
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|err| {
        // A typo in RUST_LOG must not stop the command from running.
        eprintln!("sandbox: warning: ignoring RUST_LOG: {err}");
        EnvFilter::new(base)
    });
    // Only fails when a subscriber is already installed, which is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Escape codes only help a person at a terminal; in a log file or a
        // test's captured stderr they are noise.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
