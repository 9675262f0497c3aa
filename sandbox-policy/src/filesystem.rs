//! The filesystem half of a policy and its meaning.
//!
//! Default: everything is readable and nothing is writable (the executor adds the
//! sandbox's own private temporary directory). A rule applies to every path its
//! pattern matches and everything beneath (see [`PathPattern::match_depth`]).
//!
//! - **Reading**: a path is unreadable when a `denyRead` rule applies, unless an
//!   `allowRead` rule applies whose match is *deeper* (more specific) than the
//!   deepest applying `denyRead` match. At equal depth the deny wins.
//! - **Writing**: a path is writable when an `allowWrite` rule applies, no
//!   `denyWrite` rule applies (deny-write beats allow-write at any depth), and the
//!   path is readable (an unreadable region is hidden, so it cannot be written).

use std::path::{Path, PathBuf};

use crate::glob::PathPattern;
use crate::origin::{Layer, Origin};

/// One path rule: a resolved absolute pattern and its origin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathRule {
    /// The resolved pattern.
    pub pattern: PathPattern,
    /// Where it came from.
    pub origin: Origin,
}

/// Filesystem rules, in the four lists of the srt settings format.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FilesystemPolicy {
    /// Regions that cannot be read (`denyRead`, deny `Read(…)`).
    pub deny_read: Vec<PathRule>,
    /// Regions re-opened inside denied regions (`allowRead`, allow `Read(…)`).
    pub allow_read: Vec<PathRule>,
    /// Writable regions (`allowWrite`, allow `Edit(…)`).
    pub allow_write: Vec<PathRule>,
    /// Regions never writable (`denyWrite`, deny `Edit(…)`, mandatory protections).
    pub deny_write: Vec<PathRule>,
}

fn deepest<'a>(rules: &'a [PathRule], path: &Path) -> Option<(usize, &'a PathRule)> {
    rules
        .iter()
        .filter_map(|r| r.pattern.match_depth(path).map(|d| (d, r)))
        .max_by_key(|(d, _)| *d)
}

impl FilesystemPolicy {
    /// True when no rule at all is present.
    pub fn is_empty(&self) -> bool {
        self.deny_read.is_empty()
            && self.allow_read.is_empty()
            && self.allow_write.is_empty()
            && self.deny_write.is_empty()
    }

    /// Whether `path` (absolute) may be read.
    pub fn can_read(&self, path: &Path) -> bool {
        match deepest(&self.deny_read, path) {
            None => true,
            Some((deny, _)) => {
                deepest(&self.allow_read, path).is_some_and(|(allow, _)| allow > deny)
            }
        }
    }

    /// Whether `path` (absolute) may be written.
    pub fn can_write(&self, path: &Path) -> bool {
        deepest(&self.allow_write, path).is_some()
            && deepest(&self.deny_write, path).is_none()
            && self.can_read(path)
    }

    /// The rule that decides writing `path`, if any: the deny-write rule when one
    /// applies, else the deepest allow-write rule.
    pub fn write_rule(&self, path: &Path) -> Option<&PathRule> {
        deepest(&self.deny_write, path)
            .or_else(|| deepest(&self.allow_write, path))
            .map(|(_, r)| r)
    }

    /// The rule that decides reading `path`, if any: the deepest applying rule of
    /// either list (the deny one at equal depth).
    pub fn read_rule(&self, path: &Path) -> Option<&PathRule> {
        match (
            deepest(&self.deny_read, path),
            deepest(&self.allow_read, path),
        ) {
            (Some((d, deny)), Some((a, allow))) => Some(if a > d { allow } else { deny }),
            (Some((_, r)), None) | (None, Some((_, r))) => Some(r),
            (None, None) => None,
        }
    }
}

/// Paths under the home directory that a sandbox must not write: shell start-up
/// files and the user settings directory.
pub const PROTECTED_IN_HOME: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".zshenv",
    ".zlogin",
    ".config/fish",
    ".sandbox",
];

/// Paths protected inside every writable root.
pub const PROTECTED_IN_WRITABLE_ROOTS: &[&str] = &[".git/hooks", ".git/config", ".sandbox"];

/// The mandatory deny-write paths for `home` and the given writable roots, minus
/// those an allow-write rule names explicitly (the path itself or a path inside it).
pub(crate) fn mandatory_protections(
    home: &Path,
    allow_write: &[PathRule],
) -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    let mut push = |path: PathBuf, text: String| {
        let named = allow_write.iter().any(|r| {
            r.origin.layer != Layer::Mandatory && r.pattern.literal_prefix().starts_with(&path)
        });
        if !named && !out.iter().any(|(p, _)| *p == path) {
            out.push((path, text));
        }
    };
    for rc in PROTECTED_IN_HOME {
        push(home.join(rc), format!("~/{rc}"));
    }
    for rule in allow_write {
        let root = rule.pattern.literal_prefix();
        for protected in PROTECTED_IN_WRITABLE_ROOTS {
            push(
                root.join(protected),
                format!("{}/{protected}", root.display()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(patterns: &[&str]) -> Vec<PathRule> {
        patterns
            .iter()
            .map(|p| PathRule {
                pattern: PathPattern::new(p).unwrap(),
                origin: Origin::new(Layer::Flag, "--test", *p),
            })
            .collect()
    }

    fn fs(
        deny_read: &[&str],
        allow_read: &[&str],
        allow_write: &[&str],
        deny_write: &[&str],
    ) -> FilesystemPolicy {
        FilesystemPolicy {
            deny_read: rules(deny_read),
            allow_read: rules(allow_read),
            allow_write: rules(allow_write),
            deny_write: rules(deny_write),
        }
    }

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn everything_is_readable_and_nothing_writable_by_default() {
        let f = FilesystemPolicy::default();
        assert!(f.can_read(p("/etc/passwd")));
        assert!(!f.can_write(p("/tmp/x")));
    }

    #[test]
    fn deny_read_covers_the_region() {
        let f = fs(&["/home/u/.ssh"], &[], &[], &[]);
        assert!(!f.can_read(p("/home/u/.ssh/id_rsa")));
        assert!(f.can_read(p("/home/u/.sshx")));
    }

    #[test]
    fn allow_read_reopens_inside_a_denied_region() {
        let f = fs(&["/home/u"], &["/home/u/project"], &[], &[]);
        assert!(!f.can_read(p("/home/u/.aws/credentials")));
        assert!(f.can_read(p("/home/u/project/src/main.rs")));
    }

    #[test]
    fn a_more_specific_deny_beats_the_reopening() {
        let f = fs(
            &["/home/u", "/home/u/project/.env"],
            &["/home/u/project"],
            &[],
            &[],
        );
        assert!(!f.can_read(p("/home/u/project/.env")));
        assert!(f.can_read(p("/home/u/project/README")));
    }

    #[test]
    fn at_equal_depth_deny_read_wins() {
        let f = fs(&["/data"], &["/data"], &[], &[]);
        assert!(!f.can_read(p("/data/x")));
    }

    #[test]
    fn deny_write_beats_allow_write_at_any_depth() {
        let f = fs(&[], &[], &["/p/src/generated"], &["/p"]);
        assert!(!f.can_write(p("/p/src/generated/x")));
        let f = fs(&[], &[], &["/p"], &["/p/.env"]);
        assert!(f.can_write(p("/p/main.rs")));
        assert!(!f.can_write(p("/p/.env")));
    }

    #[test]
    fn an_unreadable_region_is_not_writable() {
        let f = fs(&["/p/secret"], &[], &["/p"], &[]);
        assert!(!f.can_write(p("/p/secret/x")));
        assert!(f.can_write(p("/p/other")));
    }

    #[test]
    fn glob_rules_apply_to_their_matches_and_below() {
        let f = fs(&["/p/**/.env*"], &[], &["/p/src/**/*.ex"], &[]);
        assert!(!f.can_read(p("/p/a/b/.env.local")));
        assert!(f.can_write(p("/p/src/lib/x.ex")));
        assert!(!f.can_write(p("/p/src/lib/x.rs")));
    }

    #[test]
    fn the_deciding_rules_are_reported() {
        let f = fs(
            &["/home/u"],
            &["/home/u/p"],
            &["/home/u/p"],
            &["/home/u/p/.git/hooks"],
        );
        assert_eq!(
            f.read_rule(p("/home/u/p/x")).unwrap().origin.text,
            "/home/u/p"
        );
        assert_eq!(f.read_rule(p("/home/u/x")).unwrap().origin.text, "/home/u");
        assert_eq!(
            f.write_rule(p("/home/u/p/.git/hooks/pre-commit"))
                .unwrap()
                .origin
                .text,
            "/home/u/p/.git/hooks"
        );
    }
}
