//! The HTTP proxy against real servers on 127.0.0.1: CONNECT tunnels, absolute-form
//! requests, policy denials and what they record.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use sandbox_core::{EvalId, ViolationKind};
use sandbox_policy::NetworkPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

#[tokio::test]
async fn connect_tunnel_reaches_an_allowed_domain() {
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["example.test"], &[]), &["example.test"])).await;
    let (status, _, mut tunnel) =
        connect(proxies.http, &format!("example.test:{}", echo.addr.port())).await;
    assert_eq!(status, 200);
    assert_eq!(
        round_trip(&mut tunnel, b"ping through the tunnel").await,
        b"ping through the tunnel"
    );
    assert!(proxies.violations().is_empty());
}

#[tokio::test]
async fn connect_tunnel_forwards_a_half_close() {
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["example.test"], &[]), &["example.test"])).await;
    let (_, _, mut tunnel) =
        connect(proxies.http, &format!("example.test:{}", echo.addr.port())).await;
    tunnel.write_all(b"last words").await.unwrap();
    // The echo server only finishes (and closes) once it sees our EOF.
    tunnel.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(PATIENCE, tunnel.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"last words");
}

#[tokio::test]
async fn absolute_form_get_reaches_an_allowed_domain() {
    let upstream = http_server("origin").await;
    let proxies = Proxies::start(pinned(policy(&["example.test"], &[]), &["example.test"])).await;
    let mut client = http_client(proxies.http).await;
    let url = format!("http://example.test:{}/hello", upstream.addr.port());
    assert_eq!(
        get(&mut client, &url).await,
        (200, "hello from origin".to_string())
    );
}

#[tokio::test]
async fn a_deny_rule_gets_403_naming_the_rule_and_is_recorded() {
    let echo = echo_server().await;
    let names = ["api.example.test", "bad.example.test"];
    let proxies = Proxies::start(pinned(
        policy(&["*.example.test"], &["bad.example.test"]),
        &names,
    ))
    .await;
    let target = format!("bad.example.test:{}", echo.addr.port());
    let (status, head, mut stream) = connect(proxies.http, &target).await;
    assert_eq!(status, 403);
    assert!(head.contains("text/plain"), "{head}");
    let body = read_body(&mut stream, &head).await;
    assert!(body.contains(&target), "{body}");
    assert!(body.contains("blocked by the sandbox policy"), "{body}");
    assert!(body.contains("WebFetch(domain:bad.example.test)"), "{body}");

    let violations = proxies.violations();
    assert_eq!(violations.len(), 1);
    let v = &violations[0];
    assert_eq!(v.kind, ViolationKind::Network);
    assert_eq!(v.target, target);
    assert!(
        v.rule.contains("--deny") && v.rule.contains("WebFetch(domain:bad.example.test)"),
        "{}",
        v.rule
    );
    assert_eq!(
        (v.eval, v.sandbox.as_deref(), v.command.as_str()),
        (Some(EvalId(42)), Some("tests"), "curl")
    );
}

#[tokio::test]
async fn no_matching_rule_gets_403_and_is_recorded() {
    let upstream = http_server("origin").await;
    let proxies = Proxies::start(pinned(policy(&["example.test"], &[]), &["other.test"])).await;
    let mut client = http_client(proxies.http).await;
    let (status, body) = get(
        &mut client,
        &format!("http://other.test:{}/hello", upstream.addr.port()),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("no matching rule"), "{body}");
    let violations = proxies.violations();
    assert_eq!(violations.len(), 1);
    assert_eq!(
        violations[0].target,
        format!("other.test:{}", upstream.addr.port())
    );
    assert_eq!(violations[0].rule, "no matching rule");
}

#[tokio::test]
async fn a_denied_name_is_never_resolved() {
    // The resolver knows no name: resolving would fail with 502. A denial comes
    // first, so the answer is 403 and the resolver was never asked.
    let proxies = Proxies::start(policy(&["example.test"], &["denied.test"])).await;
    for target in ["denied.test:443", "unknown.test:443"] {
        let (status, _, _) = connect(proxies.http, target).await;
        assert_eq!(status, 403, "{target}");
    }
    assert_eq!(proxies.resolver.asked(), Vec::<String>::new());
    assert_eq!(proxies.violations().len(), 2);
}

#[tokio::test]
async fn an_allowed_name_is_resolved_once_and_the_checked_address_dialled() {
    let echo = echo_server().await;
    let resolver = FakeResolver::new(&[("db.test", LOCALHOST)]);
    let mut p = policy(&["db.test"], &[]);
    p.allow_private_destinations = true;
    let proxies = Proxies::start_with(p, resolver).await;
    let (status, _, mut tunnel) =
        connect(proxies.http, &format!("DB.test.:{}", echo.addr.port())).await;
    assert_eq!(status, 200);
    assert_eq!(round_trip(&mut tunnel, b"x").await, b"x");
    assert_eq!(proxies.resolver.asked(), ["db.test"]);
}

#[tokio::test]
async fn lookalike_names_do_not_match_a_domain_rule() {
    let echo = echo_server().await;
    let names = ["example.test", "evilexample.test", "example.test.evil.net"];
    let proxies = Proxies::start(pinned(policy(&["example.test"], &[]), &names)).await;
    for name in ["evilexample.test", "example.test.evil.net"] {
        let (status, _, _) = connect(proxies.http, &format!("{name}:{}", echo.addr.port())).await;
        assert_eq!(status, 403, "{name}");
    }
    let (status, _, _) = connect(proxies.http, &format!("example.test:{}", echo.addr.port())).await;
    assert_eq!(status, 200);
    let targets: Vec<_> = proxies.violations().into_iter().map(|v| v.target).collect();
    assert_eq!(
        targets,
        [
            format!("evilexample.test:{}", echo.addr.port()),
            format!("example.test.evil.net:{}", echo.addr.port())
        ]
    );
}

#[tokio::test]
async fn a_name_resolving_to_a_private_address_is_refused() {
    let echo = echo_server().await;
    let resolver = FakeResolver::new(&[("rebind.test", LOCALHOST)]);
    let proxies = Proxies::start_with(policy(&["rebind.test"], &[]), resolver).await;
    let target = format!("rebind.test:{}", echo.addr.port());
    let (status, head, mut stream) = connect(proxies.http, &target).await;
    assert_eq!(status, 403);
    let body = read_body(&mut stream, &head).await;
    assert!(
        body.contains("resolved to private address 127.0.0.1 (allowPrivateDestinations is off)"),
        "{body}"
    );
    let violations = proxies.violations();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].target, target);
    assert_eq!(
        violations[0].rule,
        "resolved to private address 127.0.0.1 (allowPrivateDestinations is off)"
    );
}

#[tokio::test]
async fn a_private_address_is_reachable_with_allow_private_destinations() {
    let echo = echo_server().await;
    let resolver = FakeResolver::new(&[("rebind.test", LOCALHOST)]);
    let mut p = policy(&["rebind.test"], &[]);
    p.allow_private_destinations = true;
    let proxies = Proxies::start_with(p, resolver).await;
    let (status, _, _) = connect(proxies.http, &format!("rebind.test:{}", echo.addr.port())).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_private_address_pinned_by_the_resolve_map_is_reachable() {
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["pinned.test"], &[]), &["pinned.test"])).await;
    let (status, _, _) = connect(proxies.http, &format!("pinned.test:{}", echo.addr.port())).await;
    assert_eq!(status, 200);
    assert!(
        proxies.resolver.asked().is_empty(),
        "the pin answered, not the resolver"
    );
}

#[tokio::test]
async fn a_tcp_rule_reaches_a_private_address_on_its_port_only() {
    let echo = echo_server().await;
    let other = echo_server().await;
    let resolver = FakeResolver::new(&[("db.test", LOCALHOST)]);
    let rule = format!("tcp:db.test:{}", echo.addr.port());
    let proxies = Proxies::start_with(policy(&[&rule], &[]), resolver).await;
    let (status, _, _) = connect(proxies.http, &format!("db.test:{}", echo.addr.port())).await;
    assert_eq!(status, 200);
    let (status, _, _) = connect(proxies.http, &format!("db.test:{}", other.addr.port())).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_ip_literal_does_not_match_a_name_rule() {
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["localhost"], &[]), &["localhost"])).await;
    let (status, _, _) = connect(proxies.http, &format!("127.0.0.1:{}", echo.addr.port())).await;
    assert_eq!(status, 403);
    assert_eq!(proxies.violations()[0].rule, "no matching rule");
}

#[tokio::test]
async fn an_ip_literal_matches_a_rule_naming_the_address() {
    let echo = echo_server().await;
    let proxies = Proxies::start(policy(&["127.0.0.1"], &[])).await;
    let (status, _, mut tunnel) =
        connect(proxies.http, &format!("127.0.0.1:{}", echo.addr.port())).await;
    assert_eq!(status, 200);
    assert_eq!(round_trip(&mut tunnel, b"direct").await, b"direct");
}

#[tokio::test]
async fn a_chunked_upload_is_streamed_before_it_ends() {
    let upstream = http_server("origin").await;
    let proxies = Proxies::start(pinned(policy(&["up.test"], &[]), &["up.test"])).await;
    let mut client = http_client::<Channel<Bytes>>(proxies.http).await;
    let (mut body, rx) = Channel::<Bytes>::new(1);
    let request = Request::post(format!("http://up.test:{}/upload", upstream.addr.port()))
        .body(rx)
        .unwrap();
    let response = tokio::spawn(async move { client.send_request(request).await });
    body.send_data(Bytes::from_static(b"first chunk"))
        .await
        .unwrap();
    // The upstream sees the first chunk while the upload is still open.
    timeout(PATIENCE, upstream.hooks.upload_started.notified())
        .await
        .expect("the first chunk reached the upstream before the body ended");
    for _ in 0..9 {
        body.send_data(Bytes::from(vec![b'y'; 1000])).await.unwrap();
    }
    drop(body);
    let response = timeout(PATIENCE, response).await.unwrap().unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(text.starts_with("received 9011 bytes in "), "{text}");
}

#[tokio::test]
async fn keep_alive_serves_allowed_and_denied_hosts_on_one_connection() {
    let a = http_server("a").await;
    let b = http_server("b").await;
    let names = ["a.test", "b.test", "denied.test"];
    let proxies = Proxies::start(pinned(policy(&["a.test", "b.test"], &[]), &names)).await;
    let mut client = http_client(proxies.http).await;
    let url = |name: &str, port: u16| format!("http://{name}:{port}/hello");
    assert_eq!(
        get(&mut client, &url("a.test", a.addr.port())).await,
        (200, "hello from a".into())
    );
    assert_eq!(
        get(&mut client, &url("denied.test", a.addr.port())).await.0,
        403
    );
    assert_eq!(
        get(&mut client, &url("b.test", b.addr.port())).await,
        (200, "hello from b".into())
    );
    assert_eq!(
        get(&mut client, &url("a.test", a.addr.port())).await,
        (200, "hello from a".into())
    );
    assert_eq!(proxies.violations().len(), 1);
}

#[tokio::test]
async fn a_response_is_streamed_before_the_upstream_finishes() {
    let upstream = http_server("origin").await;
    let proxies = Proxies::start(pinned(policy(&["slow.test"], &[]), &["slow.test"])).await;
    let mut client = http_client(proxies.http).await;
    let response = client
        .send_request(
            Request::get(format!("http://slow.test:{}/gate", upstream.addr.port()))
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = timeout(PATIENCE, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first");
    upstream.hooks.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "rest");
}

#[tokio::test]
async fn hop_by_hop_and_proxy_headers_are_not_forwarded() {
    let upstream = http_server("origin").await;
    let proxies = Proxies::start(pinned(policy(&["h.test"], &[]), &["h.test"])).await;
    let mut stream = TcpStream::connect(proxies.http).await.unwrap();
    let port = upstream.addr.port();
    let request = format!(
        "GET http://h.test:{port}/headers HTTP/1.1\r\nHost: wrong.test\r\n\
         Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n\
         Connection: close, X-Hop\r\nX-Hop: 1\r\nX-Kept: 2\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .to_ascii_lowercase();
    assert!(body.contains(&format!("host: h.test:{port}\n")), "{body}");
    assert!(body.contains("x-kept: 2\n"), "{body}");
    for gone in [
        "proxy-authorization",
        "proxy-connection",
        "x-hop",
        "connection",
    ] {
        assert!(
            !body.contains(&format!("{gone}:")),
            "{gone} forwarded: {body}"
        );
    }
}

#[tokio::test]
async fn an_origin_form_request_gets_400() {
    let proxies = Proxies::start(policy(&["example.test"], &[])).await;
    let mut stream = TcpStream::connect(proxies.http).await.unwrap();
    stream
        .write_all(b"GET /index.html HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await
        .unwrap();
    let (status, _) = read_head(&mut stream).await;
    assert_eq!(status, 400);
    assert!(proxies.violations().is_empty());
}

#[tokio::test]
async fn a_refused_upstream_gets_502_naming_the_reason() {
    let port = refused_port().await;
    let proxies = Proxies::start(pinned(policy(&["gone.test"], &[]), &["gone.test"])).await;
    let (status, head, mut stream) = connect(proxies.http, &format!("gone.test:{port}")).await;
    assert_eq!(status, 502);
    let body = read_body(&mut stream, &head).await;
    assert!(
        body.contains(&format!("gone.test:{port}")) && body.to_lowercase().contains("refused"),
        "{body}"
    );
    assert!(
        proxies.violations().is_empty(),
        "unreachable is not a violation"
    );
    let mut client = http_client(proxies.http).await;
    let (status, _) = get(&mut client, &format!("http://gone.test:{port}/")).await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn slow_clients_do_not_stall_others() {
    let upstream = http_server("origin").await;
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["ok.test"], &[]), &["ok.test"])).await;
    // One client stops halfway through its request head; another opens a tunnel,
    // fills it and never reads the echo.
    let mut half = TcpStream::connect(proxies.http).await.unwrap();
    half.write_all(b"GET http://ok.test/ HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let (_, _, mut stuck) = connect(proxies.http, &format!("ok.test:{}", echo.addr.port())).await;
    let filler = vec![0u8; 8 << 20];
    let stuck_writer = tokio::spawn(async move {
        let _ = stuck.write_all(&filler).await;
        stuck
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let mut client = http_client(proxies.http).await;
    let url = format!("http://ok.test:{}/hello", upstream.addr.port());
    for _ in 0..5 {
        assert_eq!(
            timeout(PATIENCE, get(&mut client, &url)).await.unwrap().0,
            200
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    stuck_writer.abort();
    drop(half);
}

#[tokio::test]
async fn a_new_policy_applies_to_the_next_connection() {
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["a.test"], &[]), &["a.test"])).await;
    let target = format!("a.test:{}", echo.addr.port());
    let (_, _, mut open) = connect(proxies.http, &target).await;
    proxies.config.set_policy(NetworkPolicy::default());
    assert_eq!(connect(proxies.http, &target).await.0, 403);
    // The tunnel opened under the old policy is left alone.
    assert_eq!(round_trip(&mut open, b"still open").await, b"still open");
}

#[tokio::test]
async fn shutdown_closes_open_tunnels_and_stops_accepting() {
    let echo = echo_server().await;
    let proxies = Proxies::start(pinned(policy(&["a.test"], &[]), &["a.test"])).await;
    let http = proxies.http;
    let (_, _, mut open) = connect(http, &format!("a.test:{}", echo.addr.port())).await;
    timeout(PATIENCE, proxies.shutdown()).await.unwrap();
    let mut rest = Vec::new();
    let read = timeout(PATIENCE, open.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(read.is_err() || rest.is_empty(), "tunnel closed");
    assert!(TcpStream::connect(http).await.is_err(), "listener closed");
}

#[tokio::test]
async fn connect_to_an_ipv6_literal_reaches_an_address_a_rule_names() {
    let echo = echo_server_on(std::net::Ipv6Addr::LOCALHOST.into()).await;
    let proxies = Proxies::start(policy(&["[::1]"], &[])).await;
    let (status, _, mut tunnel) =
        connect(proxies.http, &format!("[::1]:{}", echo.addr.port())).await;
    assert_eq!(status, 200);
    assert_eq!(round_trip(&mut tunnel, b"v6").await, b"v6");
}
