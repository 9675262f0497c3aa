//! `cargo xtask`: the one entry point for developers and CI.
//!
//! ```text
//! cargo xtask test [--no-unprivileged | --unprivileged-only] [--uid N --gid N] [-- HARNESS ARGS]
//! cargo xtask ci   [same options as test]
//! cargo xtask bench [FILTER] [--no-unprivileged] [--uid N --gid N] [-- CRITERION ARGS]
//! ```
//!
//! - `test` runs every test of the workspace (`cargo test --workspace --all-targets`
//!   and the doctests). Started as root, it then runs the integration tests of
//!   `sandbox-exec` and `sandbox-cli` a second time as an unprivileged user
//!   (uid/gid 65534 by default), because enforcement behaves differently without
//!   privileges and that is the case users meet.
//! - `ci` is what `.ci/run` calls: `cargo fmt --check`, `cargo clippy -D warnings`,
//!   then `test`. It stops at the first failing step.
//! - `bench` runs the criterion benchmark of the executor (installing bubblewrap
//!   for its baseline when missing), as root also as an unprivileged user, and
//!   prints the medians and the ratios against the targets.
//!
//! The alias lives in `.cargo/config.toml`; every command xtask starts is echoed
//! before it runs.

mod bench;
mod ci;
mod cmd;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Developer and CI tasks of the sandbox workspace"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Run all tests; as root, also run the integration tests as an unprivileged user.
    Test(test::TestArgs),
    /// Run what CI runs: fmt check, clippy -D warnings, then the tests.
    Ci(test::TestArgs),
    /// Run the executor benchmark and print a summary of the medians.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Test(args) => test::run(&args),
        Task::Ci(args) => ci::run(&args),
        Task::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error and its causes, without the backtrace `RUST_BACKTRACE` would add.
fn report(e: &anyhow::Error) {
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("caused by: {cause}");
    }
}
