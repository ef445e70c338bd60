//! The downstream side of one proxy session: an rmcp `ServerHandler` that
//! forwards every request to its own upstream connection and returns the
//! upstream's answer as it came. The upstream is opened when the client
//! sends `initialize` (so a session that never initializes costs nothing)
//! and closed when the session ends, whichever way it ends (DELETE, idle
//! expiry, a refused key, shutdown): the handler is dropped with the
//! session and the connection with it.

#![allow(deprecated)] // subscribe, logging and sampling belong to the revisions served here

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig,
    ClientRequest, CompleteRequest, CompleteRequestParams, CompleteResult, ErrorData,
    GetPromptRequest, GetPromptRequestParams, GetPromptResponse, Implementation,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, PingRequest, ProtocolVersion,
    ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse, RequestOptionalParam,
    ServerConfig, ServerResult, SetLevelRequest, SetLevelRequestParams, SubscribeRequest,
    SubscribeRequestParams, UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{PeerRequestOptions, RequestContext, RunningService};
use rmcp::{Peer, RoleClient, RoleServer, ServerHandler, ServiceError};

use super::Grant;
use super::relay::{Link, Relay, lock};
use crate::upstream::{OpenedClient, open_client};

/// Revisions served on `/mcp/{mcp_id}`: those with an `initialize`
/// handshake. (2026-07-28 clients are told so by rmcp's negotiation.)
pub const SERVED_VERSIONS: [ProtocolVersion; 4] = [
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2024_11_05,
];

struct Upstream {
    slug: String,
    timeout: Duration,
    peer: Peer<RoleClient>,
    /// Held so the connection lives exactly as long as the session.
    _service: RunningService<RoleClient, Relay>,
}

#[derive(Default)]
pub struct ProxyHandler {
    link: Arc<Link>,
    upstream: OnceLock<Upstream>,
    /// The upstream's own answer to `initialize`.
    info: OnceLock<ServerConfig>,
}

impl ProxyHandler {
    fn upstream(&self) -> Result<&Upstream, ErrorData> {
        self.upstream
            .get()
            .ok_or_else(|| ErrorData::invalid_request("the session is not initialized", None))
    }

    /// Sends `request` upstream with the client's `_meta`, waits for the
    /// answer, and cancels it upstream if the client cancels it here.
    async fn forward(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        let upstream = self.upstream()?;
        let mut meta = context.meta.clone();
        let downstream_token = meta.get_progress_token();
        meta.0.0.remove("progressToken");
        let mut options = PeerRequestOptions::no_options();
        options.timeout = Some(upstream.timeout);
        options.reset_timeout_on_progress = true;
        options.meta = Some(meta);
        let handle = upstream
            .peer
            .send_cancellable_request(request, options)
            .await
            .map_err(|e| upstream_error(&upstream.slug, e))?;
        let upstream_token = handle.progress_token.clone();
        let upstream_id = handle.id.clone();
        if let Some(token) = downstream_token {
            lock(&self.link.progress).insert(upstream_token.clone(), token);
        }
        lock(&self.link.in_flight).push(context.id.clone());
        let answer = tokio::select! {
            answer = handle.await_response() => answer.map_err(|e| upstream_error(&upstream.slug, e)),
            () = context.ct.cancelled() => {
                let _ = upstream
                    .peer
                    .notify_cancelled(rmcp::model::CancelledNotificationParam::new(
                        Some(upstream_id),
                        Some("cancelled by the client".to_owned()),
                    ))
                    .await;
                Err(ErrorData::internal_error("cancelled by the client", None))
            }
        };
        lock(&self.link.progress).remove(&upstream_token);
        lock(&self.link.in_flight).retain(|id| *id != context.id);
        answer
    }
}

/// What the client is told when the upstream failed; the detail is logged.
fn upstream_error(slug: &str, error: ServiceError) -> ErrorData {
    match error {
        // The upstream's own error answer is the upstream speaking: passed on.
        ServiceError::McpError(error) => error,
        ServiceError::Timeout { .. } => {
            tracing::warn!(mcp = slug, "upstream request timed out");
            ErrorData::internal_error(format!("Upstream MCP '{slug}' timed out"), None)
        }
        other => {
            tracing::warn!(mcp = slug, error = %crate::upstream::describe(&other), "upstream request failed");
            ErrorData::internal_error(format!("Upstream MCP '{slug}' failed"), None)
        }
    }
}

fn unexpected(slug: &str) -> ErrorData {
    ErrorData::internal_error(
        format!("Upstream MCP '{slug}' sent an answer of the wrong kind"),
        None,
    )
}

/// Forwards `$request` and expects the result variant `$variant`.
macro_rules! expect_result {
    ($self:ident, $request:expr, $context:ident, $variant:ident) => {{
        let slug = $self.upstream()?.slug.clone();
        match $self.forward($request, $context).await? {
            ServerResult::$variant(result) => Ok(result),
            _ => Err(unexpected(&slug)),
        }
    }};
}

impl ServerHandler for ProxyHandler {
    fn get_info(&self) -> ServerConfig {
        self.info.get().cloned().unwrap_or_default()
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&SERVED_VERSIONS)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        if self.upstream.get().is_some() {
            return Err(ErrorData::invalid_request(
                "the session is already initialized",
                None,
            ));
        }
        let grant = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Grant>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("request without authorization", None))?;
        context.peer.set_peer_info(request.clone());
        let _ = self.link.downstream.set(context.peer.clone());
        let config = upstream_client_config(&request);
        let relay = Relay {
            link: self.link.clone(),
            config,
        };
        let OpenedClient { service, pid, .. } =
            open_client(&grant.spec, relay).await.map_err(|e| {
                tracing::warn!(mcp = %grant.slug, upstream = %grant.spec.name, error = %e, "proxy session: upstream unavailable");
                ErrorData::internal_error(format!("Upstream MCP '{}' failed", grant.slug), None)
            })?;
        let peer = service.peer().clone();
        let _ = self.link.upstream.set(peer.clone());
        let _ = grant.link.set(self.link.clone());
        let Some(upstream_info) = peer.peer_info() else {
            return Err(unexpected(&grant.slug));
        };
        tracing::debug!(mcp = %grant.slug, pid, "proxy session connected upstream");
        // The upstream's own capabilities, identity and instructions.
        let mut info = InitializeResult::new(upstream_info.capabilities.clone());
        info.protocol_version = negotiate(&request.protocol_version);
        info.server_info = upstream_info
            .server_info
            .clone()
            .unwrap_or_else(|| Implementation::new(grant.slug.clone(), ""));
        info.instructions = upstream_info.instructions.clone();
        info.meta = upstream_info.meta.clone();
        let _ = self.info.set(info.clone());
        let _ = self.upstream.set(Upstream {
            slug: grant.slug.clone(),
            timeout: grant.spec.timeout,
            peer,
            _service: service,
        });
        Ok(info)
    }

    async fn ping(&self, context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        self.forward(ClientRequest::PingRequest(PingRequest::default()), context)
            .await
            .map(|_| ())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let request = ClientRequest::ListToolsRequest(optional(request));
        expect_result!(self, request, context, ListToolsResult)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let slug = self.upstream()?.slug.clone();
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(request));
        match self.forward(request, context).await? {
            ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(result)),
            _ => Err(unexpected(&slug)),
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let request = ClientRequest::ListResourcesRequest(optional(request));
        expect_result!(self, request, context, ListResourcesResult)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let request = ClientRequest::ListResourceTemplatesRequest(optional(request));
        expect_result!(self, request, context, ListResourceTemplatesResult)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(request));
        let result: Result<_, ErrorData> =
            expect_result!(self, request, context, ReadResourceResult);
        result.map(ReadResourceResponse::Complete)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = ClientRequest::SubscribeRequest(SubscribeRequest::new(request));
        self.forward(request, context).await.map(|_| ())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(request));
        self.forward(request, context).await.map(|_| ())
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let request = ClientRequest::ListPromptsRequest(optional(request));
        expect_result!(self, request, context, ListPromptsResult)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(request));
        let result: Result<_, ErrorData> = expect_result!(self, request, context, GetPromptResult);
        result.map(GetPromptResponse::Complete)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let request = ClientRequest::CompleteRequest(CompleteRequest::new(request));
        expect_result!(self, request, context, CompleteResult)
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let request = ClientRequest::SetLevelRequest(SetLevelRequest::new(request));
        self.forward(request, context).await.map(|_| ())
    }
}

/// A list request with the client's pagination cursor, if it sent one.
fn optional<M: Default>(
    params: Option<PaginatedRequestParams>,
) -> RequestOptionalParam<M, PaginatedRequestParams> {
    match params {
        Some(params) => RequestOptionalParam::with_param(params),
        None => RequestOptionalParam::default(),
    }
}

/// The protocol version answered: the client's if served, else the newest.
fn negotiate(asked: &ProtocolVersion) -> ProtocolVersion {
    if SERVED_VERSIONS.contains(asked) {
        asked.clone()
    } else {
        SERVED_VERSIONS[0].clone()
    }
}

/// The upstream connection introduces the downstream client as it is
/// (its capabilities decide what the upstream may ask of it).
fn upstream_client_config(request: &InitializeRequestParams) -> ClientConfig {
    let capabilities: ClientCapabilities = request.capabilities.clone();
    let info: Implementation = request.client_info.clone();
    ClientConfig::new(capabilities, info)
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}
