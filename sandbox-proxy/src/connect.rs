//! From "the sandbox asks for host:port" to an open upstream socket, or a refusal.
//!
//! The order is the security argument: the policy decides on the name first, so a
//! denied name is never resolved; an allowed name is resolved once and every
//! address is checked against the DNS-rebinding rules before it is dialled, and the
//! address dialled is one of those checked, never a second lookup.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use sandbox_policy::DecisionReason;
use tokio::net::TcpStream;

use crate::config::Snapshot;
use crate::resolve::resolve;

/// The rule text recorded when no rule matched.
pub(crate) const NO_MATCHING_RULE: &str = "no matching rule";

/// An open connection to an allowed destination.
pub(crate) struct Upstream {
    pub(crate) stream: TcpStream,
    /// The address dialled.
    pub(crate) addr: SocketAddr,
    /// `host:port` as the policy normalized it, for messages.
    pub(crate) target: String,
}

/// Why no upstream connection was made.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The policy refused; already recorded as a violation.
    Denied {
        /// `host:port` as normalized by the policy.
        target: String,
        /// The deciding rule, or why no rule could allow it.
        rule: String,
    },
    /// Allowed, but it could not be reached.
    Unreachable {
        /// `host:port`.
        target: String,
        /// What failed, for the client.
        reason: String,
        /// The kind of the last failure, for SOCKS5 reply codes.
        kind: io::ErrorKind,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Denied { target, rule } => write!(
                f,
                "connection to {target} was blocked by the sandbox policy ({rule})"
            ),
            Refusal::Unreachable { target, reason, .. } => {
                write!(f, "cannot reach {target}: {reason}")
            }
        }
    }
}

/// `host:port`, with IPv6 literals in brackets.
pub(crate) fn target(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Asks the policy about `host:port`. Allowed: returns the normalized host.
/// Denied: records the violation and returns the refusal.
pub(crate) fn decide(snap: &Snapshot, host: &str, port: u16) -> Result<String, Refusal> {
    let decision = snap.policy.decide(host, port);
    if decision.allowed {
        return Ok(decision.host);
    }
    let rule = match (&decision.rule, decision.reason) {
        (Some(origin), _) => origin.to_string(),
        (None, DecisionReason::InvalidHost) => "invalid host name".to_string(),
        (None, _) => NO_MATCHING_RULE.to_string(),
    };
    Err(deny(snap, target(&decision.host, port), rule))
}

fn deny(snap: &Snapshot, target: String, rule: String) -> Refusal {
    snap.record_denial(&target, &rule);
    Refusal::Denied { target, rule }
}

/// Decides, resolves, checks the addresses and dials: the whole way from a request
/// to an upstream socket.
pub(crate) async fn open(snap: &Snapshot, host: &str, port: u16) -> Result<Upstream, Refusal> {
    let host = decide(snap, host, port)?;
    dial_allowed(snap, &host, port).await
}

/// Resolves and dials `host` (normalized, already allowed by the policy).
pub(crate) async fn dial_allowed(
    snap: &Snapshot,
    host: &str,
    port: u16,
) -> Result<Upstream, Refusal> {
    let target = target(host, port);
    let addrs = resolve(snap, host, port)
        .await
        .map_err(|e| Refusal::Unreachable {
            reason: format!("cannot resolve {host}: {e}"),
            target: target.clone(),
            kind: io::ErrorKind::NotFound,
        })?;

    let (usable, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs
        .into_iter()
        .partition(|a| snap.policy.address_allowed(host, port, a.ip()));
    if usable.is_empty() {
        let list: Vec<String> = refused.iter().map(|a| a.ip().to_string()).collect();
        let plural = if list.len() == 1 { "" } else { "es" };
        let rule = format!(
            "resolved to private address{plural} {} (allowPrivateDestinations is off)",
            list.join(", ")
        );
        return Err(deny(snap, target, rule));
    }

    let mut last = None;
    for addr in usable {
        match tokio::time::timeout(snap.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Interactive protocols through the tunnel would otherwise pay
                // Nagle's delay on every small write.
                let _ = stream.set_nodelay(true);
                return Ok(Upstream {
                    stream,
                    addr,
                    target,
                });
            }
            Ok(Err(e)) => last = Some((addr, e.kind(), e.to_string())),
            Err(_) => {
                last = Some((
                    addr,
                    io::ErrorKind::TimedOut,
                    format!("no answer within {:?}", snap.connect_timeout),
                ))
            }
        }
    }
    let (addr, kind, error) = last.expect("at least one usable address was tried");
    Err(Refusal::Unreachable {
        reason: format!("connecting to {addr}: {error}"),
        target,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_bracket_ipv6_literals_only() {
        assert_eq!(target("example.com", 443), "example.com:443");
        assert_eq!(target("10.0.0.1", 80), "10.0.0.1:80");
        assert_eq!(target("::1", 22), "[::1]:22");
    }

    #[test]
    fn refusals_name_the_target_and_why() {
        let denied = Refusal::Denied {
            target: "evil.com:443".into(),
            rule: NO_MATCHING_RULE.into(),
        };
        assert_eq!(
            denied.to_string(),
            "connection to evil.com:443 was blocked by the sandbox policy (no matching rule)"
        );
    }
}
