//! Filtering network proxies for sandboxes.
//!
//! A confined evaluation has no network of its own: it reaches the outside only
//! through an HTTP proxy ([`HttpProxy`]: `CONNECT` tunnels and absolute-form
//! `GET http://…` requests) and a SOCKS5 proxy ([`Socks5Proxy`]), which allow or
//! deny each connection with the sandbox's [`NetworkPolicy`] and hand every denial
//! to a [`ViolationSink`] as a [`Violation`](sandbox_core::Violation).
//!
//! Use this crate when you run untrusted code whose traffic must be limited to
//! named domains or `host:port` services: start both proxies with one
//! [`ProxyConfig`], point the child's `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` at
//! them (directly, or through a bridge that relays Unix-socket connections to
//! [`HttpProxy::serve_connection`] / [`Socks5Proxy::serve_connection`]), and read the
//! violations from the sink.
//!
//! What is decided, and in which order:
//!
//! 1. The policy decides on the name as the client gave it ([`NetworkPolicy::decide`]:
//!    lowercased, one trailing dot removed, deny beats allow, no rule denies, IP
//!    literals only match rules naming the address). A denied name is answered
//!    (`403`, SOCKS reply `0x02`), recorded, and never resolved.
//! 2. An allowed name is resolved once (the policy's `resolve` map first, then the
//!    configured [`Resolver`], by default the system's), and each address must pass
//!    [`NetworkPolicy::address_allowed`]: loopback, private, link-local and metadata
//!    addresses are refused unless `allowPrivateDestinations` is set, a rule names
//!    the address, the `resolve` map pins it, or a `tcp:HOST:PORT` rule allows the
//!    destination. No address left: denied and recorded as above.
//! 3. One of the checked addresses is dialled, never a fresh lookup. Failure: `502`,
//!    SOCKS reply `0x05` (refused) or `0x04` (unreachable).
//!
//! Policies can be swapped while the proxies run ([`ProxyConfig::set_policy`]); on
//! Linux, tunnels between sockets move bytes with `splice(2)`, without copying
//! them through the proxy.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use sandbox_core::Violation;
//! use sandbox_policy::NetworkPolicy;
//! use sandbox_proxy::{HttpProxy, ProxyConfig, ViolationContext};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let violations = Arc::new(Mutex::new(Vec::<Violation>::new()));
//! let config = ProxyConfig::new(NetworkPolicy::default(), violations.clone())
//!     .with_context(ViolationContext { command: "curl evil.example".into(), ..Default::default() });
//! let proxy = HttpProxy::bind("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
//! let addr = proxy.local_addr().tcp().unwrap();
//! let handle = proxy.spawn();
//!
//! // No rule allows anything: the tunnel is refused and the denial recorded.
//! let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
//! client.write_all(b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n").await.unwrap();
//! let mut answer = vec![0; 512];
//! let n = client.read(&mut answer).await.unwrap();
//! assert!(answer[..n].starts_with(b"HTTP/1.1 403"));
//! assert_eq!(violations.lock().unwrap()[0].target, "evil.example:443");
//! assert_eq!(violations.lock().unwrap()[0].rule, "no matching rule");
//! handle.shutdown().await;
//! # });
//! ```
//!
//! [`NetworkPolicy`]: sandbox_policy::NetworkPolicy
//! [`NetworkPolicy::decide`]: sandbox_policy::NetworkPolicy::decide
//! [`NetworkPolicy::address_allowed`]: sandbox_policy::NetworkPolicy::address_allowed
//! [`ViolationSink`]: sandbox_core::ViolationSink

mod config;
mod connect;
mod error;
mod http;
mod resolve;
mod server;
mod socks5;
mod tunnel;

pub use config::{ProxyConfig, ViolationContext, DEFAULT_CONNECT_TIMEOUT};
pub use error::{ProxyError, SocksError};
pub use http::HttpProxy;
pub use resolve::{Lookup, Resolver, SystemResolver};
pub use sandbox_core::ViolationSink;
pub use server::{ListenAddr, ProxyHandle, Stream, SHUTDOWN_GRACE};
pub use socks5::Socks5Proxy;
