//! Stand-ins for protected paths that do not exist yet.
//!
//! The plan binds each [`Placeholder`] read-only so the sandbox cannot create
//! the protected path inside its writable root (`mkdir -p .git/hooks` in a
//! project without `.git`). A mount needs something to mount on, so the
//! executor creates an empty stand-in on the host before the runner applies the
//! plan, and removes it once the evaluation's mount namespace is gone.
//!
//! Evaluations in the same directory share a stand-in: each holds a shared
//! `flock` on it while it runs, and only the last one out (the one that gets
//! the exclusive lock) removes it. That matters because removing a mount point
//! in one mount namespace detaches the mounts on it in every other one: a
//! stand-in removed under a running evaluation would stop protecting it.
//!
//! A stand-in is recognised by its signature — empty, owned by us, mode
//! [`FILE_MODE`] or [`DIR_MODE`] — so one left behind by a killed executor is
//! adopted and cleaned up by the next evaluation, and a real file the user
//! created meanwhile is never removed.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sandbox_policy::{FsView, HostFs, Kind, LinuxPlan, Placeholder};
use tracing::debug;

use crate::error::ExecError;

/// Mode of a stand-in file: readable (a shell sourcing a stand-in `~/.bashrc`
/// reads nothing), not writable.
const FILE_MODE: u32 = 0o400;
/// Mode of a stand-in directory: listable, nothing can be created in it.
const DIR_MODE: u32 = 0o500;

/// How often a stand-in that vanished between creation and locking (removed by
/// the last user of an earlier one) is created again.
const ATTEMPTS: usize = 8;

/// The host's filesystem as the plan must see it: a stand-in left by an
/// evaluation that has not been cleaned up after yet is a path that does not
/// exist (so the plan asks for a stand-in, which [`hold`] then adopts), not a
/// protected directory that might vanish before the runner binds it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HostFsWithoutStandIns;

impl FsView for HostFsWithoutStandIns {
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        HostFs.canonicalize(path)
    }

    fn metadata_kind(&self, path: &Path) -> Option<Kind> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        if looks_like_stand_in(&meta) {
            return None;
        }
        let kind = meta.file_type();
        Some(if kind.is_symlink() {
            Kind::Symlink
        } else if kind.is_dir() {
            Kind::Dir
        } else if kind.is_file() {
            Kind::File
        } else {
            Kind::Other
        })
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        HostFs.read_dir(path)
    }

    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        HostFs.read_to_string(path)
    }
}

/// A stand-in's signature: ours, its mode untouched, a file never written to
/// or a directory without subdirectories (two links; none while another
/// evaluation is removing it, when it must read as missing too).
fn looks_like_stand_in(meta: &std::fs::Metadata) -> bool {
    // SAFETY: geteuid cannot fail.
    let ours = meta.uid() == unsafe { libc::geteuid() };
    let mode = meta.mode() & 0o7777;
    ours && if meta.is_dir() {
        mode == DIR_MODE && meta.nlink() <= 2
    } else {
        meta.is_file() && mode == FILE_MODE && meta.len() == 0
    }
}

/// The stand-ins of one evaluation, held until it is dropped.
#[derive(Debug, Default)]
pub(crate) struct StandIns {
    held: Vec<Held>,
}

#[derive(Debug)]
struct Held {
    path: PathBuf,
    kind: Kind,
    file: File,
}

impl StandIns {
    /// Whether there is nothing to release.
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Lets go of the stand-ins without removing them, for when the
    /// evaluation's mount namespace may outlive us: the next evaluation in
    /// the same place adopts and removes them.
    pub(crate) fn leave_in_place(&mut self) {
        self.held.clear();
    }
}

/// Creates (or joins) the stand-ins `plan` asks for and locks them shared.
///
/// A stand-in the caller cannot create because the directory is not writable
/// to them (`EACCES`, `EPERM`, `EROFS`) is not needed: the sandbox, which has
/// no more rights on the host than its caller, cannot create the path either.
/// Its read-only bind is then dropped from the plan. Any other failure refuses
/// the evaluation: running would leave the protected path creatable.
pub(crate) fn hold(plan: &mut LinuxPlan) -> Result<StandIns, ExecError> {
    let mut stand_ins = StandIns::default();
    let mut unneeded = Vec::new();
    for placeholder in &plan.placeholders {
        match hold_one(placeholder) {
            Ok(held) => stand_ins.held.push(held),
            Err(e) if uncreatable(&e) => {
                debug!(path = %placeholder.path.display(), error = %e, "no stand-in needed: the caller cannot create it either");
                unneeded.push(placeholder.path.clone());
            }
            Err(source) => {
                return Err(ExecError::Placeholder {
                    path: placeholder.path.clone(),
                    rule: placeholder.rule.to_string(),
                    source,
                })
            }
        }
    }
    if !unneeded.is_empty() {
        plan.mounts
            .retain(|op| !unneeded.iter().any(|p| p == op.path()));
        plan.placeholders.retain(|p| !unneeded.contains(&p.path));
    }
    Ok(stand_ins)
}

fn uncreatable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES | libc::EPERM | libc::EROFS)
    )
}

fn hold_one(placeholder: &Placeholder) -> io::Result<Held> {
    let path = &placeholder.path;
    for _ in 0..ATTEMPTS {
        match create(path, placeholder.kind) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        // O_NOFOLLOW: a symlink planted at the path must not redirect the
        // read-only bind (or the removal) elsewhere.
        let file = match File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => file,
            // Removed by the last user of an earlier stand-in: create it again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        flock(&file, libc::LOCK_SH)?;
        // Locked, it can no longer be removed under us; but it may have been
        // removed (and maybe re-created) between the open and the lock.
        if same_file(&file, path)? {
            return Ok(Held {
                path: path.clone(),
                kind: placeholder.kind,
                file,
            });
        }
    }
    Err(io::Error::other(format!(
        "it kept disappearing while being created ({ATTEMPTS} attempts)"
    )))
}

fn create(path: &Path, kind: Kind) -> io::Result<()> {
    match kind {
        Kind::Dir => std::fs::DirBuilder::new().mode(DIR_MODE).create(path),
        _ => File::options()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map(drop),
    }
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    Ok(match std::fs::symlink_metadata(path) {
        Ok(now) => now.dev() == held.dev() && now.ino() == held.ino(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    })
}

/// Whether `file` still looks as a stand-in was made (a non-empty directory
/// is left to `rmdir`, which refuses it atomically).
fn is_stand_in(file: &File, kind: Kind) -> io::Result<bool> {
    let meta = file.metadata()?;
    Ok(looks_like_stand_in(&meta) && (kind == Kind::Dir) == meta.is_dir())
}

impl Drop for StandIns {
    fn drop(&mut self) {
        for held in self.held.drain(..) {
            if let Err(e) = release(&held) {
                debug!(path = %held.path.display(), error = %e, "stand-in left in place");
            }
        }
    }
}

/// Removes the stand-in unless another evaluation still holds it or it is no
/// longer one (the user put a real file there meanwhile).
fn release(held: &Held) -> io::Result<()> {
    match flock(&held.file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => {}
        // Still in use by another evaluation: the last one removes it.
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
        Err(e) => return Err(e),
    }
    if !same_file(&held.file, &held.path)? || !is_stand_in(&held.file, held.kind)? {
        return Ok(());
    }
    let removed = match held.kind {
        Kind::Dir => std::fs::remove_dir(&held.path),
        _ => std::fs::remove_file(&held.path),
    };
    match removed {
        Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_policy::{Layer, MountOp, Origin};
    use std::os::unix::fs::PermissionsExt;

    fn plan_for(path: &Path, kind: Kind) -> LinuxPlan {
        LinuxPlan {
            mounts: vec![MountOp::ReadOnly {
                path: path.to_path_buf(),
            }],
            placeholders: vec![Placeholder {
                path: path.to_path_buf(),
                kind,
                rule: Origin::new(Layer::Mandatory, "mandatory", "test"),
            }],
            ..LinuxPlan::default()
        }
    }

    #[test]
    fn a_stand_in_exists_while_held_and_is_removed_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".git");
        let held = hold(&mut plan_for(&path, Kind::Dir)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode() & 0o7777, DIR_MODE);
        drop(held);
        assert!(!path.exists());
    }

    #[test]
    fn a_shared_stand_in_outlives_the_first_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".bashrc");
        let first = hold(&mut plan_for(&path, Kind::File)).unwrap();
        let second = hold(&mut plan_for(&path, Kind::File)).unwrap();
        drop(first);
        assert!(path.is_file(), "removed while another evaluation holds it");
        drop(second);
        assert!(!path.exists());
    }

    #[test]
    fn a_real_file_put_in_place_meanwhile_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".sandbox");
        let held = hold(&mut plan_for(&path, Kind::Dir)).unwrap();
        // The user (not the sandbox, which sees it read-only) makes it real.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(path.join("settings.json"), "{}").unwrap();
        drop(held);
        assert_eq!(
            std::fs::read_to_string(path.join("settings.json")).unwrap(),
            "{}"
        );
    }

    #[test]
    fn a_stand_in_left_behind_is_adopted_and_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".sandbox");
        // What a killed executor leaves: the stand-in, no lock.
        std::fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(&path)
            .unwrap();
        drop(hold(&mut plan_for(&path, Kind::Dir)).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn a_stand_in_held_by_a_leaked_lock_is_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::mem::forget(hold(&mut plan_for(&path, Kind::File)).unwrap());
        drop(hold(&mut plan_for(&path, Kind::File)).unwrap());
        assert!(path.exists(), "the leaked holder still counts as a user");
    }

    #[test]
    fn the_plan_sees_a_stand_in_as_missing_and_a_real_directory_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".git");
        let held = hold(&mut plan_for(&path, Kind::Dir)).unwrap();
        assert_eq!(HostFsWithoutStandIns.metadata_kind(&path), None);
        drop(held);
        std::fs::create_dir(&path).unwrap();
        assert_eq!(HostFsWithoutStandIns.metadata_kind(&path), Some(Kind::Dir));
    }

    #[test]
    fn a_symlink_in_place_refuses_the_evaluation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".git");
        std::os::unix::fs::symlink("/etc", &path).unwrap();
        let error = hold(&mut plan_for(&path, Kind::Dir)).unwrap_err();
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn an_uncreatable_stand_in_is_dropped_from_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
        let path = locked.join(".git");
        let mut plan = plan_for(&path, Kind::Dir);
        let held = hold(&mut plan);
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Root ignores the directory's mode and can create it: then it is held.
        if path.exists() {
            assert!(!held.unwrap().is_empty());
        } else {
            assert!(held.unwrap().is_empty());
            assert!(plan.mounts.is_empty() && plan.placeholders.is_empty());
        }
    }
}
