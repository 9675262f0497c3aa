//! The network half of a policy and its pure decisions, used by the proxy.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::domain::{is_private_address, Host, HostPattern, NetTarget};
use crate::filesystem::PathRule;
use crate::origin::Origin;

/// One allow or deny network rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetRule {
    /// What it names.
    pub target: NetTarget,
    /// Where it came from.
    pub origin: Origin,
}

/// Network rules. No rule means no network: every destination is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkPolicy {
    /// Allowed destinations (`allowedDomains`, allow `WebFetch(…)`).
    pub allow: Vec<NetRule>,
    /// Denied destinations (`deniedDomains`, deny `WebFetch(…)`); they beat `allow`.
    pub deny: Vec<NetRule>,
    /// Unix sockets that may be connected to (`allowUnixSockets`, allow `UnixSocket(…)`).
    pub allow_unix_sockets: Vec<PathRule>,
    /// Unix sockets denied explicitly (deny `UnixSocket(…)`); they beat the allow list.
    /// Unix sockets are denied by default anyway: these are recorded for display.
    pub deny_unix_sockets: Vec<PathRule>,
    /// Whether the sandbox may bind and listen on local ports (`allowLocalBinding`).
    pub allow_local_binding: bool,
    /// Whether names may resolve to loopback / private / link-local / metadata
    /// addresses (`allowPrivateDestinations`); see [`NetworkPolicy::address_allowed`].
    pub allow_private_destinations: bool,
    /// Fixed answers for name resolution, like `curl --resolve` (`resolve`).
    pub resolve: BTreeMap<String, IpAddr>,
    /// Port of the HTTP proxy the sandbox is pointed at (`httpProxyPort`), if fixed.
    pub http_proxy_port: Option<u16>,
    /// Port of the SOCKS5 proxy (`socksProxyPort`), if fixed.
    pub socks_proxy_port: Option<u16>,
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DecisionReason {
    /// An allow rule matched and no deny rule did.
    AllowedByRule,
    /// A deny rule matched.
    DeniedByRule,
    /// No rule matched: denied.
    NoMatchingRule,
    /// The host is not a valid host name or IP literal: denied.
    InvalidHost,
}

/// The answer to "may the sandbox connect to host:port?".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    /// Whether the connection is allowed.
    pub allowed: bool,
    /// Why.
    pub reason: DecisionReason,
    /// The deciding rule, when one matched.
    pub rule: Option<Origin>,
    /// The host as matched (normalized), or the raw input when invalid.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl NetworkPolicy {
    /// Decides a connection to `host:port`: a matching deny rule denies; otherwise a
    /// matching allow rule allows; otherwise denied. Pure: no name resolution.
    pub fn decide(&self, host: &str, port: u16) -> Decision {
        let parsed = match Host::parse(host) {
            Ok(h) => h,
            Err(_) => {
                return Decision {
                    allowed: false,
                    reason: DecisionReason::InvalidHost,
                    rule: None,
                    host: host.to_string(),
                    port,
                }
            }
        };
        let find = |rules: &[NetRule]| {
            rules
                .iter()
                .find(|r| r.target.matches(&parsed, port))
                .map(|r| r.origin.clone())
        };
        let (allowed, reason, rule) = if let Some(rule) = find(&self.deny) {
            (false, DecisionReason::DeniedByRule, Some(rule))
        } else if let Some(rule) = find(&self.allow) {
            (true, DecisionReason::AllowedByRule, Some(rule))
        } else {
            (false, DecisionReason::NoMatchingRule, None)
        };
        Decision {
            allowed,
            reason,
            rule,
            host: parsed.name,
            port,
        }
    }

    /// True when some destination may be allowed (the executor starts the proxy).
    pub fn allows_any(&self) -> bool {
        !self.allow.is_empty()
    }

    /// The fixed address for `host` from the `resolve` map, if any.
    pub fn resolve_override(&self, host: &str) -> Option<IpAddr> {
        let host = Host::parse(host).ok()?;
        self.resolve.get(&host.name).copied()
    }

    /// Whether an allowed `host:port` may be reached at the address `ip` it
    /// resolved to (the DNS-rebinding defence).
    ///
    /// A deny rule naming the address at this port refuses it. Otherwise a
    /// public address always may; a loopback / private / link-local /
    /// metadata address ([`is_private_address`]) only when
    /// `allowPrivateDestinations` is set, or the `resolve` map pins `host` to
    /// it, or an allow rule covers it at this port: a rule naming the address
    /// itself (`domain:10.0.0.5`, `tcp:10.0.0.5:5432` for port 5432 only), a
    /// `tcp:HOST:PORT` rule naming this very service (as deliberate as naming
    /// its address), or `localhost` named exactly and resolving to loopback.
    /// A `domain:` rule naming `host` is not enough: that is what a rebinding
    /// attack relies on.
    pub fn address_allowed(&self, host: &str, port: u16, ip: IpAddr) -> bool {
        let address = Host::parse(&ip.to_string()).ok();
        let names_address =
            |r: &NetRule| address.as_ref().is_some_and(|a| r.target.matches(a, port));
        if self.deny.iter().any(names_address) {
            return false;
        }
        if self.allow_private_destinations || !is_private_address(ip) {
            return true;
        }
        let Ok(host) = Host::parse(host) else {
            return false;
        };
        if self.resolve.get(&host.name) == Some(&ip) {
            return true;
        }
        self.allow.iter().any(|r| {
            names_address(r)
                || (matches!(r.target, NetTarget::Tcp { .. }) && r.target.matches(&host, port))
                || (ip.is_loopback()
                    && host.name == "localhost"
                    && *r.target.host() == HostPattern::Exact("localhost".into())
                    && r.target.matches(&host, port))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::Layer;

    fn rule(text: &str) -> NetRule {
        let target = match text.strip_prefix("tcp:") {
            Some(rest) => {
                let (h, p) = rest.rsplit_once(':').unwrap();
                NetTarget::Tcp {
                    host: HostPattern::parse(h).unwrap(),
                    port: p.parse().unwrap(),
                }
            }
            None => NetTarget::Domain(HostPattern::parse(text).unwrap()),
        };
        NetRule {
            target,
            origin: Origin::new(Layer::Flag, "--allow", text),
        }
    }

    fn policy(allow: &[&str], deny: &[&str]) -> NetworkPolicy {
        NetworkPolicy {
            allow: allow.iter().map(|t| rule(t)).collect(),
            deny: deny.iter().map(|t| rule(t)).collect(),
            ..NetworkPolicy::default()
        }
    }

    #[test]
    fn no_matching_rule_denies() {
        let d = policy(&["github.com"], &[]).decide("example.com", 443);
        assert!(!d.allowed);
        assert_eq!(d.reason, DecisionReason::NoMatchingRule);
        assert_eq!(d.rule, None);
    }

    #[test]
    fn an_allow_rule_allows_any_port_and_names_itself() {
        let d = policy(&["github.com"], &[]).decide("GitHub.com.", 22);
        assert!(d.allowed);
        assert_eq!(d.host, "github.com");
        assert_eq!(d.rule.unwrap().text, "github.com");
    }

    #[test]
    fn deny_beats_allow() {
        let d = policy(&["*.example.com"], &["bad.example.com"]).decide("bad.example.com", 443);
        assert!(!d.allowed);
        assert_eq!(d.reason, DecisionReason::DeniedByRule);
        assert_eq!(d.rule.unwrap().text, "bad.example.com");
    }

    #[test]
    fn tcp_rules_cover_one_port() {
        let p = policy(&["tcp:localhost:5432"], &[]);
        assert!(p.decide("localhost", 5432).allowed);
        assert!(!p.decide("localhost", 5433).allowed);
    }

    #[test]
    fn a_tcp_deny_leaves_other_ports_allowed() {
        let p = policy(&["example.com"], &["tcp:example.com:25"]);
        assert!(!p.decide("example.com", 25).allowed);
        assert!(p.decide("example.com", 443).allowed);
    }

    #[test]
    fn invalid_hosts_are_denied() {
        let d = policy(&["*.example.com"], &[]).decide("a b.example.com", 80);
        assert_eq!(d.reason, DecisionReason::InvalidHost);
        assert!(!policy(&["x.com"], &[]).decide("", 80).allowed);
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn private_addresses_need_a_rule_naming_them() {
        let p = policy(&["internal.corp", "10.0.0.5", "localhost"], &[]);
        assert!(!p.address_allowed("internal.corp", 443, ip("10.0.0.7")));
        assert!(p.address_allowed("internal.corp", 443, ip("93.184.216.34")));
        assert!(p.address_allowed("10.0.0.5", 22, ip("10.0.0.5")));
        assert!(p.address_allowed("localhost", 8080, ip("127.0.0.1")));
        assert!(!p.address_allowed("internal.corp", 80, ip("169.254.169.254")));
    }

    #[test]
    fn an_address_named_for_one_port_is_not_reached_on_another_through_a_name() {
        let p = policy(&["tcp:10.0.0.5:5432", "example.com"], &[]);
        assert!(p.address_allowed("example.com", 5432, ip("10.0.0.5")));
        assert!(!p.address_allowed("example.com", 22, ip("10.0.0.5")));
    }

    #[test]
    fn a_tcp_rule_naming_a_service_may_reach_its_private_address() {
        let p = policy(&["tcp:db.internal:5432", "web.internal"], &[]);
        assert!(p.address_allowed("db.internal", 5432, ip("10.0.0.9")));
        assert!(!p.address_allowed("db.internal", 5433, ip("10.0.0.9")));
        // A domain rule alone is what DNS rebinding abuses.
        assert!(!p.address_allowed("web.internal", 80, ip("10.0.0.9")));
    }

    #[test]
    fn a_deny_rule_naming_the_resolved_address_refuses_it() {
        let mut p = policy(&["*.example.com"], &["93.184.216.34"]);
        assert!(!p.address_allowed("www.example.com", 443, ip("93.184.216.34")));
        p.allow_private_destinations = true;
        assert!(!p.address_allowed("www.example.com", 443, ip("93.184.216.34")));
        assert!(p.address_allowed("www.example.com", 443, ip("93.184.216.35")));
    }

    #[test]
    fn allow_private_destinations_and_resolve_pins_open_private_addresses() {
        let mut p = policy(&["db.local"], &[]);
        p.resolve
            .insert("db.local".into(), "10.1.1.1".parse().unwrap());
        assert!(p.address_allowed("DB.local.", 5432, ip("10.1.1.1")));
        assert_eq!(
            p.resolve_override("db.local"),
            Some("10.1.1.1".parse().unwrap())
        );
        assert!(!p.address_allowed("db.local", 5432, ip("10.1.1.2")));
        p.allow_private_destinations = true;
        assert!(p.address_allowed("db.local", 5432, ip("10.1.1.2")));
    }
}
