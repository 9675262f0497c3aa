//! Init's half of the network bridge: listening sockets on the sandbox's own
//! loopback, created inside its network namespace and passed to the
//! executor, which serves them with its proxies. Nothing relays inside the
//! sandbox and no host network is visible in it: the only way out is a
//! connection the executor accepts and decides on.

use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::OwnedFd;

use crate::protocol::BridgePorts;

/// Listens on `127.0.0.1` at the HTTP and SOCKS5 ports, in that order.
pub(super) fn listen(ports: &BridgePorts) -> Result<Vec<OwnedFd>, String> {
    [ports.http, ports.socks]
        .into_iter()
        .map(|port| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .map(OwnedFd::from)
                .map_err(|e| format!("cannot listen on 127.0.0.1:{port} for the proxy bridge: {e}"))
        })
        .collect()
}
