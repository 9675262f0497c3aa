//! Benchmarks of the proxies, each against the same work over direct loopback in
//! the same run (`cargo xtask bench proxy` prints the ratios):
//!
//! - `proxy_throughput/{direct,tunnel}_1GiB`: a server writes 1 GiB which the client
//!   reads to the end, directly or through an HTTP CONNECT tunnel; criterion
//!   reports bytes/second. Target: tunnel ≥ 80% of direct.
//! - then `PROXY_PAIRS` (default 6) pairs of the same two transfers, direct
//!   then tunnel, each pair timed back to back: the ratio of each pair is
//!   free of the drift between criterion's two batches (one of direct
//!   transfers, then one of tunnelled ones, seconds apart on a shared
//!   machine). Their median and each pair's figures are printed and written
//!   to `$CRITERION_HOME/proxy_paired.json` for `cargo xtask bench proxy`.
//! - `proxy_tunnels/connect_1000`: 1,000 CONNECT tunnels opened at once, one echo each,
//!   closed; the open descriptors of the process are counted before and after and
//!   the bench panics when any leaked.
//! - `proxy_latency/{direct,tunnel}_ping_pong`: one 64-byte echo round trip over an
//!   established connection. Target: tunnel adds at most 150 µs at p50.
//! - `proxy_latency/{direct,tunnel,socks5}_connect_first_byte`: connecting (plus the
//!   CONNECT or SOCKS5 handshake) and the first one-byte echo.
//!
//! Run with `cargo bench -p sandbox-proxy --bench proxy` (add `-- proxy_latency` for
//! one group), or `cargo xtask bench proxy` for the summary. The proxies and the
//! echo server run on one two-worker tokio runtime on 127.0.0.1, the bulk source
//! on threads of its own (see [`source_server`]); policy names are pinned, no DNS.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sandbox_core::Violation;
use sandbox_policy::{HostPattern, Layer, NetRule, NetTarget, NetworkPolicy, Origin};
use sandbox_proxy::{HttpProxy, ProxyConfig, ProxyHandle, Socks5Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const BULK: u64 = 1 << 30;
const TUNNELS: usize = 1000;
const NAME: &str = "bench.test";

struct Setup {
    rt: Runtime,
    http: SocketAddr,
    socks: SocketAddr,
    /// Writes `BULK` bytes to every connection, then closes.
    source: SocketAddr,
    /// Echoes every connection.
    echo: SocketAddr,
    _handles: (ProxyHandle, ProxyHandle),
}

fn setup() -> Setup {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (http, socks, source, echo) = rt.block_on(async {
        let source = source_server();
        let echo = serve(|mut s| async move {
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        })
        .await;

        let mut policy = NetworkPolicy {
            allow: vec![NetRule {
                target: NetTarget::Domain(HostPattern::parse(NAME).unwrap()),
                origin: Origin::new(Layer::Flag, "--allow", NAME),
            }],
            ..NetworkPolicy::default()
        };
        policy.resolve.insert(NAME.into(), LOCALHOST);
        let sink = Arc::new(|v: Violation| panic!("unexpected violation {v:?}"));
        let config = ProxyConfig::new(policy, sink);
        let any = SocketAddr::new(LOCALHOST, 0);
        let http = HttpProxy::bind(any, config.clone()).await.unwrap();
        let socks = Socks5Proxy::bind(any, config).await.unwrap();
        (http, socks, source, echo)
    });
    let (http_addr, socks_addr) = (
        http.local_addr().tcp().unwrap(),
        socks.local_addr().tcp().unwrap(),
    );
    let handles = {
        let _guard = rt.enter();
        (http.spawn(), socks.spawn())
    };
    Setup {
        rt,
        http: http_addr,
        socks: socks_addr,
        source,
        echo,
        _handles: handles,
    }
}

/// The bulk source: a server on 127.0.0.1 that writes [`BULK`] bytes to
/// every connection, then closes it. Plain threads, outside the runtime the
/// proxies run on, like the remote server a tunnel reaches: sharing the
/// proxies' workers made the tunnelled figure depend on how tokio happened
/// to place the server's task and the tunnel's (375 to 916 ms per GiB).
fn source_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stream.set_nodelay(true);
                let chunk = vec![0x5a; 64 * 1024];
                let mut left = BULK as usize;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if stream.write_all(&chunk[..n]).is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    addr
}

/// A server on 127.0.0.1 running `handle` on every connection.
async fn serve<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(handle(stream));
        }
    });
    addr
}

/// 1,000 tunnels need about 4,000 descriptors in this one process.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The open descriptors once closing connections have finished: the count when it
/// is at most `target`, or has not changed for 200 ms, or after 10 s.
fn settled_fds(target: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (open_fds(), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = open_fds();
        if now <= target || Instant::now() > deadline {
            return now;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(200) {
            return now;
        }
    }
}

/// Opens a CONNECT tunnel to `NAME:port` through the HTTP proxy. Returns the
/// stream and how many tunnel bytes arrived with the proxy's answer.
async fn tunnel_with_early(proxy: SocketAddr, port: u16) -> (TcpStream, usize) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let request = format!("CONNECT {NAME}:{port} HTTP/1.1\r\nHost: {NAME}:{port}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // Read in blocks, not byte by byte (that would dominate the connect latency);
    // a server that talks first may have its first bytes in the same block.
    let mut head = vec![0u8; 64 * 1024];
    let mut len = 0;
    loop {
        let n = stream.read(&mut head[len..]).await.unwrap();
        assert!(n > 0, "proxy closed during CONNECT");
        len += n;
        if let Some(end) = head[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            assert!(
                head.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&head[..end])
            );
            return (stream, len - end - 4);
        }
    }
}

async fn tunnel(proxy: SocketAddr, port: u16) -> TcpStream {
    let (stream, early) = tunnel_with_early(proxy, port).await;
    assert_eq!(early, 0, "the echo server does not talk first");
    stream
}

/// Opens a SOCKS5 tunnel to `NAME:port`.
async fn socks_tunnel(proxy: SocketAddr, port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut request = vec![5, 1, 0, 5, 1, 0, 3, NAME.len() as u8];
    request.extend_from_slice(NAME.as_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    // Method selection and request in one write, as curl does: one round trip.
    stream.write_all(&request).await.unwrap();
    let mut reply = [0u8; 12];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply[..4], [5, 0, 5, 0]);
    stream
}

/// Runs `iters` iterations in one `block_on`: entering the runtime per iteration
/// would add its own cost to every figure.
fn timed<F, Fut>(rt: &Runtime, iters: u64, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            f().await;
        }
        start.elapsed()
    })
}

async fn direct(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

async fn drain(mut stream: TcpStream) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match stream.read(&mut buf).await.unwrap() {
            0 => return total,
            n => total += n as u64,
        }
    }
}

async fn echo_once(stream: &mut TcpStream, message: &[u8], buf: &mut [u8]) {
    stream.write_all(message).await.unwrap();
    stream.read_exact(&mut buf[..message.len()]).await.unwrap();
}

fn throughput(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("proxy_throughput");
    group.throughput(Throughput::Bytes(BULK));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    let port = s.source.port();
    group.bench_function("direct_1GiB", |b| {
        b.iter_custom(|iters| {
            timed(&s.rt, iters, || async {
                assert_eq!(drain(direct(s.source).await).await, BULK)
            })
        })
    });
    group.bench_function("tunnel_1GiB", |b| {
        b.iter_custom(|iters| {
            timed(&s.rt, iters, || async {
                let (stream, early) = tunnel_with_early(s.http, port).await;
                assert_eq!(early as u64 + drain(stream).await, BULK)
            })
        })
    });
    group.finish();
    paired(s);
}

/// One 1 GiB transfer directly and one through a CONNECT tunnel, timed.
fn pair(s: &Setup) -> (Duration, Duration) {
    let port = s.source.port();
    s.rt.block_on(async {
        let start = Instant::now();
        assert_eq!(drain(direct(s.source).await).await, BULK);
        let direct = start.elapsed();
        let start = Instant::now();
        let (stream, early) = tunnel_with_early(s.http, port).await;
        assert_eq!(early as u64 + drain(stream).await, BULK);
        (direct, start.elapsed())
    })
}

/// The paired measurement (see the module docs).
fn paired(s: &Setup) {
    let pairs: usize = match std::env::var("PROXY_PAIRS") {
        Err(_) => 6,
        Ok(n) => n.trim().parse().unwrap_or_else(|_| {
            panic!("PROXY_PAIRS={n:?} is not a number of pairs (0 skips the paired measurement)")
        }),
    };
    if pairs == 0 {
        return;
    }
    let mut ratios = Vec::new();
    let mut rows = Vec::new();
    for _ in 0..pairs {
        let (direct, tunnel) = pair(s);
        // Same bytes each way: throughput tunnel/direct is time direct/tunnel.
        let ratio = direct.as_secs_f64() / tunnel.as_secs_f64();
        println!(
            "proxy_throughput/paired: direct {:.0} ms, tunnel {:.0} ms, tunnel/direct throughput {ratio:.2}",
            direct.as_secs_f64() * 1e3,
            tunnel.as_secs_f64() * 1e3
        );
        rows.push(format!(
            "{{\"direct_ms\":{:.1},\"tunnel_ms\":{:.1},\"ratio\":{ratio:.4}}}",
            direct.as_secs_f64() * 1e3,
            tunnel.as_secs_f64() * 1e3
        ));
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let median = if pairs % 2 == 1 {
        ratios[pairs / 2]
    } else {
        (ratios[pairs / 2 - 1] + ratios[pairs / 2]) / 2.0
    };
    println!(
        "proxy_throughput/paired: median tunnel/direct throughput {median:.2} over {pairs} pairs"
    );
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        let json = format!(
            "{{\"median\":{median:.4},\"pairs\":[{}]}}\n",
            rows.join(",")
        );
        let path = std::path::Path::new(&home).join("proxy_paired.json");
        if let Err(e) = std::fs::write(&path, json) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
}

fn tunnels(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("proxy_tunnels");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    let (http, port) = (s.http, s.echo.port());
    // The last throughput tunnel may still be closing on the proxy's side.
    let before = settled_fds(0);
    group.bench_function("connect_1000", |b| {
        b.iter_custom(|iters| {
            timed(&s.rt, iters, || async move {
                let mut set = JoinSet::new();
                for i in 0..TUNNELS {
                    set.spawn(async move {
                        let mut stream = tunnel(http, port).await;
                        let mut buf = [0u8; 8];
                        echo_once(&mut stream, &(i as u64).to_le_bytes(), &mut buf).await;
                    });
                }
                while let Some(done) = set.join_next().await {
                    done.expect("a tunnel failed");
                }
            })
        })
    });
    group.finish();
    // Closing is asynchronous on the proxy's and the echo server's side.
    let after = settled_fds(before);
    assert!(
        after <= before,
        "descriptors leaked by {TUNNELS}-tunnel rounds: {before} open before, {after} after"
    );
    println!("proxy_tunnels/connect_1000: open descriptors {before} before, {after} after");
}

fn latency(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("proxy_latency");
    group.warm_up_time(Duration::from_secs(1));
    let port = s.echo.port();
    let message = [0x42u8; 64];
    for (name, via_proxy) in [("direct_ping_pong", false), ("tunnel_ping_pong", true)] {
        let mut stream = s.rt.block_on(async {
            if via_proxy {
                tunnel(s.http, port).await
            } else {
                direct(s.echo).await
            }
        });
        let mut buf = [0u8; 64];
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                s.rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        echo_once(&mut stream, &message, &mut buf).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.bench_function("direct_connect_first_byte", |b| {
        b.iter_custom(|iters| {
            timed(&s.rt, iters, || async {
                let mut stream = direct(s.echo).await;
                echo_once(&mut stream, b"!", &mut [0u8; 1]).await;
            })
        })
    });
    group.bench_function("tunnel_connect_first_byte", |b| {
        b.iter_custom(|iters| {
            timed(&s.rt, iters, || async {
                let mut stream = tunnel(s.http, port).await;
                echo_once(&mut stream, b"!", &mut [0u8; 1]).await;
            })
        })
    });
    group.bench_function("socks5_connect_first_byte", |b| {
        b.iter_custom(|iters| {
            timed(&s.rt, iters, || async {
                let mut stream = socks_tunnel(s.socks, port).await;
                echo_once(&mut stream, b"!", &mut [0u8; 1]).await;
            })
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let s = setup();
    throughput(c, &s);
    tunnels(c, &s);
    latency(c, &s);
}

criterion_group!(proxy, benches);
criterion_main!(proxy);
