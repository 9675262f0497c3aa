//! The executor's half of the network bridge: the listening sockets init
//! created on the sandbox's loopback (see `runner/bridge.rs`) are accepted on
//! here, outside the sandbox, and each connection is served by the HTTP or
//! SOCKS5 proxy of `sandbox-proxy` with the evaluation's network policy.
//!
//! DESIGN.md has the runner relay connections to the host proxies over Unix
//! sockets. Passing the listeners out instead needs no relay process inside
//! the sandbox, no extra copy of every byte and no socket path the sandbox
//! could reach: a connection exists only once the executor has accepted it.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use sandbox_core::{EvalRequest, Violation, ViolationLog, ViolationSink};
use sandbox_proxy::{HttpProxy, ProxyConfig, Socks5Proxy, ViolationContext};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::debug;

use crate::protocol::BridgePorts;
use crate::recorded::Recorded;

/// The variables pointing an evaluation at the bridge: upper and lower case,
/// as curl, Python, Go and Node each read one or the other.
pub(crate) fn proxy_env(ports: &BridgePorts) -> Vec<(String, String)> {
    let http = format!("http://127.0.0.1:{}", ports.http);
    let socks = format!("socks5h://127.0.0.1:{}", ports.socks);
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    let mut env = Vec::new();
    for (name, value) in [
        ("HTTP_PROXY", &http),
        ("HTTPS_PROXY", &http),
        ("ALL_PROXY", &socks),
        ("NO_PROXY", &no_proxy),
    ] {
        env.push((name.to_string(), value.clone()));
        env.push((name.to_lowercase(), value.clone()));
    }
    env
}

/// One evaluation's bridge: the accept loops, and the violations its
/// proxies recorded.
#[derive(Debug)]
pub(crate) struct Bridge {
    tasks: JoinSet<()>,
    violations: Arc<Recorded>,
}

impl Bridge {
    /// Serves `listeners` (HTTP, then SOCKS5) for `request`, recording
    /// denials in the evaluation's list and in `log`.
    pub fn serve(
        listeners: Vec<OwnedFd>,
        request: &EvalRequest,
        log: Arc<ViolationLog>,
    ) -> std::io::Result<Bridge> {
        let [http, socks]: [OwnedFd; 2] = listeners.try_into().map_err(|got: Vec<_>| {
            std::io::Error::other(format!(
                "the runner passed {} sockets for the proxy bridge instead of 2",
                got.len()
            ))
        })?;
        let violations = Arc::new(Recorded::default());
        let mine = Arc::clone(&violations);
        let sink: Arc<dyn ViolationSink> = Arc::new(move |violation: Violation| {
            mine.push(violation.clone());
            log.record(violation);
        });
        let config =
            ProxyConfig::new(request.policy.network.clone(), sink).with_context(ViolationContext {
                eval: Some(request.id),
                sandbox: None,
                command: request.command.display(),
            });
        let mut tasks = JoinSet::new();
        tasks.spawn(accept(listener(http)?, config.clone(), Protocol::Http));
        tasks.spawn(accept(listener(socks)?, config, Protocol::Socks5));
        Ok(Bridge { tasks, violations })
    }

    /// Stops serving (open connections are cut: the sandbox is gone) and
    /// returns the violations recorded (listed, and how many more).
    pub fn finish(mut self) -> (Vec<Violation>, u64) {
        self.tasks.abort_all();
        self.violations.take()
    }
}

fn listener(fd: OwnedFd) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::from(fd);
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Http,
    Socks5,
}

/// Accepts until aborted; each connection is served on a task of its own,
/// aborted with this one.
async fn accept(listener: TcpListener, config: ProxyConfig, protocol: Protocol) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let config = config.clone();
                    connections.spawn(async move {
                        let served = match protocol {
                            Protocol::Http => HttpProxy::serve_connection(&config, stream).await,
                            Protocol::Socks5 => Socks5Proxy::serve_connection(&config, stream).await,
                        };
                        if let Err(error) = served {
                            debug!(?protocol, %error, "bridged connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    debug!(?protocol, %error, "the bridge stopped accepting");
                    return;
                }
            },
            // Reap finished connections so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_variables_name_both_proxies_in_both_cases() {
        let env = proxy_env(&BridgePorts {
            http: 3128,
            socks: 1080,
        });
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTPS_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("https_proxy"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("ALL_PROXY"), Some("socks5h://127.0.0.1:1080"));
        assert_eq!(get("no_proxy"), Some("localhost,127.0.0.1,::1"));
    }
}
