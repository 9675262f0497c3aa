//! Platform plans derived from a [`crate::Policy`]: pure values that an enforcer
//! applies (Linux) or passes to `sandbox-exec` (macOS).

pub mod linux;
pub mod seatbelt;

use std::path::PathBuf;

use crate::fs_view::{FsView, Kind};
use crate::glob::PathPattern;
use crate::origin::Origin;

/// Something a plan cannot enforce exactly, with the rule concerned and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Gap {
    /// The rule concerned, when the gap comes from one.
    pub rule: Option<Origin>,
    /// What is not enforced, in plain words.
    pub reason: String,
}

/// Most directory entries visited when expanding one glob.
pub const GLOB_EXPANSION_LIMIT: usize = 10_000;

/// The existing paths matching a glob (symlinks resolved), sorted, and whether the
/// walk stopped at [`GLOB_EXPANSION_LIMIT`]. A matching directory is returned once;
/// the walk does not descend into it (the rule covers everything beneath).
pub(crate) fn expand(pattern: &PathPattern, fs: &dyn FsView) -> (Vec<PathBuf>, bool) {
    let prefix = pattern.literal_prefix();
    if pattern.matches(&prefix) {
        return (vec![prefix], false);
    }
    let max_depth = if pattern.has_any_depth() {
        usize::MAX
    } else {
        pattern.depth()
    };
    let mut out = Vec::new();
    let mut visited = 0;
    let mut stack = vec![prefix];
    while let Some(dir) = stack.pop() {
        for name in fs.read_dir(&dir).unwrap_or_default() {
            visited += 1;
            if visited > GLOB_EXPANSION_LIMIT {
                out.sort();
                return (out, true);
            }
            let child = dir.join(name);
            if pattern.matches(&child) {
                out.push(fs.canonicalize(&child).unwrap_or(child));
            } else if child.components().count() - 1 < max_depth
                && fs.metadata_kind(&child) == Some(Kind::Dir)
            {
                stack.push(child);
            }
        }
    }
    out.sort();
    out.dedup();
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs_view::MemFs;
    use std::path::Path;

    #[test]
    fn expansion_finds_existing_matches_without_descending_into_them() {
        let fs = MemFs::new()
            .file("/p/src/a.ex", "")
            .file("/p/src/lib/b.ex", "")
            .file("/p/src/lib/c.rs", "")
            .dir("/p/src/x.ex/inner.ex");
        let (found, truncated) = expand(&PathPattern::new("/p/src/**/*.ex").unwrap(), &fs);
        assert!(!truncated);
        assert_eq!(
            found,
            vec![
                Path::new("/p/src/a.ex"),
                Path::new("/p/src/lib/b.ex"),
                Path::new("/p/src/x.ex")
            ]
        );
    }

    #[test]
    fn expansion_without_double_star_stops_at_the_pattern_depth() {
        let fs = MemFs::new().file("/p/a/x.txt", "").file("/p/a/b/x.txt", "");
        let (found, _) = expand(&PathPattern::new("/p/*/x.txt").unwrap(), &fs);
        assert_eq!(found, vec![Path::new("/p/a/x.txt")]);
    }
}
