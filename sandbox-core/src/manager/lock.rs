//! The exclusive lock a [`Manager`](super::Manager) holds on its state
//! directory for its whole lifetime.
//!
//! One manager per directory, not per-operation locking: a manager keeps an
//! index of the sandboxes in memory and owns their service processes, so two
//! managers on one directory would supervise (and restart) the same service
//! twice and each would overwrite the other's counters. A second opener — in
//! another process or the same one — is refused with
//! [`ManagerError::Locked`] naming the lock file and the holder's pid.
//!
//! The lock is an `flock(LOCK_EX | LOCK_NB)` on `STATE_DIR/lock`: the kernel
//! releases it when the holder exits, even by a crash, so a stale lock never
//! needs cleaning up. The pid in the file is informational only.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::error::{ManagerError, Result};

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock at `path` or reports who holds it.
    pub fn acquire(path: &Path) -> Result<StateLock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| ManagerError::io("opening lock file", path, e))?;
        if !try_lock(&file).map_err(|e| ManagerError::io("locking", path, e))? {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(ManagerError::Locked {
                path: path.to_path_buf(),
                holder_pid: text.trim().parse().ok(),
            });
        }
        // Only the holder writes, so the pid read by a refused opener is the holder's.
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| ManagerError::io("writing lock file", path, e))?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Without flock the lock is advisory only; sandbox-core targets Unix, this
/// keeps the crate compiling elsewhere.
#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}
