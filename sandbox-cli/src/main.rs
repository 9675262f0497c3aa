//! `sandbox`: runs untrusted commands in a fresh, confined child process.
//!
//! This binary is thin on purpose: it parses arguments ([`args`]), asks the
//! libraries to do the work ([`run`], [`policy_cmd`], [`platform_cmd`]) and
//! renders the result ([`render`]). Anything a library user would also need
//! belongs in `sandbox-core`, `sandbox-exec` or `sandbox-policy`, not here. The
//! `--json` output of `run` is documented in `JSON.md` next to this crate's
//! `Cargo.toml`, that of `policy` and `platform` in `POLICY.md`.

mod args;
mod control;
mod logging;
mod manage;
mod platform_cmd;
mod policy_build;
mod policy_cmd;
mod render;
mod run;
mod up;
mod violations_cmd;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, CliCommand, PolicyCommand};

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
        CliCommand::Policy(PolicyCommand::Show(args)) => policy_cmd::show(args),
        CliCommand::Policy(PolicyCommand::Check(args)) => policy_cmd::check(args),
        CliCommand::Platform(args) => platform_cmd::platform(args),
        CliCommand::Violations(args) => violations_cmd::violations(args),
        CliCommand::Manage(command) => manage::main(command, cli.state_dir),
    };
    // Exit statuses are one byte; the kernel would keep only the low byte of
    // anything larger, so do the same here rather than fail.
    ExitCode::from((code & 0xff) as u8)
}
