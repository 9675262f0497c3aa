//! State migration across a hot reload: a confined counter service (Python)
//! counts ticks; version 2 stores its state in a new format. The reload asks
//! the running v1 for its state (`EXPORT` on its standard input), stops it,
//! starts v2, lets a Rust state handler convert the state, and hands it to v2
//! (`IMPORT`), which carries on counting from there. Then a broken v3 that
//! cannot import is deployed: the reload fails and v2 is back, running, with
//! its state.
//!
//! ```text
//! cargo run -p sandbox-exec --example state_migration
//! ```
//!
//! The control protocol the service speaks is
//! `sandbox_core::manager::PROTOCOL_DOC`.

use std::sync::Arc;
use std::time::Duration;

use sandbox_core::manager::{Manager, ReloadOptions, SandboxSpec, ServiceSpec, ServiceStatus};
use sandbox_core::Limits;
use sandbox_exec::{ConfinedLauncher, Executor};
use sandbox_policy::{Context, HostFs, Policy};

/// v1 keeps `{"count": N}`; a thread adds one every 10 ms.
const COUNTER_V1: &str = r#"import json, sys, threading, time
state = {"count": 0}
def tick():
    while True:
        time.sleep(0.01)
        state["count"] += 1
threading.Thread(target=tick, daemon=True).start()
inp, out = sys.stdin.buffer, sys.stdout.buffer
out.write(b"READY\n"); out.flush()
while line := inp.readline():
    if line == b"EXPORT\n":
        data = json.dumps(state).encode()
        out.write(b"STATE %d\n" % len(data) + data)
    elif line.startswith(b"IMPORT "):
        state.update(json.loads(inp.read(int(line[7:]))))
        out.write(b"IMPORTED\n")
    out.flush()
"#;

/// v2 keeps `{"schema": 2, "ticks": N, "migrated_from": V}`.
const COUNTER_V2: &str = r#"import json, sys, threading, time
state = {"schema": 2, "ticks": 0, "migrated_from": None}
def tick():
    while True:
        time.sleep(0.01)
        state["ticks"] += 1
threading.Thread(target=tick, daemon=True).start()
inp, out = sys.stdin.buffer, sys.stdout.buffer
out.write(b"READY\n"); out.flush()
while line := inp.readline():
    if line == b"EXPORT\n":
        data = json.dumps(state).encode()
        out.write(b"STATE %d\n" % len(data) + data)
    elif line.startswith(b"IMPORT "):
        new = json.loads(inp.read(int(line[7:])))
        if new.get("schema") != 2:
            out.write(b"ERROR expected schema 2\n")
        else:
            state.update(new)
            out.write(b"IMPORTED\n")
    out.flush()
"#;

/// v3 crashes when it is handed a state.
const COUNTER_V3: &str = r#"import sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
while line := inp.readline():
    if line.startswith(b"IMPORT "):
        sys.exit("v3: cannot read this state")
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sandbox_exec::dispatch();

    let state_dir = tempfile::tempdir()?;
    let executor = Executor::new()?;
    let launcher = ConfinedLauncher::new(executor)?;
    let manager = Manager::open(state_dir.path())?.with_launcher(Arc::new(launcher));

    // The service waits for its code: the first deploy replaces the waiting
    // shell with counter.py v1 (a deploy to a running service restarts it).
    let service = ServiceSpec::new([
        "/bin/sh",
        "-c",
        r#"while [ ! -f "$SANDBOX_CODE_DIR/counter.py" ]; do sleep 0.05; done
exec python3 -u "$SANDBOX_CODE_DIR/counter.py""#,
    ]);
    let spec = SandboxSpec::new(confined_policy()?)
        .limits(Limits {
            memory: Some(128 << 20),
            pids: Some(16),
            ..Limits::default()
        })
        .service(service);
    let name = "counter";
    manager.create(name, spec)?;
    manager.hot_reload(
        name,
        "counter.py",
        COUNTER_V1.as_bytes(),
        Default::default(),
    )?;
    println!(
        "service {name} runs counter.py v1: {}",
        status(&manager, name)?
    );

    std::thread::sleep(Duration::from_millis(300));
    let before = manager.service_state(name, Duration::from_secs(5))?;
    println!("v1 state now: {}", String::from_utf8_lossy(&before));

    let opts = ReloadOptions::default()
        .wait_ready(true)
        .state_handler(|old, from, to| {
            let old =
                String::from_utf8(old).map_err(|e| format!("v{from} state is not text: {e}"))?;
            let count = json_number(&old, "count")
                .ok_or_else(|| format!("v{from} state {old} has no count"))?;
            let new = format!(r#"{{"schema": 2, "ticks": {count}, "migrated_from": {from}}}"#);
            println!("  handler: v{from} {old} -> v{to} {new}");
            Ok(new.into_bytes())
        });
    let report = manager.hot_reload(name, "counter.py", COUNTER_V2.as_bytes(), opts)?;
    println!(
        "reloaded v{} -> v{}: migrated={}, new version serving after {:?} (its own start-up {:?}), whole call {:?}",
        report.from.unwrap_or(0),
        report.to,
        report.migrated,
        report.serving_after.unwrap_or_default(),
        report.service_startup.unwrap_or_default(),
        report.duration
    );
    std::thread::sleep(Duration::from_millis(200));
    let after = manager.service_state(name, Duration::from_secs(5))?;
    println!(
        "v2 state now: {} (it kept counting from v1's count)",
        String::from_utf8_lossy(&after)
    );

    let opts = ReloadOptions::default().state_handler(|old, _, _| Ok(old));
    let report = manager.hot_reload(name, "counter.py", COUNTER_V3.as_bytes(), opts)?;
    println!(
        "deploying v{}: {}",
        report.to,
        report
            .rolled_back
            .as_deref()
            .map(|why| format!("rolled back ({why})"))
            .unwrap_or_else(|| "took".into())
    );
    let history = manager.get_version_history(name, "counter.py")?;
    println!(
        "active: v{} of {} versions; service {}",
        history.current_version.unwrap_or(0),
        history.total_versions,
        status(&manager, name)?
    );
    let kept = manager.service_state(name, Duration::from_secs(5))?;
    println!(
        "v2 state after the failed reload: {}",
        String::from_utf8_lossy(&kept)
    );

    manager.destroy(name)?;
    println!("destroyed {name}: its service is gone");
    Ok(())
}

/// The number after `"key": ` in a flat JSON object (enough for this state;
/// a real host would use serde_json).
fn json_number(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(&format!("\"{key}\":"))? + key.len() + 3..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn status(manager: &Manager, name: &str) -> Result<String, Box<dyn std::error::Error>> {
    Ok(match manager.info(name)?.service {
        ServiceStatus::Running { pid, .. } => format!("running (pid {})", pid.unwrap_or(0)),
        other => format!("{other:?}"),
    })
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
