//! One live MCP client session with an upstream, plus its cached tool list.
//!
//! A [`Connection`] is shared (behind an `Arc`) by every concurrent call to
//! the same upstream: calls go through a cloned rmcp `Peer`, which multiplexes
//! requests over the one session, so no lock is held while a call is in
//! flight. A connection that has shown a transport failure is marked broken
//! so the pool replaces it on the next use; ordinary errors (the upstream
//! answering with a JSON-RPC error, or being slow) leave it in service.
//!
//! What an upstream sends is bounded: a tool list may have at most
//! [`MAX_TOOL_PAGES`] pages, [`MAX_TOOLS`] tools and [`MAX_TOOL_BYTES`] of
//! tool JSON (an upstream that always names a next page once took the
//! gateway past 2 GB), and a stdio message at most [`child::MAX_LINE`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, ErrorCode,
    Implementation, PaginatedRequestParams, ProtocolVersion, Tool,
};
use rmcp::service::{
    ClientInitializeError, ClientLifecycleMode, ClientServiceExt, NotificationContext,
    RunningService,
};
use rmcp::{ClientCacheConfig, ClientHandler, Peer, RoleClient, ServiceError};
use tokio_util::sync::CancellationToken;

use super::counted::{Arrivals, Counted};
use super::{
    Transport, UpstreamError, UpstreamSpec, child, describe, describe_handshake, http, lifecycle,
    one_line, stdio,
};

/// Most `tools/list` pages followed for one listing.
pub(super) const MAX_TOOL_PAGES: usize = 100;
/// Most tools one upstream may list.
pub(super) const MAX_TOOLS: usize = 10_000;
/// Most bytes of tool JSON (names, descriptions, schemas) one upstream may list.
pub(super) const MAX_TOOL_BYTES: usize = 16 * 1024 * 1024;

/// How long [`Connection::close`] waits for rmcp to wind a session down
/// (closing stdin and letting the child exit, or deleting the HTTP session).
/// Anything still running afterwards is killed when its transport is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(4);

/// State shared between the connection and rmcp's notification callbacks.
#[derive(Default)]
struct Shared {
    /// Set when the upstream announces that its tool list changed.
    tools_stale: AtomicBool,
}

/// The client-side handler rmcp drives: identifies the gateway and watches
/// for notifications that affect cached state.
#[derive(Clone)]
struct Handler {
    name: String,
    shared: Arc<Shared>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        // Pinned to the newest version that still has an `initialize`
        // handshake, so servers on either side of the 2026 lifecycle change
        // answer the same way.
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("plexmcp", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::debug!(target: "plexmcp::upstream", upstream = %self.name, "tool list changed");
        self.shared.tools_stale.store(true, Ordering::Release);
    }
}

pub(super) struct Connection {
    name: String,
    timeout: Duration,
    peer: Peer<RoleClient>,
    /// Kept only so [`Connection::close`] can shut the session down and wait;
    /// dropping it also cancels the session.
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, Handler>>>,
    shared: Arc<Shared>,
    tools: Mutex<Arc<Vec<Tool>>>,
    /// Serializes tool-list refreshes after a change notification.
    refresh: tokio::sync::Mutex<()>,
    broken: AtomicBool,
    /// Fires when a stdio upstream sends an over-long message (the session is then over).
    overflow: Option<CancellationToken>,
    /// Child process id for stdio upstreams.
    pid: Option<u32>,
}

impl Connection {
    /// Connects (spawn or HTTP session), performs the MCP handshake and lists
    /// the tools, all within `spec.timeout`.
    pub(super) async fn open(spec: &UpstreamSpec) -> Result<Self, UpstreamError> {
        match tokio::time::timeout(spec.timeout, Self::open_inner(spec)).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout(spec.timeout)),
        }
    }

    async fn open_inner(spec: &UpstreamSpec) -> Result<Self, UpstreamError> {
        let shared = Arc::new(Shared::default());
        let handler = Handler {
            name: spec.name.clone(),
            shared: shared.clone(),
        };
        let OpenedClient {
            service,
            pid,
            overflow,
        } = open_client_untimed(spec, handler, None).await?;
        let peer = service.peer().clone();
        // The tool list is cached here; rmcp's response cache would only keep
        // up to 512 more copies of what an upstream sent (16 MiB each at worst).
        peer.set_response_cache_config(ClientCacheConfig::disabled())
            .await;
        if let Some(info) = peer.peer_info() {
            let server = info
                .server_info
                .as_ref()
                .map(|i| format!("{} {}", i.name, i.version))
                .unwrap_or_else(|| "unnamed server".to_owned());
            tracing::info!(
                target: "plexmcp::upstream",
                upstream = %spec.name,
                pid,
                protocol = %info.protocol_version,
                "connected to {server}"
            );
        }
        // Any change announced before this first listing is already covered by it.
        shared.tools_stale.store(false, Ordering::Release);
        let tools = match within(spec.timeout, overflow.as_ref(), list_tools(&peer)).await {
            Ok(Ok(tools)) => tools,
            Ok(Err(Listing::Service(e))) => {
                return Err(map_service_error("tools/list", e, spec.timeout).0);
            }
            Ok(Err(Listing::TooLarge(message))) => return Err(UpstreamError::Failed(message)),
            Err(cut) => return Err(cut.error(spec.timeout, "tools/list")),
        };
        Ok(Self {
            name: spec.name.clone(),
            timeout: spec.timeout,
            peer,
            service: tokio::sync::Mutex::new(Some(service)),
            shared,
            tools: Mutex::new(Arc::new(tools)),
            refresh: tokio::sync::Mutex::new(()),
            broken: AtomicBool::new(false),
            overflow,
            pid,
        })
    }

    /// Whether new calls may use this connection.
    pub(super) fn is_usable(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
            && !self.peer.is_transport_closed()
            && !self.overflow.as_ref().is_some_and(|o| o.is_cancelled())
    }

    #[cfg(test)]
    pub(super) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Makes the next [`Self::tools`] re-list, as a change notification would.
    pub(super) fn mark_tools_stale(&self) {
        self.shared.tools_stale.store(true, Ordering::Release);
    }

    /// The cached tool list, re-fetched first if the upstream said it changed.
    pub(super) async fn tools(&self) -> Result<Arc<Vec<Tool>>, UpstreamError> {
        if self.shared.tools_stale.load(Ordering::Acquire) {
            let _guard = self.refresh.lock().await;
            // Another caller may have refreshed while this one waited.
            if self.shared.tools_stale.swap(false, Ordering::AcqRel) {
                let listed =
                    within(self.timeout, self.overflow.as_ref(), list_tools(&self.peer)).await;
                let error = match listed {
                    Ok(Ok(tools)) => {
                        *lock(&self.tools) = Arc::new(tools);
                        return Ok(lock(&self.tools).clone());
                    }
                    Ok(Err(Listing::Service(e))) => self.service_error("tools/list", e),
                    Ok(Err(Listing::TooLarge(message))) => {
                        tracing::warn!(target: "plexmcp::upstream", upstream = %self.name, "{message}");
                        UpstreamError::Failed(message)
                    }
                    Err(cut) => self.cut_error(cut, "tools/list"),
                };
                self.shared.tools_stale.store(true, Ordering::Release);
                return Err(error);
            }
        }
        Ok(lock(&self.tools).clone())
    }

    /// Calls a tool, returning the upstream's result as JSON. The caller has
    /// already checked the tool name against [`Self::tools`].
    pub(super) async fn call(
        &self,
        tool: &str,
        arguments: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<serde_json::Value, UpstreamError> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = arguments;
        // Dropping the future on timeout makes rmcp send `notifications/cancelled`
        // for the request and forget it; the session itself stays usable.
        let call = self.peer.call_tool_once(params);
        let response = match within(self.timeout, self.overflow.as_ref(), call).await {
            Ok(Ok(response)) => response,
            // The tool's own error answer, not a fault of the session.
            Ok(Err(ServiceError::McpError(data))) => {
                return Err(UpstreamError::Rejected {
                    code: data.code.0,
                    message: one_line(&data.message),
                });
            }
            Ok(Err(e)) => return Err(self.service_error("tools/call", e)),
            Err(cut) => return Err(self.cut_error(cut, "tools/call")),
        };
        let json = match response {
            CallToolResponse::Complete(result) => serde_json::to_value(result),
            // A 2026-07-28 upstream asking for sampling, elicitation or
            // roots: a REST caller has nothing to answer with, and the
            // upstream's request state would only be noise to it.
            CallToolResponse::InputRequired(_) => {
                return Err(UpstreamError::Rejected {
                    code: ErrorCode::INVALID_REQUEST.0,
                    message: "the tool asks the client for input (sampling, elicitation or \
                              roots); call it from an MCP client"
                        .to_owned(),
                });
            }
            CallToolResponse::Task(result) => serde_json::to_value(result),
            _ => {
                return Err(UpstreamError::Failed(
                    "upstream sent a kind of tools/call result this gateway does not support"
                        .to_owned(),
                ));
            }
        };
        json.map_err(|e| UpstreamError::Failed(one_line(&format!("encoding result: {e}"))))
    }

    /// Turns an rmcp error into an [`UpstreamError`], marking the connection
    /// broken when the error means the session itself is gone.
    fn service_error(&self, what: &str, error: ServiceError) -> UpstreamError {
        let (error, session_lost) = map_service_error(what, error, self.timeout);
        if session_lost {
            self.broken.store(true, Ordering::Release);
            tracing::warn!(target: "plexmcp::upstream", upstream = %self.name, "{error}");
        } else {
            tracing::debug!(target: "plexmcp::upstream", upstream = %self.name, "{error}");
        }
        error
    }

    /// The error for a request cut short; an over-long message also ends the session.
    fn cut_error(&self, cut: Cut, what: &str) -> UpstreamError {
        let error = cut.error(self.timeout, what);
        if matches!(cut, Cut::Oversized) {
            self.broken.store(true, Ordering::Release);
            tracing::warn!(target: "plexmcp::upstream", upstream = %self.name, "{error}; connection closed");
        }
        error
    }

    /// Shuts the session down (stdio: closes stdin, waits for the child,
    /// then terminates it; HTTP: deletes the session), bounded by [`CLOSE_GRACE`].
    pub(super) async fn close(&self) {
        self.broken.store(true, Ordering::Release);
        let Some(mut service) = self.service.lock().await.take() else {
            return;
        };
        match service.close_with_timeout(CLOSE_GRACE).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::warn!(
                target: "plexmcp::upstream",
                upstream = %self.name,
                "still running {CLOSE_GRACE:?} after shutdown began; it will be killed"
            ),
            Err(e) => tracing::warn!(
                target: "plexmcp::upstream",
                upstream = %self.name,
                "shutdown task failed: {e}"
            ),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        tracing::debug!(target: "plexmcp::upstream", upstream = %self.name, pid = self.pid, "connection dropped");
    }
}

/// A client session with an upstream, driven by rmcp with `H` answering
/// what the upstream sends (requests, notifications).
pub struct OpenedClient<H: ClientHandler> {
    pub service: RunningService<RoleClient, H>,
    /// Child process id for stdio upstreams.
    pub pid: Option<u32>,
    /// Fires when a stdio upstream sends an over-long message (the session is then over).
    pub overflow: Option<CancellationToken>,
}

/// Connects to `spec`'s upstream (spawns the stdio child with its cleared
/// environment, or sets up the HTTP session) and completes the MCP
/// handshake with `handler`'s client info, within `spec.timeout`. Used by
/// the shared pool and by every MCP proxy session alike. With `arrivals`,
/// the progress and log notifications the upstream sends are counted there
/// as they arrive (see `counted.rs`).
pub async fn open_client<H: ClientHandler + Clone>(
    spec: &UpstreamSpec,
    handler: H,
    arrivals: Option<Arrivals>,
) -> Result<OpenedClient<H>, UpstreamError> {
    match tokio::time::timeout(spec.timeout, open_client_untimed(spec, handler, arrivals)).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Timeout(spec.timeout)),
    }
}

async fn open_client_untimed<H: ClientHandler + Clone>(
    spec: &UpstreamSpec,
    handler: H,
    arrivals: Option<Arrivals>,
) -> Result<OpenedClient<H>, UpstreamError> {
    if lifecycle::known_modern(&spec.name) {
        return open_with(spec, handler, lifecycle::modern_first(), arrivals)
            .await
            .map_err(Refusal::into_error);
    }
    match open_with(
        spec,
        handler.clone(),
        ClientLifecycleMode::Initialize,
        arrivals.clone(),
    )
    .await
    {
        Err(Refusal::OnlyModern(_)) => {
            // It speaks only 2026-07-28 (or later): ask it that way, on a new
            // connection (the refused one is spent), and remember.
            tracing::info!(target: "plexmcp::upstream", upstream = %spec.name, "upstream refused initialize for its protocol version; using server/discover");
            lifecycle::remember_modern(&spec.name);
            open_with(spec, handler, lifecycle::modern_first(), arrivals).await
        }
        other => other,
    }
    .map_err(Refusal::into_error)
}

/// How a connection attempt failed.
enum Refusal {
    /// The upstream answered `initialize` with "unsupported protocol
    /// version": it has no revision with that handshake.
    OnlyModern(UpstreamError),
    Other(UpstreamError),
}

impl Refusal {
    fn into_error(self) -> UpstreamError {
        match self {
            Refusal::OnlyModern(error) | Refusal::Other(error) => error,
        }
    }
}

impl From<UpstreamError> for Refusal {
    fn from(error: UpstreamError) -> Refusal {
        Refusal::Other(error)
    }
}

fn handshake_failure(error: ClientInitializeError, described: UpstreamError) -> Refusal {
    match error {
        ClientInitializeError::JsonRpcError(data)
            if data.code == ErrorCode::UNSUPPORTED_PROTOCOL_VERSION =>
        {
            Refusal::OnlyModern(described)
        }
        _ => Refusal::Other(described),
    }
}

async fn open_with<H: ClientHandler>(
    spec: &UpstreamSpec,
    handler: H,
    lifecycle: ClientLifecycleMode,
    arrivals: Option<Arrivals>,
) -> Result<OpenedClient<H>, Refusal> {
    match &spec.transport {
        Transport::Stdio {
            command,
            args,
            env,
            inherit_env,
        } => {
            let (process, pid) = stdio::spawn(&spec.name, command, args, env, inherit_env)?;
            let overflow = process.overflow();
            let service = handler
                .serve_with_lifecycle(Counted::new(process, arrivals), lifecycle)
                .await
                .map_err(|e| {
                    let described = match &e {
                        _ if overflow.is_cancelled() => oversized("the MCP handshake"),
                        ClientInitializeError::ConnectionClosed(_) => UpstreamError::Failed(format!(
                            "'{command}' exited before completing the MCP handshake (its stderr is in the log)"
                        )),
                        e => UpstreamError::Failed(format!(
                            "MCP handshake failed: {}",
                            describe_handshake(e)
                        )),
                    };
                    handshake_failure(e, described)
                })?;
            Ok(OpenedClient {
                service,
                pid,
                overflow: Some(overflow),
            })
        }
        Transport::Http { url, headers } => {
            let transport = Counted::new(http::transport(url, headers)?, arrivals);
            let service = handler
                .serve_with_lifecycle(transport, lifecycle)
                .await
                .map_err(|e| {
                    let described = UpstreamError::Failed(format!(
                        "MCP handshake failed: {}",
                        describe_handshake(&e)
                    ));
                    handshake_failure(e, described)
                })?;
            Ok(OpenedClient {
                service,
                pid: None,
                overflow: None,
            })
        }
    }
}

/// Why a request ended before its answer arrived.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Timeout,
    /// The upstream sent a message longer than a line may be.
    Oversized,
}

impl Cut {
    fn error(self, timeout: Duration, what: &str) -> UpstreamError {
        match self {
            Cut::Timeout => UpstreamError::Timeout(timeout),
            Cut::Oversized => oversized(what),
        }
    }
}

fn oversized(what: &str) -> UpstreamError {
    UpstreamError::Failed(format!(
        "upstream sent a message longer than {} MiB during {what}",
        child::MAX_LINE >> 20
    ))
}

/// Runs `request` until it ends, `timeout` passes or the upstream floods
/// the session with an over-long message, whichever comes first.
async fn within<T>(
    timeout: Duration,
    overflow: Option<&CancellationToken>,
    request: impl Future<Output = T>,
) -> Result<T, Cut> {
    let flooded = async {
        match overflow {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        () = flooded => Err(Cut::Oversized),
        answer = tokio::time::timeout(timeout, request) => answer.map_err(|_| Cut::Timeout),
    }
}

/// Why listing tools failed.
enum Listing {
    Service(ServiceError),
    /// Over one of the caps; the message says which.
    TooLarge(String),
}

/// Fetches every page of `tools/list`, within the caps above. A server
/// without tool support (it answers "method not found") simply has no tools.
async fn list_tools(peer: &Peer<RoleClient>) -> Result<Vec<Tool>, Listing> {
    let exceeded = |what: String| Listing::TooLarge(format!("upstream tools/list exceeded {what}"));
    let mut tools = Vec::new();
    let mut bytes = 0usize;
    let mut cursor = None;
    for page in 0..MAX_TOOL_PAGES {
        let params = PaginatedRequestParams::default().with_cursor(cursor);
        let listed = match peer.list_tools(Some(params)).await {
            Ok(listed) => listed,
            Err(ServiceError::McpError(data))
                if page == 0 && data.code == ErrorCode::METHOD_NOT_FOUND =>
            {
                return Ok(Vec::new());
            }
            Err(e) => return Err(Listing::Service(e)),
        };
        if tools.len() + listed.tools.len() > MAX_TOOLS {
            return Err(exceeded(format!("{MAX_TOOLS} tools")));
        }
        for tool in listed.tools {
            bytes = bytes.saturating_add(json_size(&tool));
            if bytes > MAX_TOOL_BYTES {
                return Err(exceeded(format!(
                    "{} MiB of tool descriptions",
                    MAX_TOOL_BYTES >> 20
                )));
            }
            tools.push(tool);
        }
        match listed.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(tools),
        }
    }
    Err(exceeded(format!("{MAX_TOOL_PAGES} pages")))
}

/// Length of `tool` as JSON, counted without building the text.
fn json_size(tool: &Tool) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing a tool into a counter cannot fail; if it did, it counts as huge.
    match serde_json::to_writer(&mut count, tool) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// Maps an rmcp request error for `what` (e.g. "tools/call") to an
/// [`UpstreamError`], and says whether it means the session is gone.
fn map_service_error(what: &str, error: ServiceError, timeout: Duration) -> (UpstreamError, bool) {
    match error {
        ServiceError::McpError(data) => (
            UpstreamError::Failed(one_line(&format!(
                "upstream rejected {what} (error {}): {}",
                data.code.0, data.message
            ))),
            false,
        ),
        ServiceError::TransportClosed => (
            UpstreamError::Failed(format!(
                "connection to upstream lost during {what} (process exited or session closed)"
            )),
            true,
        ),
        ServiceError::TransportSend(e) => (
            UpstreamError::Failed(format!(
                "could not reach upstream for {what}: {}",
                describe(&e)
            )),
            true,
        ),
        ServiceError::Timeout { .. } => (UpstreamError::Timeout(timeout), false),
        ServiceError::UnexpectedResponse => (
            UpstreamError::Failed(format!("upstream sent an unexpected reply to {what}")),
            false,
        ),
        other => (
            UpstreamError::Failed(one_line(&format!("{what} failed: {other}"))),
            false,
        ),
    }
}

/// Locks a std mutex, ignoring poisoning (the guarded data is a plain value
/// that is always left consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
