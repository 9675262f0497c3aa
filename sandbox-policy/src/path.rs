//! Rule paths: how the path inside `Read(…)`, `Edit(…)`, `UnixSocket(…)` or a
//! settings list becomes an absolute [`PathPattern`].
//!
//! | written | means |
//! |---|---|
//! | `/abs` | the absolute path |
//! | `//abs` | the same absolute path (Claude Code's spelling of an absolute rule path) |
//! | `~`, `~/x` | the home directory of the [`Context`], and paths under it |
//! | `./x`, `x`, `.`, `../x` | relative to the base directory: the settings file's project (see [`crate::settings`]) or the cwd for flags |
//!
//! Then `.` and `..` are applied lexically, and the literal part of the path (up to
//! the first glob component) has its symlinks resolved through the [`FsView`]; when
//! that path does not exist yet, the deepest existing ancestor is resolved and the
//! rest appended unchanged.

use std::path::{Path, PathBuf};

use crate::fs_view::FsView;
use crate::glob::{self, GlobError, PathPattern};

/// Where relative rule paths and `~` point: supplied by the caller, never read from
/// the environment by this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The home directory (`~`).
    pub home: PathBuf,
    /// The working directory; the base of relative paths given as flags, and where
    /// the project settings (`.sandbox/settings.json`) are looked up.
    pub cwd: PathBuf,
}

/// Why a rule path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing between the parentheses.
    #[error("empty path")]
    Empty,
    /// `~name` (another user's home) is not supported.
    #[error("{0:?}: only \"~\" and \"~/…\" are supported, not another user's home")]
    OtherUsersHome(String),
    /// A NUL byte.
    #[error("NUL byte in path")]
    Nul,
    /// A malformed glob.
    #[error(transparent)]
    Glob(#[from] GlobError),
}

fn join_text(base: &Path, rest: &str) -> String {
    let mut text = glob::literal(base).as_str().to_string();
    if !rest.is_empty() {
        if !text.ends_with('/') {
            text.push('/');
        }
        text.push_str(rest);
    }
    text
}

/// Applies `.` and `..` components of pattern text lexically.
fn normalize(text: &str) -> String {
    let mut comps: Vec<&str> = Vec::new();
    for comp in text.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                comps.pop();
            }
            c => comps.push(c),
        }
    }
    format!("/{}", comps.join("/"))
}

/// Turns a rule path as written into an absolute pattern (see the module docs).
pub fn resolve(
    raw: &str,
    base: &Path,
    ctx: &Context,
    fs: &dyn FsView,
) -> Result<PathPattern, PathError> {
    if raw.is_empty() {
        return Err(PathError::Empty);
    }
    if raw.contains('\0') {
        return Err(PathError::Nul);
    }
    let text = if let Some(rest) = raw.strip_prefix("//") {
        format!("/{rest}")
    } else if raw == "~" {
        join_text(&ctx.home, "")
    } else if let Some(rest) = raw.strip_prefix("~/") {
        join_text(&ctx.home, rest)
    } else if raw.starts_with('~') {
        return Err(PathError::OtherUsersHome(raw.to_string()));
    } else if raw.starts_with('/') {
        raw.to_string()
    } else {
        join_text(base, raw)
    };
    let pattern = PathPattern::new(&normalize(&text))?;
    Ok(resolve_symlinks(&pattern, fs))
}

/// Resolves the symlinks of the pattern's literal prefix (deepest existing ancestor).
pub(crate) fn resolve_symlinks(pattern: &PathPattern, fs: &dyn FsView) -> PathPattern {
    let prefix = pattern.literal_prefix();
    let text_comps: Vec<&str> = pattern
        .as_str()
        .split('/')
        .filter(|c| !c.is_empty())
        .collect();
    let prefix_len = prefix.components().count() - 1;
    for existing in (0..=prefix_len).rev() {
        let ancestor: PathBuf = prefix.components().take(existing + 1).collect();
        if let Ok(canonical) = fs.canonicalize(&ancestor) {
            let text = join_text(&canonical, &text_comps[existing..].join("/"));
            return PathPattern::new(&text).unwrap_or_else(|_| pattern.clone());
        }
    }
    pattern.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs_view::MemFs;

    fn ctx() -> Context {
        Context {
            home: PathBuf::from("/home/user"),
            cwd: PathBuf::from("/work"),
        }
    }

    fn r(raw: &str, fs: &MemFs) -> String {
        resolve(raw, Path::new("/proj"), &ctx(), fs)
            .unwrap()
            .as_str()
            .to_string()
    }

    #[test]
    fn absolute_paths_stay_as_written() {
        assert_eq!(r("/etc/passwd", &MemFs::new()), "/etc/passwd");
    }

    #[test]
    fn double_slash_means_absolute() {
        assert_eq!(r("//etc/passwd", &MemFs::new()), "/etc/passwd");
    }

    #[test]
    fn tilde_is_the_context_home() {
        assert_eq!(r("~", &MemFs::new()), "/home/user");
        assert_eq!(r("~/.ssh", &MemFs::new()), "/home/user/.ssh");
    }

    #[test]
    fn another_users_home_is_an_error() {
        let err = resolve("~root/x", Path::new("/"), &ctx(), &MemFs::new()).unwrap_err();
        assert_eq!(err, PathError::OtherUsersHome("~root/x".into()));
    }

    #[test]
    fn relative_paths_join_the_base_directory() {
        assert_eq!(r("./src", &MemFs::new()), "/proj/src");
        assert_eq!(r("src", &MemFs::new()), "/proj/src");
        assert_eq!(r(".", &MemFs::new()), "/proj");
        assert_eq!(r("../other/./x", &MemFs::new()), "/other/x");
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        assert_eq!(r("/../../etc", &MemFs::new()), "/etc");
    }

    #[test]
    fn symlinks_in_the_literal_part_are_resolved() {
        let fs = MemFs::new()
            .dir("/data/real")
            .symlink("/proj/link", "/data/real");
        assert_eq!(r("./link", &fs), "/data/real");
        assert_eq!(r("./link/**/*.rs", &fs), "/data/real/**/*.rs");
    }

    #[test]
    fn a_missing_path_resolves_its_deepest_existing_ancestor() {
        let fs = MemFs::new().dir("/data").symlink("/proj/link", "/data");
        assert_eq!(r("./link/not/yet", &fs), "/data/not/yet");
    }

    #[test]
    fn glob_characters_in_a_resolved_directory_are_escaped() {
        let fs = MemFs::new().dir("/weird[1]").symlink("/w", "/weird[1]");
        let p = resolve("/w/*.txt", Path::new("/"), &ctx(), &fs).unwrap();
        assert_eq!(p.as_str(), "/weird\\[1\\]/*.txt");
        assert!(p.matches(Path::new("/weird[1]/a.txt")));
    }

    #[test]
    fn empty_and_nul_paths_are_errors() {
        assert_eq!(
            resolve("", Path::new("/"), &ctx(), &MemFs::new()).unwrap_err(),
            PathError::Empty
        );
        assert_eq!(
            resolve("/a\0b", Path::new("/"), &ctx(), &MemFs::new()).unwrap_err(),
            PathError::Nul
        );
    }
}
