//! A plugin host: a named sandbox holds a plugin (a small shell script), the
//! host loads it, calls it on its input as confined evaluations, updates it,
//! notices that the update misbehaves, and rolls back to the version that
//! worked — exact bytes, from the module history.
//!
//! ```text
//! cargo run -p sandbox-exec --example plugin_host
//! ```
//!
//! Every call is a fresh confined child: the host's filesystem is read-only to
//! it, the plugin's code is read-only in `$SANDBOX_CODE_DIR`, only the
//! sandbox's workspace is writable, and there is no network.

use std::time::Duration;

use sandbox_core::manager::{Manager, SandboxSpec};
use sandbox_core::{Command, Limits};
use sandbox_exec::Executor;
use sandbox_policy::{Context, HostFs, Policy};

/// Version 1: upper-cases each line and counts calls in the workspace.
const PLUGIN_V1: &str = r#"n=$(cat calls 2>/dev/null || echo 0); echo $((n + 1)) > calls
tr a-z A-Z
"#;

/// Version 2: meant to add a prefix, but it also tries to patch its own code
/// and to leave something in the host's /etc — both refused by the sandbox —
/// and then fails.
const PLUGIN_V2: &str = r#"{ echo 'echo pwned' > "$SANDBOX_CODE_DIR/plugin.sh"; } 2>/dev/null || echo "v2: cannot modify my code" >&2
{ echo x > /etc/plugin-was-here; } 2>/dev/null || echo "v2: cannot write to /etc" >&2
sed 's/^/>> /'
exit 3
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a runner child this never returns; everywhere else it returns at once.
    sandbox_exec::dispatch();

    let state = tempfile::tempdir()?;
    let manager = Manager::open(state.path())?;
    let executor = Executor::new()?;

    let spec = SandboxSpec::new(confined_policy()?).limits(Limits {
        memory: Some(64 << 20),
        pids: Some(32),
        ..Limits::default()
    });
    manager.create("text-plugin", spec)?;
    println!("created sandbox text-plugin in {}", state.path().display());

    let report = manager.hot_reload(
        "text-plugin",
        "plugin.sh",
        PLUGIN_V1.as_bytes(),
        Default::default(),
    )?;
    println!("loaded plugin.sh v{}", report.to);
    call(&manager, &executor, "hello plugins\n")?;

    let report = manager.hot_reload(
        "text-plugin",
        "plugin.sh",
        PLUGIN_V2.as_bytes(),
        Default::default(),
    )?;
    println!(
        "updated plugin.sh v{} -> v{}",
        report.from.unwrap_or(0),
        report.to
    );
    let ok = call(&manager, &executor, "second call\n")?;

    if !ok {
        let history = manager.get_version_history("text-plugin", "plugin.sh")?;
        let good = history.versions[0].version;
        manager.rollback_module("text-plugin", "plugin.sh", good)?;
        println!(
            "v{} failed: rolled back to v{good}",
            history.current_version.unwrap_or(0)
        );
        let code = manager.code_dir("text-plugin")?.join("plugin.sh");
        assert_eq!(std::fs::read(&code)?, PLUGIN_V1.as_bytes());
        println!("the active plugin.sh is byte for byte version {good} again");
        call(&manager, &executor, "third call\n")?;
    }

    let history = manager.get_version_history("text-plugin", "plugin.sh")?;
    println!(
        "history: {} versions, active v{}",
        history.total_versions,
        history.current_version.unwrap_or(0)
    );
    for v in &history.versions {
        println!(
            "  v{} {} bytes sha256:{}",
            v.version,
            v.size,
            &v.sha256[..12]
        );
    }
    let metrics = manager.metrics("text-plugin")?;
    println!(
        "metrics: {} calls, {} failed, peak memory {}",
        metrics.evaluations,
        metrics.failures,
        metrics
            .peak_memory_bytes
            .map(sandbox_core::format_bytes)
            .unwrap_or_else(|| "-".into())
    );
    manager.destroy("text-plugin")?;
    println!("destroyed text-plugin");
    Ok(())
}

/// Calls the active plugin on `input` in a fresh confined child; true when it succeeded.
fn call(
    manager: &Manager,
    executor: &Executor,
    input: &str,
) -> Result<bool, Box<dyn std::error::Error>> {
    let request = manager
        .eval_request(
            "text-plugin",
            Command::shell(r#"sh "$SANDBOX_CODE_DIR/plugin.sh""#),
        )?
        .stdin(input)
        .timeout(Duration::from_secs(5));
    let outcome = executor.evaluate_blocking(request)?;
    manager.record_outcome("text-plugin", &outcome)?;
    println!(
        "  call({:?}) -> {} (exit status {}) in {:?}:",
        input.trim_end(),
        outcome.status.name(),
        outcome.exit_code(),
        outcome.wall_time
    );
    for line in outcome.output_text().lines() {
        println!("    | {line}");
    }
    Ok(outcome.status.success())
}

/// The mandatory policy (read-only host, private /tmp, no network); the
/// manager adds the workspace as writable.
fn confined_policy() -> Result<Policy, Box<dyn std::error::Error>> {
    let ctx = Context {
        home: std::env::var_os("HOME")
            .unwrap_or_else(|| "/".into())
            .into(),
        cwd: std::env::current_dir()?,
    };
    let (policy, _report) = Policy::builder(ctx).build(&HostFs)?;
    Ok(policy)
}
