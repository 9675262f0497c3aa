//! Listening, accepting and shutting down: what the HTTP and SOCKS5 proxies share.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::ProxyError;

/// How long [`ProxyHandle::shutdown`] lets connections finish what they are doing
/// before closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where a proxy listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address (the port is the real one when bound to port 0).
    Tcp(SocketAddr),
    /// A Unix socket path (`None` for an unnamed socket).
    Unix(Option<PathBuf>),
}

impl ListenAddr {
    /// The TCP address, if the proxy listens on TCP.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            ListenAddr::Tcp(addr) => Some(*addr),
            ListenAddr::Unix(_) => None,
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            ListenAddr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

/// A stream a proxy can serve: TCP, a Unix socket from the sandbox's bridge, or
/// anything else that reads and writes.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// Tells connections that the proxy is shutting down. A dropped sender counts as
/// a shutdown, so a forgotten handle cannot leave connections waiting forever.
#[derive(Clone)]
pub(crate) struct Shutdown(Option<watch::Receiver<bool>>);

impl Shutdown {
    /// A signal that never fires, for connections served outside an accept loop.
    pub(crate) fn never() -> Self {
        Shutdown(None)
    }

    /// Resolves once shutdown has begun.
    pub(crate) async fn wait(&mut self) {
        match &mut self.0 {
            Some(rx) => {
                let _ = rx.wait_for(|down| *down).await;
            }
            None => std::future::pending().await,
        }
    }
}

/// One protocol served on accepted connections.
pub(crate) trait Protocol: Clone + Send + Sync + 'static {
    /// `HTTP` or `SOCKS5`, for messages.
    const NAME: &'static str;

    /// Serves one connection until it ends or `shutdown` fires.
    fn serve<S: Stream>(
        &self,
        stream: S,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send;
}

pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    pub(crate) async fn bind_tcp(
        proxy: &'static str,
        addr: SocketAddr,
    ) -> Result<Self, ProxyError> {
        TcpListener::bind(addr)
            .await
            .map(Listener::Tcp)
            .map_err(|source| ProxyError::Bind {
                proxy,
                addr: addr.to_string(),
                source,
            })
    }

    pub(crate) fn bind_unix(proxy: &'static str, path: &Path) -> Result<Self, ProxyError> {
        UnixListener::bind(path)
            .map(Listener::Unix)
            .map_err(|source| ProxyError::Bind {
                proxy,
                addr: format!("unix:{}", path.display()),
                source,
            })
    }

    pub(crate) fn local_addr(&self, proxy: &'static str) -> Result<ListenAddr, ProxyError> {
        let err = |source| ProxyError::LocalAddr { proxy, source };
        match self {
            Listener::Tcp(l) => l.local_addr().map(ListenAddr::Tcp).map_err(err),
            Listener::Unix(l) => l
                .local_addr()
                .map(|a| ListenAddr::Unix(a.as_pathname().map(Path::to_path_buf)))
                .map_err(err),
        }
    }
}

/// A bound proxy of protocol `P`, not yet accepting.
pub(crate) struct Server<P> {
    pub(crate) protocol: P,
    pub(crate) listener: Listener,
    pub(crate) addr: ListenAddr,
}

impl<P: Protocol> Server<P> {
    pub(crate) fn new(protocol: P, listener: Listener) -> Result<Self, ProxyError> {
        let addr = listener.local_addr(P::NAME)?;
        Ok(Server {
            protocol,
            listener,
            addr,
        })
    }

    /// Accepts in a background task until the returned handle shuts it down.
    pub(crate) fn spawn(self) -> ProxyHandle {
        let (tx, rx) = watch::channel(false);
        let addr = self.addr.clone();
        let task = tokio::spawn(self.accept_loop(Shutdown(Some(rx))));
        ProxyHandle {
            addr,
            shutdown: tx,
            task: Some(task),
        }
    }

    /// Accepts until `stop` resolves, then shuts down gracefully.
    pub(crate) async fn run_until(self, stop: impl Future<Output = ()>) {
        let (tx, rx) = watch::channel(false);
        let accept = self.accept_loop(Shutdown(Some(rx)));
        tokio::pin!(accept);
        tokio::select! {
            () = &mut accept => return,
            () = stop => {}
        }
        let _ = tx.send(true);
        accept.await;
    }

    async fn accept_loop(self, mut shutdown: Shutdown) {
        let Server {
            protocol,
            listener,
            addr,
        } = self;
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    log_connection_end(P::NAME, done);
                }
                accepted = accept(&listener) => match accepted {
                    Ok(Accepted::Tcp(stream)) => {
                        let _ = stream.set_nodelay(true);
                        bound_send_buffer_of_local_client(&stream);
                        connections.spawn(protocol.clone().serve_owned(stream, shutdown.clone()));
                    }
                    Ok(Accepted::Unix(stream)) => {
                        connections.spawn(protocol.clone().serve_owned(stream, shutdown.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(proxy = P::NAME, %addr, error = %e, "accept failed");
                        // Out of descriptors or similar: retrying at once would spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
            }
        }
        drop(listener);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(done) = connections.join_next().await {
                log_connection_end(P::NAME, done);
            }
        })
        .await;
        if drained.is_err() {
            tracing::debug!(
                proxy = P::NAME,
                open = connections.len(),
                "closing connections still open after the grace period"
            );
        }
        connections.shutdown().await;
    }
}

trait ServeOwned: Protocol {
    fn serve_owned<S: Stream>(
        self,
        stream: S,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send + 'static {
        async move { self.serve(stream, shutdown).await }
    }
}
impl<P: Protocol> ServeOwned for P {}

/// The send buffer of a connection from a client on this host, in bytes as asked
/// of the kernel (Linux doubles it for its bookkeeping).
///
/// Autotuning grows a send buffer to megabytes, sized for a path's delay; to a
/// client on this host there is none, and every byte queued there is a byte the
/// client reads long after it was written, out of cache. Bounding the buffer keeps
/// bulk transfers through a tunnel cache-warm: in alternating runs of the paired
/// 1 GiB transfers of `cargo xtask bench proxy`, the median tunnel/direct
/// throughput went from 0.49-0.54 to 0.71-0.94 on a 2-vCPU VM.
/// Remote clients keep autotuning, which their path's delay needs.
pub(crate) const LOCAL_CLIENT_SEND_BUFFER: usize = 256 * 1024;

/// Bounds the send buffer of a connection whose client is on this host (see
/// [`LOCAL_CLIENT_SEND_BUFFER`]); a failure only costs speed, so it is ignored.
pub(crate) fn bound_send_buffer_of_local_client(stream: &tokio::net::TcpStream) {
    let local = stream
        .peer_addr()
        .is_ok_and(|peer| peer.ip().to_canonical().is_loopback());
    if local {
        let _ = socket2::SockRef::from(stream).set_send_buffer_size(LOCAL_CLIENT_SEND_BUFFER);
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

fn log_connection_end(
    proxy: &'static str,
    done: Result<Result<(), ProxyError>, tokio::task::JoinError>,
) {
    match done {
        Ok(Ok(())) => {}
        // Clients that hang up mid-request are routine, not the proxy's failure.
        Ok(Err(e)) => tracing::debug!(proxy, error = %e, "connection ended with an error"),
        Err(e) if e.is_panic() => tracing::error!(proxy, error = %e, "connection task panicked"),
        Err(_) => {}
    }
}

/// A running proxy: its address and the way to stop it.
///
/// Dropping the handle also stops the proxy (in the background); call
/// [`ProxyHandle::shutdown`] to wait until it has stopped.
#[derive(Debug)]
pub struct ProxyHandle {
    addr: ListenAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ProxyHandle {
    /// Where the proxy listens.
    pub fn local_addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Stops accepting, lets in-flight HTTP requests finish for up to
    /// [`SHUTDOWN_GRACE`] (idle kept-alive connections and open tunnels are closed at
    /// once), then closes whatever is left, and returns once everything is closed.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The public face both proxies share (binding, serving, one connection at a
/// time), written once: `$proxy` wraps a `Server<$protocol>`, whose protocol
/// is built from a [`ProxyConfig`](crate::ProxyConfig) as `$protocol { config }`.
macro_rules! proxy_api {
    ($proxy:ident, $protocol:ident) => {
        impl $proxy {
            /// Binds to a TCP address (port 0 picks a free port; see
            /// `local_addr`).
            pub async fn bind(
                addr: std::net::SocketAddr,
                config: $crate::ProxyConfig,
            ) -> Result<Self, $crate::ProxyError> {
                let listener = $crate::server::Listener::bind_tcp(
                    <$protocol as $crate::server::Protocol>::NAME,
                    addr,
                )
                .await?;
                Self::from_listener(listener, config)
            }

            /// Binds to a Unix socket path (which must not exist yet).
            pub fn bind_unix(
                path: impl AsRef<std::path::Path>,
                config: $crate::ProxyConfig,
            ) -> Result<Self, $crate::ProxyError> {
                let listener = $crate::server::Listener::bind_unix(
                    <$protocol as $crate::server::Protocol>::NAME,
                    path.as_ref(),
                )?;
                Self::from_listener(listener, config)
            }

            /// Serves on a TCP listener bound elsewhere.
            pub fn from_tcp(
                listener: tokio::net::TcpListener,
                config: $crate::ProxyConfig,
            ) -> Result<Self, $crate::ProxyError> {
                Self::from_listener($crate::server::Listener::Tcp(listener), config)
            }

            /// Serves on a Unix listener bound elsewhere (e.g. the sandbox
            /// bridge's socket).
            pub fn from_unix(
                listener: tokio::net::UnixListener,
                config: $crate::ProxyConfig,
            ) -> Result<Self, $crate::ProxyError> {
                Self::from_listener($crate::server::Listener::Unix(listener), config)
            }

            fn from_listener(
                listener: $crate::server::Listener,
                config: $crate::ProxyConfig,
            ) -> Result<Self, $crate::ProxyError> {
                Ok($proxy {
                    server: $crate::server::Server::new($protocol { config }, listener)?,
                })
            }

            /// Where the proxy listens.
            pub fn local_addr(&self) -> &$crate::server::ListenAddr {
                &self.server.addr
            }

            /// The configuration it decides with (clones share state: see
            /// [`ProxyConfig`]($crate::ProxyConfig)).
            pub fn config(&self) -> &$crate::ProxyConfig {
                &self.server.protocol.config
            }

            /// Starts accepting in a background task (on the current tokio
            /// runtime).
            pub fn spawn(self) -> $crate::server::ProxyHandle {
                self.server.spawn()
            }

            /// Accepts until `stop` resolves, then shuts down as
            /// [`ProxyHandle::shutdown`]($crate::server::ProxyHandle::shutdown) does.
            pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) {
                self.server.run_until(stop).await
            }

            /// Serves one connection accepted elsewhere (e.g. by the sandbox's
            /// bridge) until it ends.
            pub async fn serve_connection<S: $crate::server::Stream>(
                config: &$crate::ProxyConfig,
                stream: S,
            ) -> Result<(), $crate::ProxyError> {
                let any: &dyn std::any::Any = &stream;
                if let Some(tcp) = any.downcast_ref::<tokio::net::TcpStream>() {
                    $crate::server::bound_send_buffer_of_local_client(tcp);
                }
                serve(config.clone(), stream, $crate::server::Shutdown::never()).await
            }
        }
    };
}
pub(crate) use proxy_api;

#[cfg(test)]
mod tests {
    use super::*;

    async fn accepted_from_loopback() -> tokio::net::TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), async {
            listener.accept().await.unwrap().0
        });
        accepted
    }

    fn send_buffer(stream: &tokio::net::TcpStream) -> usize {
        socket2::SockRef::from(stream).send_buffer_size().unwrap()
    }

    #[tokio::test]
    async fn a_client_on_this_host_gets_a_bounded_send_buffer() {
        let stream = accepted_from_loopback().await;
        bound_send_buffer_of_local_client(&stream);
        // Linux reports twice what was asked (its bookkeeping share); other
        // systems report what was asked.
        let got = send_buffer(&stream);
        assert!(
            got == LOCAL_CLIENT_SEND_BUFFER || got == 2 * LOCAL_CLIENT_SEND_BUFFER,
            "send buffer {got}"
        );
        assert_ne!(
            send_buffer(&accepted_from_loopback().await),
            got,
            "the default was the same"
        );
    }
}
