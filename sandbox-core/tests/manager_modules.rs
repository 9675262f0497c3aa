//! Module versions, rollback and history; snapshots and restore.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use sandbox_core::manager::{ManagerError, ReloadOptions};
use sandbox_core::{Manager, SandboxSpec};
use sha2::{Digest, Sha256};

fn open() -> (tempfile::TempDir, Manager) {
    let dir = tempfile::tempdir().unwrap();
    let m = Manager::open(dir.path()).unwrap();
    m.create("s", SandboxSpec::default()).unwrap();
    (dir, m)
}

fn reload(m: &Manager, module: &str, bytes: &[u8]) -> u32 {
    m.hot_reload("s", module, bytes, ReloadOptions::default())
        .unwrap()
        .to
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn rollback_restores_the_exact_bytes_of_the_old_version() {
    let (_dir, m) = open();
    let v1: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let v2 = b"#!/bin/sh\necho two\n".to_vec();
    reload(&m, "plugin.bin", &v1);
    reload(&m, "plugin.bin", &v2);
    let code = m.code_dir("s").unwrap().join("plugin.bin");
    assert_eq!(fs::read(&code).unwrap(), v2);

    let report = m.rollback_module("s", "plugin.bin", 1).unwrap();
    assert_eq!((report.from, report.to), (Some(2), 1));
    assert_eq!(fs::read(&code).unwrap(), v1);
    assert_eq!(m.module_bytes("s", "plugin.bin", None).unwrap(), v1);
    assert_eq!(m.get_module_version("s", "plugin.bin").unwrap(), 1);
}

#[test]
fn history_reports_current_total_and_each_versions_hash_size_and_time() {
    let (_dir, m) = open();
    let contents: [&[u8]; 3] = [b"one", b"two!", b"three"];
    for c in contents {
        reload(&m, "app.py", c);
    }
    m.rollback_module("s", "app.py", 2).unwrap();
    let h = m.get_version_history("s", "app.py").unwrap();
    assert_eq!(h.current_version, Some(2));
    assert_eq!(h.total_versions, 3);
    for (i, (v, c)) in h.versions.iter().zip(contents).enumerate() {
        assert_eq!(v.version, i as u32 + 1);
        assert_eq!(v.sha256, hex(c));
        assert_eq!(v.size, c.len() as u64);
    }
    assert!(h
        .versions
        .windows(2)
        .all(|w| w[0].created_at <= w[1].created_at));
    assert_eq!(m.list_module_versions("s", "app.py").unwrap(), h.versions);
}

#[test]
fn reloading_the_active_bytes_adds_no_version() {
    let (_dir, m) = open();
    reload(&m, "a", b"same");
    let report = m
        .hot_reload("s", "a", b"same", ReloadOptions::default())
        .unwrap();
    assert_eq!((report.from, report.to), (Some(1), 1));
    assert_eq!(m.get_version_history("s", "a").unwrap().total_versions, 1);
}

#[test]
fn equal_bytes_in_two_versions_are_stored_once() {
    let (dir, m) = open();
    reload(&m, "a", b"first");
    reload(&m, "a", b"second");
    reload(&m, "a", b"first");
    assert_eq!(m.get_version_history("s", "a").unwrap().total_versions, 3);
    let objects: usize = fs::read_dir(dir.path().join("objects"))
        .unwrap()
        .map(|fan| fs::read_dir(fan.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(objects, 2);
}

#[test]
fn the_code_dir_holds_each_active_module_under_its_name_read_only() {
    let (_dir, m) = open();
    reload(&m, "main.py", b"print(1)");
    reload(&m, "lib.py", b"X = 2");
    let code = m.code_dir("s").unwrap();
    let mut names: Vec<String> = fs::read_dir(&code)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["lib.py", "main.py"]);
    assert!(fs::metadata(code.join("main.py"))
        .unwrap()
        .permissions()
        .readonly());
}

#[test]
fn rollback_to_an_unknown_version_says_how_many_there_are() {
    let (_dir, m) = open();
    reload(&m, "a", b"x");
    let err = m.rollback_module("s", "a", 5).unwrap_err();
    assert!(matches!(
        err,
        ManagerError::VersionNotFound {
            version: 5,
            total: 1,
            ..
        }
    ));
    assert!(matches!(
        m.rollback_module("s", "nope", 1),
        Err(ManagerError::ModuleNotFound { .. })
    ));
}

#[test]
fn rollback_refuses_an_object_whose_bytes_changed_naming_it() {
    let (dir, m) = open();
    reload(&m, "a", b"original");
    reload(&m, "a", b"newer");
    let object = dir
        .path()
        .join("objects")
        .join(&hex(b"original")[..2])
        .join(&hex(b"original")[2..]);
    let mut perms = fs::metadata(&object).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(&object, perms).unwrap();
    fs::write(&object, b"tampered").unwrap();
    let err = m.rollback_module("s", "a", 1).unwrap_err();
    assert!(
        matches!(&err, ManagerError::Corrupt { path, .. } if path == &object),
        "{err:?}"
    );
    assert_eq!(m.get_module_version("s", "a").unwrap(), 2);
}

/// Kind, permission bits and content (or link target) of every entry under `root`.
#[cfg(unix)]
fn describe(root: &Path) -> BTreeMap<String, (String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (String, u32, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o777;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, ("link".into(), 0, target.display().to_string().into()));
            } else if meta.is_dir() {
                out.insert(rel, ("dir".into(), mode, Vec::new()));
                walk(root, &path, out);
            } else {
                out.insert(rel, ("file".into(), mode, fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[cfg(unix)]
#[test]
fn restore_makes_the_workspace_identical_and_reactivates_the_recorded_versions() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let (_dir, m) = open();
    let ws = m.info("s").unwrap().workspace;
    fs::create_dir_all(ws.join("a/b/c")).unwrap();
    fs::write(ws.join("a/b/c/deep.txt"), b"deep").unwrap();
    fs::write(ws.join("run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(ws.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(ws.join("secret"), b"s3cr3t").unwrap();
    fs::set_permissions(ws.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink("a/b/c/deep.txt", ws.join("link")).unwrap();
    symlink("/does/not/exist", ws.join("dangling")).unwrap();
    fs::create_dir(ws.join("ro")).unwrap();
    fs::write(ws.join("ro/fixed"), b"fixed").unwrap();
    fs::set_permissions(ws.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    reload(&m, "app.py", b"v1");
    let before = describe(&ws);

    let snap = m.snapshot("s", "base").unwrap();
    assert_eq!(snap.files, 4);

    fs::write(ws.join("a/b/c/deep.txt"), b"changed").unwrap();
    fs::remove_file(ws.join("link")).unwrap();
    symlink("run.sh", ws.join("link")).unwrap();
    fs::set_permissions(ws.join("secret"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(ws.join("new.txt"), b"new").unwrap();
    fs::set_permissions(ws.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir_all(ws.join("ro")).unwrap();
    reload(&m, "app.py", b"v2");
    reload(&m, "added.py", b"later");

    m.restore("s", "base").unwrap();
    assert_eq!(describe(&ws), before);
    assert_eq!(m.get_module_version("s", "app.py").unwrap(), 1);
    let code = m.code_dir("s").unwrap();
    assert_eq!(fs::read(code.join("app.py")).unwrap(), b"v1");
    assert!(
        !code.join("added.py").exists(),
        "a module installed after the snapshot is deactivated"
    );
    assert_eq!(m.modules("s").unwrap()["added.py"], None);
}

#[test]
fn snapshots_are_listed_deleted_and_refused_twice() {
    let (_dir, m) = open();
    m.snapshot("s", "one").unwrap();
    m.snapshot("s", "two").unwrap();
    assert!(matches!(
        m.snapshot("s", "one"),
        Err(ManagerError::SnapshotExists { .. })
    ));
    let names: Vec<String> = m
        .list_snapshots("s")
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["one", "two"]);
    m.delete_snapshot("s", "one").unwrap();
    assert_eq!(m.list_snapshots("s").unwrap().len(), 1);
    assert!(matches!(
        m.restore("s", "one"),
        Err(ManagerError::SnapshotNotFound { .. })
    ));
}
