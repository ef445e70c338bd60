//! One live MCP client session with an upstream, plus its cached tool list.
//!
//! A [`Connection`] is shared (behind an `Arc`) by every concurrent call to
//! the same upstream: calls go through a cloned rmcp `Peer`, which multiplexes
//! requests over the one session, so no lock is held while a call is in
//! flight. A connection that has shown a transport failure is marked broken
//! so the pool replaces it on the next use; ordinary errors (the upstream
//! answering with a JSON-RPC error, or being slow) leave it in service.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, ErrorCode,
    Implementation, ProtocolVersion, Tool,
};
use rmcp::service::{ClientInitializeError, NotificationContext, RunningService};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceError, ServiceExt};

use super::{
    Transport, UpstreamError, UpstreamSpec, describe, describe_handshake, http, one_line, stdio,
};

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
        let (service, pid) = match &spec.transport {
            Transport::Stdio {
                command,
                args,
                env,
                inherit_env,
            } => {
                let (process, pid) = stdio::spawn(&spec.name, command, args, env, inherit_env)?;
                let service = handler.serve(process).await.map_err(|e| match e {
                    ClientInitializeError::ConnectionClosed(_) => UpstreamError::Failed(format!(
                        "'{command}' exited before completing the MCP handshake (its stderr is in the log)"
                    )),
                    e => UpstreamError::Failed(format!(
                        "MCP handshake failed: {}",
                        describe_handshake(&e)
                    )),
                })?;
                (service, pid)
            }
            Transport::Http { url, headers } => {
                let transport = http::transport(url, headers)?;
                let service = handler.serve(transport).await.map_err(|e| {
                    UpstreamError::Failed(format!(
                        "MCP handshake failed: {}",
                        describe_handshake(&e)
                    ))
                })?;
                (service, None)
            }
        };
        let peer = service.peer().clone();
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
        let tools = list_tools(&peer)
            .await
            .map_err(|e| map_service_error("tools/list", e, spec.timeout).0)?;
        Ok(Self {
            name: spec.name.clone(),
            timeout: spec.timeout,
            peer,
            service: tokio::sync::Mutex::new(Some(service)),
            shared,
            tools: Mutex::new(Arc::new(tools)),
            refresh: tokio::sync::Mutex::new(()),
            broken: AtomicBool::new(false),
            pid,
        })
    }

    /// Whether new calls may use this connection.
    pub(super) fn is_usable(&self) -> bool {
        !self.broken.load(Ordering::Acquire) && !self.peer.is_transport_closed()
    }

    #[cfg(test)]
    pub(super) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The cached tool list, re-fetched first if the upstream said it changed.
    pub(super) async fn tools(&self) -> Result<Arc<Vec<Tool>>, UpstreamError> {
        if self.shared.tools_stale.load(Ordering::Acquire) {
            let _guard = self.refresh.lock().await;
            // Another caller may have refreshed while this one waited.
            if self.shared.tools_stale.swap(false, Ordering::AcqRel) {
                match tokio::time::timeout(self.timeout, list_tools(&self.peer)).await {
                    Ok(Ok(tools)) => *lock(&self.tools) = Arc::new(tools),
                    Ok(Err(e)) => {
                        self.shared.tools_stale.store(true, Ordering::Release);
                        return Err(self.service_error("tools/list", e));
                    }
                    Err(_) => {
                        self.shared.tools_stale.store(true, Ordering::Release);
                        return Err(UpstreamError::Timeout(self.timeout));
                    }
                }
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
        let response =
            match tokio::time::timeout(self.timeout, self.peer.call_tool_once(params)).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => return Err(self.service_error("tools/call", e)),
                Err(_) => return Err(UpstreamError::Timeout(self.timeout)),
            };
        let json = match response {
            CallToolResponse::Complete(result) => serde_json::to_value(result),
            CallToolResponse::InputRequired(result) => serde_json::to_value(result),
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

/// Fetches every page of `tools/list`. A server without tool support (it
/// answers "method not found") simply has no tools.
async fn list_tools(peer: &Peer<RoleClient>) -> Result<Vec<Tool>, ServiceError> {
    match peer.list_all_tools().await {
        Err(ServiceError::McpError(data)) if data.code == ErrorCode::METHOD_NOT_FOUND => {
            Ok(Vec::new())
        }
        other => other,
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
