//! Checking what a build produced (the seed's `validate`): every artifact
//! must exist, be non-empty, and be well-formed for the kind its name and
//! first bytes announce — an ELF object, a WebAssembly module, Python
//! bytecode, a zip (jar, wheel), a JSON document, a script with a `#!` line.
//! Anything else only has to exist and be non-empty.

use std::path::{Path, PathBuf};

/// What an artifact was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// An ELF executable, shared object or relocatable object.
    Elf,
    /// A WebAssembly module (`.wasm`).
    Wasm,
    /// Python bytecode (`.pyc`).
    PythonBytecode,
    /// A zip archive (`.zip`, `.jar`, `.whl`).
    Zip,
    /// A JSON document (`.json`).
    Json,
    /// An executable script starting with `#!`.
    Script,
    /// Anything else: only checked to exist and be non-empty.
    Other,
}

/// Why an artifact is not what it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("artifact {}: {problem}", path.display())]
pub struct ArtifactError {
    /// The artifact.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

/// Checks one artifact; its kind when it is well-formed.
pub fn check_artifact(path: &Path) -> Result<ArtifactKind, ArtifactError> {
    let fail = |problem: String| ArtifactError {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    if bytes.is_empty() {
        return Err(fail("is empty".into()));
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    match extension.as_str() {
        "wasm" => {
            if !starts(b"\0asm") || bytes.len() < 8 {
                return Err(fail(
                    "is not a WebAssembly module (no \\0asm header)".into(),
                ));
            }
            if bytes[4..8] != [1, 0, 0, 0] {
                return Err(fail(format!(
                    "WebAssembly version {:?} is not 1",
                    &bytes[4..8]
                )));
            }
            Ok(ArtifactKind::Wasm)
        }
        "pyc" => {
            // A 2-byte magic number followed by \r\n, then 12 bytes of flags
            // and source facts, then the marshalled code.
            if bytes.len() <= 16 || bytes[2..4] != *b"\r\n" {
                return Err(fail("is not Python bytecode (bad header)".into()));
            }
            Ok(ArtifactKind::PythonBytecode)
        }
        "zip" | "jar" | "whl" => {
            if !starts(b"PK\x03\x04") && !starts(b"PK\x05\x06") {
                return Err(fail("is not a zip archive (no PK header)".into()));
            }
            Ok(ArtifactKind::Zip)
        }
        "json" => serde_json::from_slice::<serde_json::Value>(&bytes)
            .map(|_| ArtifactKind::Json)
            .map_err(|e| fail(format!("is not valid JSON: {e}"))),
        _ if starts(b"\x7fELF") => check_elf(&bytes).map_err(fail),
        _ if starts(b"#!") => Ok(ArtifactKind::Script),
        "o" | "so" => Err(fail("is not an ELF object".into())),
        _ => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let executable = std::fs::metadata(path)
                    .map(|m| m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false);
                if executable {
                    return Err(fail(
                        "is executable but neither an ELF binary nor a #! script".into(),
                    ));
                }
            }
            Ok(ArtifactKind::Other)
        }
    }
}

/// An ELF header that is whole and consistent: class, byte order, version
/// and a known object type.
fn check_elf(bytes: &[u8]) -> Result<ArtifactKind, String> {
    if bytes.len() < 52 {
        return Err("is a truncated ELF file".into());
    }
    let (class, data, version) = (bytes[4], bytes[5], bytes[6]);
    if !(class == 1 || class == 2) || !(data == 1 || data == 2) || version != 1 {
        return Err(format!(
            "has an invalid ELF identification (class {class}, data {data}, version {version})"
        ));
    }
    if class == 2 && bytes.len() < 64 {
        return Err("is a truncated 64-bit ELF file".into());
    }
    let e_type = if data == 1 {
        u16::from_le_bytes([bytes[16], bytes[17]])
    } else {
        u16::from_be_bytes([bytes[16], bytes[17]])
    };
    match e_type {
        1..=4 => Ok(ArtifactKind::Elf),
        other => Err(format!("has an unknown ELF object type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn a_real_elf_binary_is_recognised() {
        assert_eq!(
            check_artifact(Path::new("/bin/true")),
            Ok(ArtifactKind::Elf)
        );
    }

    #[test]
    fn a_truncated_elf_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "prog", b"\x7fELF\x02\x01\x01");
        let error = check_artifact(&path).unwrap_err();
        assert!(error.problem.contains("truncated"), "{error}");
    }

    #[test]
    fn an_empty_or_missing_artifact_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(dir.path(), "out.txt", b"");
        assert!(check_artifact(&empty)
            .unwrap_err()
            .problem
            .contains("empty"));
        assert!(check_artifact(&dir.path().join("none"))
            .unwrap_err()
            .problem
            .contains("cannot be read"));
    }

    #[test]
    fn kinds_are_checked_by_extension_and_header() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let wasm = write(d, "m.wasm", b"\0asm\x01\0\0\0");
        assert_eq!(check_artifact(&wasm), Ok(ArtifactKind::Wasm));
        let not_wasm = write(d, "n.wasm", b"hello world");
        assert!(check_artifact(&not_wasm).is_err());
        let json = write(d, "a.json", b"{\"ok\": true}");
        assert_eq!(check_artifact(&json), Ok(ArtifactKind::Json));
        let bad_json = write(d, "b.json", b"{\"ok\": ");
        assert!(check_artifact(&bad_json)
            .unwrap_err()
            .problem
            .contains("JSON"));
        let jar = write(d, "c.jar", b"PK\x03\x04rest");
        assert_eq!(check_artifact(&jar), Ok(ArtifactKind::Zip));
        let pyc = write(d, "d.pyc", b"\xcb\x0d\r\n\0\0\0\0\0\0\0\0\0\0\0\0code");
        assert_eq!(check_artifact(&pyc), Ok(ArtifactKind::PythonBytecode));
        let script = write(d, "run", b"#!/bin/sh\necho hi\n");
        assert_eq!(check_artifact(&script), Ok(ArtifactKind::Script));
    }

    #[cfg(unix)]
    #[test]
    fn an_executable_that_cannot_run_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "prog", b"not a program");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_artifact(&path)
            .unwrap_err()
            .problem
            .contains("neither an ELF binary"));
    }
}
