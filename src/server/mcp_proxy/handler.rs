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

use rmcp::model::SubscriptionFilter;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequest,
    CompleteRequestParams, CompleteResult, DiscoverResult, ErrorData, GetPromptRequest,
    GetPromptRequestParams, GetPromptResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, PingRequest, ProtocolVersion, ReadResourceRequest,
    ReadResourceRequestParams, ReadResourceResponse, ResultType, ServerConfig, ServerPeerInfo,
    ServerResult, SetLevelRequest, SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams,
    UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{RoleServer, ServerHandler};

use super::Grant;
use super::relay::{Link, Mode};
use super::session_upstream::{SessionUpstream, optional, unexpected};
use super::stateless::{Member, Round};
use crate::server::tool_access::unknown_tool;

/// Revisions with an `initialize` handshake, served over sessions.
pub const SERVED_VERSIONS: [ProtocolVersion; 4] = [
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2024_11_05,
];

/// Every revision `/mcp/{mcp_id}` serves: the stateless 2026-07-28 too.
pub(super) const ALL_VERSIONS: [ProtocolVersion; 5] = [
    ProtocolVersion::V_2026_07_28,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2024_11_05,
];

/// A handler serves one session (opened by `initialize`), or, for a
/// 2026-07-28 client, one stateless request (rmcp makes a handler per
/// request; there is no `initialize`): `stateless.rs` bridges those.
#[derive(Default)]
pub struct ProxyHandler {
    upstream: OnceLock<SessionUpstream>,
    /// What the client was told at `initialize`.
    info: OnceLock<ServerConfig>,
}

/// The grant the guard put on the request.
fn grant(context: &RequestContext<RoleServer>) -> Result<Grant, ErrorData> {
    super::granted::<Grant>(context).cloned()
}

/// What the client is told about the upstream, from its own answer to
/// `initialize` (plexmcp renames nothing).
fn as_told(slug: &str, upstream: &ServerPeerInfo) -> InitializeResult {
    let mut info = InitializeResult::new(upstream.capabilities.clone());
    info.server_info = upstream
        .server_info
        .clone()
        .unwrap_or_else(|| Implementation::new(slug.to_owned(), ""));
    info.instructions = upstream.instructions.clone();
    info.meta = upstream.meta.clone();
    info
}

impl ProxyHandler {
    fn slug(&self, context: &RequestContext<RoleServer>) -> Result<String, ErrorData> {
        match self.upstream.get() {
            Some(upstream) => Ok(upstream.slug.clone()),
            None => Ok(grant(context)?.slug),
        }
    }

    async fn forward(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        let slug = self.slug(&context)?;
        match self.converse(request, context).await? {
            Round::Done(answer) => Ok(*answer),
            // Only calls, prompts and reads may ask (the bridge's retry
            // fields exist only there); anything else asking is broken.
            Round::Input(_) => Err(unexpected(&slug)),
        }
    }

    /// A request over the session, or as a stateless round (which may end
    /// with the upstream asking the client something).
    async fn converse(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<Round, ErrorData> {
        if let Some(upstream) = self.upstream.get() {
            return upstream
                .forward(request, &context)
                .await
                .map(|answer| Round::Done(Box::new(answer)));
        }
        let grant = grant(&context)?;
        let member = Member {
            slug: &grant.slug,
            spec: &grant.spec,
            aggregated: false,
        };
        let mut round = grant
            .bridge
            .run(&grant.binding, member, request, &context)
            .await?;
        if let Round::Done(answer) = &mut round {
            mark_complete(answer.as_mut());
        }
        Ok(round)
    }
}

/// Notifications a stateless client may listen for: all of them (the
/// upstream's own capabilities are known only once it is reached).
pub(super) fn stateless_info() -> ServerConfig {
    use rmcp::model::ServerCapabilities;
    let capabilities = ServerCapabilities::builder()
        .enable_tools()
        .enable_tool_list_changed()
        .enable_prompts()
        .enable_prompts_list_changed()
        .enable_resources()
        .enable_resources_list_changed()
        .enable_resources_subscribe()
        .build();
    ServerConfig::new(capabilities)
}

/// Unwraps a stateless round into the answer of one result kind.
macro_rules! round_answer {
    ($round:expr, $slug:expr, $variant:ident, $response:ident) => {
        match $round {
            Round::Done(answer) => match *answer {
                ServerResult::$variant(result) => Ok($response::Complete(result)),
                _ => Err(unexpected(&$slug)),
            },
            Round::Input(input) => Ok($response::InputRequired(input)),
        }
    };
}

/// 2026-07-28 results say they are complete (`resultType`); an upstream of
/// an older revision leaves it out, and the client would refuse the result.
pub(super) fn mark_complete(result: &mut ServerResult) {
    let result_type = match result {
        ServerResult::CompleteResult(r) => &mut r.result_type,
        ServerResult::GetPromptResult(r) => &mut r.result_type,
        ServerResult::ListPromptsResult(r) => &mut r.result_type,
        ServerResult::ListResourcesResult(r) => &mut r.result_type,
        ServerResult::ListResourceTemplatesResult(r) => &mut r.result_type,
        ServerResult::ReadResourceResult(r) => &mut r.result_type,
        ServerResult::ListToolsResult(r) => &mut r.result_type,
        ServerResult::CallToolResult(r) => &mut r.result_type,
        _ => return,
    };
    result_type.get_or_insert(ResultType::COMPLETE);
}

/// Forwards `$request` and expects the result variant `$variant`.
macro_rules! expect_result {
    ($self:ident, $request:expr, $context:ident, $variant:ident) => {{
        let slug = $self.slug(&$context)?;
        match $self.forward($request, $context).await? {
            ServerResult::$variant(result) => Ok(result),
            _ => Err(unexpected(&slug)),
        }
    }};
}

impl ServerHandler for ProxyHandler {
    fn get_info(&self) -> ServerConfig {
        self.info.get().cloned().unwrap_or_else(stateless_info)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&ALL_VERSIONS)
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        let grant = grant(&context)?;
        let member = Member {
            slug: &grant.slug,
            spec: &grant.spec,
            aggregated: false,
        };
        let upstream = grant
            .bridge
            .discover(&grant.binding, member, &context)
            .await?;
        let info = as_told(&grant.slug, &upstream);
        Ok(DiscoverResult::from_server_info(
            ALL_VERSIONS.to_vec(),
            info,
        ))
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
        let grant = grant(&context)?;
        context.peer.set_peer_info(request.clone());
        let link =
            Link::new(Mode::Session, Some(context.peer.clone())).for_client(&request.capabilities);
        let upstream =
            SessionUpstream::open(&grant.slug, &grant.spec, &request, link, None).await?;
        let _ = grant.link.set(upstream.link.clone());
        // The upstream's own capabilities, identity and instructions.
        let mut info = as_told(&grant.slug, &upstream.info);
        info.protocol_version = negotiate(&request.protocol_version);
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
        let paged = request.as_ref().is_some_and(|r| r.cursor.is_some());
        let slug = self.slug(&context)?;
        let grant = grant(&context)?;
        let request = ClientRequest::ListToolsRequest(optional(request));
        let mut listed: ListToolsResult = expect_result!(self, request, context, ListToolsResult)?;
        // The pins judge the upstream's whole list (what it lists is what
        // they record); the key's grant narrows what is left.
        super::withheld::withhold_page(&grant, &mut listed, paged).await;
        grant.tools.retain_tools(&slug, &mut listed.tools);
        Ok(listed)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let slug = self.slug(&context)?;
        if !grant(&context)?.tools.allows(&slug, &request.name) {
            return Err(unknown_tool(&request.name));
        }
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(request));
        round_answer!(
            self.converse(request, context).await?,
            slug,
            CallToolResult,
            CallToolResponse
        )
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
        let slug = self.slug(&context)?;
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(request));
        round_answer!(
            self.converse(request, context).await?,
            slug,
            ReadResourceResult,
            ReadResourceResponse
        )
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
        let slug = self.slug(&context)?;
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(request));
        round_answer!(
            self.converse(request, context).await?,
            slug,
            GetPromptResult,
            GetPromptResponse
        )
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
        if self.upstream.get().is_none() {
            return Err(super::stateless::no_level_without_a_session());
        }
        let request = ClientRequest::SetLevelRequest(SetLevelRequest::new(request));
        self.forward(request, context).await.map(|_| ())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Sessions subscribe with resources/subscribe instead.
        self.upstream.get().is_none().then(|| requested.clone())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let grant = grant(context.request_context())?;
        let member = Member {
            slug: &grant.slug,
            spec: &grant.spec,
            aggregated: false,
        };
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        grant
            .bridge
            .listen(&grant.binding, vec![(member, uris)], context)
            .await
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
