//! Serving over Unix sockets and on streams accepted elsewhere, as the sandbox's
//! in-namespace bridge does.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use sandbox_proxy::{HttpProxy, ProxyConfig, Socks5Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

fn config(
    policy: sandbox_policy::NetworkPolicy,
) -> (ProxyConfig, Arc<Mutex<Vec<sandbox_core::Violation>>>) {
    let violations = Arc::new(Mutex::new(Vec::new()));
    (ProxyConfig::new(policy, violations.clone()), violations)
}

#[tokio::test]
async fn the_http_proxy_serves_a_unix_socket() {
    let echo = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("http.sock");
    let (config, _) = config(pinned(policy(&["a.test"], &[]), &["a.test"]));
    let proxy = HttpProxy::bind_unix(&path, config).unwrap();
    assert_eq!(
        proxy.local_addr().to_string(),
        format!("unix:{}", path.display())
    );
    let handle = proxy.spawn();

    let mut stream = UnixStream::connect(&path).await.unwrap();
    let target = format!("a.test:{}", echo.addr.port());
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream.write_all(b"via unix").await.unwrap();
    let mut back = [0; 8];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"via unix");
    handle.shutdown().await;
}

#[tokio::test]
async fn the_socks5_proxy_serves_a_stream_accepted_elsewhere() {
    let echo = echo_server().await;
    let (config, violations) = config(pinned(
        policy(&["a.test"], &["b.test"]),
        &["a.test", "b.test"],
    ));
    for (name, expected) in [("a.test", 0u8), ("b.test", 2)] {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let config = config.clone();
        let served =
            tokio::spawn(async move { Socks5Proxy::serve_connection(&config, server).await });
        client.write_all(&[5, 1, 0]).await.unwrap();
        let mut choice = [0; 2];
        client.read_exact(&mut choice).await.unwrap();
        let mut request = vec![5, 1, 0, 3, name.len() as u8];
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(&echo.addr.port().to_be_bytes());
        client.write_all(&request).await.unwrap();
        let mut reply = [0; 10];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply[1], expected, "{name}");
        if expected == 0 {
            client.write_all(b"duplex").await.unwrap();
            let mut back = [0; 6];
            client.read_exact(&mut back).await.unwrap();
            assert_eq!(&back, b"duplex");
        }
        drop(client);
        served.await.unwrap().unwrap();
    }
    assert_eq!(violations.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_http_proxy_serves_a_stream_accepted_elsewhere() {
    let upstream = http_server("origin").await;
    let (config, _) = config(pinned(policy(&["a.test"], &[]), &["a.test"]));
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let served = tokio::spawn(async move { HttpProxy::serve_connection(&config, server).await });
    let request = format!(
        "GET http://a.test:{}/hello HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        upstream.addr.port()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello from origin"), "{response}");
    served.await.unwrap().unwrap();
}
