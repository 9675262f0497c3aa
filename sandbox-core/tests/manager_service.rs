//! Supervised services: restarts with backoff, the restart intensity, stop
//! and destroy, hot reload with state migration and automatic rollback.
//!
//! The launcher here starts plain child processes (in their own process
//! group, killed as a group): supervision is logic, and these tests claim
//! nothing about confinement.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbox_core::manager::{
    ControlChannel, EventKind, LaunchError, ManagerEvent, ReloadOptions, RestartStrategy,
    ServiceExit, ServiceLaunch, ServiceLauncher, ServiceProcess, ServiceSpec, ServiceStatus,
};
use sandbox_core::{Manager, SandboxSpec};

struct ProcessLauncher;

struct ChildService {
    child: Child,
    reaped: bool,
}

impl ServiceLauncher for ProcessLauncher {
    fn launch(&self, launch: &ServiceLaunch) -> Result<Box<dyn ServiceProcess>, LaunchError> {
        let argv = launch.request.command.to_argv();
        let env: BTreeMap<String, String> = launch.request.effective_env(std::env::vars());
        let child = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(env)
            .current_dir(launch.request.cwd.as_ref().unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        Ok(Box::new(ChildService {
            child,
            reaped: false,
        }))
    }
}

impl ServiceProcess for ChildService {
    fn pid(&self) -> Option<u32> {
        Some(self.child.id())
    }

    fn try_wait(&mut self) -> io::Result<Option<ServiceExit>> {
        let status = self.child.try_wait()?;
        self.reaped |= status.is_some();
        Ok(status.map(|s| ServiceExit {
            code: s.code(),
            signal: s.signal(),
            limit: None,
        }))
    }

    fn kill(&mut self) -> io::Result<()> {
        // The whole group, so that children of the service go too.
        unsafe { libc::killpg(self.child.id() as i32, libc::SIGKILL) };
        if !self.reaped {
            self.child.wait()?;
            self.reaped = true;
        }
        Ok(())
    }

    fn take_control(&mut self) -> Option<ControlChannel> {
        Some(ControlChannel {
            to_service: Box::new(self.child.stdin.take()?),
            from_service: Box::new(self.child.stdout.take()?),
        })
    }
}

fn manager() -> (tempfile::TempDir, Manager) {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path())
        .unwrap()
        .with_launcher(Arc::new(ProcessLauncher));
    (dir, m)
}

fn strategy(max: u32, backoff_ms: u64) -> RestartStrategy {
    RestartStrategy {
        max_restarts: max,
        period: Duration::from_secs(30),
        backoff_initial: Duration::from_millis(backoff_ms),
        backoff_max: Duration::from_millis(backoff_ms * 8),
    }
}

fn sh(script: &str, restart: RestartStrategy) -> SandboxSpec {
    SandboxSpec::default().service(ServiceSpec::new(["/bin/sh", "-c", script]).restart(restart))
}

/// Waits for the first event matching `pred`, or panics after 10 s.
fn wait_for(
    events: &Receiver<ManagerEvent>,
    what: &str,
    pred: impl Fn(&EventKind) -> bool,
) -> (Instant, EventKind) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(e) if pred(&e.kind) => return (Instant::now(), e.kind),
            Ok(_) => continue,
            Err(_) => panic!("no {what} event within 10 s"),
        }
    }
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        // No /proc (macOS): ask the kernel.
        Err(_) if !std::path::Path::new("/proc/self").exists() => unsafe {
            libc::kill(pid as i32, 0) == 0
        },
        Err(_) => false,
    }
}

fn service_pid(m: &Manager, name: &str) -> u32 {
    match m.info(name).unwrap().service {
        ServiceStatus::Running { pid: Some(pid), .. } => pid,
        other => panic!("service of {name} not running: {other:?}"),
    }
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_crash_storm_hits_the_restart_intensity_and_leaves_the_service_failed() {
    let (_dir, m) = manager();
    let events = m.subscribe();
    m.create("storm", sh("exit 1", strategy(3, 1))).unwrap();
    let (_, kind) = wait_for(&events, "service_failed", |k| {
        matches!(k, EventKind::ServiceFailed { .. })
    });
    let EventKind::ServiceFailed { reason } = kind else {
        unreachable!()
    };
    assert!(reason.contains("exceed the restart intensity"), "{reason}");
    let info = m.info("storm").unwrap();
    assert!(matches!(info.service, ServiceStatus::Failed { .. }));
    assert_eq!(
        (info.metrics.service_crashes, info.metrics.service_restarts),
        (4, 3)
    );
}

#[test]
fn a_service_that_crashes_once_is_restarted_after_the_backoff() {
    let (_dir, m) = manager();
    let events = m.subscribe();
    let script = "if [ -e crashed ]; then exec sleep 60; else touch crashed; exit 7; fi";
    m.create("once", sh(script, strategy(3, 300))).unwrap();
    let (crashed_at, kind) = wait_for(&events, "service_crashed", |k| {
        matches!(k, EventKind::ServiceCrashed { .. })
    });
    assert_eq!(
        kind,
        EventKind::ServiceCrashed {
            exit: ServiceExit {
                code: Some(7),
                signal: None,
                limit: None
            }
        }
    );
    let (restarted_at, kind) = wait_for(&events, "service_restarted", |k| {
        matches!(k, EventKind::ServiceRestarted { .. })
    });
    assert!(
        restarted_at - crashed_at >= Duration::from_millis(250),
        "restarted after {:?}",
        restarted_at - crashed_at
    );
    assert!(matches!(
        kind,
        EventKind::ServiceRestarted { attempt: 1, after, .. } if after == Duration::from_millis(300)
    ));
    let pid = service_pid(&m, "once");
    assert!(alive(pid));
    assert_eq!(m.metrics("once").unwrap().service_restarts, 1);
}

#[test]
fn stop_and_destroy_leave_no_process_of_the_service_behind() {
    let (_dir, m) = manager();
    let script = "sleep 60 & echo $! > child.pid; exec sleep 60";
    for name in ["stopped", "destroyed"] {
        let info = m.create(name, sh(script, strategy(3, 10))).unwrap();
        let pid = service_pid(&m, name);
        let child_file = info.workspace.join("child.pid");
        wait_until("child.pid", || {
            fs::read_to_string(&child_file).is_ok_and(|s| s.ends_with('\n'))
        });
        let child: u32 = fs::read_to_string(&child_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(alive(pid) && alive(child));
        if name == "stopped" {
            m.stop_service(name).unwrap();
            assert_eq!(m.info(name).unwrap().service, ServiceStatus::Stopped);
        } else {
            m.destroy(name).unwrap();
        }
        assert!(!alive(pid), "{name}: service {pid} still alive");
        // The group's SIGKILL reaches the orphaned child asynchronously (the
        // launcher reaps only its own child): allow a moment, not a timeout's worth.
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive(child) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!alive(child), "{name}: its child {child} still alive");
    }
}

#[test]
fn dropping_the_manager_stops_its_services() {
    let (_dir, m) = manager();
    m.create("dropped", sh("exec sleep 60", strategy(3, 10)))
        .unwrap();
    let pid = service_pid(&m, "dropped");
    drop(m);
    assert!(!alive(pid));
}

#[test]
fn restart_brings_a_failed_service_back() {
    let (dir, m) = manager();
    let events = m.subscribe();
    m.create(
        "flaky",
        sh("[ -e ok ] && exec sleep 60; exit 1", strategy(0, 1)),
    )
    .unwrap();
    wait_for(&events, "service_failed", |k| {
        matches!(k, EventKind::ServiceFailed { .. })
    });
    fs::write(dir.path().join("sandboxes/flaky/workspace/ok"), b"").unwrap();
    let info = m.restart("flaky").unwrap();
    assert!(matches!(info.service, ServiceStatus::Running { .. }));
    assert_eq!(info.restarts, 1);
}

/// A Python service speaking the control protocol; it records which version
/// runs in `workspace/version` and starts with the state `hits=41`.
fn python_service(version: &str) -> Vec<u8> {
    format!(
        r#"import os, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer
with open(os.path.join(os.environ["SANDBOX_WORKSPACE"], "version"), "w") as f:
    f.write("{version}")
state = b"hits=41"
out.write(b"READY\n"); out.flush()
while True:
    line = inp.readline()
    if not line:
        break
    if line == b"EXPORT\n":
        out.write(b"STATE %d\n" % len(state) + state)
    elif line.startswith(b"IMPORT "):
        state = inp.read(int(line[7:]))
        out.write(b"IMPORTED\n")
    out.flush()
"#
    )
    .into_bytes()
}

fn python_sandbox(m: &Manager, name: &str) -> std::path::PathBuf {
    let spec = SandboxSpec::default().service(
        ServiceSpec::new([
            "/bin/sh",
            "-c",
            "[ -e \"$SANDBOX_CODE_DIR/app.py\" ] || exec sleep 60; \
             exec python3 -u \"$SANDBOX_CODE_DIR/app.py\"",
        ])
        .restart(strategy(3, 10)),
    );
    // The service idles until the first version is installed, which replaces it.
    let info = m.create(name, spec).unwrap();
    let report = m
        .hot_reload(
            name,
            "app.py",
            &python_service("v1"),
            ReloadOptions::default(),
        )
        .unwrap();
    assert!(report.service_restarted && report.rolled_back.is_none());
    info.workspace
}

fn migrate() -> ReloadOptions {
    ReloadOptions::default().state_handler(|old, from, to| {
        let mut new = old;
        new.extend_from_slice(format!(";migrated {from}->{to}").as_bytes());
        Ok(new)
    })
}

fn running_version(ws: &std::path::Path) -> String {
    fs::read_to_string(ws.join("version")).unwrap_or_default()
}

#[test]
fn hot_reload_migrates_the_state_of_the_running_service_into_the_new_version() {
    let (_dir, m) = manager();
    let ws = python_sandbox(&m, "mig");
    wait_until("v1 running", || running_version(&ws) == "v1");
    let timeout = Duration::from_secs(5);
    assert_eq!(m.service_state("mig", timeout).unwrap(), b"hits=41");
    let old_pid = service_pid(&m, "mig");

    let report = m
        .hot_reload("mig", "app.py", &python_service("v2"), migrate())
        .unwrap();
    assert_eq!(report.rolled_back, None);
    assert_eq!((report.from, report.to), (Some(1), 2));
    assert!(report.migrated && report.service_restarted);
    assert_eq!(running_version(&ws), "v2");
    assert_ne!(service_pid(&m, "mig"), old_pid);
    assert!(!alive(old_pid));
    assert_eq!(
        m.service_state("mig", timeout).unwrap(),
        b"hits=41;migrated 1->2"
    );
    assert_eq!(m.get_module_version("mig", "app.py").unwrap(), 2);
}

#[test]
fn a_new_version_that_exits_at_once_is_rolled_back_with_the_old_state() {
    let (_dir, m) = manager();
    let ws = python_sandbox(&m, "bad");
    wait_until("v1 running", || running_version(&ws) == "v1");
    m.hot_reload("bad", "app.py", &python_service("v2"), migrate())
        .unwrap();
    let events = m.subscribe();
    let report = m
        .hot_reload("bad", "app.py", b"import sys\nsys.exit(3)\n", migrate())
        .unwrap();
    let reason = report.rolled_back.expect("rolled back");
    assert!(reason.contains("new version"), "{reason}");
    assert_eq!((report.from, report.to), (Some(2), 3));
    assert_eq!(m.get_module_version("bad", "app.py").unwrap(), 2);
    let history = m.get_version_history("bad", "app.py").unwrap();
    assert_eq!(
        (history.current_version, history.total_versions),
        (Some(2), 3)
    );
    assert_eq!(
        m.service_state("bad", Duration::from_secs(5)).unwrap(),
        b"hits=41;migrated 1->2",
        "the previous version got its own state back, unmigrated"
    );
    assert_eq!(running_version(&ws), "v2");
    wait_for(&events, "rolled_back", |k| {
        matches!(k, EventKind::RolledBack { to: Some(2), .. })
    });
}

#[test]
fn a_state_handler_error_rolls_back_and_is_reported() {
    let (_dir, m) = manager();
    let ws = python_sandbox(&m, "herr");
    wait_until("v1 running", || running_version(&ws) == "v1");
    let opts = ReloadOptions::default().state_handler(|_, _, _| Err("schema too old".into()));
    let report = m
        .hot_reload("herr", "app.py", &python_service("v2"), opts)
        .unwrap();
    let reason = report.rolled_back.unwrap();
    assert!(reason.contains("schema too old"), "{reason}");
    assert_eq!(m.get_module_version("herr", "app.py").unwrap(), 1);
    assert_eq!(running_version(&ws), "v1");
}

/// Reload latency with migration: call to the new version's import
/// acknowledged, minus the new process's own start-up (launch to READY).
#[test]
fn reload_latency_excluding_service_start_up() {
    let (_dir, m) = manager();
    let ws = python_sandbox(&m, "bench");
    wait_until("v1 running", || running_version(&ws) == "v1");
    let mut overhead = Vec::new();
    let mut total = Vec::new();
    for i in 0..20 {
        let opts = migrate().wait_ready(true).grace(Duration::ZERO);
        let report = m
            .hot_reload(
                "bench",
                "app.py",
                &python_service(&format!("v{}", i + 2)),
                opts,
            )
            .unwrap();
        assert_eq!(report.rolled_back, None);
        let serving = report.serving_after.unwrap();
        total.push(serving);
        overhead.push(serving - report.service_startup.unwrap());
    }
    overhead.sort();
    total.sort();
    eprintln!(
        "reload to serving: p50 {:?} (manager overhead p50 {:?}, max {:?})",
        total[10], overhead[10], overhead[19]
    );
    assert!(
        overhead[10] < Duration::from_millis(200),
        "{:?}",
        overhead[10]
    );
}

#[test]
fn creating_and_destroying_sandboxes_with_services_leaves_no_process_and_no_file() {
    let (dir, m) = manager();
    let entries = |p: &std::path::Path| fs::read_dir(p.join("sandboxes")).unwrap().count();
    let mut pids = Vec::new();
    for i in 0..50 {
        let name = format!("svc{i}");
        m.create(&name, sh("exec sleep 60", strategy(3, 10)))
            .unwrap();
        pids.push(service_pid(&m, &name));
        m.destroy(&name).unwrap();
    }
    assert_eq!(entries(dir.path()), 0);
    let left: Vec<u32> = pids.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
}

#[test]
fn a_service_that_cannot_be_launched_fails_create_and_leaves_nothing() {
    let (dir, m) = manager();
    let spec = SandboxSpec::default().service(ServiceSpec::new(["/nonexistent/program"]));
    let err = m.create("ghost", spec).unwrap_err();
    assert!(
        matches!(err, sandbox_core::ManagerError::Launch { ref name, .. } if name == "ghost"),
        "{err:?}"
    );
    assert!(m.list().is_empty());
    assert_eq!(
        fs::read_dir(dir.path().join("sandboxes")).unwrap().count(),
        0
    );
}
