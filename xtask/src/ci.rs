//! `cargo xtask ci`: what CI runs (through `.ci/run`), step by step, stopping at
//! the first failure.

use anyhow::{Context, Result};

use crate::cmd;
use crate::test::{self, TestArgs};

pub fn run(args: &TestArgs) -> Result<()> {
    step(1, "fmt", "run `cargo fmt --all` to fix", || {
        cmd::run(&mut cmd::cargo(["fmt", "--all", "--check"]))
    })?;
    step(2, "clippy", "fix the warnings above", || {
        cmd::run(&mut cmd::cargo([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step(3, "test", "see the failing tests above", || test::run(args))?;
    println!("== ci passed ==");
    Ok(())
}

fn step(n: u32, name: &str, hint: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("== ci step {n}/3: {name} ==");
    f().with_context(|| format!("ci step {n}/3 `{name}` failed: {hint}"))
}
