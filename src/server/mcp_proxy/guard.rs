//! In front of rmcp's transport on `/mcp/{mcp_id}`: every request (POST,
//! GET, DELETE) presents a key, checked like any REST call (limiter,
//! ambiguity refusal), then [`authorize_mcp`] decides whether the key may
//! use the MCP, and a session id must belong to that key and MCP. Refusals
//! are JSON-RPC error bodies, so MCP clients show their message; nothing
//! refused reaches rmcp or an upstream. A JSON-RPC request is a usage
//! event, recorded when its response (or its stream) ends.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::Grant;
use super::aggregate::AggregateGrant;
use super::message_head::read_head;
use super::names::{split_name, unwrap_uri};
use super::session_manager::PlainCall;
use super::sessions::{Binding, Direct, Scope};
use crate::auth::{KeyState, Reason};
use crate::domain::Mcp;
use crate::server::authorize::{Denied, authorize_mcp, may_use, within_rate_limit};
use crate::server::client_addr::request_client;
use crate::server::mcp::{authenticate, read_body, recorded_names, upstream_spec};
use crate::server::tool_access::{ToolGrant, is_forbidden_tool};
use crate::server::{ApiError, AppState};
use crate::store::UsageEvent;

const SESSION_HEADER: &str = "mcp-session-id";

// JSON-RPC error codes for refusals (the server-defined range).
const INVALID_KEY: i64 = -32001;
const UNAUTHORIZED_MCP: i64 = -32003;
const SESSION_NOT_FOUND: i64 = -32004;
const TOO_MANY: i64 = -32029;
const INTERNAL: i64 = -32603;
const INVALID_REQUEST: i64 = -32600;
const PARSE_ERROR: i64 = -32700;

/// What the usage record of one request will say.
struct Usage {
    key_row: Option<i64>,
    mcp: Option<String>,
    tool: Option<String>,
    /// Only JSON-RPC requests (and refusals) are usage events.
    counted: bool,
    client_ip: Option<String>,
    user_agent: Option<String>,
    /// The JSON-RPC id of the request, to find its answer in the response.
    request_id: Option<Value>,
    /// A `tools/call` of a tool outside the key's grant: the client is
    /// told "Unknown tool", the usage record says `unauthorized_tool`.
    forbidden_tool: bool,
}

/// Which endpoint a request came to.
enum Target {
    /// `/mcp/{mcp_id}`, with the id as the client wrote it.
    One(String),
    /// `/mcp`: every MCP the key may use.
    All,
}

/// `/mcp/{mcp_id}`.
pub async fn guard(
    State(state): State<Arc<AppState>>,
    Path(mcp_id): Path<String>,
    request: Request,
) -> Response {
    serve(state, Target::One(mcp_id), request).await
}

/// MCP clients on `/mcp` (POST with a session or Streamable HTTP's
/// `Accept`, GET, DELETE).
pub async fn aggregate(State(state): State<Arc<AppState>>, request: Request) -> Response {
    serve(state, Target::All, request).await
}

async fn serve(state: Arc<AppState>, target: Target, request: Request) -> Response {
    let started = Instant::now();
    let client = request_client(
        request.extensions(),
        request.headers(),
        &state.trusted_proxies,
    );
    let mut usage = Usage {
        key_row: None,
        mcp: match &target {
            Target::One(mcp_id) => Some(mcp_id.clone()),
            Target::All => None,
        },
        tool: None,
        counted: true,
        client_ip: client.map(|ip| ip.to_string()),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
        request_id: None,
        forbidden_tool: false,
    };
    let response = match admit(&state, &target, request, client, &mut usage).await {
        Ok(response) => response,
        Err(refusal) => refusal,
    };
    finish(state, usage, response, started).await
}

/// Checks the request and, if it passes, hands it to rmcp.
async fn admit(
    state: &Arc<AppState>,
    target: &Target,
    request: Request,
    client: Option<std::net::IpAddr>,
    usage: &mut Usage,
) -> Result<Response, Response> {
    let proxy = &state.proxy;
    let (mut parts, body) = request.into_parts();
    let session = parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let key = match authenticate(state, &parts.headers, client, &mut usage.key_row).await {
        Ok(key) => key,
        Err(error) => {
            // A session whose key was revoked or expired ends with it.
            if let (ApiError::InvalidApiKey(Reason::Revoked | Reason::Expired), Some(row), Some(id)) =
                (&error, usage.key_row, &session)
                && proxy
                    .sessions
                    .book
                    .get(id)
                    .is_some_and(|b| b.key_row == row)
            {
                close_session(state, id).await;
            }
            return Err(api_refusal(&error));
        }
    };
    // Read before authorization (as REST does), so a refusal is recorded
    // with what it asked for; the key is known by now.
    let method = parts.method.clone();
    let mut initializing = false;
    // A plain tool call in a session on `/mcp/{id}`, for the direct path
    // (`session_manager`): read once, as the call it is.
    let mut plain_call = None;
    // The tool a `tools/call` names, as the client named it (for the pins).
    let mut called: Option<String> = None;
    let body = if method == Method::POST {
        let bytes = read_body(body).await.map_err(|e| api_refusal(&e))?;
        if let (Target::One(_), Some(_)) = (target, &session)
            && let Some(call) = PlainCall::read(&bytes)
        {
            usage.request_id = Some(call.id());
            usage.tool = Some(call.tool().to_owned());
            called = Some(call.tool().to_owned());
            usage.forbidden_tool =
                matches!(target, Target::One(slug) if is_forbidden_tool(&key, slug, call.tool()));
            plain_call = Some(call);
        } else {
            let Some(message) = read_head(&bytes) else {
                return Err(rpc_error(
                    StatusCode::BAD_REQUEST,
                    PARSE_ERROR,
                    "Parse error: the body is not JSON",
                    json!({ "code": "invalid_request" }),
                ));
            };
            if matches!(target, Target::All) && message.rest_call {
                // The seed's REST body, from a client that also accepts event
                // streams: answered (and recorded) as the REST call it is.
                usage.key_row = None;
                let request = Request::from_parts(parts, Body::from(bytes));
                return Ok(crate::server::mcp::call(State(state.clone()), request).await);
            }
            match message.request {
                Some((request_id, rpc_method, name)) => {
                    usage.request_id = Some(request_id);
                    initializing = rpc_method == "initialize" && session.is_none();
                    if rpc_method == "tools/call" {
                        called.clone_from(&name);
                    }
                    match (target, name) {
                        (Target::All, Some(name)) => {
                            // Recorded under the MCP and name it reaches, if any.
                            let (mcp, own) = split_name(&name)
                                .or_else(|| unwrap_uri(&name))
                                .map(|(mcp, own)| (Some(mcp.to_owned()), own.to_owned()))
                                .unwrap_or((None, name));
                            usage.forbidden_tool = rpc_method == "tools/call"
                                && mcp
                                    .as_deref()
                                    .is_some_and(|m| is_forbidden_tool(&key, m, &own));
                            usage.mcp = mcp;
                            usage.tool = Some(own);
                        }
                        (Target::One(slug), Some(name)) if rpc_method == "tools/call" => {
                            usage.forbidden_tool = is_forbidden_tool(&key, slug, &name);
                            usage.tool = Some(name);
                        }
                        (_, name) => usage.tool = Some(name.unwrap_or(rpc_method)),
                    }
                }
                // Notifications, responses and non-messages (rmcp answers those) are no requests.
                None => usage.counted = false,
            }
        }
        Body::from(bytes)
    } else {
        usage.counted = false;
        body
    };
    // Each JSON-RPC request counts against the key's rate limit, before
    // anything else is decided (notifications, responses, GET and DELETE
    // do not: refusing those would only break the session).
    if usage.request_id.is_some() {
        within_rate_limit(state, &key).map_err(|refusal| api_refusal(&refusal))?;
    }
    let authorized = authorized_scope(state, &key, target).await?;
    let binding = Binding {
        key_row: key.row_id,
        key_id: key.id.clone(),
        scope: authorized.scope.clone(),
    };
    if let Some(id) = &session
        && !proxy
            .sessions
            .book
            .get(id)
            .is_some_and(|bound| still_serves(&bound, &binding))
    {
        // Unknown, ended, or another key's or endpoint's: all alike.
        return Err(rpc_error(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "Session not found; initialize a new one",
            json!({ "code": "session_not_found" }),
        ));
    }
    // A tool outside the key's grant is refused as missing further on,
    // whether or not the pins hold it back: its state is not the key's to see.
    if let Some(name) = &called
        && !usage.forbidden_tool
        && let Some(refused) = super::withheld::refuse_call(
            &state.pins.at(state.verifier.generation()),
            &authorized.scope,
            name,
            usage.request_id.as_ref(),
        )
        .await
    {
        return Err(refused);
    }
    if let (Target::One(_), Some(id), Some(call)) = (target, &session, plain_call)
        && !usage.forbidden_tool
        && proxy.lane.passes(&parts.headers)
        && let Some(answer) = proxy.sessions.call_directly(id, call).await
    {
        let mut response = Response::new(Body::from(answer));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        return Ok(response);
    }
    let _opening = if initializing {
        let settings = &proxy.settings;
        let admitted = proxy
            .sessions
            .book
            .admit(
                &proxy.sessions.local,
                key.row_id,
                settings.max_sessions_per_key,
                settings.max_sessions,
            )
            .await
            .map_err(|full| {
                rpc_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    TOO_MANY,
                    &full.to_string(),
                    json!({ "code": "too_many_sessions" }),
                )
            })?;
        Some(admitted)
    } else {
        None
    };
    let mut one_grant = None;
    let (mut response, links) = match &authorized.grant {
        Granted::One(mcp) => {
            let grant = grant_of(state, &key, mcp, &binding);
            parts.extensions.insert(grant.clone());
            let response = proxy.service.handle(Request::from_parts(parts, body)).await;
            let links = grant.link.get().map(|link| vec![link.clone()]);
            one_grant = Some(grant);
            (response.map(Body::new), links)
        }
        Granted::All(grant) => {
            parts.extensions.insert(grant.clone());
            let response = proxy
                .aggregate
                .handle(Request::from_parts(parts, body))
                .await;
            (response.map(Body::new), grant.links.get().cloned())
        }
    };
    if method == Method::POST
        && let Some(id) = &usage.request_id
    {
        response = super::prefer_json::prefer_json(response, id).await;
    }
    let ok = response.status().is_success();
    // rmcp answers `initialize` only once the handler has: the links are
    // set by now if the handler got that far. A session without them is
    // closed at once rather than left to count against the caps.
    if initializing
        && ok
        && let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        match links {
            Some(links) => {
                // Where the session's plain calls go directly (`session_manager`).
                let direct = match (&one_grant, links.as_slice()) {
                    (Some(grant), [link]) => Some(Direct {
                        link: link.clone(),
                        slug: grant.slug.clone(),
                        timeout: grant.spec.timeout,
                    }),
                    _ => None,
                };
                proxy
                    .sessions
                    .book
                    .bind(id.to_owned(), binding, links, direct);
            }
            None => close_session(state, id).await,
        }
    }
    if method == Method::DELETE
        && ok
        && let Some(id) = &session
    {
        proxy.sessions.book.forget(id);
        // rmcp says 202 Accepted, but the session is already closed: 200
        // is the truth, what the official SDK servers answer, and what the
        // Python SDK expects (it logs any other code as a failed DELETE).
        if response.status() == StatusCode::ACCEPTED {
            *response.status_mut() = StatusCode::OK;
        }
    }
    Ok(response)
}

/// What a request may use, with the grant the session's handler reads.
#[derive(Clone)]
struct Authorized {
    scope: Scope,
    grant: Granted,
}

/// `One` keeps the MCP and makes its [`Grant`] only when the request goes
/// to rmcp: a session's plain call (answered directly) needs none.
#[derive(Clone)]
enum Granted {
    One(Arc<Mcp>),
    All(AggregateGrant),
}

/// The grant rmcp's handler reads for a request on `/mcp/{mcp.slug}`.
fn grant_of(state: &AppState, key: &KeyState, mcp: &Mcp, binding: &Binding) -> Grant {
    Grant {
        slug: mcp.slug.clone(),
        spec: upstream_spec(mcp),
        binding: binding.clone(),
        tools: ToolGrant::new(key),
        bridge: state.proxy.bridge.clone(),
        link: Arc::new(std::sync::OnceLock::new()),
        pins: state.pins.at(state.verifier.generation()),
    }
}

/// Authorization for `target`, from the one decision in `authorize`.
async fn authorized_scope(
    state: &AppState,
    key: &KeyState,
    target: &Target,
) -> Result<Authorized, Response> {
    let denied = |denied| match denied {
        Denied::Unauthorized => rpc_error(
            StatusCode::FORBIDDEN,
            UNAUTHORIZED_MCP,
            "Unauthorized MCP",
            json!({ "code": "unauthorized_mcp" }),
        ),
        Denied::Internal => api_refusal(&ApiError::Internal),
    };
    match target {
        Target::One(mcp_id) => {
            let mcp = authorize_mcp(state, key, mcp_id).await.map_err(denied)?;
            Ok(Authorized {
                scope: Scope::One(mcp.row_id, mcp.slug.clone()),
                grant: Granted::One(mcp),
            })
        }
        Target::All => {
            let mcps = state.verifier.live_mcps(key.org_id).await.map_err(|e| {
                tracing::error!(error = %e, "listing MCPs failed");
                api_refusal(&ApiError::Internal)
            })?;
            let allowed: Vec<_> = mcps.iter().filter(|m| may_use(key, &m.slug)).collect();
            let scope = Scope::All(allowed.iter().map(|m| (m.row_id, m.slug.clone())).collect());
            Ok(Authorized {
                scope: scope.clone(),
                grant: Granted::All(AggregateGrant {
                    members: allowed
                        .iter()
                        .map(|m| (m.slug.clone(), upstream_spec(m)))
                        .collect(),
                    binding: Binding {
                        key_row: key.row_id,
                        key_id: key.id.clone(),
                        scope,
                    },
                    tools: ToolGrant::new(key),
                    bridge: state.proxy.bridge.clone(),
                    links: Arc::new(std::sync::OnceLock::new()),
                    pins: state.pins.at(state.verifier.generation()),
                }),
            })
        }
    }
}

/// Whether a session bound as `bound` may serve a request authorized as
/// `now`: same key, same endpoint, and (on `/mcp`) every MCP it was opened
/// with still usable. MCPs added since appear in new sessions.
fn still_serves(bound: &Binding, now: &Binding) -> bool {
    if bound.key_row != now.key_row || bound.key_id != now.key_id {
        return false;
    }
    match (&bound.scope, &now.scope) {
        (Scope::One(..), Scope::One(..)) => bound.scope == now.scope,
        (Scope::All(then), Scope::All(usable)) => then.iter().all(|m| usable.contains(m)),
        _ => false,
    }
}

/// Ends a session in rmcp (its handler and upstream go with it).
pub(super) async fn close_session(state: &AppState, id: &str) {
    use rmcp::transport::streamable_http_server::session::SessionManager;
    let proxy = &state.proxy;
    proxy.sessions.book.forget(id);
    let _ = proxy.sessions.close_session(&Arc::from(id)).await;
}

fn rpc_error(status: StatusCode, code: i64, message: &str, data: Value) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message, "data": data },
    });
    (status, axum::Json(body)).into_response()
}

/// A refusal the REST API would give as `error`, in JSON-RPC form.
fn api_refusal(error: &ApiError) -> Response {
    let rpc_code = match error {
        ApiError::InvalidApiKey(_) => INVALID_KEY,
        ApiError::UnauthorizedMcp => UNAUTHORIZED_MCP,
        ApiError::RateLimited { .. } | ApiError::KeyRateLimited { .. } => TOO_MANY,
        ApiError::Internal => INTERNAL,
        _ => INVALID_REQUEST,
    };
    let mut data = json!({ "code": error.code() });
    if let ApiError::InvalidApiKey(reason) = error {
        data["reason"] = json!(reason.as_str());
    }
    if let Some(retry_after) = error.retry_after() {
        data["retry_after"] = json!(retry_after);
    }
    let mut response = rpc_error(error.status(), rpc_code, &error.message(), data);
    error.add_headers(&mut response);
    response
}

/// The usage outcome code for a response status.
fn outcome_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "ok",
        401 => "invalid_api_key",
        403 => "unauthorized_mcp",
        404 => "session_not_found",
        413 => "payload_too_large",
        429 => "rate_limited",
        400..=499 => "invalid_request",
        _ => "internal_error",
    }
}

/// Records the usage event when the response body is finished with (sent
/// whole, or its stream ended or was dropped by the client).
async fn finish(
    state: Arc<AppState>,
    usage: Usage,
    response: Response,
    started: Instant,
) -> Response {
    let status = response.status();
    if !usage.counted && status.is_success() {
        return response;
    }
    let Some(key_row) = usage.key_row else {
        return response;
    };
    let request_id = usage.request_id.clone();
    let forbidden_tool = usage.forbidden_tool;
    let record = move |answered: Option<(&'static str, u16)>| {
        // The "Unknown tool" the client got for a tool it may not call.
        let answered = match answered {
            Some(("unknown_tool", _)) if forbidden_tool => Some(("unauthorized_tool", 403)),
            other => other,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (outcome, status) = answered.unwrap_or((outcome_code(status), status.as_u16()));
        state.live.record(now.as_secs(), status >= 400);
        let (mcp, tool) = recorded_names(usage.mcp, usage.tool);
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        // The access line: on, off or sampled (`log.access`), as for REST.
        if crate::logging::access_line_due() {
            tracing::info!(
                status,
                key = key_row,
                mcp = mcp.as_deref(),
                tool = tool.as_deref(),
                latency_us,
                "/mcp/{{id}}"
            );
        }
        state.usage.record(UsageEvent {
            key_row,
            mcp_slug: mcp,
            tool,
            outcome,
            http_status: status,
            latency_us,
            client_ip: usage.client_ip,
            user_agent: usage.user_agent,
            at_ms: i64::try_from(now.as_millis()).unwrap_or(i64::MAX),
        });
    };
    let (parts, body) = response.into_parts();
    if axum::body::HttpBody::size_hint(&body).exact().is_some() {
        // A whole body (JSON, a refusal): read at once, recorded now, sent
        // with its length.
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let answered = request_id
            .as_ref()
            .and_then(|id| super::answer::error_outcome(&bytes, id));
        record(answered);
        return Response::from_parts(parts, Body::from(bytes));
    }
    // A stream: looked at as it passes, recorded when it ends or is dropped.
    let answered = Arc::new(std::sync::OnceLock::<(&'static str, u16)>::new());
    let seen = answered.clone();
    let record = OnDrop(Some(move || record(seen.get().copied())));
    let body = Body::new(body.map_frame(move |frame| {
        let _ = &record;
        if let (Some(id), Some(data), None) = (&request_id, frame.data_ref(), answered.get())
            && let Some(found) = super::answer::error_outcome(data, id)
        {
            let _ = answered.set(found);
        }
        frame
    }));
    Response::from_parts(parts, body)
}

/// Runs its closure once, when dropped.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
