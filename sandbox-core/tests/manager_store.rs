//! The manager's state directory: persistence, locking, corruption, names,
//! clean removal, and the requests it builds for evaluations.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sandbox_core::manager::{ManagerError, ReloadOptions, ServiceSpec, StateDir};
use sandbox_core::{
    Command, EvalId, Limits, Manager, Outcome, ResourceUsage, SandboxSpec, Status, StreamCounts,
    Termination,
};
use sandbox_policy::{FilesystemPolicy, Layer, Origin, PathPattern, PathRule, Policy};

fn spec() -> SandboxSpec {
    SandboxSpec::default()
        .entry(["python3", "main.py"])
        .env("MODE", "test")
        .limits(Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        })
}

fn outcome(status: Status) -> Outcome {
    Outcome {
        id: EvalId::next(),
        status,
        termination: Some(Termination::Exited(0)),
        output: Vec::new(),
        streams: StreamCounts::default(),
        truncation: None,
        wall_time: Duration::from_millis(5),
        usage: ResourceUsage {
            peak_memory_bytes: Some(1 << 20),
            ..ResourceUsage::default()
        },
        limits: Vec::new(),
        violations: Vec::new(),
        violations_unlisted: 0,
        weakened: Vec::new(),
    }
}

/// Every path under `root`, relative, directories marked with a trailing `/`.
fn tree(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                out.insert(format!("{rel}/"));
                walk(root, &path, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn store_file(dir: &Path, sandbox: &str, file: &str) -> PathBuf {
    dir.join("sandboxes").join(sandbox).join(file)
}

#[test]
fn a_new_manager_on_the_same_directory_sees_the_same_sandboxes_versions_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let m = Manager::open(dir.path()).unwrap();
        m.create("alpha", spec()).unwrap();
        m.create("beta", SandboxSpec::default()).unwrap();
        m.hot_reload("alpha", "main.py", b"v1", ReloadOptions::default())
            .unwrap();
        m.hot_reload("alpha", "main.py", b"v2", ReloadOptions::default())
            .unwrap();
        m.rollback_module("alpha", "main.py", 1).unwrap();
        m.record_outcome("alpha", &outcome(Status::TimedOut))
            .unwrap();
        m.snapshot("alpha", "first").unwrap();
        (
            m.info("alpha").unwrap(),
            m.get_version_history("alpha", "main.py").unwrap(),
        )
    };
    let m = Manager::open(dir.path()).unwrap();
    let names: Vec<String> = m.list().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(m.info("alpha").unwrap(), before.0);
    assert_eq!(m.get_version_history("alpha", "main.py").unwrap(), before.1);
    assert_eq!(m.metrics("alpha").unwrap().timeouts, 1);
    assert_eq!(m.list_snapshots("alpha").unwrap()[0].name, "first");
    assert_eq!(
        fs::read(m.code_dir("alpha").unwrap().join("main.py")).unwrap(),
        b"v1"
    );
}

#[test]
fn a_second_manager_on_an_open_directory_is_refused_naming_the_lock_and_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = Manager::open(dir.path()).unwrap();
    let err = Manager::open(dir.path()).unwrap_err();
    match &err {
        ManagerError::Locked { path, holder_pid } => {
            assert_eq!(path, &dir.path().join("lock"));
            assert_eq!(*holder_pid, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        err.to_string().contains("in use by another manager"),
        "{err}"
    );
    drop(first);
    Manager::open(dir.path()).expect("the lock goes with the manager");
}

#[test]
fn a_truncated_store_file_is_reported_with_its_path_and_only_that_sandbox_is_unusable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = Manager::open(dir.path()).unwrap();
        m.create("good", spec()).unwrap();
        m.create("bad", spec()).unwrap();
    }
    let file = store_file(dir.path(), "bad", "sandbox.json");
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();

    let m = Manager::open(dir.path()).unwrap();
    let names: Vec<String> = m.list().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["good"]);
    let err = m.info("bad").unwrap_err();
    assert!(
        matches!(&err, ManagerError::Corrupt { path, .. } if path == &file),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("truncated"), "{text}");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert_eq!(m.broken().len(), 1);
    m.destroy("bad").expect("a broken sandbox can be destroyed");
    assert!(m.broken().is_empty());
}

#[test]
fn an_altered_store_file_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = Manager::open(dir.path()).unwrap();
        m.create("s", spec()).unwrap();
        m.hot_reload("s", "main.py", b"code", ReloadOptions::default())
            .unwrap();
    }
    let file = store_file(dir.path(), "s", "modules.json");
    let text = fs::read_to_string(&file)
        .unwrap()
        .replace("\"current\": 1", "\"current\": 7");
    fs::write(&file, text).unwrap();
    let err = Manager::open(dir.path()).unwrap().info("s").unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert!(err.to_string().contains("modules.json"), "{err}");
}

#[test]
fn an_empty_or_foreign_store_file_is_reported_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = Manager::open(dir.path()).unwrap();
        m.create("empty", spec()).unwrap();
        m.create("foreign", spec()).unwrap();
    }
    fs::write(store_file(dir.path(), "empty", "metrics.json"), b"").unwrap();
    fs::write(
        store_file(dir.path(), "foreign", "metrics.json"),
        b"{\"evaluations\": 3}\n",
    )
    .unwrap();
    let m = Manager::open(dir.path()).unwrap();
    let empty = m.metrics("empty").unwrap_err().to_string();
    assert!(empty.contains("empty file"), "{empty}");
    let foreign = m.metrics("foreign").unwrap_err().to_string();
    assert!(foreign.contains("not a state file"), "{foreign}");
}

#[test]
fn bad_names_are_refused_saying_what_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path()).unwrap();
    for bad in [
        "",
        "../x",
        "Upper",
        "-dash",
        ".hidden",
        "a b",
        &"x".repeat(64),
    ] {
        let err = m.create(bad, spec()).unwrap_err();
        assert!(matches!(err, ManagerError::InvalidName { .. }), "{bad:?}");
        assert!(err.to_string().contains("a-z, 0-9, '_' and '-'"), "{err}");
    }
    m.create("ok", spec()).unwrap();
    let err = m
        .hot_reload("ok", "../escape", b"x", ReloadOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("invalid module name"), "{err}");
    assert!(m.list().len() == 1, "nothing was created for a bad name");
}

#[test]
fn a_duplicate_name_is_refused_and_the_first_sandbox_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path()).unwrap();
    let first = m.create("twin", spec()).unwrap();
    let err = m.create("twin", SandboxSpec::default()).unwrap_err();
    assert!(matches!(err, ManagerError::AlreadyExists(ref n) if n == "twin"));
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(m.info("twin").unwrap(), first);
}

#[test]
fn an_invalid_spec_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path()).unwrap();
    let before = tree(dir.path());
    let err = m
        .create(
            "svc",
            SandboxSpec::default().service(ServiceSpec::new(Vec::<String>::new())),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("service command is empty"),
        "{err}"
    );
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn creating_and_destroying_a_thousand_sandboxes_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path()).unwrap();
    let empty = tree(dir.path());
    let start = Instant::now();
    let mut create_destroy = Duration::ZERO;
    for i in 0..1000 {
        let name = format!("s{i}");
        let t = Instant::now();
        m.create(&name, spec()).unwrap();
        create_destroy += t.elapsed();
        // Shared and unique content, so that object collection is exercised.
        m.hot_reload(&name, "shared.py", b"shared", ReloadOptions::default())
            .unwrap();
        m.hot_reload(&name, "own.py", name.as_bytes(), ReloadOptions::default())
            .unwrap();
        if i % 100 == 0 {
            m.snapshot(&name, "snap").unwrap();
        }
        let t = Instant::now();
        m.destroy(&name).unwrap();
        create_destroy += t.elapsed();
    }
    let elapsed = start.elapsed();
    eprintln!(
        "x1000: create + 2 modules + destroy {:?} ({:?} each), of which create + destroy {:?} ({:?} each)",
        elapsed,
        elapsed / 1000,
        create_destroy,
        create_destroy / 1000
    );
    assert!(m.list().is_empty());
    assert_eq!(tree(dir.path()), empty);
}

#[test]
fn destroy_keeps_objects_still_used_by_another_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path()).unwrap();
    for name in ["a", "b"] {
        m.create(name, spec()).unwrap();
        m.hot_reload(name, "lib.py", b"same bytes", ReloadOptions::default())
            .unwrap();
    }
    m.destroy("a").unwrap();
    assert_eq!(m.module_bytes("b", "lib.py", None).unwrap(), b"same bytes");
}

#[test]
fn an_explicit_workspace_is_created_and_survives_destroy() {
    let dir = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let workspace = ws.path().join("project");
    let m = Manager::open(dir.path()).unwrap();
    let info = m
        .create("p", SandboxSpec::default().workspace(&workspace))
        .unwrap();
    assert_eq!(info.workspace, workspace);
    fs::write(workspace.join("keep.txt"), b"mine").unwrap();
    m.destroy("p").unwrap();
    assert_eq!(fs::read(workspace.join("keep.txt")).unwrap(), b"mine");
}

#[test]
fn eval_request_carries_policy_limits_workspace_and_code_dir() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path()).unwrap();
    let info = m.create("e", spec()).unwrap();
    let req = m.eval_request("e", Command::shell("ls")).unwrap();
    assert_eq!(req.cwd.as_deref(), Some(info.workspace.as_path()));
    assert_eq!(req.limits, spec().limits);
    assert_eq!(
        req.env["SANDBOX_CODE_DIR"],
        info.code_dir.display().to_string()
    );
    assert_eq!(req.env["SANDBOX_NAME"], "e");
    assert_eq!(req.env["MODE"], "test");
    assert!(
        req.policy.is_unrestricted(),
        "an unrestricted policy stays so"
    );
    assert_eq!(
        m.entry_request("e").unwrap().command,
        Command::argv(["python3", "main.py"])
    );
}

#[test]
fn a_restricted_policy_gets_the_workspace_writable_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path()).unwrap();
    let policy = Policy {
        filesystem: FilesystemPolicy {
            deny_read: vec![PathRule {
                pattern: PathPattern::new("/secret").unwrap(),
                origin: Origin::new(Layer::Flag, "--deny", "Read(/secret)"),
            }],
            ..FilesystemPolicy::default()
        },
        ..Policy::default()
    };
    let info = m.create("r", SandboxSpec::new(policy)).unwrap();
    let req = m.eval_request("r", Command::shell("true")).unwrap();
    let fs_policy = &req.policy.filesystem;
    assert!(fs_policy.can_write(&info.workspace.join("out.txt")));
    assert!(!fs_policy.can_write(&info.code_dir.join("main.py")));
    assert!(!fs_policy.can_read(Path::new("/secret/key")));
}

#[test]
fn record_outcome_counts_and_persists_evaluations() {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path()).unwrap();
    m.create("c", spec()).unwrap();
    let events = m.subscribe();
    m.record_outcome("c", &outcome(Status::Exited { code: 0 }))
        .unwrap();
    let metrics = m
        .record_outcome("c", &outcome(Status::MemoryLimit))
        .unwrap();
    assert_eq!(
        (metrics.evaluations, metrics.failures, metrics.limit_hits),
        (2, 1, 1)
    );
    assert_eq!(metrics.peak_memory_bytes, Some(1 << 20));
    let kinds: Vec<_> = events.try_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 2);
    drop(m);
    let m = Manager::open(dir.path()).unwrap();
    assert_eq!(m.metrics("c").unwrap(), metrics);
}

#[test]
fn state_dir_resolution_prefers_explicit_over_environment() {
    let explicit = StateDir::resolve(Some(PathBuf::from("/explicit"))).unwrap();
    assert_eq!(explicit.path(), Path::new("/explicit"));
}
