//! The errors of the proxies.

use std::io;

/// What went wrong while binding, serving or shutting down a proxy.
///
/// Refusals decided by the policy are not errors: they are answered on the wire
/// (`403`, SOCKS reply `0x02`) and recorded as violations. Errors are the cases
/// where a proxy or one of its connections could not do its job at all.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listening socket could not be created.
    #[error("cannot bind the {proxy} proxy to {addr}: {source}")]
    Bind {
        /// `HTTP` or `SOCKS5`.
        proxy: &'static str,
        /// The address or socket path asked for.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The bound address of a listener could not be read.
    #[error("cannot read the address the {proxy} proxy listens on: {source}")]
    LocalAddr {
        /// `HTTP` or `SOCKS5`.
        proxy: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An HTTP connection from the sandbox failed (malformed request, reset, …).
    #[error("HTTP proxy connection failed: {0}")]
    Http(#[source] hyper::Error),
    /// A SOCKS5 client broke the protocol.
    #[error("SOCKS5 handshake failed: {0}")]
    Socks(#[from] SocksError),
    /// Reading from or writing to a connection failed.
    #[error("{context}: {source}")]
    Io {
        /// What the proxy was doing, naming the peer or target.
        context: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A SOCKS5 protocol violation by the client.
#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    /// The first byte of a greeting or request was not 5.
    #[error("unsupported SOCKS version {0} (only SOCKS5 is served)")]
    Version(u8),
    /// The client offered no method the proxy accepts (only "no authentication").
    #[error("no acceptable authentication method among {0:?} (only 0x00, no authentication)")]
    NoAcceptableMethod(Vec<u8>),
    /// A command other than CONNECT.
    #[error("unsupported SOCKS5 command {0:#04x} (only CONNECT, 0x01)")]
    Command(u8),
    /// An address type other than IPv4, domain name or IPv6.
    #[error("unsupported SOCKS5 address type {0:#04x}")]
    AddressType(u8),
    /// The handshake took too long.
    #[error("SOCKS5 handshake not completed within {0:?}")]
    Timeout(std::time::Duration),
    /// The connection failed during the handshake.
    #[error("reading the SOCKS5 handshake: {0}")]
    Io(#[source] io::Error),
}
