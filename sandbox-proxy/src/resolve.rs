//! Name resolution for allowed destinations.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use crate::config::Snapshot;

/// The future a [`Resolver`] returns.
pub type Lookup = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Looks names up for the proxies, after the policy's `resolve` map (which always
/// answers first).
///
/// The default is [`SystemResolver`]. Replace it (see
/// [`ProxyConfig::with_resolver`](crate::ProxyConfig::with_resolver)) to use another
/// resolver, or in tests to answer without DNS and to see which names were looked
/// up. Whatever it answers is still checked against the policy's private-address
/// rules before it is dialled.
pub trait Resolver: Send + Sync {
    /// The addresses of `host`, a normalized name (never an IP literal), each with
    /// `port`.
    fn lookup(&self, host: &str, port: u16) -> Lookup;
}

/// The operating system's resolver ([`tokio::net::lookup_host`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, host: &str, port: u16) -> Lookup {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

/// The addresses `host:port` is dialled at. `host` is the policy's normalized form
/// (IPv6 literals without brackets).
///
/// IP literals are used as they are and the policy's `resolve` map answers before
/// the resolver, so a pinned name (and every test) never touches DNS. Only called
/// once the name is allowed: a denied name is never looked up, which keeps denied
/// lookups from leaking the name to a resolver.
pub(crate) async fn resolve(snap: &Snapshot, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if let Some(ip) = snap.policy.resolve_override(host) {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs = snap.resolver.lookup(host, port).await?;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    Ok(addrs)
}
