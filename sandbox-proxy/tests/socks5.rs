//! The SOCKS5 proxy against real servers on 127.0.0.1 (and ::1).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NOT_ALLOWED: u8 = 0x02;
const CONNECTION_REFUSED: u8 = 0x05;
const HOST_UNREACHABLE: u8 = 0x04;
const COMMAND_NOT_SUPPORTED: u8 = 0x07;
const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;

#[tokio::test]
async fn connect_by_domain_reaches_an_allowed_host() {
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["example.test"], &[]), &["example.test"])).await;
    let (code, _, mut tunnel) =
        socks_connect(proxies.socks, Dest::Name("example.test"), echo.addr.port()).await;
    assert_eq!(code, 0);
    assert_eq!(round_trip(&mut tunnel, b"over socks").await, b"over socks");
    assert!(proxies.violations().is_empty());
}

#[tokio::test]
async fn connect_by_ipv4_reaches_an_address_a_rule_names() {
    let echo = echo_server().await;
    let proxies = Proxies::start(policy(&["127.0.0.1"], &[])).await;
    let (code, _, mut tunnel) = socks_connect(
        proxies.socks,
        Dest::V4(Ipv4Addr::LOCALHOST),
        echo.addr.port(),
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(round_trip(&mut tunnel, b"v4").await, b"v4");
}

#[tokio::test]
async fn connect_by_ipv6_reaches_an_address_a_rule_names() {
    let echo = echo_server_on(IpAddr::V6(Ipv6Addr::LOCALHOST)).await;
    let proxies = Proxies::start(policy(&["[::1]"], &[])).await;
    let (code, bound, mut tunnel) = socks_connect(
        proxies.socks,
        Dest::V6(Ipv6Addr::LOCALHOST),
        echo.addr.port(),
    )
    .await;
    assert_eq!(code, 0);
    assert!(bound.is_ipv6(), "{bound}");
    assert_eq!(round_trip(&mut tunnel, b"v6").await, b"v6");
}

#[tokio::test]
async fn the_success_reply_carries_the_address_the_proxy_dialled_from() {
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["example.test"], &[]), &["example.test"])).await;
    let (_, bound, mut tunnel) =
        socks_connect(proxies.socks, Dest::Name("example.test"), echo.addr.port()).await;
    round_trip(&mut tunnel, b"x").await;
    assert_eq!(echo.peers.lock().unwrap().as_slice(), [bound]);
}

#[tokio::test]
async fn a_denied_domain_gets_0x02_and_is_recorded_with_the_rule() {
    let echo = echo_server().await;
    let names = ["ok.example.test", "bad.example.test"];
    let proxies = Proxies::start(pinned(
        policy(&["*.example.test"], &["bad.example.test"]),
        &names,
    ))
    .await;
    let (code, _, mut stream) = socks_connect(
        proxies.socks,
        Dest::Name("Bad.Example.Test."),
        echo.addr.port(),
    )
    .await;
    assert_eq!(code, NOT_ALLOWED);
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "closed after the refusal");
    let violations = proxies.violations();
    assert_eq!(violations.len(), 1);
    assert_eq!(
        violations[0].target,
        format!("bad.example.test:{}", echo.addr.port())
    );
    assert!(
        violations[0]
            .rule
            .contains("WebFetch(domain:bad.example.test)"),
        "{}",
        violations[0].rule
    );
    assert!(echo.peers.lock().unwrap().is_empty(), "nothing dialled");
}

#[tokio::test]
async fn a_denied_name_is_never_resolved() {
    let proxies = Proxies::start(policy(&["example.test"], &[])).await;
    let (code, _, _) = socks_connect(proxies.socks, Dest::Name("unknown.test"), 443).await;
    assert_eq!(code, NOT_ALLOWED);
    assert!(proxies.resolver.asked().is_empty());
    assert_eq!(proxies.violations()[0].rule, "no matching rule");
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_gets_0x02() {
    let echo = echo_server().await;
    let resolver = FakeResolver::new(&[("rebind.test", LOCALHOST)]);
    let proxies = Proxies::start_with(policy(&["rebind.test"], &[]), resolver).await;
    let (code, _, _) =
        socks_connect(proxies.socks, Dest::Name("rebind.test"), echo.addr.port()).await;
    assert_eq!(code, NOT_ALLOWED);
    assert!(proxies.violations()[0]
        .rule
        .starts_with("resolved to private address 127.0.0.1"));
}

#[tokio::test]
async fn an_ip_literal_does_not_match_a_name_rule() {
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["localhost"], &[]), &["localhost"])).await;
    let (code, _, _) = socks_connect(
        proxies.socks,
        Dest::V4(Ipv4Addr::LOCALHOST),
        echo.addr.port(),
    )
    .await;
    assert_eq!(code, NOT_ALLOWED);
}

#[tokio::test]
async fn a_refused_upstream_gets_0x05() {
    let port = refused_port().await;
    let proxies = Proxies::start(pinned(policy(&["gone.test"], &[]), &["gone.test"])).await;
    let (code, _, _) = socks_connect(proxies.socks, Dest::Name("gone.test"), port).await;
    assert_eq!(code, CONNECTION_REFUSED);
    assert!(proxies.violations().is_empty());
}

#[tokio::test]
async fn an_unresolvable_allowed_name_gets_0x04() {
    let proxies = Proxies::start(policy(&["nowhere.test"], &[])).await;
    let (code, _, _) = socks_connect(proxies.socks, Dest::Name("nowhere.test"), 80).await;
    assert_eq!(code, HOST_UNREACHABLE);
    assert_eq!(proxies.resolver.asked(), ["nowhere.test"]);
}

#[tokio::test]
async fn a_client_offering_no_acceptable_method_gets_0xff() {
    let proxies = Proxies::start(policy(&["example.test"], &[])).await;
    let mut stream = TcpStream::connect(proxies.socks).await.unwrap();
    // Only username/password (0x02) and GSSAPI (0x01).
    stream.write_all(&[5, 2, 2, 1]).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer, [5, 0xff]);
}

#[tokio::test]
async fn a_bind_command_gets_0x07() {
    let proxies = Proxies::start(policy(&["example.test"], &[])).await;
    let mut stream = TcpStream::connect(proxies.socks).await.unwrap();
    stream.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0; 2];
    stream.read_exact(&mut choice).await.unwrap();
    stream
        .write_all(&[5, 2, 0, 1, 127, 0, 0, 1, 0, 80])
        .await
        .unwrap();
    let (code, _) = read_socks_reply(&mut stream).await;
    assert_eq!(code, COMMAND_NOT_SUPPORTED);
    assert!(proxies.violations().is_empty());
}

#[tokio::test]
async fn an_unknown_address_type_gets_0x08() {
    let proxies = Proxies::start(policy(&["example.test"], &[])).await;
    let mut stream = TcpStream::connect(proxies.socks).await.unwrap();
    stream.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0; 2];
    stream.read_exact(&mut choice).await.unwrap();
    stream.write_all(&[5, 1, 0, 9]).await.unwrap();
    let (code, _) = read_socks_reply(&mut stream).await;
    assert_eq!(code, ADDRESS_TYPE_NOT_SUPPORTED);
}

#[tokio::test]
async fn a_socks4_client_is_disconnected() {
    let proxies = Proxies::start(policy(&["example.test"], &[])).await;
    let mut stream = TcpStream::connect(proxies.socks).await.unwrap();
    stream
        .write_all(&[4, 1, 0, 80, 127, 0, 0, 1, 0])
        .await
        .unwrap();
    // Closed without an answer (a reset, when our request is still unread).
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer).await;
    assert!(read.is_err() || answer.is_empty(), "{answer:?}");
}
