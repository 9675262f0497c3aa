//! The HTTP proxy: `CONNECT` tunnels and absolute-form plain HTTP requests.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use sandbox_policy::NetworkPolicy;
use tokio::io::AsyncWriteExt;

use crate::config::{ProxyConfig, Snapshot};
use crate::connect::{self, Refusal, Upstream};
use crate::error::ProxyError;
use crate::server::{Protocol, Server, Shutdown, Stream};
use crate::tunnel::splice;

/// How long a client may take to send a request head, so a silent connection does
/// not hold a task forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

type Body = Either<Incoming, Full<Bytes>>;

/// The HTTP proxy, bound and ready to serve.
///
/// Serves `CONNECT host:port` (answered `200` and turned into a byte tunnel) and
/// absolute-form requests (`GET http://host:port/path`, forwarded with hop-by-hop
/// headers removed, bodies streamed both ways, the client connection kept alive).
/// Anything else is answered `400`. Destinations the policy refuses get `403` and
/// are recorded as violations; allowed destinations that cannot be reached get
/// `502`.
pub struct HttpProxy {
    server: Server<Http>,
}

crate::server::proxy_api!(HttpProxy, Http);

#[derive(Clone)]
struct Http {
    config: ProxyConfig,
}

impl Protocol for Http {
    const NAME: &'static str = "HTTP";

    fn serve<S: Stream>(
        &self,
        stream: S,
        shutdown: Shutdown,
    ) -> impl Future<Output = Result<(), ProxyError>> + Send {
        serve(self.config.clone(), stream, shutdown)
    }
}

/// A CONNECT that was answered `200`: the tunnel starts once hyper hands the
/// client connection back.
struct PendingTunnel {
    upstream: Upstream,
    on_upgrade: OnUpgrade,
    target: String,
}

/// An upstream HTTP connection kept for the next request to the same destination,
/// as long as the policy it was checked under is still in force.
struct Kept {
    host: String,
    port: u16,
    policy: Arc<NetworkPolicy>,
    sender: SendRequest<Incoming>,
}

/// What the requests of one client connection share.
struct Connection {
    config: ProxyConfig,
    tunnel: Mutex<Option<PendingTunnel>>,
    kept: tokio::sync::Mutex<Option<Kept>>,
}

async fn serve<S: Stream>(
    config: ProxyConfig,
    stream: S,
    mut shutdown: Shutdown,
) -> Result<(), ProxyError> {
    let conn_state = Arc::new(Connection {
        config,
        tunnel: Mutex::new(None),
        kept: tokio::sync::Mutex::new(None),
    });
    let state = conn_state.clone();
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(state.handle(req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let served = tokio::select! {
        served = conn.as_mut() => served,
        () = shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    served.map_err(ProxyError::Http)?;

    let pending = conn_state
        .tunnel
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match pending {
        Some(pending) => run_tunnel::<S>(pending, shutdown).await,
        None => Ok(()),
    }
}

async fn run_tunnel<S: Stream>(
    pending: PendingTunnel,
    mut shutdown: Shutdown,
) -> Result<(), ProxyError> {
    let PendingTunnel {
        upstream,
        on_upgrade,
        target,
    } = pending;
    let mut upstream = upstream.stream;
    let io_err = |what: &str, source| ProxyError::Io {
        context: format!("{what} the tunnel to {target}"),
        source,
    };
    let upgraded = on_upgrade.await.map_err(ProxyError::Http)?;
    let pump = async {
        // The client's own stream, not hyper's boxed wrapper: one less indirection
        // per read and write for the tunnel's whole life.
        match upgraded.downcast::<TokioIo<S>>() {
            Ok(parts) => {
                let mut client = parts.io.into_inner();
                if !parts.read_buf.is_empty() {
                    upstream
                        .write_all(&parts.read_buf)
                        .await
                        .map_err(|e| io_err("writing early bytes into", e))?;
                }
                splice(&mut client, &mut upstream).await
            }
            Err(upgraded) => splice(&mut TokioIo::new(upgraded), &mut upstream).await,
        }
        .map(drop)
        .map_err(|e| io_err("copying through", e))
    };
    tokio::select! {
        done = pump => done,
        () = shutdown.wait() => Ok(()),
    }
}

impl Connection {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if req.method() == Method::CONNECT {
            self.connect(req).await
        } else {
            self.forward(req).await
        }
    }

    async fn connect(&self, mut req: Request<Incoming>) -> Response<Body> {
        let Some((host, port)) = req
            .uri()
            .authority()
            .and_then(|a| Some((a.host().to_string(), a.port_u16()?)))
        else {
            return text(
                StatusCode::BAD_REQUEST,
                format!("CONNECT needs host:port, got {:?}\n", req.uri().to_string()),
            );
        };
        let snap = self.config.snapshot();
        match connect::open(&snap, &host, port).await {
            Ok(upstream) => {
                let pending = PendingTunnel {
                    target: upstream.target.clone(),
                    on_upgrade: hyper::upgrade::on(&mut req),
                    upstream,
                };
                *self.tunnel.lock().unwrap_or_else(|p| p.into_inner()) = Some(pending);
                Response::new(Either::Right(Full::default()))
            }
            Err(refusal) => refused(&refusal),
        }
    }

    async fn forward(&self, req: Request<Incoming>) -> Response<Body> {
        let uri = req.uri();
        let authority = match (uri.scheme_str(), uri.authority()) {
            (Some("http"), Some(a)) => a.clone(),
            (Some(scheme), Some(_)) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot forward {scheme}:// URLs: use CONNECT for TLS\n"),
                )
            }
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "this is a proxy: send absolute-form requests (GET http://host/path) or CONNECT, got {:?}\n",
                        uri.to_string()
                    ),
                )
            }
        };
        let port = authority.port_u16().unwrap_or(80);
        let snap = self.config.snapshot();
        let host = match connect::decide(&snap, authority.host(), port) {
            Ok(host) => host,
            Err(refusal) => return refused(&refusal),
        };
        let mut sender = match self.sender(&snap, &host, port).await {
            Ok(sender) => sender,
            Err(refusal) => return refused(&refusal),
        };

        let req = origin_form(req, &authority);
        match sender.send_request(req).await {
            Ok(mut response) => {
                strip_hop_by_hop(response.headers_mut());
                *self.kept.lock().await = Some(Kept {
                    host,
                    port,
                    policy: snap.policy,
                    sender,
                });
                response.map(Either::Left)
            }
            Err(e) => text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "sandbox proxy: request to {} failed: {e}\n",
                    connect::target(&host, port)
                ),
            ),
        }
    }

    /// An upstream connection for `host:port`: the kept one when it is for the same
    /// destination under the same policy and still usable, else a new one.
    async fn sender(
        &self,
        snap: &Snapshot,
        host: &str,
        port: u16,
    ) -> Result<SendRequest<Incoming>, Refusal> {
        let kept = self.kept.lock().await.take();
        if let Some(mut kept) = kept {
            if kept.host == host
                && kept.port == port
                && Arc::ptr_eq(&kept.policy, &snap.policy)
                && kept.sender.ready().await.is_ok()
            {
                return Ok(kept.sender);
            }
        }
        let upstream = connect::dial_allowed(snap, host, port).await?;
        let unreachable = |e: hyper::Error| Refusal::Unreachable {
            target: connect::target(host, port),
            reason: format!("HTTP handshake with {}: {e}", upstream.addr),
            kind: std::io::ErrorKind::Other,
        };
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake::<_, Incoming>(TokioIo::new(upstream.stream))
            .await
            .map_err(unreachable)?;
        // Ends when the sender is dropped (with this client connection, or when a
        // request goes elsewhere) or when the server closes.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// The request as the origin server expects it: origin-form target, `Host` from
/// the absolute URI (which wins over the client's `Host`, RFC 9112 §3.2.2), no
/// hop-by-hop headers.
fn origin_form(req: Request<Incoming>, authority: &http::uri::Authority) -> Request<Incoming> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    // The authority was parsed from a valid URI, so it is a valid header value.
    if let Ok(host) = HeaderValue::from_str(host_without_userinfo(authority.as_str())) {
        parts.headers.insert(header::HOST, host);
    }
    Request::from_parts(parts, body)
}

fn host_without_userinfo(authority: &str) -> &str {
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}

/// Removes the headers that describe one hop, not the message (RFC 9110 §7.6.1),
/// including those the `Connection` header names and the proxy credentials the
/// sandbox may have sent for us.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("proxy-connection"),
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

fn refused(refusal: &Refusal) -> Response<Body> {
    let status = match refusal {
        Refusal::Denied { .. } => StatusCode::FORBIDDEN,
        Refusal::Unreachable { .. } => StatusCode::BAD_GATEWAY,
    };
    text(status, format!("sandbox proxy: {refusal}\n"))
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Trace"),
            ("x-trace", "1"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("proxy-connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("accept", "*/*"),
            ("content-length", "3"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["accept", "content-length"]);
    }

    #[test]
    fn user_info_never_reaches_the_host_header() {
        assert_eq!(
            host_without_userinfo("user:pw@example.com:8080"),
            "example.com:8080"
        );
        assert_eq!(host_without_userinfo("example.com"), "example.com");
    }
}
