//! MCP over Streamable HTTP for MCP clients (2025-06-18 and 2025-11-25 with
//! sessions, SSE streams and DELETE; 2025-03-26 and 2024-11-05 alike; the
//! stateless 2026-07-28 bridged by `stateless`), on
//! two endpoints: `/mcp/{mcp_id}`, one upstream MCP server passed through
//! unchanged (`handler`), and `/mcp`, every MCP the key may use behind one
//! server (`aggregate`, named per `names`).
//!
//! rmcp's `StreamableHttpService` speaks the transport; `guard` stands in
//! front of it and decides, for every request (POST, GET, DELETE), whether
//! the key may use that MCP and that session, before anything reaches an
//! upstream, and records the usage. Each session gets a `ProxyHandler` with
//! its own upstream connection (for stdio a child process of its own), so
//! one client's notifications, log level, subscriptions and server-to-client
//! requests never reach another. Plain REST `tools/call` keeps using the
//! shared pool.

mod aggregate;
mod aggregate_view;
mod answer;
mod fast_lane;
mod guard;
mod handler;
mod message_head;
mod names;
mod prefer_json;
mod relay;
mod session_manager;
mod session_upstream;
mod sessions;
mod stateless;
mod sweeper;
mod withheld;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use aggregate::AggregateHandler;
pub use guard::{aggregate, guard};
use handler::ProxyHandler;
pub use names::{SEPARATOR, URI_SCHEME};
use session_manager::GatewaySessions;
pub use sweeper::spawn as spawn_sweeper;

use crate::server::tool_access::ToolGrant;
use crate::upstream::UpstreamSpec;

/// An idle session ends after this long without a request or open stream.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Open sessions one key may hold at once.
pub const DEFAULT_MAX_SESSIONS_PER_KEY: usize = 16;
/// Open sessions the gateway holds at once.
pub const DEFAULT_MAX_SESSIONS: usize = 256;

/// How long a client whose stream broke waits before resuming it.
const SSE_RETRY: Duration = Duration::from_secs(1);
/// How long a finished request's stream can still be resumed.
const COMPLETED_STREAM_KEPT: Duration = Duration::from_secs(3);

/// How the MCP endpoint is run; the defaults suit a gateway on loopback.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub session_idle: Duration,
    pub max_sessions_per_key: usize,
    pub max_sessions: usize,
    /// `Host` values accepted (DNS-rebinding protection), with or without port.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted, e.g. `http://localhost:6274`; any other
    /// `Origin` is refused with 403. Requests without `Origin` pass.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies believed about who the client is (the whole gateway uses it).
    pub trusted_proxies: crate::server::client_addr::TrustedProxies,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            session_idle: DEFAULT_SESSION_IDLE,
            max_sessions_per_key: DEFAULT_MAX_SESSIONS_PER_KEY,
            max_sessions: DEFAULT_MAX_SESSIONS,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            trusted_proxies: Default::default(),
        }
    }
}

/// What a request was authorized for, handed to the session's handler
/// through the request's extensions (rmcp passes them on).
#[derive(Clone)]
pub struct Grant {
    pub slug: String,
    pub spec: UpstreamSpec,
    /// The key and scope the request was authorized for.
    pub binding: sessions::Binding,
    /// Which of the MCP's tools the key may see and call, as of this request.
    pub tools: ToolGrant,
    /// Where stateless (2026-07-28) requests find their upstream.
    pub bridge: Arc<stateless::Bridge>,
    /// Filled by the handler at `initialize`, so the session's upstream can
    /// be watched from outside rmcp.
    pub link: Arc<OnceLock<Arc<relay::Link>>>,
    /// What pinned MCPs withhold, as of this request.
    pub pins: crate::server::tool_pins::PinsAt,
}

/// The grant (`Grant` or `AggregateGrant`) the guard put on the request.
pub(super) fn granted<T: Send + Sync + 'static>(
    context: &rmcp::service::RequestContext<rmcp::RoleServer>,
) -> Result<&T, rmcp::model::ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<T>())
        .ok_or_else(|| {
            rmcp::model::ErrorData::internal_error("request without authorization", None)
        })
}

/// The MCP endpoint's shared parts.
pub struct McpProxy {
    service: StreamableHttpService<ProxyHandler, GatewaySessions>,
    /// `/mcp`'s sessions: the same transport and session manager, so the
    /// caps and expiry cover both endpoints alike.
    aggregate: StreamableHttpService<AggregateHandler, GatewaySessions>,
    sessions: Arc<GatewaySessions>,
    /// The transport's checks, for calls that skip it (`session_manager`).
    lane: fast_lane::FastLane,
    /// Upstream connections of 2026-07-28 (stateless) clients.
    bridge: Arc<stateless::Bridge>,
    settings: ProxySettings,
    /// Ends every session and stream; fired when the gateway shuts down.
    cancel: CancellationToken,
}

impl McpProxy {
    pub fn new(settings: ProxySettings) -> McpProxy {
        let cancel = CancellationToken::new();
        let mut manager = LocalSessionManager::default();
        // Idle sessions are ended by the sweeper, which counts open streams
        // as use (`session_manager`); rmcp's keep-alive would not.
        manager.session_config.keep_alive = None;
        // rmcp keeps every finished request's stream for late resumption
        // and scans all of them on each session event: with its default
        // (60 s) a busy session spent most of its time scanning and held a
        // minute of answers in memory. A client resumes a stream it lost
        // after the retry interval it is told (1 s here), so a few seconds
        // are enough.
        manager.session_config.sse_retry = Some(SSE_RETRY);
        manager.session_config.completed_cache_ttl = COMPLETED_STREAM_KEPT;
        let sessions = Arc::new(GatewaySessions::new(manager));
        let mut config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(true)
            .with_allowed_hosts(settings.allowed_hosts.clone())
            .with_allowed_origins(settings.allowed_origins.clone())
            .enforce_origin_validation()
            .with_max_request_body_bytes(crate::server::MAX_BODY_BYTES)
            .with_cancellation_token(cancel.clone());
        config.sse_retry = Some(SSE_RETRY);
        let service = StreamableHttpService::new(
            || Ok(ProxyHandler::default()),
            sessions.clone(),
            config.clone(),
        );
        let aggregate = StreamableHttpService::new(
            || Ok(AggregateHandler::default()),
            sessions.clone(),
            config,
        );
        McpProxy {
            service,
            aggregate,
            sessions,
            lane: fast_lane::FastLane::new(&settings.allowed_hosts),
            bridge: Arc::new(stateless::Bridge::new(
                settings.max_sessions,
                settings.session_idle,
            )),
            settings,
            cancel,
        }
    }

    /// MCP sessions currently bound to a key.
    pub fn sessions_open(&self) -> usize {
        self.sessions.book.open_count()
    }

    /// Ends every session (their upstreams close with them) and stream.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}
