//! The state directory: where it is ([`StateDir::resolve`]), how it is laid out,
//! and how its files are written (atomically) and read (validated). The layout
//! and the file format are described on [`StateDir`].

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::{ManagerError, Result};

/// The store file format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: &str = "sandbox-state";

/// Where a manager keeps its state.
///
/// Layout:
///
/// ```text
/// STATE_DIR/
///   lock                          exclusive lock of the open Manager, holder pid inside
///   objects/ab/cdef…              module bytes by sha256, written once, read-only
///   sandboxes/NAME/
///     sandbox.json                spec, creation time, restart count
///     modules.json                modules, their versions and the active one
///     metrics.json                counters updated by evaluations and the supervisor
///     code/MODULE                 the active version of each module (hard link to its object)
///     workspace/                  the default workspace
///     snapshots/SNAP/             snapshot.json + a copy of the workspace
/// ```
///
/// Every `.json` file is a *store file*: a one-line header
/// `sandbox-state FORMAT KIND LENGTH SHA256\n` followed by exactly `LENGTH`
/// bytes of JSON whose sha256 is `SHA256`. A truncated, padded or altered file
/// fails the length or checksum test and is reported as
/// [`ManagerError::Corrupt`] naming the file. Store files are replaced by
/// writing a temporary file in the same directory, fsyncing it, renaming it
/// over the old one and fsyncing the directory, so a crash leaves either the
/// old or the new file, never a mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state directory at `root` exactly.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// Picks the state directory: `explicit` when given, else
    /// `$SANDBOX_STATE_DIR`, else `$XDG_DATA_HOME/sandbox`, else
    /// `~/.local/share/sandbox`.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Self> {
        Self::resolve_with(explicit, |key| std::env::var_os(key))
    }

    /// [`StateDir::resolve`] reading variables through `env` (for tests and
    /// for callers that carry their own environment).
    pub fn resolve_with(
        explicit: Option<PathBuf>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self> {
        let set = |key: &str| env(key).filter(|v| !v.is_empty()).map(PathBuf::from);
        let root = explicit
            .or_else(|| set("SANDBOX_STATE_DIR"))
            .or_else(|| set("XDG_DATA_HOME").map(|d| d.join("sandbox")))
            .or_else(|| set("HOME").map(|h| h.join(".local/share/sandbox")))
            .ok_or(ManagerError::NoStateDir)?;
        Ok(StateDir { root })
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    pub(crate) fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    pub(crate) fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }

    pub(crate) fn sandboxes(&self) -> PathBuf {
        self.root.join("sandboxes")
    }

    pub(crate) fn sandbox(&self, name: &str) -> SandboxPaths {
        SandboxPaths {
            dir: self.sandboxes().join(name),
        }
    }
}

/// The paths of one sandbox inside the state directory.
#[derive(Debug, Clone)]
pub(crate) struct SandboxPaths {
    pub dir: PathBuf,
}

impl SandboxPaths {
    pub fn record(&self) -> PathBuf {
        self.dir.join("sandbox.json")
    }
    pub fn modules(&self) -> PathBuf {
        self.dir.join("modules.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.json")
    }
    pub fn code(&self) -> PathBuf {
        self.dir.join("code")
    }
    pub fn default_workspace(&self) -> PathBuf {
        self.dir.join("workspace")
    }
    pub fn snapshots(&self) -> PathBuf {
        self.dir.join("snapshots")
    }
}

/// A unique temporary name next to `path`, hidden, so that listings skip it.
pub(crate) fn temp_sibling(path: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}-{}-{n}", std::process::id()))
}

/// True for the hidden temporary entries [`temp_sibling`] makes.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
}

/// Writes `bytes` to `path` atomically and durably.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_sibling(path, "tmp");
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| ManagerError::io("creating", &tmp, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| ManagerError::io("writing", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| ManagerError::io("renaming into place", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_parent(path)
}

/// Writes a new file durably without renaming: for files inside a directory
/// that is itself renamed into place afterwards (and fsynced once).
pub(crate) fn write_new_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| ManagerError::io("creating", path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| ManagerError::io("writing", path, e))
}

/// Fsyncs the directory holding `path`, so that a rename or creation in it is durable.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Fsyncs a directory.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ManagerError::io("syncing directory", dir, e))
}

/// Creates `dir` and its parents.
pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| ManagerError::io("creating directory", dir, e))
}

/// Serializes `value` into a store file of `kind` at `path`.
pub(crate) fn save<T: Serialize>(path: &Path, kind: &str, value: &T) -> Result<()> {
    write_atomic(path, &encode(kind, value))
}

/// The bytes of a store file holding `value`.
pub(crate) fn encode<T: Serialize>(kind: &str, value: &T) -> Vec<u8> {
    let body = serde_json::to_vec_pretty(value).expect("manager records serialize to JSON");
    let mut out = format!(
        "{MAGIC} {FORMAT_VERSION} {kind} {} {}\n",
        body.len(),
        hex(&Sha256::digest(&body))
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Reads and validates a store file of `kind`.
pub(crate) fn load<T: DeserializeOwned>(path: &Path, kind: &str) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ManagerError::corrupt(path, "missing"),
        _ => ManagerError::io("reading", path, e),
    })?;
    decode(path, kind, &bytes)
}

/// Validates the bytes of a store file (see the module docs for the format).
pub(crate) fn decode<T: DeserializeOwned>(path: &Path, kind: &str, bytes: &[u8]) -> Result<T> {
    let corrupt = |reason: String| ManagerError::corrupt(path, reason);
    if bytes.is_empty() {
        return Err(corrupt("empty file".into()));
    }
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("no header line (truncated or not a state file)".into()))?;
    let header =
        std::str::from_utf8(&bytes[..newline]).map_err(|_| corrupt("header is not text".into()))?;
    let body = &bytes[newline + 1..];
    if !header.starts_with(MAGIC) {
        return Err(corrupt(format!(
            "not a state file (first line {:?}, expected it to start with {MAGIC:?})",
            header.chars().take(60).collect::<String>()
        )));
    }
    let fields: Vec<&str> = header.split(' ').collect();
    let [_, format, found_kind, len, sum] = fields[..] else {
        return Err(corrupt(format!("malformed header {header:?}")));
    };
    let format: u32 = format
        .parse()
        .map_err(|_| corrupt(format!("bad format version {format:?}")))?;
    if format > FORMAT_VERSION {
        return Err(ManagerError::UnsupportedFormat {
            path: path.to_path_buf(),
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    if found_kind != kind {
        return Err(corrupt(format!(
            "holds a {found_kind:?} record, expected {kind:?}"
        )));
    }
    let len: usize = len
        .parse()
        .map_err(|_| corrupt(format!("bad length {len:?}")))?;
    if body.len() != len {
        return Err(corrupt(format!(
            "{} (header says {len} bytes of body, the file has {})",
            if body.len() < len {
                "truncated"
            } else {
                "trailing bytes"
            },
            body.len()
        )));
    }
    let actual = hex(&Sha256::digest(body));
    if actual != sum {
        return Err(corrupt(format!(
            "checksum mismatch (header sha256 {sum}, content sha256 {actual})"
        )));
    }
    serde_json::from_slice(body).map_err(|e| corrupt(format!("unreadable {kind} record: {e}")))
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The sha256 of `bytes` in hexadecimal.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Removes a tree, first making its directories writable so that a read-only
/// directory left by a sandbox (or restored from a snapshot) does not stop it.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(first) => {
            make_dirs_writable(path);
            fs::remove_dir_all(path).map_err(|_| ManagerError::io("removing", path, first))
        }
    }
}

fn make_dirs_writable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() | 0o700;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    {
        let mut perms = meta.permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        let _ = fs::set_permissions(path, perms);
    }
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            make_dirs_writable(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn resolve_prefers_explicit_then_env_then_xdg_then_home() {
        let all = [
            ("SANDBOX_STATE_DIR", "/s"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ];
        let pick = |explicit: Option<&str>, vars: &[(&str, &str)]| {
            StateDir::resolve_with(explicit.map(PathBuf::from), env(vars))
                .unwrap()
                .path()
                .to_path_buf()
        };
        assert_eq!(pick(Some("/e"), &all), Path::new("/e"));
        assert_eq!(pick(None, &all), Path::new("/s"));
        assert_eq!(pick(None, &all[1..]), Path::new("/x/sandbox"));
        assert_eq!(pick(None, &all[2..]), Path::new("/h/.local/share/sandbox"));
        assert!(matches!(
            StateDir::resolve_with(None, env(&[])),
            Err(ManagerError::NoStateDir)
        ));
    }

    #[test]
    fn a_store_file_round_trips() {
        let bytes = encode("thing", &vec![1u32, 2, 3]);
        let back: Vec<u32> = decode(Path::new("/f"), "thing", &bytes).unwrap();
        assert_eq!(back, [1, 2, 3]);
    }

    #[test]
    fn every_truncation_of_a_store_file_is_detected() {
        let bytes = encode("thing", &vec!["a".to_string(); 10]);
        for cut in 0..bytes.len() {
            let err = decode::<Vec<String>>(Path::new("/f"), "thing", &bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, ManagerError::Corrupt { .. }),
                "cut {cut}: {err}"
            );
        }
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let mut bytes = encode("thing", &vec![1u32, 2, 3]);
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        let err = decode::<Vec<u32>>(Path::new("/f"), "thing", &bytes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(err.contains("/f"), "{err}");
    }

    #[test]
    fn a_newer_format_is_refused_not_misread() {
        let bytes = encode("thing", &1u32);
        let text = String::from_utf8(bytes).unwrap().replacen(" 1 ", " 9 ", 1);
        let err = decode::<u32>(Path::new("/f"), "thing", text.as_bytes()).unwrap_err();
        assert!(matches!(
            err,
            ManagerError::UnsupportedFormat { found: 9, .. }
        ));
    }
}
