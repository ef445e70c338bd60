//! The upstream side of one proxy session: the rmcp client handler that
//! receives what the upstream sends and passes it to the one downstream
//! client this session belongs to. Server-to-client requests (sampling,
//! elicitation, roots, ping) go to that client's peer and its answer comes
//! back; notifications are re-sent to it. Progress tokens are the one thing
//! rewritten: rmcp gives every upstream request its own token, so the
//! token the client chose is looked up and put back.

#![allow(deprecated)] // sampling, roots and logging are deprecated in 2026-07-28, not in the revisions served here

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rmcp::model::{
    CancelledNotificationParam, ClientConfig, ClientResult, CreateMessageRequest,
    CreateMessageRequestParams, CreateMessageResult, ElicitRequest, ElicitRequestParams,
    ElicitResult, ErrorData, ListRootsRequest, ListRootsResult, LoggingMessageNotificationParam,
    PingRequest, ProgressNotificationParam, ProgressToken, RequestId,
    ResourceUpdatedNotificationParam, ServerRequest,
};
use rmcp::service::{NotificationContext, OriginatingRequestId, RequestContext};
use rmcp::{ClientHandler, Peer, RoleClient, RoleServer, ServiceError};

/// What the two halves of a proxy session share.
#[derive(Default)]
pub struct Link {
    /// The downstream client, known once it has sent `initialize`.
    pub downstream: OnceLock<Peer<RoleServer>>,
    /// The upstream connection, once open.
    pub upstream: OnceLock<Peer<RoleClient>>,
    /// Upstream progress token → the token the downstream client chose.
    pub progress: Mutex<HashMap<ProgressToken, ProgressToken>>,
    /// Downstream requests being forwarded, oldest first: a request the
    /// upstream sends meanwhile is delivered on the newest one's stream.
    pub in_flight: Mutex<Vec<RequestId>>,
}

impl Link {
    /// Whether the upstream connection has ended (the process exited, the
    /// HTTP session was lost): the session can no longer be served.
    pub fn upstream_lost(&self) -> bool {
        self.upstream
            .get()
            .is_some_and(|peer| peer.is_transport_closed())
    }

    fn downstream(&self) -> Result<&Peer<RoleServer>, ErrorData> {
        self.downstream
            .get()
            .ok_or_else(|| ErrorData::internal_error("the client session is not ready", None))
    }

    /// Sends a server-to-client request to the downstream client, on the
    /// stream of the request that (most likely) caused it.
    async fn relay(&self, mut request: ServerRequest) -> Result<ClientResult, ErrorData> {
        let peer = self.downstream()?;
        if let Some(origin) = lock(&self.in_flight).last().cloned() {
            use rmcp::model::GetExtensions;
            request
                .extensions_mut()
                .insert(OriginatingRequestId(origin));
        }
        peer.send_request(request).await.map_err(|e| match e {
            ServiceError::McpError(error) => error,
            other => ErrorData::internal_error(
                format!(
                    "the client did not answer: {}",
                    crate::upstream::describe(&other)
                ),
                None,
            ),
        })
    }
}

/// The client handler of a proxy session's upstream connection.
pub struct Relay {
    pub link: Arc<Link>,
    /// What the gateway tells the upstream about itself: the downstream
    /// client's own capabilities, so the upstream asks only for what that
    /// client can do.
    pub config: ClientConfig,
    /// On the aggregate endpoint, this upstream's MCP id: the resource
    /// URIs it names are mapped to the ones the client was given.
    pub uri_prefix: Option<String>,
}

fn unexpected() -> ErrorData {
    ErrorData::internal_error("the client sent an unexpected answer", None)
}

impl ClientHandler for Relay {
    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }

    async fn ping(&self, _context: RequestContext<RoleClient>) -> Result<(), ErrorData> {
        self.link
            .relay(ServerRequest::PingRequest(PingRequest::default()))
            .await
            .map(|_| ())
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let request = ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params));
        match self.link.relay(request).await? {
            ClientResult::CreateMessageResult(result) => Ok(*result),
            _ => Err(unexpected()),
        }
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        match self
            .link
            .relay(ServerRequest::ListRootsRequest(ListRootsRequest::default()))
            .await?
        {
            ClientResult::ListRootsResult(result) => Ok(result),
            _ => Err(unexpected()),
        }
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        match self
            .link
            .relay(ServerRequest::ElicitRequest(ElicitRequest::new(params)))
            .await?
        {
            ClientResult::ElicitResult(result) => Ok(result),
            _ => Err(unexpected()),
        }
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // Progress for a request the client asked none for is not passed on.
        let Some(token) = lock(&self.link.progress)
            .get(&params.progress_token)
            .cloned()
        else {
            return;
        };
        params.progress_token = token;
        if let Some(peer) = self.link.downstream.get() {
            let _ = peer.notify_progress(params).await;
        }
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(peer) = self.link.downstream.get() {
            let _ = peer.notify_logging_message(params).await;
        }
    }

    async fn on_resource_updated(
        &self,
        mut params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(slug) = &self.uri_prefix {
            params.uri = super::names::wrap_uri(slug, &params.uri);
        }
        if let Some(peer) = self.link.downstream.get() {
            let _ = peer.notify_resource_updated(params).await;
        }
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(peer) = self.link.downstream.get() {
            let _ = peer.notify_resource_list_changed().await;
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(peer) = self.link.downstream.get() {
            let _ = peer.notify_tool_list_changed().await;
        }
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(peer) = self.link.downstream.get() {
            let _ = peer.notify_prompt_list_changed().await;
        }
    }

    async fn on_cancelled(
        &self,
        params: CancelledNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // rmcp cancels the relayed request's handler itself; nothing else waits on it.
        tracing::debug!(request = ?params.request_id, "upstream cancelled a request it sent");
    }
}

/// Locks a std mutex, ignoring poisoning (the guarded maps stay consistent).
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
