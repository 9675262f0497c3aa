//! The persistent violation log: one JSON object per line in a file of the
//! user's state directory, so `sandbox violations` sees what earlier runs
//! recorded.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::{EvalId, Violation};

/// Size past which the oldest half of the log is dropped.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 20;

/// Why the violation log could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ViolationFileError {
    /// Reading, writing or locking the file failed.
    #[error("violation log {path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// What [`ViolationFile::read`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadLog {
    /// The violations, oldest first.
    pub violations: Vec<Violation>,
    /// Line numbers (from 1) that were not a violation (a torn or foreign
    /// line); they are skipped, not fatal.
    pub skipped_lines: Vec<usize>,
}

/// A violation log file; see the module docs.
///
/// ```
/// use sandbox_core::{Violation, ViolationFile, ViolationKind};
///
/// let dir = tempfile::tempdir().unwrap();
/// let log = ViolationFile::new(dir.path().join("violations.jsonl"));
/// log.append(&[Violation {
///     time: std::time::SystemTime::now(),
///     eval: None,
///     sandbox: None,
///     kind: ViolationKind::Network,
///     target: "evil.com:443".into(),
///     rule: "no matching rule".into(),
///     command: "curl https://evil.com".into(),
/// }]).unwrap();
/// assert_eq!(log.read().unwrap().violations[0].target, "evil.com:443");
/// log.clear().unwrap();
/// assert!(log.read().unwrap().violations.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct ViolationFile {
    path: PathBuf,
    max_bytes: u64,
}

impl ViolationFile {
    /// The log at `path` (created on the first append).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ViolationFile {
            path: path.into(),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Keeps the file under about `bytes` by dropping its oldest half when
    /// it grows past them.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes.max(1);
        self
    }

    /// `$XDG_STATE_HOME/sandbox/violations.jsonl`, else
    /// `~/.local/state/sandbox/violations.jsonl`; `None` without either
    /// variable.
    pub fn default_path() -> Option<PathBuf> {
        let state = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|home| Path::new(&home).join(".local/state"))
            })?;
        Some(state.join("sandbox").join("violations.jsonl"))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl FnOnce(io::Error) -> ViolationFileError + '_ {
        move |source| ViolationFileError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `violations`, one line each, in one write under an exclusive
    /// lock (concurrent runs never interleave lines).
    pub fn append(&self, violations: &[Violation]) -> Result<(), ViolationFileError> {
        if violations.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(self.err())?;
        }
        let mut text = Vec::new();
        for v in violations {
            serde_json::to_writer(&mut text, v).map_err(|e| self.err()(e.into()))?;
            text.push(b'\n');
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(self.err())?;
        let _lock = Lock::exclusive(&file).map_err(self.err())?;
        (&file).write_all(&text).map_err(self.err())?;
        if file.metadata().map_err(self.err())?.len() > self.max_bytes {
            self.drop_oldest_half().map_err(self.err())?;
        }
        Ok(())
    }

    /// A fresh evaluation id, unique among the evaluations of every process
    /// logging here: one more than the last handed out, kept in
    /// `last-eval-id` beside the log, under an exclusive lock. Without it,
    /// every run of a one-shot program such as the CLI would log its
    /// violations as evaluation 1.
    pub fn next_eval_id(&self) -> Result<EvalId, ViolationFileError> {
        let path = self.path.with_file_name("last-eval-id");
        let err = |source| ViolationFileError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(err)?;
        let _lock = Lock::exclusive(&file).map_err(err)?;
        let mut text = String::new();
        io::Read::read_to_string(&mut &file, &mut text).map_err(err)?;
        let last: u64 = match text.trim() {
            "" => 0,
            number => number.parse().map_err(|_| {
                err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{number:?} is not a number of evaluations"),
                ))
            })?,
        };
        let next = last + 1;
        file.set_len(0).map_err(err)?;
        io::Seek::rewind(&mut &file).map_err(err)?;
        (&file)
            .write_all(format!("{next}\n").as_bytes())
            .map_err(err)?;
        Ok(EvalId(next))
    }

    /// Every violation in the file, oldest first (none when it does not exist).
    pub fn read(&self) -> Result<ReadLog, ViolationFileError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ReadLog::default()),
            Err(e) => return Err(self.err()(e)),
        };
        let _lock = Lock::shared(&file).map_err(self.err())?;
        let mut log = ReadLog::default();
        for (n, line) in BufReader::new(&file).lines().enumerate() {
            let line = line.map_err(self.err())?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(v) => log.violations.push(v),
                Err(_) => log.skipped_lines.push(n + 1),
            }
        }
        Ok(log)
    }

    /// Empties the log.
    pub fn clear(&self) -> Result<(), ViolationFileError> {
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(file) => {
                let _lock = Lock::exclusive(&file).map_err(self.err())?;
                file.set_len(0).map_err(self.err())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err()(e)),
        }
    }

    /// Rewrites the file with its newer half (whole lines), in place: the
    /// caller holds the exclusive lock, which a rename would not carry over.
    fn drop_oldest_half(&self) -> io::Result<()> {
        let text = std::fs::read(&self.path)?;
        let half = text.len() / 2;
        let start = text[half..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |p| half + p + 1);
        let mut file = OpenOptions::new().write(true).open(&self.path)?;
        file.write_all(&text[start..])?;
        file.set_len((text.len() - start) as u64)?;
        Ok(())
    }
}

/// An advisory lock on the log, released on drop.
struct Lock<'a>(&'a File);

impl<'a> Lock<'a> {
    #[cfg(unix)]
    fn take(file: &'a File, operation: libc::c_int) -> io::Result<Self> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: flock on a descriptor that outlives the lock.
            if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
                return Ok(Lock(file));
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    #[cfg(unix)]
    fn exclusive(file: &'a File) -> io::Result<Self> {
        Self::take(file, libc::LOCK_EX)
    }

    #[cfg(unix)]
    fn shared(file: &'a File) -> io::Result<Self> {
        Self::take(file, libc::LOCK_SH)
    }

    #[cfg(not(unix))]
    fn exclusive(file: &'a File) -> io::Result<Self> {
        Ok(Lock(file))
    }

    #[cfg(not(unix))]
    fn shared(file: &'a File) -> io::Result<Self> {
        Ok(Lock(file))
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: unlocks a descriptor we hold.
            unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ViolationKind;

    fn violation(n: u64) -> Violation {
        Violation {
            time: std::time::SystemTime::UNIX_EPOCH,
            eval: Some(EvalId(n)),
            sandbox: None,
            kind: ViolationKind::Syscall,
            target: format!("ptrace #{n}"),
            rule: "seccomp".into(),
            command: "strace ls".into(),
        }
    }

    #[test]
    fn appended_violations_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = ViolationFile::new(dir.path().join("a/b/violations.jsonl"));
        log.append(&[violation(1), violation(2)]).unwrap();
        log.append(&[violation(3)]).unwrap();
        let read = log.read().unwrap();
        assert_eq!(read.violations, [violation(1), violation(2), violation(3)]);
        assert!(read.skipped_lines.is_empty());
    }

    #[test]
    fn a_torn_line_is_skipped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("violations.jsonl");
        let log = ViolationFile::new(&path);
        log.append(&[violation(1)]).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"time\":\n")
            .unwrap();
        log.append(&[violation(2)]).unwrap();
        let read = log.read().unwrap();
        assert_eq!(read.violations, [violation(1), violation(2)]);
        assert_eq!(read.skipped_lines, [2]);
    }

    #[test]
    fn the_file_stays_bounded_keeping_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let log = ViolationFile::new(dir.path().join("v.jsonl")).max_bytes(2_000);
        for n in 0..100 {
            log.append(&[violation(n)]).unwrap();
        }
        assert!(std::fs::metadata(log.path()).unwrap().len() <= 2_000);
        let read = log.read().unwrap();
        assert!(read.skipped_lines.is_empty());
        assert_eq!(read.violations.last(), Some(&violation(99)));
        assert!(read.violations.len() < 100);
    }

    #[test]
    fn a_missing_file_reads_empty_and_clears_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let log = ViolationFile::new(dir.path().join("none.jsonl"));
        assert_eq!(log.read().unwrap(), ReadLog::default());
        log.clear().unwrap();
    }

    #[test]
    fn evaluation_ids_count_on_across_handles_of_the_same_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/violations.jsonl");
        let first = ViolationFile::new(&path);
        assert_eq!(first.next_eval_id().unwrap(), EvalId(1));
        assert_eq!(first.next_eval_id().unwrap(), EvalId(2));
        // Another process's handle continues the count.
        assert_eq!(ViolationFile::new(&path).next_eval_id().unwrap(), EvalId(3));
    }

    #[test]
    fn a_garbled_evaluation_counter_is_an_error_naming_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("last-eval-id"), "twelve").unwrap();
        let log = ViolationFile::new(dir.path().join("violations.jsonl"));
        let error = log.next_eval_id().unwrap_err().to_string();
        assert!(error.contains("last-eval-id"), "{error}");
        assert!(error.contains("twelve"), "{error}");
    }
}
