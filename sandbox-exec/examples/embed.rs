//! Embedding the executor in your own program: `main` calls
//! `sandbox_exec::dispatch()` first, so the program doubles as its own runner
//! and nothing else needs installing.
//!
//! ```text
//! cargo run -p sandbox-exec --example embed -- 'echo hello; ls /nonexistent'
//! ```

use std::time::Duration;

use sandbox_exec::{Command, EvalRequest, Executor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a runner child this never returns; everywhere else it returns at once.
    sandbox_exec::dispatch();

    let line = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "echo hello from a fresh child".into());
    let executor = Executor::new()?;
    let request = EvalRequest::new(Command::shell(line)).timeout(Duration::from_secs(
        std::env::var("T")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(10),
    ));
    let outcome = executor.evaluate_blocking(request)?;
    print!("{}", outcome.output_text());
    eprintln!(
        "status: {} in {:?}",
        outcome.status.name(),
        outcome.wall_time
    );
    std::process::exit(outcome.exit_code())
}
