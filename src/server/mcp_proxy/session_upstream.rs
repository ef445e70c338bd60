//! One upstream connection owned by one proxy session (opened when the
//! downstream client initializes, closed when the session ends: it is
//! dropped with the session's handler), by one stateless lease, or by one
//! subscription stream. `forward` is the one way a downstream request
//! reaches it: the client's `_meta` goes along (less the 2026-07-28
//! lifecycle keys, which the upstream's session already settled), the
//! client's progress token is mapped to the one rmcp picks upstream, the
//! wait is bounded by the MCP's timeout (reset by progress), and a
//! cancellation by the client is passed on as `notifications/cancelled`.

#![allow(deprecated)] // sampling and logging belong to the revisions served here

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CancelledNotificationParam, ClientCapabilities, ClientConfig, ClientRequest, ErrorData,
    Implementation, InitializeRequestParams, LoggingLevel, PaginatedRequestParams, ProtocolVersion,
    RequestId, RequestMetaObject, RequestOptionalParam, ServerPeerInfo, ServerResult,
};
use rmcp::service::{PeerRequestOptions, RequestContext, RunningService};
use rmcp::{Peer, RoleClient, RoleServer, ServiceError};
use tokio_util::sync::CancellationToken;

use super::relay::{Link, Relay, lock};
use crate::upstream::{OpenedClient, UpstreamSpec, open_client};

pub struct SessionUpstream {
    pub slug: String,
    timeout: Duration,
    pub peer: Peer<RoleClient>,
    pub link: Arc<Link>,
    /// The upstream's answer to `initialize`.
    pub info: Arc<ServerPeerInfo>,
    /// Held so the connection lives exactly as long as the session.
    _service: RunningService<RoleClient, Relay>,
}

impl SessionUpstream {
    /// Connects to `spec` on behalf of the client whose `initialize` is
    /// `request`, introducing that client as it is (its capabilities decide
    /// what the upstream may ask of it); what the upstream sends goes where
    /// `link` says. `uri_prefix` is the MCP id when the connection is the
    /// aggregate's (resource URIs it relays are mapped).
    pub async fn open(
        slug: &str,
        spec: &UpstreamSpec,
        request: &InitializeRequestParams,
        link: Link,
        uri_prefix: Option<String>,
    ) -> Result<SessionUpstream, ErrorData> {
        let link = Arc::new(link);
        let relay = Relay {
            link: link.clone(),
            config: upstream_client_config(request),
            uri_prefix,
        };
        let OpenedClient { service, pid, .. } = open_client(spec, relay, Some(link.arrivals.clone())).await.map_err(|e| {
            tracing::warn!(mcp = slug, upstream = %spec.name, error = %e, "proxy session: upstream unavailable");
            ErrorData::internal_error(format!("Upstream MCP '{slug}' failed"), None)
        })?;
        let peer = service.peer().clone();
        let _ = link.upstream.set(peer.clone());
        let Some(info) = peer.peer_info() else {
            return Err(unexpected(slug));
        };
        tracing::debug!(mcp = slug, pid, "proxy session connected upstream");
        Ok(SessionUpstream {
            slug: slug.to_owned(),
            timeout: spec.timeout,
            info: info.clone(),
            peer,
            link,
            _service: service,
        })
    }

    /// Sends `request` upstream and waits for the answer (see the module).
    pub async fn forward(
        &self,
        request: ClientRequest,
        context: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        self.forward_for(request, Origin::of(context)).await
    }

    /// [`Self::forward`] for a request whose context is gone (a stateless
    /// call outlives the HTTP request that started it).
    pub async fn forward_for(
        &self,
        request: ClientRequest,
        origin: Origin,
    ) -> Result<ServerResult, ErrorData> {
        let route = Route {
            peer: &self.peer,
            slug: &self.slug,
            timeout: self.timeout,
            link: &self.link,
        };
        forward_on(route, request, origin).await
    }
}

/// What `forward_on` needs of the downstream request.
pub struct Origin {
    pub id: RequestId,
    pub meta: RequestMetaObject,
    /// Fires when the client cancels.
    pub ct: CancellationToken,
}

impl Origin {
    pub fn of(context: &RequestContext<RoleServer>) -> Origin {
        Origin {
            id: context.id.clone(),
            meta: context.meta.clone(),
            ct: context.ct.clone(),
        }
    }
}

/// The 2026-07-28 per-request lifecycle keys: the upstream connection
/// negotiated its own with `initialize`, and would take these as a request
/// to speak another revision.
const LIFECYCLE_META: [&str; 4] = [
    "io.modelcontextprotocol/protocolVersion",
    "io.modelcontextprotocol/clientInfo",
    "io.modelcontextprotocol/clientCapabilities",
    "io.modelcontextprotocol/logLevel",
];

/// Where a downstream request goes: an upstream connection, the MCP it
/// belongs to (for errors and logs), its timeout, and the link that finds
/// the client for whatever the upstream sends meanwhile.
#[derive(Clone, Copy)]
pub struct Route<'a> {
    pub peer: &'a Peer<RoleClient>,
    pub slug: &'a str,
    pub timeout: Duration,
    pub link: &'a Link,
}

/// Sends `request` on the route's connection and waits for the answer,
/// within the timeout (reset by progress); the client's progress token is
/// mapped and server-to-client requests meanwhile find their client.
pub async fn forward_on(
    route: Route<'_>,
    request: ClientRequest,
    origin: Origin,
) -> Result<ServerResult, ErrorData> {
    // Only an upstream on the 2026-07-28 revision answers `input_required`
    // (`upstream::lifecycle`); the others ask with requests of their own.
    let rounds = route
        .peer
        .peer_info()
        .is_some_and(|info| !info.protocol_version.has_initialize());
    if !rounds {
        return forward_once(route, request, origin, None).await;
    }
    if let ClientRequest::SetLevelRequest(set) = &request {
        // That revision has no `logging/setLevel`: each request names the
        // level it wants logs at (`forward_once`).
        route.link.set_log_floor(Some(set.params.level));
        return Ok(ServerResult::empty(()));
    }
    input_rounds(route, request, origin).await
}

/// Most `input_required` rounds one request may take (rmcp's own cap).
const MAX_INPUT_ROUNDS: usize = rmcp::model::DEFAULT_MRTR_MAX_ROUNDS;

/// Forwards `request` to an upstream that may answer `input_required`:
/// each input request goes to the downstream client the way the upstream's
/// own request would have (`Link::fulfil`), and the request is sent again
/// with the answers and the upstream's request state, until it has its
/// result. The client sees one request answered.
async fn input_rounds(
    route: Route<'_>,
    mut request: ClientRequest,
    origin: Origin,
) -> Result<ServerResult, ErrorData> {
    let Route { slug, link, .. } = route;
    for _ in 0..MAX_INPUT_ROUNDS {
        let round = Origin {
            id: origin.id.clone(),
            meta: origin.meta.clone(),
            ct: origin.ct.clone(),
        };
        let answer = forward_once(route, request.clone(), round, link.log_floor()).await?;
        let ServerResult::InputRequiredResult(asked) = answer else {
            return Ok(answer);
        };
        let requests = asked.input_requests.unwrap_or_default();
        if requests.is_empty() && asked.request_state.is_none() {
            return Err(unexpected(slug));
        }
        let answers = futures_util::future::try_join_all(requests.into_iter().map(
            |(key, input)| async move { link.fulfil(input).await.map(|answer| (key, answer)) },
        ));
        let answers = tokio::select! {
            answers = answers => answers?,
            () = origin.ct.cancelled() => {
                return Err(ErrorData::internal_error("cancelled by the client", None));
            }
        };
        let responses = (!answers.is_empty()).then(|| answers.into_iter().collect());
        if !retry_with(&mut request, responses, asked.request_state) {
            return Err(unexpected(slug));
        }
    }
    tracing::warn!(
        mcp = slug,
        "upstream asked for input more than {MAX_INPUT_ROUNDS} times"
    );
    Err(ErrorData::internal_error(
        format!("Upstream MCP '{slug}' asked for input too many times"),
        None,
    ))
}

/// Puts a round's answers and state into the retried request; `false` for
/// a request that has no place for them (nothing else may ask for input).
fn retry_with(
    request: &mut ClientRequest,
    responses: Option<rmcp::model::InputResponses>,
    state: Option<String>,
) -> bool {
    match request {
        ClientRequest::CallToolRequest(call) => {
            call.params.input_responses = responses;
            call.params.request_state = state;
        }
        ClientRequest::GetPromptRequest(get) => {
            get.params.input_responses = responses;
            get.params.request_state = state;
        }
        ClientRequest::ReadResourceRequest(read) => {
            read.params.input_responses = responses;
            read.params.request_state = state;
        }
        _ => return false,
    }
    true
}

/// One request and its one answer (see [`forward_on`]); `log_level` is
/// the level a 2026-07-28 upstream is asked to log at for it.
async fn forward_once(
    route: Route<'_>,
    request: ClientRequest,
    origin: Origin,
    log_level: Option<LoggingLevel>,
) -> Result<ServerResult, ErrorData> {
    let Route {
        peer,
        slug,
        timeout,
        link,
    } = route;
    let Origin { id, mut meta, ct } = origin;
    let downstream_token = meta.get_progress_token();
    meta.0.0.remove("progressToken");
    for key in LIFECYCLE_META {
        meta.0.0.remove(key);
    }
    if let Some(level) = log_level.and_then(|level| serde_json::to_value(level).ok()) {
        meta.0.0.insert(LIFECYCLE_META[3].to_owned(), level);
    }
    let mut options = PeerRequestOptions::no_options();
    options.timeout = Some(timeout);
    options.reset_timeout_on_progress = true;
    options.meta = Some(meta);
    let handle = peer
        .send_cancellable_request(request, options)
        .await
        .map_err(|e| upstream_error(slug, e))?;
    let upstream_token = handle.progress_token.clone();
    let upstream_id = handle.id.clone();
    let progress_asked = downstream_token.is_some();
    if let Some(token) = downstream_token {
        lock(&link.progress).insert(upstream_token.clone(), token);
    }
    lock(&link.in_flight).push(id.clone());
    let answer = tokio::select! {
        answer = handle.await_response() => answer.map_err(|e| upstream_error(slug, e)),
        () = ct.cancelled() => {
            let _ = peer
                .notify_cancelled(CancelledNotificationParam::new(
                    Some(upstream_id),
                    Some("cancelled by the client".to_owned()),
                ))
                .await;
            Err(ErrorData::internal_error("cancelled by the client", None))
        }
    };
    link.settle(progress_asked).await;
    lock(&link.progress).remove(&upstream_token);
    lock(&link.in_flight).retain(|other| *other != id);
    answer
}

/// What the client is told when the upstream failed; the detail is logged.
pub fn upstream_error(slug: &str, error: ServiceError) -> ErrorData {
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

pub fn unexpected(slug: &str) -> ErrorData {
    ErrorData::internal_error(
        format!("Upstream MCP '{slug}' sent an answer of the wrong kind"),
        None,
    )
}

/// A list request with the client's pagination cursor, if it sent one.
pub fn optional<M: Default>(
    params: Option<PaginatedRequestParams>,
) -> RequestOptionalParam<M, PaginatedRequestParams> {
    match params {
        Some(params) => RequestOptionalParam::with_param(params),
        None => RequestOptionalParam::default(),
    }
}

fn upstream_client_config(request: &InitializeRequestParams) -> ClientConfig {
    let capabilities: ClientCapabilities = request.capabilities.clone();
    let info: Implementation = request.client_info.clone();
    ClientConfig::new(capabilities, info)
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}
