//! The downstream side of one proxy session: an rmcp `ServerHandler` that
//! forwards every request to its own upstream connection and returns the
//! upstream's answer as it came. The upstream is opened when the client
//! sends `initialize` (so a session that never initializes costs nothing)
//! and closed when the session ends, whichever way it ends (DELETE, idle
//! expiry, a refused key, shutdown): the handler is dropped with the
//! session and the connection with it.

#![allow(deprecated)] // subscribe, logging and sampling belong to the revisions served here

use std::borrow::Cow;
use std::sync::OnceLock;

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequest,
    CompleteRequestParams, CompleteResult, ErrorData, GetPromptRequest, GetPromptRequestParams,
    GetPromptResponse, Implementation, InitializeRequestParams, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, PingRequest, ProtocolVersion, ReadResourceRequest,
    ReadResourceRequestParams, ReadResourceResponse, ServerConfig, ServerResult, SetLevelRequest,
    SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams, UnsubscribeRequest,
    UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};

use super::Grant;
use super::session_upstream::{SessionUpstream, optional, unexpected};

/// Revisions served on `/mcp/{mcp_id}`: those with an `initialize`
/// handshake. (2026-07-28 clients are told so by rmcp's negotiation.)
pub const SERVED_VERSIONS: [ProtocolVersion; 4] = [
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2024_11_05,
];

#[derive(Default)]
pub struct ProxyHandler {
    upstream: OnceLock<SessionUpstream>,
    /// What the client was told at `initialize`.
    info: OnceLock<ServerConfig>,
}

impl ProxyHandler {
    fn upstream(&self) -> Result<&SessionUpstream, ErrorData> {
        self.upstream
            .get()
            .ok_or_else(|| ErrorData::invalid_request("the session is not initialized", None))
    }

    async fn forward(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        self.upstream()?.forward(request, &context).await
    }
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
        let upstream =
            SessionUpstream::open(&grant.slug, &grant.spec, &request, &context.peer, None).await?;
        let _ = grant.link.set(upstream.link.clone());
        let upstream_info = &upstream.info;
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
        let _ = self.upstream.set(upstream);
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

/// The protocol version answered: the client's if served, else the newest.
pub(super) fn negotiate(asked: &ProtocolVersion) -> ProtocolVersion {
    if SERVED_VERSIONS.contains(asked) {
        asked.clone()
    } else {
        SERVED_VERSIONS[0].clone()
    }
}
