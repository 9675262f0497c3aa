//! What a proxy decides with and where its denials go.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use sandbox_core::{EvalId, Violation, ViolationKind, ViolationSink};
use sandbox_policy::NetworkPolicy;

use crate::resolve::{Resolver, SystemResolver};

/// How long dialling an allowed destination may take before the client is told it
/// is unreachable.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Who the proxied traffic belongs to, copied into every [`Violation`] recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViolationContext {
    /// The evaluation running behind the proxy, when known.
    pub eval: Option<EvalId>,
    /// The named sandbox, when the evaluation runs in one.
    pub sandbox: Option<String>,
    /// The command of the evaluation.
    pub command: String,
}

/// The shared configuration of one or more proxies: the [`NetworkPolicy`] that
/// decides, the [`ViolationSink`] that receives denials, and the
/// [`ViolationContext`] stamped on them.
///
/// Cloning is cheap and clones share state: a policy or context set through one
/// clone is seen by every proxy built from any of them, from the next connection
/// (or, on a kept-alive HTTP connection, the next request) on. That lets one HTTP
/// and one SOCKS5 proxy serve a series of evaluations without being restarted.
#[derive(Clone)]
pub struct ProxyConfig {
    shared: Arc<Shared>,
}

struct Shared {
    sink: Arc<dyn ViolationSink>,
    state: RwLock<State>,
}

#[derive(Clone)]
struct State {
    policy: Arc<NetworkPolicy>,
    context: Arc<ViolationContext>,
    connect_timeout: Duration,
    resolver: Arc<dyn Resolver>,
}

/// What one connection decides with: taken once so that a policy swapped mid-way
/// never mixes two policies in one decision.
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub(crate) policy: Arc<NetworkPolicy>,
    pub(crate) context: Arc<ViolationContext>,
    pub(crate) connect_timeout: Duration,
    pub(crate) resolver: Arc<dyn Resolver>,
    sink: Arc<dyn ViolationSink>,
}

impl ProxyConfig {
    /// A configuration deciding with `policy` and recording denials in `sink`, with
    /// an empty [`ViolationContext`], [`DEFAULT_CONNECT_TIMEOUT`] and the
    /// [`SystemResolver`].
    pub fn new(policy: impl Into<Arc<NetworkPolicy>>, sink: Arc<dyn ViolationSink>) -> Self {
        ProxyConfig {
            shared: Arc::new(Shared {
                sink,
                state: RwLock::new(State {
                    policy: policy.into(),
                    context: Arc::new(ViolationContext::default()),
                    connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                    resolver: Arc::new(SystemResolver),
                }),
            }),
        }
    }

    /// Sets the context stamped on violations (builder form of
    /// [`ProxyConfig::set_context`]).
    pub fn with_context(self, context: ViolationContext) -> Self {
        self.set_context(context);
        self
    }

    /// Sets how long dialling an allowed destination may take.
    pub fn with_connect_timeout(self, timeout: Duration) -> Self {
        self.write(|s| s.connect_timeout = timeout);
        self
    }

    /// Looks names up with `resolver` instead of the system's (the policy's
    /// `resolve` map still answers first).
    pub fn with_resolver(self, resolver: Arc<dyn Resolver>) -> Self {
        self.write(|s| s.resolver = resolver);
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<NetworkPolicy> {
        self.read().policy
    }

    /// Replaces the policy for connections (and HTTP requests) that start from now
    /// on; tunnels already open stay open.
    pub fn set_policy(&self, policy: impl Into<Arc<NetworkPolicy>>) {
        let policy = policy.into();
        self.write(|s| s.policy = policy);
    }

    /// The context stamped on violations.
    pub fn context(&self) -> Arc<ViolationContext> {
        self.read().context
    }

    /// Replaces the context stamped on violations recorded from now on.
    pub fn set_context(&self, context: ViolationContext) {
        let context = Arc::new(context);
        self.write(|s| s.context = context);
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let state = self.read();
        Snapshot {
            policy: state.policy,
            context: state.context,
            connect_timeout: state.connect_timeout,
            resolver: state.resolver,
            sink: self.shared.sink.clone(),
        }
    }

    fn read(&self) -> State {
        // The state is replaced whole under the lock, so a poisoned lock still
        // holds a consistent value.
        self.shared
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn write(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.shared.state.write().unwrap_or_else(|p| p.into_inner()));
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("ProxyConfig")
            .field("policy", &state.policy)
            .field("context", &state.context)
            .field("connect_timeout", &state.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Records a refused connection to `target` (`host:port`) decided by `rule`, and
    /// logs it.
    pub(crate) fn record_denial(&self, target: &str, rule: &str) {
        tracing::warn!(
            target: "sandbox_proxy",
            %target,
            %rule,
            eval = ?self.context.eval,
            command = %self.context.command,
            "network connection denied by the sandbox policy"
        );
        self.sink.record(Violation {
            time: SystemTime::now(),
            eval: self.context.eval,
            sandbox: self.context.sandbox.clone(),
            kind: ViolationKind::Network,
            target: target.to_string(),
            rule: rule.to_string(),
            command: self.context.command.clone(),
        });
    }
}
