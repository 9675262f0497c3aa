//! Services: long-lived processes confined like evaluations, whose standard
//! input and output are the caller's, killed with everything they started.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{executor, processes_tagged, unique_tag};
use sandbox_core::manager::{
    Manager, ReloadOptions, SandboxSpec, ServiceProcess, ServiceSpec, ServiceStatus,
};
use sandbox_core::LimitKind;
use sandbox_exec::{Command, ConfinedLauncher, EvalRequest, Limits};
use sandbox_policy::{Context, HostFs, Policy};

fn workspace() -> tempfile::TempDir {
    // Outside /tmp, which a confined process sees as a private tmpfs.
    tempfile::Builder::new()
        .prefix("sbx-service-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

fn writable(dir: &Path) -> Policy {
    let ctx = Context {
        home: std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/".into()),
        cwd: std::env::current_dir().unwrap(),
    };
    Policy::builder(ctx)
        .allow(format!("Edit({})", dir.display()))
        .build(&HostFs)
        .expect("policy")
        .0
}

fn launcher() -> ConfinedLauncher {
    ConfinedLauncher::new(executor()).expect("launcher")
}

/// Sends `line` and returns the service's one-line answer.
fn ask(
    to: &mut dyn Write,
    from: &mut BufReader<Box<dyn std::io::Read + Send>>,
    line: &str,
) -> String {
    writeln!(to, "{line}").unwrap();
    to.flush().unwrap();
    let mut answer = String::new();
    from.read_line(&mut answer).unwrap();
    answer.trim_end().to_string()
}

fn wait_exit(service: &mut dyn ServiceProcess) -> sandbox_core::manager::ServiceExit {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = service.try_wait().unwrap() {
            return exit;
        }
        assert!(Instant::now() < until, "the service did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_service_talks_over_its_standard_input_and_output_and_is_confined() {
    let dir = workspace();
    let script = r#"while read path; do
        if echo x > "$path" 2>/dev/null; then echo written; else echo refused; fi
    done"#;
    let request = EvalRequest::new(Command::shell(script))
        .policy(writable(dir.path()))
        .cwd(dir.path());
    let mut service = launcher().spawn(request).unwrap();
    let control = service.take_control().expect("control channel");
    let (mut to, mut from) = (control.to_service, BufReader::new(control.from_service));
    let inside = dir.path().join("inside");
    assert_eq!(
        ask(&mut to, &mut from, &inside.display().to_string()),
        "written"
    );
    assert_eq!(
        ask(&mut to, &mut from, "/var/tmp/sbx-service-outside"),
        "refused"
    );
    assert!(!Path::new("/var/tmp/sbx-service-outside").exists());
    assert_eq!(std::fs::read_to_string(inside).unwrap(), "x\n");
    drop(to); // end of input: the loop ends, the service exits 0
    let exit = wait_exit(&mut service);
    assert_eq!(exit.code, Some(0), "{exit}");
}

#[test]
fn a_service_that_exits_reports_its_code() {
    let request = EvalRequest::new(Command::shell("echo bye >&2; exit 3"));
    let mut service = launcher().spawn(request).unwrap();
    let exit = wait_exit(&mut service);
    assert_eq!((exit.code, exit.signal), (Some(3), None));
    // Its standard error is drained by a thread of its own: soon, not at once.
    let until = Instant::now() + Duration::from_secs(5);
    while service.stderr_tail().is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(service.stderr_tail(), b"bye\n");
}

#[test]
fn a_service_ended_by_its_memory_limit_says_so() {
    let request = EvalRequest::new(Command::argv([
        "/usr/bin/python3",
        "-c",
        "chunks = []\nwhile True: chunks.append(bytearray(16 << 20))",
    ]))
    .limits(Limits {
        memory: Some(64 << 20),
        ..Limits::default()
    });
    let mut service = launcher().spawn(request).unwrap();
    let exit = wait_exit(&mut service);
    if common::is_root() {
        // The cgroup's OOM killer, counted: a limit, not a crash.
        assert_eq!(exit.limit, Some(LimitKind::Memory), "{exit}");
        assert!(exit.to_string().ends_with("(memory limit)"), "{exit}");
    } else {
        // RLIMIT_AS: the allocation fails inside Python (MemoryError), which
        // exits 1; nothing tells that apart from any other failure.
        assert_eq!(exit.code, Some(1), "{exit}");
    }
}

#[test]
fn a_service_that_exits_on_its_own_is_no_limit_hit() {
    let mut service = launcher()
        .spawn(EvalRequest::new(Command::shell("exit 0")).limits(Limits {
            memory: Some(64 << 20),
            pids: Some(8),
            ..Limits::default()
        }))
        .unwrap();
    assert_eq!(wait_exit(&mut service).limit, None);
}

#[test]
fn killing_a_service_leaves_none_of_its_processes() {
    let dir = workspace();
    let tag = unique_tag("service");
    let request = EvalRequest::new(Command::shell(format!(
        "sh -c 'sleep 300' {tag} & setsid sh -c 'sleep 300' {tag} & echo started; wait"
    )))
    .policy(writable(dir.path()));
    let mut service = launcher().spawn(request).unwrap();
    let control = service.take_control().unwrap();
    let mut from = BufReader::new(control.from_service);
    let mut line = String::new();
    from.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        "started\n",
        "{:?} {}",
        service.exit(),
        String::from_utf8_lossy(&service.stderr_tail())
    );
    // Forked before the echo, but maybe not yet exec'd.
    let until = Instant::now() + Duration::from_secs(10);
    while processes_tagged(&tag).len() < 2 {
        assert!(
            Instant::now() < until,
            "the sleepers did not start: {:?} {:?} {}",
            processes_tagged(&tag),
            service.exit(),
            String::from_utf8_lossy(&service.stderr_tail())
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    service.kill().unwrap();
    assert_eq!(processes_tagged(&tag), Vec::<u32>::new());
    assert!(service.try_wait().unwrap().is_some());
}

/// A service speaking the manager's control protocol: it counts the lines it
/// is sent, exports the count as its state and imports one.
const COUNTER: &str = r#"
n=0
echo READY
while read cmd len; do
    case "$cmd" in
        EXPORT) printf 'STATE %s\n%s' "${#n}" "$n" ;;
        IMPORT) n=$(head -c "$len"); echo IMPORTED ;;
        *) n=$((n + 1)) ;;
    esac
done
"#;

#[test]
fn the_manager_supervises_a_confined_service_and_migrates_its_state() {
    let state = workspace();
    let manager = Manager::open(state.path().join("state"))
        .unwrap()
        .with_launcher(Arc::new(launcher()));
    let spec = SandboxSpec::new(writable(state.path()))
        .service(ServiceSpec::new(["/bin/sh", "-c", COUNTER]));
    manager.create("counter", spec).unwrap();
    let status = manager.start_service("counter").unwrap();
    assert!(
        matches!(status, ServiceStatus::Running { .. }),
        "{status:?}"
    );
    assert_eq!(
        manager
            .service_state("counter", Duration::from_secs(10))
            .unwrap(),
        b"0"
    );
    let report = manager
        .hot_reload(
            "counter",
            "counter.sh",
            COUNTER.as_bytes(),
            ReloadOptions::default().state_handler(|old, _, _| {
                let n: u32 = String::from_utf8(old).unwrap().parse().unwrap();
                Ok((n + 41).to_string().into_bytes())
            }),
        )
        .unwrap();
    assert!(report.rolled_back.is_none(), "{report:?}");
    assert_eq!(
        manager
            .service_state("counter", Duration::from_secs(10))
            .unwrap(),
        b"41"
    );
    manager.stop_service("counter").unwrap();
    manager.destroy("counter").unwrap();
}

#[test]
fn the_manager_records_a_service_killed_by_its_memory_limit() {
    if !common::is_root() {
        // Without cgroups the memory limit is RLIMIT_AS, which fails the
        // allocation instead of killing: no limit event to tell apart.
        return;
    }
    let state = workspace();
    let manager = Manager::open(state.path().join("state"))
        .unwrap()
        .with_launcher(Arc::new(launcher()));
    let events = manager.subscribe();
    let hog = "chunks = []\nwhile True: chunks.append(bytearray(16 << 20))";
    let spec = SandboxSpec::new(writable(state.path()))
        .limits(Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        })
        .service(ServiceSpec::new(["/usr/bin/python3", "-c", hog]));
    manager.create("hog", spec).unwrap();
    manager.start_service("hog").unwrap();
    let crashed = loop {
        let event = events.recv_timeout(Duration::from_secs(20)).unwrap();
        if let sandbox_core::manager::EventKind::ServiceCrashed { exit } = event.kind {
            break exit;
        }
    };
    assert_eq!(crashed.limit, Some(LimitKind::Memory), "{crashed}");
    manager.stop_service("hog").unwrap();
    assert!(manager.info("hog").unwrap().metrics.limit_hits >= 1);
    manager.destroy("hog").unwrap();
}
