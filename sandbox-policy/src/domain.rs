//! Host names and network targets: parsing and matching.
//!
//! Names are compared lowercased with one trailing dot removed. `example.com`
//! matches only itself; `*.example.com` matches its subdomains only (not
//! `example.com`). An IP literal never matches a name or wildcard rule; it matches a
//! rule written with the same address (`domain:127.0.0.1`, `tcp:[::1]:5432`),
//! compared in canonical form. Matching is exact label arithmetic, so neither
//! `evilexample.com` nor `example.com.evil.net` matches `example.com` or
//! `*.example.com`.

use std::fmt;
use std::net::IpAddr;

/// Why a host name or pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Nothing at all.
    #[error("empty host")]
    Empty,
    /// A character that cannot appear in a host name.
    #[error("character {0:?} is not allowed in a host name")]
    BadChar(char),
    /// `a..b`, `.a`.
    #[error("empty label")]
    EmptyLabel,
    /// A label over 63 bytes or a name over 253.
    #[error("name too long")]
    TooLong,
    /// `*` anywhere but as a whole first label.
    #[error("\"*\" is only allowed as a whole first label, as in \"*.example.com\"")]
    BadWildcard,
    /// `*.1.2.3.4`.
    #[error("a wildcard cannot cover an IP address")]
    WildcardIp,
}

/// A host as matched by rules: a name or an IP literal.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum HostPattern {
    /// One host name or IP literal (canonical form), matched exactly.
    Exact(String),
    /// `*.NAME`: every subdomain of NAME, not NAME itself. Holds NAME.
    Subdomains(String),
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) if h.contains(':') => write!(f, "[{h}]"),
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Subdomains(h) => write!(f, "*.{h}"),
        }
    }
}

/// A normalized host: lowercased, one trailing dot removed, brackets removed, IP
/// literals in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The normalized text.
    pub name: String,
    /// The address, when the host is an IP literal.
    pub ip: Option<IpAddr>,
}

fn strip_brackets(s: &str) -> &str {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s)
}

fn validate_name(name: &str) -> Result<(), DomainError> {
    if name.len() > 253 {
        return Err(DomainError::TooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(DomainError::TooLong);
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(if c == '*' {
                DomainError::BadWildcard
            } else {
                DomainError::BadChar(c)
            });
        }
    }
    Ok(())
}

impl Host {
    /// Normalizes and validates a host as seen in a request.
    pub fn parse(raw: &str) -> Result<Host, DomainError> {
        let lower = raw.to_ascii_lowercase();
        let trimmed = strip_brackets(&lower);
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(DomainError::Empty);
        }
        if let Ok(ip) = trimmed.parse::<IpAddr>() {
            return Ok(Host {
                name: ip.to_string(),
                ip: Some(ip),
            });
        }
        validate_name(trimmed)?;
        Ok(Host {
            name: trimmed.to_string(),
            ip: None,
        })
    }
}

impl HostPattern {
    /// Parses `example.com`, `*.example.com`, `127.0.0.1` or `[::1]`.
    pub fn parse(raw: &str) -> Result<HostPattern, DomainError> {
        let lower = raw.to_ascii_lowercase();
        if let Some(base) = lower.strip_prefix("*.") {
            let host = Host::parse(base)?;
            if host.ip.is_some() {
                return Err(DomainError::WildcardIp);
            }
            return Ok(HostPattern::Subdomains(host.name));
        }
        Host::parse(&lower).map(|h| HostPattern::Exact(h.name))
    }

    /// True when the (normalized) host matches this pattern.
    pub fn matches(&self, host: &Host) -> bool {
        match self {
            HostPattern::Exact(name) => *name == host.name,
            HostPattern::Subdomains(base) => {
                host.ip.is_none()
                    && host.name.len() > base.len() + 1
                    && host.name.ends_with(base.as_str())
                    && host.name.as_bytes()[host.name.len() - base.len() - 1] == b'.'
            }
        }
    }
}

/// What a network rule names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum NetTarget {
    /// `domain:NAME` / `domain:*.NAME`: any port.
    Domain(HostPattern),
    /// `tcp:HOST:PORT`: one port of a host.
    Tcp {
        /// The host (or `*.NAME`).
        host: HostPattern,
        /// The port.
        port: u16,
    },
}

impl NetTarget {
    /// True when a connection to `host:port` is covered by this target.
    pub fn matches(&self, host: &Host, port: u16) -> bool {
        match self {
            NetTarget::Domain(pattern) => pattern.matches(host),
            NetTarget::Tcp {
                host: pattern,
                port: p,
            } => *p == port && pattern.matches(host),
        }
    }

    /// The host pattern of the target.
    pub fn host(&self) -> &HostPattern {
        match self {
            NetTarget::Domain(h) | NetTarget::Tcp { host: h, .. } => h,
        }
    }
}

impl fmt::Display for NetTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetTarget::Domain(h) => write!(f, "domain:{h}"),
            NetTarget::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

/// True for addresses a sandbox must not reach unless a rule names them:
/// loopback, private (RFC 1918, unique local), link-local (including the cloud
/// metadata address 169.254.169.254), shared (100.64/10), unspecified, broadcast and
/// multicast. IPv4-mapped IPv6 addresses are judged as IPv4.
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_address(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    fn pat(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }

    #[test]
    fn a_name_matches_itself_only() {
        assert!(pat("example.com").matches(&host("example.com")));
        assert!(!pat("example.com").matches(&host("www.example.com")));
    }

    #[test]
    fn names_are_lowercased_and_lose_one_trailing_dot() {
        assert!(pat("Example.COM.").matches(&host("EXAMPLE.com.")));
    }

    #[test]
    fn a_wildcard_matches_subdomains_only() {
        let p = pat("*.example.com");
        assert!(p.matches(&host("a.example.com")));
        assert!(p.matches(&host("a.b.example.com")));
        assert!(!p.matches(&host("example.com")));
    }

    #[test]
    fn lookalike_names_never_match() {
        for rule in ["example.com", "*.example.com"] {
            assert!(!pat(rule).matches(&host("evilexample.com")), "{rule}");
            assert!(!pat(rule).matches(&host("example.com.evil.net")), "{rule}");
        }
    }

    #[test]
    fn ip_literals_never_match_name_rules() {
        assert!(!pat("*.0.1").matches(&host("127.0.0.1")));
        assert!(!pat("localhost").matches(&host("127.0.0.1")));
    }

    #[test]
    fn ip_rules_match_the_same_address_in_any_spelling() {
        assert!(pat("[::1]").matches(&host("0:0:0:0:0:0:0:1")));
        assert!(pat("10.0.0.1").matches(&host("10.0.0.1")));
    }

    #[test]
    fn malformed_hosts_are_errors() {
        assert_eq!(HostPattern::parse(""), Err(DomainError::Empty));
        assert_eq!(HostPattern::parse("a..b"), Err(DomainError::EmptyLabel));
        assert_eq!(HostPattern::parse("a b"), Err(DomainError::BadChar(' ')));
        assert_eq!(HostPattern::parse("a.*.b"), Err(DomainError::BadWildcard));
        assert_eq!(
            HostPattern::parse("*.1.2.3.4"),
            Err(DomainError::WildcardIp)
        );
    }

    #[test]
    fn private_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(is_private_address(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_private_address(a.parse().unwrap()), "{a}");
        }
    }
}
