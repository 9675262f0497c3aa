//! Snapshots of a sandbox: a copy of its workspace (directories, regular
//! files with their permission bits, symbolic links as links) and the active
//! version of each module. Restoring one makes the workspace identical to the
//! copy and re-activates the recorded versions.
//!
//! Snapshots live in `sandboxes/NAME/snapshots/SNAP/` (`snapshot.json` plus
//! `workspace/`), are written under a hidden name and renamed into place, and
//! go away with the sandbox. Sockets, FIFOs and devices are not copied; the
//! snapshot lists them as skipped. Only the permission bits `0o777` are
//! kept (no set-id bits), and no owners or timestamps.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::{ManagerError, Result};
use super::events::EventKind;
use super::name::validate_snapshot_name;
use super::store;
use super::Manager;

/// Facts about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotInfo {
    /// Its name.
    pub name: String,
    /// When it was taken.
    pub created_at: SystemTime,
    /// The active version of each module then.
    pub modules: BTreeMap<String, Option<u32>>,
    /// Regular files copied.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Workspace entries not copied (sockets, FIFOs, devices), relative to it.
    pub skipped: Vec<PathBuf>,
}

#[derive(Default)]
struct CopyStats {
    files: u64,
    bytes: u64,
    skipped: Vec<PathBuf>,
}

impl Manager {
    /// Takes snapshot `snapshot` of sandbox `name`.
    pub fn snapshot(&self, name: &str, snapshot: &str) -> Result<SnapshotInfo> {
        validate_snapshot_name(snapshot)?;
        let (paths, workspace, modules) = self.shared.with(name, |sb| {
            Ok((
                sb.paths.clone(),
                sb.record.workspace.clone(),
                sb.modules.active(),
            ))
        })?;
        let dir = paths.snapshots().join(snapshot);
        if dir.exists() {
            return Err(ManagerError::SnapshotExists {
                sandbox: name.to_string(),
                snapshot: snapshot.to_string(),
            });
        }
        store::create_dir_all(&paths.snapshots())?;
        let tmp = store::temp_sibling(&dir, "snap");
        let result = (|| {
            store::create_dir_all(&tmp.join("workspace"))?;
            let mut stats = CopyStats::default();
            copy_tree(
                &workspace,
                &tmp.join("workspace"),
                Path::new(""),
                &mut stats,
            )?;
            let info = SnapshotInfo {
                name: snapshot.to_string(),
                created_at: SystemTime::now(),
                modules,
                files: stats.files,
                bytes: stats.bytes,
                skipped: stats.skipped,
            };
            store::save(&tmp.join("snapshot.json"), "snapshot", &info)?;
            fs::rename(&tmp, &dir).map_err(|e| ManagerError::io("renaming into place", &dir, e))?;
            Ok(info)
        })();
        if result.is_err() {
            let _ = store::remove_tree(&tmp);
        }
        let info = result?;
        store::sync_parent(&dir)?;
        self.shared.emit(
            name,
            EventKind::SnapshotTaken {
                snapshot: snapshot.to_string(),
            },
        );
        Ok(info)
    }

    /// Restores snapshot `snapshot`: the workspace becomes identical to its
    /// copy, each module gets its recorded version back (modules installed
    /// since are deactivated), and a running service restarts on that code.
    pub fn restore(&self, name: &str, snapshot: &str) -> Result<SnapshotInfo> {
        let (dir, info) = self.load_snapshot(name, snapshot)?;
        let (workspace, current) = self.shared.with(name, |sb| {
            Ok((sb.record.workspace.clone(), sb.modules.active()))
        })?;
        let was_running = self.supervisor(name).is_some_and(|s| s.is_alive());
        if was_running {
            self.stop_supervisor(name);
        }
        clear_dir(&workspace)?;
        copy_tree(
            &dir.join("workspace"),
            &workspace,
            Path::new(""),
            &mut CopyStats::default(),
        )?;
        for module in current.keys() {
            let version = info.modules.get(module).copied().flatten();
            self.shared.activate(name, module, version, true)?;
        }
        if was_running {
            self.start_service(name)?;
        }
        self.shared.emit(
            name,
            EventKind::SnapshotRestored {
                snapshot: snapshot.to_string(),
            },
        );
        Ok(info)
    }

    /// The snapshots of sandbox `name`, by name.
    pub fn list_snapshots(&self, name: &str) -> Result<Vec<SnapshotInfo>> {
        let root = self.shared.with(name, |sb| Ok(sb.paths.snapshots()))?;
        let mut out = Vec::new();
        let entries = match fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(ManagerError::io("listing", &root, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| ManagerError::io("listing", &root, e))?;
            let snap = entry.file_name().to_string_lossy().into_owned();
            if !store::is_temp_name(&snap) {
                out.push(store::load(
                    &entry.path().join("snapshot.json"),
                    "snapshot",
                )?);
            }
        }
        out.sort_by(|a: &SnapshotInfo, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes snapshot `snapshot` of sandbox `name`.
    pub fn delete_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        let (dir, _) = self.load_snapshot(name, snapshot)?;
        let trash = store::temp_sibling(&dir, "trash");
        fs::rename(&dir, &trash).map_err(|e| ManagerError::io("moving away", &dir, e))?;
        store::sync_parent(&dir)?;
        store::remove_tree(&trash)
    }

    fn load_snapshot(&self, name: &str, snapshot: &str) -> Result<(PathBuf, SnapshotInfo)> {
        validate_snapshot_name(snapshot)?;
        let dir = self
            .shared
            .with(name, |sb| Ok(sb.paths.snapshots().join(snapshot)))?;
        if !dir.is_dir() {
            return Err(ManagerError::SnapshotNotFound {
                sandbox: name.to_string(),
                snapshot: snapshot.to_string(),
            });
        }
        let info = store::load(&dir.join("snapshot.json"), "snapshot")?;
        Ok((dir, info))
    }
}

/// Removes everything inside `dir` (not `dir` itself).
fn clear_dir(dir: &Path) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(|e| ManagerError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ManagerError::io("listing", dir, e))?;
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .map_err(|e| ManagerError::io("inspecting", &path, e))?
            .is_dir();
        if is_dir {
            store::remove_tree(&path)?;
        } else {
            fs::remove_file(&path).map_err(|e| ManagerError::io("removing", &path, e))?;
        }
    }
    Ok(())
}

/// Copies the contents of `src` into the existing directory `dst`.
fn copy_tree(src: &Path, dst: &Path, rel: &Path, stats: &mut CopyStats) -> Result<()> {
    let entries = fs::read_dir(src).map_err(|e| ManagerError::io("listing", src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ManagerError::io("listing", src, e))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta =
            fs::symlink_metadata(&from).map_err(|e| ManagerError::io("inspecting", &from, e))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            copy_symlink(&from, &to, rel, stats)?;
        } else if kind.is_dir() {
            fs::create_dir(&to).map_err(|e| ManagerError::io("creating directory", &to, e))?;
            copy_tree(&from, &to, &rel.join(entry.file_name()), stats)?;
            // After filling it: a read-only directory could not be filled.
            set_mode(&to, &meta)?;
        } else if kind.is_file() {
            stats.bytes +=
                fs::copy(&from, &to).map_err(|e| ManagerError::io("copying", &from, e))?;
            stats.files += 1;
            set_mode(&to, &meta)?;
        } else {
            stats.skipped.push(rel.join(entry.file_name()));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn copy_symlink(from: &Path, to: &Path, _rel: &Path, _stats: &mut CopyStats) -> Result<()> {
    let target = fs::read_link(from).map_err(|e| ManagerError::io("reading link", from, e))?;
    std::os::unix::fs::symlink(&target, to).map_err(|e| ManagerError::io("creating link", to, e))
}

#[cfg(not(unix))]
fn copy_symlink(from: &Path, _to: &Path, rel: &Path, stats: &mut CopyStats) -> Result<()> {
    stats
        .skipped
        .push(rel.join(from.file_name().unwrap_or_default()));
    Ok(())
}

fn set_mode(path: &Path, meta: &fs::Metadata) -> Result<()> {
    #[cfg(unix)]
    let perms = {
        use std::os::unix::fs::PermissionsExt;
        fs::Permissions::from_mode(meta.permissions().mode() & 0o777)
    };
    #[cfg(not(unix))]
    let perms = meta.permissions();
    fs::set_permissions(path, perms)
        .map_err(|e| ManagerError::io("setting permissions of", path, e))
}
