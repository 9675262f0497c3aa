//! The Seatbelt regex of a glob means exactly what the glob means: checked against
//! the matcher over a table of patterns and (canonical) paths.

use std::path::Path;

use sandbox_policy::PathPattern;

const PATTERNS: &[&str] = &[
    "/a/b",
    "/a/*",
    "/a/*.rs",
    "/a/?",
    "/a/[bc]",
    "/a/[!bc]",
    "/a/[+-1]",
    "/a/**",
    "/a/**/d",
    "/**/.env*",
    "/a/**/*.ex",
    "/a/b**c",
    "/a/\\*",
    "/a.b/c+d/(x)",
];

const PATHS: &[&str] = &[
    "/",
    "/a",
    "/a/b",
    "/a/c",
    "/a/d",
    "/a/.hidden",
    "/a/b/c",
    "/a/b/c/d",
    "/a/d/e",
    "/a/main.rs",
    "/a/dir/main.rs",
    "/a/x",
    "/a/xy",
    "/a/+",
    "/a/0",
    "/a/bxc",
    "/a/bx/c",
    "/a/*",
    "/x/.env.local",
    "/.env",
    "/a/src/lib/x.ex",
    "/a/src/lib/x.exs",
    "/a.b/c+d/(x)",
    "/aXb/c+d/(x)",
    "/a/d/inner/deep",
];

#[test]
fn the_seatbelt_regex_agrees_with_the_matcher() {
    for pattern in PATTERNS {
        let glob = PathPattern::new(pattern).unwrap();
        let exact = regex::Regex::new(&format!("^{}$", glob.to_regex())).unwrap();
        let beneath = regex::Regex::new(&format!("^{}(/.*)?$", glob.to_regex())).unwrap();
        for path in PATHS {
            assert_eq!(
                exact.is_match(path),
                glob.matches(Path::new(path)),
                "{pattern} vs {path}"
            );
            assert_eq!(
                beneath.is_match(path),
                glob.covers(Path::new(path)),
                "{pattern} covers {path}"
            );
        }
    }
}
