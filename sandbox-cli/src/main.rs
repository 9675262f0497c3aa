//! `sandbox`: runs untrusted commands in a fresh, confined child process.
//!
//! This binary is thin on purpose: it parses arguments ([`args`]), asks the
//! libraries to do the work ([`run`]) and renders the result ([`render`]).
//! Anything a library user would also need belongs in `sandbox-core` or
//! `sandbox-exec`, not here. The `--json` output is documented in `JSON.md`
//! next to this crate's `Cargo.toml`.

mod args;
mod logging;
mod render;
mod run;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, CliCommand};

fn main() -> ExitCode {
    // The executor re-executes this binary as its runner child; in that child
    // this call takes over and never returns, so it must come before anything
    // else (argument parsing, logging, a tokio runtime).
    sandbox_exec::dispatch();

    let cli = Cli::parse();
    let code = match cli.command {
        CliCommand::Run(args) => {
            logging::init(args.debug);
            run::run(args)
        }
    };
    // Exit statuses are one byte; the kernel would keep only the low byte of
    // anything larger, so do the same here rather than fail.
    ExitCode::from((code & 0xff) as u8)
}
