//! The SOCKS5 proxy (RFC 1928): no authentication, CONNECT only.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::config::ProxyConfig;
use crate::connect::{self, Refusal};
use crate::error::{ProxyError, SocksError};
use crate::server::{Protocol, Server, Shutdown, Stream};
use crate::tunnel::splice;

/// How long a client may take from connecting to sending its CONNECT request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CMD_CONNECT: u8 = 0x01;
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// Reply codes (RFC 1928 §6).
mod reply {
    pub const SUCCEEDED: u8 = 0x00;
    pub const GENERAL_FAILURE: u8 = 0x01;
    pub const NOT_ALLOWED: u8 = 0x02;
    pub const NETWORK_UNREACHABLE: u8 = 0x03;
    pub const HOST_UNREACHABLE: u8 = 0x04;
    pub const CONNECTION_REFUSED: u8 = 0x05;
    pub const COMMAND_NOT_SUPPORTED: u8 = 0x07;
    pub const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;
}

/// The SOCKS5 proxy, bound and ready to serve.
///
/// Accepts only the "no authentication" method (a client offering none gets
/// `0xFF`) and only the CONNECT command (others get reply `0x07`), to IPv4, IPv6
/// and domain-name destinations. A destination the policy refuses gets reply
/// `0x02` ("connection not allowed by ruleset") and is recorded as a violation; an
/// allowed one that refuses the connection gets `0x05`, one that cannot be
/// resolved or reached `0x04`. On success the reply carries the address the proxy
/// dialled from, and the connection becomes a byte tunnel.
pub struct Socks5Proxy {
    server: Server<Socks5>,
}

crate::server::proxy_api!(Socks5Proxy, Socks5);

#[derive(Clone)]
struct Socks5 {
    config: ProxyConfig,
}

impl Protocol for Socks5 {
    const NAME: &'static str = "SOCKS5";

    fn serve<S: Stream>(
        &self,
        stream: S,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send {
        serve(self.config.clone(), stream, shutdown)
    }
}

/// A destination as the client named it.
enum Destination {
    Ip(IpAddr),
    Name(String),
}

async fn serve<S: Stream>(
    config: ProxyConfig,
    mut stream: S,
    mut shutdown: Shutdown,
) -> Result<(), ProxyError> {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream));
    let (destination, port) = match handshake.await {
        Ok(result) => result?,
        Err(_) => return Err(SocksError::Timeout(HANDSHAKE_TIMEOUT).into()),
    };
    let host = match &destination {
        Destination::Ip(ip) => ip.to_string(),
        Destination::Name(name) => name.clone(),
    };
    let snap = config.snapshot();
    let mut upstream = match connect::open(&snap, &host, port).await {
        Ok(upstream) => upstream,
        Err(refusal) => {
            let code = match &refusal {
                Refusal::Denied { .. } => reply::NOT_ALLOWED,
                Refusal::Unreachable { kind, .. } => unreachable_code(*kind),
            };
            tracing::debug!(target: "sandbox_proxy", %refusal, "SOCKS5 CONNECT refused");
            // The client may already be gone; the refusal is recorded either way.
            let _ = write_reply(&mut stream, code, None).await;
            return Ok(());
        }
    };
    let target = upstream.target.clone();
    let io_err = |what: &str, source| ProxyError::Io {
        context: format!("{what} the SOCKS5 tunnel to {target}"),
        source,
    };
    let bound = upstream.stream.local_addr().ok();
    write_reply(&mut stream, reply::SUCCEEDED, bound)
        .await
        .map_err(|e| io_err("answering for", e))?;
    tokio::select! {
        done = splice(&mut stream, &mut upstream.stream) => {
            done.map(drop).map_err(|e| io_err("copying through", e))
        }
        () = shutdown.wait() => Ok(()),
    }
}

/// Reads the method negotiation and the request; answers the negotiation, and
/// answers requests it cannot serve before failing.
async fn handshake<S: Stream>(stream: &mut S) -> Result<(Destination, u16), SocksError> {
    let [version, count] = read_array(stream).await?;
    if version != VERSION {
        return Err(SocksError::Version(version));
    }
    let mut methods = vec![0; usize::from(count)];
    stream
        .read_exact(&mut methods)
        .await
        .map_err(SocksError::Io)?;
    if !methods.contains(&NO_AUTH) {
        let _ = stream.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await;
        return Err(SocksError::NoAcceptableMethod(methods));
    }
    stream
        .write_all(&[VERSION, NO_AUTH])
        .await
        .map_err(SocksError::Io)?;

    let [version, command, _reserved, atyp] = read_array(stream).await?;
    if version != VERSION {
        return Err(SocksError::Version(version));
    }
    let destination = match atyp {
        ATYP_IPV4 => Destination::Ip(Ipv4Addr::from(read_array::<4, _>(stream).await?).into()),
        ATYP_IPV6 => Destination::Ip(Ipv6Addr::from(read_array::<16, _>(stream).await?).into()),
        ATYP_DOMAIN => {
            let [len] = read_array(stream).await?;
            let mut name = vec![0; usize::from(len)];
            stream.read_exact(&mut name).await.map_err(SocksError::Io)?;
            // Not UTF-8 cannot be a valid host name: the policy denies it as such.
            Destination::Name(String::from_utf8_lossy(&name).into_owned())
        }
        other => {
            let _ = write_reply(stream, reply::ADDRESS_TYPE_NOT_SUPPORTED, None).await;
            return Err(SocksError::AddressType(other));
        }
    };
    let port = u16::from_be_bytes(read_array(stream).await?);
    if command != CMD_CONNECT {
        let _ = write_reply(stream, reply::COMMAND_NOT_SUPPORTED, None).await;
        return Err(SocksError::Command(command));
    }
    Ok((destination, port))
}

async fn read_array<const N: usize, S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<[u8; N], SocksError> {
    let mut buf = [0; N];
    stream.read_exact(&mut buf).await.map_err(SocksError::Io)?;
    Ok(buf)
}

/// `VER REP RSV ATYP BND.ADDR BND.PORT`; failures carry `0.0.0.0:0`.
async fn write_reply<S: Stream>(
    stream: &mut S,
    code: u8,
    bound: Option<SocketAddr>,
) -> io::Result<()> {
    let bound = bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut reply = Vec::with_capacity(22);
    reply.extend_from_slice(&[VERSION, code, 0]);
    match bound.ip() {
        IpAddr::V4(ip) => {
            reply.push(ATYP_IPV4);
            reply.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            reply.push(ATYP_IPV6);
            reply.extend_from_slice(&ip.octets());
        }
    }
    reply.extend_from_slice(&bound.port().to_be_bytes());
    stream.write_all(&reply).await
}

fn unreachable_code(kind: io::ErrorKind) -> u8 {
    match kind {
        io::ErrorKind::ConnectionRefused => reply::CONNECTION_REFUSED,
        io::ErrorKind::NetworkUnreachable => reply::NETWORK_UNREACHABLE,
        io::ErrorKind::HostUnreachable | io::ErrorKind::TimedOut | io::ErrorKind::NotFound => {
            reply::HOST_UNREACHABLE
        }
        _ => reply::GENERAL_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_map_to_rfc_1928_reply_codes() {
        assert_eq!(unreachable_code(io::ErrorKind::ConnectionRefused), 0x05);
        assert_eq!(unreachable_code(io::ErrorKind::TimedOut), 0x04);
        assert_eq!(unreachable_code(io::ErrorKind::NotFound), 0x04);
        assert_eq!(unreachable_code(io::ErrorKind::NetworkUnreachable), 0x03);
        assert_eq!(unreachable_code(io::ErrorKind::PermissionDenied), 0x01);
    }

    #[tokio::test]
    async fn replies_carry_the_bound_address_in_its_family() {
        let (mut a, mut b) = tokio::io::duplex(64);
        write_reply(
            &mut a,
            reply::SUCCEEDED,
            Some("[::1]:1080".parse().unwrap()),
        )
        .await
        .unwrap();
        write_reply(&mut a, reply::NOT_ALLOWED, None).await.unwrap();
        drop(a);
        let mut bytes = Vec::new();
        b.read_to_end(&mut bytes).await.unwrap();
        let mut v6 = vec![5, 0, 0, 4];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&1080u16.to_be_bytes());
        assert_eq!(&bytes[..22], v6.as_slice());
        assert_eq!(&bytes[22..], [5, 2, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
}
