//! The permission string grammar of the seed (and Claude Code):
//!
//! ```text
//! permission := kind "(" argument ")"
//! kind       := "Read" | "Edit" | "WebFetch" | "UnixSocket"
//! Read(PATH)                   in deny: deny reading PATH; in allow: re-open reading
//! Edit(PATH)                   in allow: allow writing PATH; in deny: deny writing
//! WebFetch(domain:NAME)        NAME or *.NAME, any port
//! WebFetch(tcp:HOST:PORT)      one port of HOST ([v6] in brackets)
//! UnixSocket(PATH)             in allow: connecting to that unix socket
//! ```
//!
//! Surrounding whitespace is ignored; the argument is taken verbatim up to the last
//! `)`. Paths are resolved later (see [`crate::path`]).

use std::fmt;

use crate::domain::{DomainError, HostPattern, NetTarget};
use crate::path::PathError;

/// Which list a permission is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Effect {
    /// The `allow` list (`--allow`).
    Allow,
    /// The `deny` list (`--deny`).
    Deny,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        })
    }
}

/// One parsed permission string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// `Read(PATH)`, path as written.
    Read(String),
    /// `Edit(PATH)`, path as written.
    Edit(String),
    /// `WebFetch(domain:…)` or `WebFetch(tcp:…)`.
    WebFetch(NetTarget),
    /// `UnixSocket(PATH)`, path as written.
    UnixSocket(String),
}

/// A malformed permission string: the input, quoted, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid permission {input:?}: {problem}")]
pub struct PermissionError {
    /// The string as given.
    pub input: String,
    /// The bad part.
    pub problem: Problem,
}

/// What is wrong with a permission string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Empty or blank.
    #[error("empty permission (expected e.g. Read(~/.ssh))")]
    Empty,
    /// No `(`.
    #[error("missing \"(\" (expected Kind(argument), e.g. Read(~/.ssh))")]
    MissingOpenParen,
    /// No closing `)`.
    #[error("missing \")\" at the end")]
    MissingCloseParen,
    /// Text after the closing parenthesis.
    #[error("unexpected {0:?} after \")\"")]
    TrailingText(String),
    /// The kind before `(` is not known.
    #[error("unknown kind {0:?} (expected Read, Edit, WebFetch or UnixSocket)")]
    UnknownKind(String),
    /// `Read()`.
    #[error("empty path in {0}()")]
    EmptyPath(&'static str),
    /// A bad path.
    #[error("path {path:?}: {error}")]
    Path {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        error: PathError,
    },
    /// `WebFetch(x)` without `domain:` or `tcp:`.
    #[error("unknown WebFetch target {0:?} (expected \"domain:NAME\" or \"tcp:HOST:PORT\")")]
    UnknownTarget(String),
    /// `WebFetch(domain:)`.
    #[error("empty domain after \"domain:\"")]
    EmptyDomain,
    /// A bad domain or host.
    #[error("invalid host {host:?}: {error}")]
    Host {
        /// The host as written.
        host: String,
        /// What is wrong with it.
        error: DomainError,
    },
    /// `tcp:host` without a port.
    #[error("missing port in {0:?} (expected tcp:HOST:PORT)")]
    MissingPort(String),
    /// A port that is not 1–65535.
    #[error("invalid port {0:?} (expected 1-65535)")]
    BadPort(String),
}

fn host(text: &str) -> Result<HostPattern, Problem> {
    HostPattern::parse(text).map_err(|error| Problem::Host {
        host: text.to_string(),
        error,
    })
}

fn parse_target(arg: &str) -> Result<NetTarget, Problem> {
    if let Some(domain) = arg.strip_prefix("domain:") {
        if domain.is_empty() {
            return Err(Problem::EmptyDomain);
        }
        return host(domain).map(NetTarget::Domain);
    }
    if let Some(rest) = arg.strip_prefix("tcp:") {
        let (h, port) = rest
            .rsplit_once(':')
            .filter(|(h, _)| !h.is_empty() && (!h.contains(':') || h.ends_with(']')))
            .ok_or_else(|| Problem::MissingPort(arg.to_string()))?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| Problem::BadPort(port.to_string()))?;
        return Ok(NetTarget::Tcp {
            host: host(h)?,
            port,
        });
    }
    Err(Problem::UnknownTarget(arg.to_string()))
}

fn parse_inner(input: &str) -> Result<Permission, Problem> {
    let s = input.trim();
    if s.is_empty() {
        return Err(Problem::Empty);
    }
    let open = match s.find('(') {
        Some(open) => open,
        None if matches!(s, "Read" | "Edit" | "WebFetch" | "UnixSocket") => {
            return Err(Problem::MissingOpenParen)
        }
        None if s.chars().all(|c| c.is_ascii_alphanumeric()) => {
            return Err(Problem::UnknownKind(s.to_string()))
        }
        None => return Err(Problem::MissingOpenParen),
    };
    let kind = &s[..open];
    let close = s[open..]
        .rfind(')')
        .map(|c| c + open)
        .ok_or(Problem::MissingCloseParen)?;
    if close + 1 != s.len() {
        return Err(Problem::TrailingText(s[close + 1..].to_string()));
    }
    let arg = &s[open + 1..close];
    let path = |name: &'static str| {
        if arg.is_empty() {
            Err(Problem::EmptyPath(name))
        } else {
            Ok(arg.to_string())
        }
    };
    match kind {
        "Read" => path("Read").map(Permission::Read),
        "Edit" => path("Edit").map(Permission::Edit),
        "UnixSocket" => path("UnixSocket").map(Permission::UnixSocket),
        "WebFetch" => parse_target(arg).map(Permission::WebFetch),
        other => Err(Problem::UnknownKind(other.to_string())),
    }
}

impl Permission {
    /// Parses one permission string.
    pub fn parse(input: &str) -> Result<Permission, PermissionError> {
        parse_inner(input).map_err(|problem| PermissionError {
            input: input.to_string(),
            problem,
        })
    }
}

impl std::str::FromStr for Permission {
    type Err = PermissionError;
    fn from_str(s: &str) -> Result<Permission, PermissionError> {
        Permission::parse(s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permission::Read(p) => write!(f, "Read({p})"),
            Permission::Edit(p) => write!(f, "Edit({p})"),
            Permission::WebFetch(t) => write!(f, "WebFetch({t})"),
            Permission::UnixSocket(p) => write!(f, "UnixSocket({p})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Permission {
        Permission::parse(s).unwrap()
    }

    fn err(s: &str) -> String {
        Permission::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn read_edit_and_unix_socket_keep_the_path_as_written() {
        assert_eq!(ok("Read(~/.ssh)"), Permission::Read("~/.ssh".into()));
        assert_eq!(
            ok("Edit(./src/**/*.ex)"),
            Permission::Edit("./src/**/*.ex".into())
        );
        assert_eq!(
            ok("UnixSocket(/var/run/docker.sock)"),
            Permission::UnixSocket("/var/run/docker.sock".into())
        );
        assert_eq!(
            ok("Read(//etc/a (1))"),
            Permission::Read("//etc/a (1)".into())
        );
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(ok("  Read(.)\n"), Permission::Read(".".into()));
    }

    #[test]
    fn webfetch_domain_forms() {
        assert_eq!(
            ok("WebFetch(domain:GitHub.com.)"),
            Permission::WebFetch(NetTarget::Domain(HostPattern::Exact("github.com".into())))
        );
        assert_eq!(
            ok("WebFetch(domain:*.example.com)"),
            Permission::WebFetch(NetTarget::Domain(HostPattern::Subdomains(
                "example.com".into()
            )))
        );
    }

    #[test]
    fn webfetch_tcp_forms() {
        assert_eq!(
            ok("WebFetch(tcp:localhost:5432)"),
            Permission::WebFetch(NetTarget::Tcp {
                host: HostPattern::Exact("localhost".into()),
                port: 5432
            })
        );
        assert_eq!(
            ok("WebFetch(tcp:[::1]:80)").to_string(),
            "WebFetch(tcp:[::1]:80)"
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "Read(~/.ssh)",
            "WebFetch(domain:*.example.com)",
            "WebFetch(tcp:db:5432)",
        ] {
            assert_eq!(ok(s).to_string(), s);
        }
    }

    #[test]
    fn malformed_strings_quote_the_input_and_the_bad_part() {
        let cases = [
            (
                "Raed(/x)",
                r#"invalid permission "Raed(/x)": unknown kind "Raed" (expected Read, Edit, WebFetch or UnixSocket)"#,
            ),
            (
                "WebFetch(domain:)",
                r#"invalid permission "WebFetch(domain:)": empty domain after "domain:""#,
            ),
            (
                "",
                r#"invalid permission "": empty permission (expected e.g. Read(~/.ssh))"#,
            ),
            (
                "Read",
                r#"invalid permission "Read": missing "(" (expected Kind(argument), e.g. Read(~/.ssh))"#,
            ),
            (
                "Bogus",
                r#"invalid permission "Bogus": unknown kind "Bogus" (expected Read, Edit, WebFetch or UnixSocket)"#,
            ),
            (
                "Read(/x",
                r#"invalid permission "Read(/x": missing ")" at the end"#,
            ),
            (
                "Read(/x) extra",
                r#"invalid permission "Read(/x) extra": unexpected " extra" after ")""#,
            ),
            (
                "Read()",
                r#"invalid permission "Read()": empty path in Read()"#,
            ),
            (
                "WebFetch(github.com)",
                r#"invalid permission "WebFetch(github.com)": unknown WebFetch target "github.com" (expected "domain:NAME" or "tcp:HOST:PORT")"#,
            ),
            (
                "WebFetch(domain:a b.com)",
                r#"invalid permission "WebFetch(domain:a b.com)": invalid host "a b.com": character ' ' is not allowed in a host name"#,
            ),
            (
                "WebFetch(domain:a.*.com)",
                r#"invalid permission "WebFetch(domain:a.*.com)": invalid host "a.*.com": "*" is only allowed as a whole first label, as in "*.example.com""#,
            ),
            (
                "WebFetch(tcp:db)",
                r#"invalid permission "WebFetch(tcp:db)": missing port in "tcp:db" (expected tcp:HOST:PORT)"#,
            ),
            (
                "WebFetch(tcp:db:99999)",
                r#"invalid permission "WebFetch(tcp:db:99999)": invalid port "99999" (expected 1-65535)"#,
            ),
            (
                "WebFetch(tcp:db:0)",
                r#"invalid permission "WebFetch(tcp:db:0)": invalid port "0" (expected 1-65535)"#,
            ),
            (
                "WebFetch(tcp::1:80)",
                r#"invalid permission "WebFetch(tcp::1:80)": missing port in "tcp::1:80" (expected tcp:HOST:PORT)"#,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(err(input), expected, "{input}");
        }
    }

    #[test]
    fn random_strings_never_panic() {
        for s in crate::random_strings::strings("RdEitWebFchUnxSok()[]:*./~ -\\?{}é\0", 20_000) {
            let _ = Permission::parse(&s);
            let _ = Permission::parse(&format!("WebFetch({s})"));
            let _ = Permission::parse(&format!("WebFetch(tcp:{s})"));
        }
    }
}
