//! Test fixtures: policies, the two proxies with a collecting sink, upstream
//! servers on 127.0.0.1 and tiny clients speaking raw CONNECT, HTTP and SOCKS5.
//! Names reach the servers through the policy's `resolve` map or a fake resolver,
//! never through DNS.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sandbox_core::{EvalId, Violation};
use sandbox_policy::{HostPattern, Layer, NetRule, NetTarget, NetworkPolicy, Origin};
use sandbox_proxy::{
    HttpProxy, Lookup, ProxyConfig, ProxyHandle, Resolver, Socks5Proxy, ViolationContext,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Fails a test that hangs instead of letting it block the suite.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// `example.com` → `domain:` rule, `tcp:host:port` → `tcp:` rule; the origin text
/// is the permission string a user would write.
pub fn rule(text: &str, field: &str) -> NetRule {
    let target = match text.strip_prefix("tcp:") {
        Some(rest) => {
            let (host, port) = rest.rsplit_once(':').unwrap();
            NetTarget::Tcp {
                host: HostPattern::parse(host).unwrap(),
                port: port.parse().unwrap(),
            }
        }
        None => NetTarget::Domain(HostPattern::parse(text).unwrap()),
    };
    let written = if text.starts_with("tcp:") {
        format!("WebFetch({text})")
    } else {
        format!("WebFetch(domain:{text})")
    };
    NetRule {
        target,
        origin: Origin::new(Layer::Flag, field, written),
    }
}

pub fn policy(allow: &[&str], deny: &[&str]) -> NetworkPolicy {
    NetworkPolicy {
        allow: allow.iter().map(|t| rule(t, "--allow")).collect(),
        deny: deny.iter().map(|t| rule(t, "--deny")).collect(),
        ..NetworkPolicy::default()
    }
}

/// `policy` with every name in `names` pinned to 127.0.0.1.
pub fn pinned(mut policy: NetworkPolicy, names: &[&str]) -> NetworkPolicy {
    for name in names {
        policy.resolve.insert(name.to_string(), LOCALHOST);
    }
    policy
}

/// A resolver answering from a table and remembering every name it was asked.
#[derive(Default)]
pub struct FakeResolver {
    pub table: HashMap<String, IpAddr>,
    pub asked: Mutex<Vec<String>>,
}

impl FakeResolver {
    pub fn new(entries: &[(&str, IpAddr)]) -> Arc<Self> {
        Arc::new(FakeResolver {
            table: entries.iter().map(|(n, ip)| (n.to_string(), *ip)).collect(),
            asked: Mutex::default(),
        })
    }

    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Resolver for FakeResolver {
    fn lookup(&self, host: &str, port: u16) -> Lookup {
        self.asked.lock().unwrap().push(host.to_string());
        let answer = match self.table.get(host) {
            Some(ip) => Ok(vec![SocketAddr::new(*ip, port)]),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such name")),
        };
        Box::pin(async move { answer })
    }
}

/// Both proxies on 127.0.0.1 sharing one configuration and a collecting sink.
pub struct Proxies {
    pub http: SocketAddr,
    pub socks: SocketAddr,
    pub config: ProxyConfig,
    pub violations: Arc<Mutex<Vec<Violation>>>,
    pub resolver: Arc<FakeResolver>,
    handles: Vec<ProxyHandle>,
}

impl Proxies {
    /// The proxies with `policy` and a fake resolver that knows no name.
    pub async fn start(policy: NetworkPolicy) -> Proxies {
        Self::start_with(policy, FakeResolver::new(&[])).await
    }

    pub async fn start_with(policy: NetworkPolicy, resolver: Arc<FakeResolver>) -> Proxies {
        let violations = Arc::new(Mutex::new(Vec::new()));
        let config = ProxyConfig::new(policy, violations.clone())
            .with_resolver(resolver.clone())
            .with_connect_timeout(Duration::from_secs(5))
            .with_context(ViolationContext {
                eval: Some(EvalId(42)),
                sandbox: Some("tests".into()),
                command: "curl".into(),
            });
        let any = SocketAddr::from((LOCALHOST, 0));
        let http = HttpProxy::bind(any, config.clone()).await.unwrap();
        let socks = Socks5Proxy::bind(any, config.clone()).await.unwrap();
        Proxies {
            http: http.local_addr().tcp().unwrap(),
            socks: socks.local_addr().tcp().unwrap(),
            config,
            violations,
            resolver,
            handles: vec![http.spawn(), socks.spawn()],
        }
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.violations.lock().unwrap().clone()
    }

    pub async fn shutdown(self) {
        for h in self.handles {
            h.shutdown().await;
        }
    }
}

/// A TCP echo server; remembers the peer address of each connection.
pub struct Echo {
    pub addr: SocketAddr,
    pub peers: Arc<Mutex<Vec<SocketAddr>>>,
}

pub async fn echo_server_on(ip: IpAddr) -> Echo {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = listener.accept().await {
            seen.lock().unwrap().push(peer);
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Echo { addr, peers }
}

pub async fn echo_server() -> Echo {
    echo_server_on(LOCALHOST).await
}

/// What the test HTTP server lets a test observe and steer.
#[derive(Default)]
pub struct Hooks {
    /// Signalled when `/upload` has received its first body frame.
    pub upload_started: Notify,
    /// `/gate` sends its first chunk, then waits for this before the rest.
    pub release: Notify,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub hooks: Arc<Hooks>,
}

/// An HTTP/1.1 server on 127.0.0.1 (keep-alive) whose routes are:
/// `/hello` → `hello from NAME`; `/headers` → the request headers, one per line;
/// `/upload` → `received N bytes in M frames` after reading the body;
/// `/stream?N` → N bytes, streamed in 64 KiB chunks; `/gate` → `first`, then
/// `rest` once [`Hooks::release`] is notified.
pub async fn http_server(name: &'static str) -> Upstream {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hooks = Arc::new(Hooks::default());
    let shared = hooks.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let hooks = shared.clone();
            let service = service_fn(move |req| route(name, hooks.clone(), req));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Upstream { addr, hooks }
}

type ServerBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn route(
    name: &'static str,
    hooks: Arc<Hooks>,
    req: Request<Incoming>,
) -> Result<Response<ServerBody>, Infallible> {
    let full = |s: String| Full::new(Bytes::from(s)).boxed();
    let body = match req.uri().path() {
        "/hello" => full(format!("hello from {name}")),
        "/headers" => full(
            req.headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or("?")))
                .collect(),
        ),
        "/upload" => {
            let mut body = req.into_body();
            let (mut bytes, mut frames) = (0, 0);
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    if frames == 0 {
                        hooks.upload_started.notify_one();
                    }
                    bytes += data.len();
                    frames += 1;
                }
            }
            full(format!("received {bytes} bytes in {frames} frames"))
        }
        "/stream" => {
            let total: usize = req.uri().query().unwrap().parse().unwrap();
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let (mut tx, rx) = Channel::<Bytes, Infallible>::new(4);
            tokio::spawn(async move {
                let mut left = total;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if tx.send_data(chunk.slice(..n)).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
            rx.boxed()
        }
        "/gate" => {
            let (mut tx, rx) = Channel::<Bytes, Infallible>::new(1);
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"first")).await;
                hooks.release.notified().await;
                let _ = tx.send_data(Bytes::from_static(b"rest")).await;
            });
            rx.boxed()
        }
        _ => full("no such route".into()),
    };
    Ok(Response::new(body))
}

/// A port on 127.0.0.1 where nothing listens.
pub async fn refused_port() -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Sends `CONNECT target` and reads the response head. Returns the status, the
/// head, and the stream (a tunnel when the status is 200).
pub async fn connect(proxy: SocketAddr, target: &str) -> (u16, String, TcpStream) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, head) = read_head(&mut stream).await;
    (status, head, stream)
}

/// Reads an HTTP response head byte by byte, so nothing after it is consumed.
pub async fn read_head(stream: &mut TcpStream) -> (u16, String) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head)
}

/// Reads the body announced by `head`'s Content-Length (the connection stays open).
pub async fn read_body(stream: &mut TcpStream, head: &str) -> String {
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    String::from_utf8(body).unwrap()
}

/// Writes `data` through a tunnel and reads the echo back.
pub async fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).await.unwrap();
    let mut back = vec![0; data.len()];
    stream.read_exact(&mut back).await.unwrap();
    back
}

/// An HTTP/1.1 client connection to the proxy, sending absolute-form requests.
pub async fn http_client<B>(proxy: SocketAddr) -> hyper::client::conn::http1::SendRequest<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// `GET url` on `sender`; the status and the whole body as text.
pub async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    url: &str,
) -> (u16, String) {
    sender.ready().await.unwrap();
    let response = sender
        .send_request(Request::get(url).body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A SOCKS5 destination.
pub enum Dest<'a> {
    Name(&'a str),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

/// Negotiates no-auth and sends CONNECT. Returns the reply code, the bound address
/// in the reply, and the stream (a tunnel on success).
pub async fn socks_connect(
    proxy: SocketAddr,
    dest: Dest<'_>,
    port: u16,
) -> (u8, SocketAddr, TcpStream) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(&[5, 1, 0]).await.unwrap();
    let mut choice = [0; 2];
    stream.read_exact(&mut choice).await.unwrap();
    assert_eq!(choice, [5, 0], "no-auth accepted");
    let mut request = vec![5, 1, 0];
    match dest {
        Dest::Name(name) => {
            request.push(3);
            request.push(name.len() as u8);
            request.extend_from_slice(name.as_bytes());
        }
        Dest::V4(ip) => {
            request.push(1);
            request.extend_from_slice(&ip.octets());
        }
        Dest::V6(ip) => {
            request.push(4);
            request.extend_from_slice(&ip.octets());
        }
    }
    request.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&request).await.unwrap();
    let (code, bound) = read_socks_reply(&mut stream).await;
    (code, bound, stream)
}

pub async fn read_socks_reply(stream: &mut TcpStream) -> (u8, SocketAddr) {
    let mut head = [0; 4];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], 5);
    let ip: IpAddr = match head[3] {
        1 => {
            let mut a = [0; 4];
            stream.read_exact(&mut a).await.unwrap();
            Ipv4Addr::from(a).into()
        }
        4 => {
            let mut a = [0; 16];
            stream.read_exact(&mut a).await.unwrap();
            Ipv6Addr::from(a).into()
        }
        other => panic!("unexpected address type {other} in reply"),
    };
    let mut port = [0; 2];
    stream.read_exact(&mut port).await.unwrap();
    (head[1], SocketAddr::new(ip, u16::from_be_bytes(port)))
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}
