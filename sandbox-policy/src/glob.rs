//! Absolute path patterns (globs) with one meaning on every platform.
//!
//! The syntax is gitignore-like and is matched component by component:
//!
//! | pattern | matches |
//! |---|---|
//! | `*` | any run of characters inside one component, including none and including a leading `.` |
//! | `?` | exactly one character, never `/` |
//! | `[abc]`, `[a-z]` | one character of the set; `[!a-z]` or `[^a-z]` negates; never `/` |
//! | `**` (a whole component) | zero or more whole components |
//! | `\x` | the character `x` literally (`\*` is a star) |
//!
//! `**` that is not a whole component (`a**b`) means the same as `*`. Empty components
//! (`//`) and a trailing `/` are ignored. A pattern always starts with `/`.
//!
//! A rule with a pattern applies to every path the pattern matches *and everything
//! beneath it*: see [`PathPattern::match_depth`]. The same meaning is produced as a
//! regular expression for macOS Seatbelt by [`PathPattern::to_regex`].

use std::borrow::Cow;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Why a string is not a valid path pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// The pattern does not start with `/`.
    #[error("pattern {0:?} is not absolute")]
    NotAbsolute(String),
    /// A `[` has no matching `]` in its component.
    #[error("unclosed \"[\" in {0:?}")]
    UnclosedClass(String),
    /// `[]` or `[!]` with nothing inside.
    #[error("empty character class in {0:?}")]
    EmptyClass(String),
    /// A component ends with a lone `\`.
    #[error("\"\\\" at the end of {0:?} escapes nothing")]
    TrailingEscape(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: zero or more components.
    AnyDepth,
    /// One component.
    Component(Vec<Token>),
}

impl Segment {
    fn literal(&self) -> Option<String> {
        match self {
            Segment::AnyDepth => None,
            Segment::Component(tokens) => tokens
                .iter()
                .map(|t| match t {
                    Token::Lit(c) => Some(*c),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// An absolute path pattern, possibly with glob characters.
///
/// Serialized as its text, so it travels over any serde format.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathPattern({:?})", self.text)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for PathPattern {
    type Error = GlobError;
    fn try_from(text: String) -> Result<Self, GlobError> {
        PathPattern::new(&text)
    }
}

impl From<PathPattern> for String {
    fn from(p: PathPattern) -> String {
        p.text
    }
}

/// Escapes the glob characters of `s` so that it matches itself literally.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The pattern that matches exactly `path` (which must be absolute).
pub fn literal(path: &Path) -> PathPattern {
    let mut text = String::new();
    for comp in path.components() {
        if let Component::Normal(os) = comp {
            text.push('/');
            text.push_str(&escape(&os.to_string_lossy()));
        }
    }
    if text.is_empty() {
        text.push('/');
    }
    PathPattern::new(&text).expect("escaped absolute path is a valid pattern")
}

fn parse_component(comp: &str) -> Result<Segment, GlobError> {
    if comp == "**" {
        return Ok(Segment::AnyDepth);
    }
    let chars: Vec<char> = comp.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let c = *chars
                    .get(i + 1)
                    .ok_or_else(|| GlobError::TrailingEscape(comp.to_string()))?;
                tokens.push(Token::Lit(c));
                i += 2;
            }
            '*' => {
                if tokens.last() != Some(&Token::Star) {
                    tokens.push(Token::Star);
                }
                i += 1;
            }
            '?' => {
                tokens.push(Token::AnyChar);
                i += 1;
            }
            '[' => {
                let (token, next) = parse_class(&chars, i, comp)?;
                tokens.push(token);
                i = next;
            }
            c => {
                tokens.push(Token::Lit(c));
                i += 1;
            }
        }
    }
    Ok(Segment::Component(tokens))
}

/// Parses the class starting at `chars[start] == '['`; returns it and the index after `]`.
fn parse_class(chars: &[char], start: usize, comp: &str) -> Result<(Token, usize), GlobError> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = match chars.get(i) {
            None => return Err(GlobError::UnclosedClass(comp.to_string())),
            Some(']') => break,
            Some('\\') => {
                i += 1;
                *chars
                    .get(i)
                    .ok_or_else(|| GlobError::UnclosedClass(comp.to_string()))?
            }
            Some(c) => *c,
        };
        i += 1;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|e| *e != ']') {
            let mut end = chars[i + 1];
            i += 2;
            if end == '\\' {
                end = *chars
                    .get(i)
                    .ok_or_else(|| GlobError::UnclosedClass(comp.to_string()))?;
                i += 1;
            }
            ranges.push((c.min(end), c.max(end)));
        } else {
            ranges.push((c, c));
        }
    }
    if ranges.is_empty() {
        return Err(GlobError::EmptyClass(comp.to_string()));
    }
    Ok((Token::Class { negated, ranges }, i + 1))
}

fn token_matches_char(token: &Token, c: char) -> bool {
    match token {
        Token::Lit(l) => *l == c,
        Token::AnyChar => true,
        Token::Star => true,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|(a, b)| *a <= c && c <= *b) != *negated
        }
    }
}

fn component_matches(tokens: &[Token], name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    // reach[j]: tokens[..t] can match chars[..j].
    let mut reach = vec![false; chars.len() + 1];
    reach[0] = true;
    for token in tokens {
        let mut next = vec![false; chars.len() + 1];
        for j in 0..=chars.len() {
            if token == &Token::Star {
                next[j] = reach[j] || (j > 0 && next[j - 1]);
            } else if j > 0 && reach[j - 1] && token_matches_char(token, chars[j - 1]) {
                next[j] = true;
            }
        }
        reach = next;
    }
    reach[chars.len()]
}

/// The normal components of an absolute path, with `.` and `..` applied lexically.
/// The normal components of an absolute path, borrowed when they are UTF-8
/// (matching runs for every rule on every planned path: no copies).
fn components(path: &Path) -> Option<Vec<Cow<'_, str>>> {
    if !path.is_absolute() {
        return None;
    }
    let mut out: Vec<Cow<'_, str>> = Vec::new();
    for comp in path.components() {
        match comp {
            Component::Normal(os) => out.push(os.to_string_lossy()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Some(out)
}

fn regex_escape(c: char, out: &mut String) {
    if matches!(
        c,
        '.' | '^' | '$' | '|' | '(' | ')' | '[' | ']' | '{' | '}' | '*' | '+' | '?' | '\\' | '"'
    ) {
        out.push('\\');
    }
    out.push(c);
}

fn class_char(c: char, out: &mut String) {
    if matches!(c, ']' | '\\' | '^' | '-' | '[' | '"') {
        out.push('\\');
    }
    out.push(c);
}

impl PathPattern {
    /// Parses an absolute pattern.
    pub fn new(text: &str) -> Result<PathPattern, GlobError> {
        if !text.starts_with('/') {
            return Err(GlobError::NotAbsolute(text.to_string()));
        }
        let segments = text
            .split('/')
            .filter(|c| !c.is_empty())
            .map(parse_component)
            .collect::<Result<Vec<_>, _>>()?;
        let mut canonical = String::new();
        for comp in text.split('/').filter(|c| !c.is_empty()) {
            canonical.push('/');
            canonical.push_str(comp);
        }
        if canonical.is_empty() {
            canonical.push('/');
        }
        Ok(PathPattern {
            text: canonical,
            segments,
        })
    }

    /// The pattern's text (empty components removed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has no glob character: it names one path.
    pub fn is_literal(&self) -> bool {
        self.segments.iter().all(|s| s.literal().is_some())
    }

    /// The path this pattern names, when it is literal.
    pub fn literal_path(&self) -> Option<PathBuf> {
        self.is_literal().then(|| self.literal_prefix())
    }

    /// The deepest directory (or path) named before the first glob component:
    /// `/a/b/*.rs` → `/a/b`, `/a/**/c` → `/a`, `/a/b` → `/a/b`.
    pub fn literal_prefix(&self) -> PathBuf {
        let mut out = PathBuf::from("/");
        for seg in &self.segments {
            match seg.literal() {
                Some(name) => out.push(name),
                None => break,
            }
        }
        out
    }

    /// True when the pattern has a `**` component (matches at any depth).
    pub(crate) fn has_any_depth(&self) -> bool {
        self.segments.contains(&Segment::AnyDepth)
    }

    /// Number of components of the pattern; the specificity used to order rules
    /// whose matches cannot be known in advance (Seatbelt regexes).
    pub fn depth(&self) -> usize {
        self.segments.len()
    }

    /// True when the pattern matches exactly `path` (absolute; `.` and `..` are
    /// applied lexically first). A relative path never matches.
    pub fn matches(&self, path: &Path) -> bool {
        components(path).is_some_and(|comps| self.matches_components(&comps))
    }

    fn matches_components(&self, comps: &[Cow<'_, str>]) -> bool {
        if !self.has_any_depth() {
            return self.segments.len() == comps.len() && self.matches_prefix(comps);
        }
        let (s, c) = (self.segments.len(), comps.len());
        // dp[i * (c + 1) + j]: segments[i..] match comps[j..].
        let width = c + 1;
        let mut dp = vec![false; (s + 1) * width];
        dp[s * width + c] = true;
        for i in (0..s).rev() {
            for j in (0..=c).rev() {
                dp[i * width + j] = match &self.segments[i] {
                    Segment::AnyDepth => {
                        dp[(i + 1) * width + j] || (j < c && dp[i * width + j + 1])
                    }
                    Segment::Component(tokens) => {
                        j < c && dp[(i + 1) * width + j + 1] && component_matches(tokens, &comps[j])
                    }
                };
            }
        }
        dp[0]
    }

    /// For a pattern without `**`: whether its segments match the first
    /// components of `comps`, one each.
    fn matches_prefix(&self, comps: &[Cow<'_, str>]) -> bool {
        self.segments.len() <= comps.len()
            && self
                .segments
                .iter()
                .zip(comps)
                .all(|(seg, comp)| match seg {
                    Segment::Component(tokens) => component_matches(tokens, comp),
                    Segment::AnyDepth => false,
                })
    }

    /// The depth (number of components) of the deepest ancestor-or-self of `path`
    /// that the pattern matches, or `None`. A rule applies to a path exactly when
    /// this is `Some`; the depth says how specific the match is.
    pub fn match_depth(&self, path: &Path) -> Option<usize> {
        let comps = components(path)?;
        match self.segments.iter().position(|s| *s == Segment::AnyDepth) {
            // Each segment matches exactly one component: only the ancestor
            // of the pattern's own depth can match.
            None => {
                let depth = self.segments.len();
                return self.matches_prefix(&comps).then_some(depth);
            }
            // `PREFIX/**`, the shape of most rules: the path itself matches
            // as soon as it lies beneath PREFIX.
            Some(last) if last + 1 == self.segments.len() => {
                let prefix = &self.segments[..last];
                let beneath = prefix.len() <= comps.len()
                    && prefix.iter().zip(&comps).all(|(seg, comp)| match seg {
                        Segment::Component(tokens) => component_matches(tokens, comp),
                        Segment::AnyDepth => false,
                    });
                return beneath.then_some(comps.len());
            }
            Some(_) => {}
        }
        (0..=comps.len())
            .rev()
            .find(|n| self.matches_components(&comps[..*n]))
    }

    /// True when the pattern applies to `path` (it matches the path or an ancestor).
    pub fn covers(&self, path: &Path) -> bool {
        self.match_depth(path).is_some()
    }

    /// A POSIX-style regular expression (without anchors) matching exactly the
    /// paths this pattern matches. Append `(/.*)?` to also match everything beneath.
    pub fn to_regex(&self) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            match seg {
                Segment::AnyDepth => out.push_str("(/[^/]+)*"),
                Segment::Component(tokens) => {
                    out.push('/');
                    for token in tokens {
                        match token {
                            Token::Lit(c) => regex_escape(*c, &mut out),
                            Token::AnyChar => out.push_str("[^/]"),
                            Token::Star => out.push_str("[^/]*"),
                            Token::Class { negated, ranges } => {
                                out.push('[');
                                if *negated {
                                    out.push_str("^/");
                                }
                                for &(a, b) in ranges {
                                    // A range must not let a positive class match '/'.
                                    let parts: Vec<(char, char)> =
                                        if !*negated && a <= '/' && '/' <= b {
                                            [(a, '.'), ('0', b)]
                                                .into_iter()
                                                .filter(|(x, y)| x <= y && *x != '/' && *y != '/')
                                                .collect()
                                        } else {
                                            vec![(a, b)]
                                        };
                                    for (x, y) in parts {
                                        class_char(x, &mut out);
                                        if x != y {
                                            out.push('-');
                                            class_char(y, &mut out);
                                        }
                                    }
                                }
                                out.push(']');
                            }
                        }
                    }
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        PathPattern::new(pattern).unwrap().matches(Path::new(path))
    }

    #[test]
    fn semantics_table() {
        let table: &[(&str, &str, bool)] = &[
            ("/a/b", "/a/b", true),
            ("/a/b", "/a/b/c", false),
            ("/a/*", "/a/b", true),
            ("/a/*", "/a/.hidden", true),
            ("/a/*", "/a/b/c", false),
            ("/a/*.rs", "/a/main.rs", true),
            ("/a/*.rs", "/a/dir/main.rs", false),
            ("/a/?", "/a/x", true),
            ("/a/?", "/a/xy", false),
            ("/a/[bc]", "/a/c", true),
            ("/a/[bc]", "/a/d", false),
            ("/a/[a-c]x", "/a/bx", true),
            ("/a/[!a-c]x", "/a/bx", false),
            ("/a/[^a-c]x", "/a/dx", true),
            ("/a/**", "/a", true),
            ("/a/**", "/a/b/c/d", true),
            ("/a/**/d", "/a/d", true),
            ("/a/**/d", "/a/b/c/d", true),
            ("/a/**/d", "/a/b/c/e", false),
            ("/**/.env", "/x/y/.env", true),
            ("/**/.env", "/.env", true),
            ("/a/**/*.ex", "/a/src/lib/x.ex", true),
            ("/a/**/*.ex", "/a/src/lib/x.exs", false),
            ("/a/b**c", "/a/bxc", true),
            ("/a/b**c", "/a/bx/c", false),
            ("/a/\\*", "/a/*", true),
            ("/a/\\*", "/a/b", false),
            ("/a//b/", "/a/b", true),
            ("/", "/", true),
        ];
        for (pattern, path, expected) in table {
            assert_eq!(m(pattern, path), *expected, "{pattern} vs {path}");
        }
    }

    #[test]
    fn a_relative_path_never_matches() {
        assert!(!m("/**", "a/b"));
    }

    #[test]
    fn dot_dot_in_the_matched_path_is_applied_lexically() {
        assert!(m("/a/b", "/a/c/../b"));
    }

    #[test]
    fn a_rule_covers_the_match_and_everything_beneath_with_its_depth() {
        let p = PathPattern::new("/home/*/.ssh").unwrap();
        assert_eq!(p.match_depth(Path::new("/home/u/.ssh/id_rsa")), Some(3));
        assert_eq!(p.match_depth(Path::new("/home/u/.ssh")), Some(3));
        assert_eq!(p.match_depth(Path::new("/home/u")), None);
    }

    #[test]
    fn literal_prefix_stops_at_the_first_glob_component() {
        let prefix = |p: &str| PathPattern::new(p).unwrap().literal_prefix();
        assert_eq!(prefix("/a/b/*.rs"), PathBuf::from("/a/b"));
        assert_eq!(prefix("/a/**/c"), PathBuf::from("/a"));
        assert_eq!(prefix("/a/b"), PathBuf::from("/a/b"));
        assert_eq!(prefix("/a/\\*b/c"), PathBuf::from("/a/*b/c"));
        assert_eq!(prefix("/**"), PathBuf::from("/"));
    }

    #[test]
    fn escaped_glob_characters_are_literal() {
        let p = literal(Path::new("/a/[x]*?"));
        assert!(p.is_literal());
        assert!(p.matches(Path::new("/a/[x]*?")));
        assert!(!p.matches(Path::new("/a/x")));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        assert_eq!(
            PathPattern::new("/a/[bc").unwrap_err().to_string(),
            "unclosed \"[\" in \"[bc\""
        );
        assert!(matches!(
            PathPattern::new("/a/[]"),
            Err(GlobError::EmptyClass(_))
        ));
        assert!(matches!(
            PathPattern::new("/a/[!]x]"),
            Err(GlobError::EmptyClass(_))
        ));
        assert!(matches!(
            PathPattern::new("/a/b\\"),
            Err(GlobError::TrailingEscape(_))
        ));
        assert!(matches!(
            PathPattern::new("a"),
            Err(GlobError::NotAbsolute(_))
        ));
    }

    #[test]
    fn regex_translation() {
        let r = |p: &str| PathPattern::new(p).unwrap().to_regex();
        assert_eq!(r("/a/b.c"), "/a/b\\.c");
        assert_eq!(r("/a/*.rs"), "/a/[^/]*\\.rs");
        assert_eq!(r("/a/**/d"), "/a(/[^/]+)*/d");
        assert_eq!(r("/a/?[!x]"), "/a/[^/][^/x]");
        assert_eq!(r("/a/[+-1]"), "/a/[+-.0-1]");
        assert_eq!(r("/"), "/");
    }

    #[test]
    fn serializes_as_its_text() {
        let p = PathPattern::new("/a/**/*.rs").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"/a/**/*.rs\"");
        assert_eq!(serde_json::from_str::<PathPattern>(&json).unwrap(), p);
    }

    #[test]
    fn random_patterns_never_panic() {
        for s in crate::random_strings::strings("/ab*?[]!^-\\.é", 20_000) {
            let text = format!("/{s}");
            if let Ok(p) = PathPattern::new(&text) {
                let _ = p.to_regex();
                let _ = p.match_depth(Path::new("/a/b/.c/ab"));
                let _ = p.literal_prefix();
            }
        }
    }
}
