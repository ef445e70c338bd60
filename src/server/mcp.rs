//! `POST /mcp`: authenticate, decode, authorize, forward, count. The order
//! matters: the key is checked before the body is read, so unauthenticated
//! clients cannot make the server buffer a megabyte; and every request that
//! reached a key is recorded as a usage event, success or not.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, MAX_BODY_BYTES};
use super::limiter::FailureLimiter;
use super::{AppState, jsonrpc};
use crate::auth::{AuthError, Reason};
use crate::domain::Mcp;
use crate::store::UsageEvent;
use crate::upstream::{UpstreamError, UpstreamSpec};

/// A decoded `POST /mcp` body.
#[derive(Debug, Deserialize)]
pub struct CallRequest {
    pub mcp_id: String,
    pub tool: String,
    #[serde(default)]
    pub arguments: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A successful answer: a plain call's `CallToolResult`, or a JSON-RPC reply.
enum Reply {
    Call(serde_json::Value),
    Rpc(jsonrpc::RpcOutcome),
}

/// What a finished request leaves behind for the usage record.
struct Outcome {
    key_row: Option<i64>,
    mcp: Option<String>,
    tool: Option<String>,
}

pub async fn call(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(256).collect::<String>());
    let mut outcome = Outcome {
        key_row: None,
        mcp: None,
        tool: None,
    };
    let result = handle(&state, request, &mut outcome).await;
    let (status, code, response) = match result {
        Ok(Reply::Call(value)) => (200, "ok", axum::Json(value).into_response()),
        Ok(Reply::Rpc(rpc)) => {
            outcome.mcp = rpc.mcp;
            outcome.tool = rpc.tool;
            (rpc.status, rpc.code, rpc.response)
        }
        Err(e) => {
            if e == ApiError::Internal {
                tracing::error!("internal error answering /mcp");
            }
            (e.status().as_u16(), e.code(), e.into_response())
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    state.live.record(now.as_secs(), status >= 400);
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    tracing::info!(
        status,
        code,
        latency_us,
        key = outcome.key_row,
        mcp = outcome.mcp.as_deref(),
        tool = outcome.tool.as_deref(),
        "POST /mcp"
    );
    if let Some(key_row) = outcome.key_row {
        state.usage.record(UsageEvent {
            key_row,
            mcp_slug: outcome.mcp,
            tool: outcome.tool,
            outcome: code,
            http_status: status,
            latency_us,
            client_ip,
            user_agent,
            at_ms: i64::try_from(now.as_millis()).unwrap_or(i64::MAX),
        });
    }
    response
}

/// The key as presented: `Authorization: ApiKey|Bearer <key>` or `X-API-Key`.
/// `Err` means a header was there but unusable.
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| ())?.trim();
        let (scheme, key) = value.split_once(' ').ok_or(())?;
        return if scheme.eq_ignore_ascii_case("apikey") || scheme.eq_ignore_ascii_case("bearer") {
            Ok(Some(key.trim()))
        } else {
            Err(())
        };
    }
    match headers.get("x-api-key") {
        Some(value) => value.to_str().map(|k| Some(k.trim())).map_err(|_| ()),
        None => Ok(None),
    }
}

async fn handle(
    state: &AppState,
    request: Request,
    outcome: &mut Outcome,
) -> Result<Reply, ApiError> {
    let (parts, body) = request.into_parts();
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let presented = presented_key(&parts.headers);
    // A client that keeps failing is turned away before any key work,
    // unless it presents a key this process has already verified.
    let blocked = client.and_then(|ip| state.limiter.blocked(ip, Instant::now()));
    if let Some(retry_after) = blocked {
        let known_good = matches!(presented, Ok(Some(k)) if state.verifier.is_known_good(k));
        if !known_good {
            return Err(ApiError::RateLimited { retry_after });
        }
    }
    let refused = |reason, key_row: Option<i64>, outcome: &mut Outcome| {
        if let Some(ip) = client {
            state.limiter.record_failure(ip, Instant::now());
        }
        outcome.key_row = key_row;
        ApiError::InvalidApiKey(reason)
    };
    let presented = match presented {
        Ok(presented) => presented,
        Err(()) => return Err(refused(Reason::Malformed, None, outcome)),
    };
    // A client that hangs up while its key is checked (the handler is then
    // dropped) is charged a failure, or attempts would be free.
    let mut abandoned = ChargeIfDropped {
        limiter: &state.limiter,
        client,
    };
    let authenticated = state
        .verifier
        .authenticate(presented, chrono::Utc::now())
        .await;
    abandoned.client = None;
    let key = match authenticated {
        Ok(key) => key,
        Err(AuthError::Refused { reason, key_row }) => {
            return Err(refused(reason, key_row, outcome));
        }
        Err(e) => {
            tracing::error!(error = %e, "authentication failed");
            return Err(ApiError::Internal);
        }
    };
    outcome.key_row = Some(key.row_id);

    let bytes = read_body(body).await?;
    let request = match decode_body(&bytes)? {
        Decoded::Call(request) => request,
        // MCP clients speak JSON-RPC on the same path.
        Decoded::JsonRpc(message) => {
            return Ok(Reply::Rpc(jsonrpc::handle(state, &key, message).await));
        }
    };
    outcome.mcp = Some(request.mcp_id.clone());
    outcome.tool = Some(request.tool.clone());
    // Unknown, removed and forbidden MCPs answer alike: no enumeration.
    if !key.access.allows(&request.mcp_id) {
        return Err(ApiError::UnauthorizedMcp);
    }
    let mcp = state
        .verifier
        .mcp(key.org_id, &request.mcp_id)
        .map_err(|e| {
            tracing::error!(error = %e, "MCP lookup failed");
            ApiError::Internal
        })?
        .ok_or(ApiError::UnauthorizedMcp)?;

    let spec = upstream_spec(&mcp);
    state
        .upstreams
        .call(&spec, &request.tool, request.arguments)
        .await
        .map_err(|e| upstream_api_error(&mcp.slug, &spec.name, e))
        .map(Reply::Call)
}

/// What a caller is told about a failed upstream call, with the detail
/// logged instead (it may name commands, URLs, transport internals).
fn upstream_api_error(slug: &str, upstream: &str, error: UpstreamError) -> ApiError {
    let mcp = slug.to_owned();
    match error {
        UpstreamError::UnknownTool(tool) => ApiError::UnknownTool { mcp, tool },
        UpstreamError::Rejected { message, .. } => ApiError::UpstreamRejected { mcp, message },
        UpstreamError::Timeout(_) => {
            tracing::warn!(mcp = slug, upstream, error = %error, "tools/call timed out");
            ApiError::UpstreamTimeout { mcp }
        }
        UpstreamError::Failed(_) => {
            tracing::warn!(mcp = slug, upstream, error = %error, "tools/call failed");
            ApiError::Upstream { mcp }
        }
    }
}

/// Counts a failed authentication for `client` when dropped, unless
/// `client` was cleared first.
struct ChargeIfDropped<'a> {
    limiter: &'a FailureLimiter,
    client: Option<IpAddr>,
}

impl Drop for ChargeIfDropped<'_> {
    fn drop(&mut self) {
        if let Some(ip) = self.client {
            self.limiter.record_failure(ip, Instant::now());
        }
    }
}

/// A body must arrive within this once the headers have (slow uploads
/// would otherwise hold a connection and a buffer indefinitely).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    let bytes = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
        .map_err(|_| ApiError::RequestTimeout)?
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidRequest(format!("Could not read the request body: {e}"))
            }
        })?;
    Ok(bytes)
}

/// Decodes a `POST /mcp` body: a JSON object with `mcp_id`, `tool` and an
/// optional `arguments` object. Anything else is `InvalidRequest`.
pub fn decode_call(bytes: &[u8]) -> Result<CallRequest, ApiError> {
    match decode_body(bytes)? {
        Decoded::Call(call) => Ok(call),
        Decoded::JsonRpc(_) => Err(invalid_body("a JSON-RPC message is not a plain call")),
    }
}

/// A `POST /mcp` body: a plain call, or a JSON-RPC message from an MCP client.
pub enum Decoded {
    Call(CallRequest),
    JsonRpc(serde_json::Value),
}

/// Decodes a body once, telling plain calls from JSON-RPC messages.
pub fn decode_body(bytes: &[u8]) -> Result<Decoded, ApiError> {
    // Through a map first: serde would otherwise also take a JSON array
    // (`["id", "tool"]`) for the struct, which is not the documented API.
    let map = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes)
        .map_err(invalid_body)?;
    if map.contains_key("jsonrpc") {
        return Ok(Decoded::JsonRpc(serde_json::Value::Object(map)));
    }
    CallRequest::deserialize(serde_json::Value::Object(map))
        .map(Decoded::Call)
        .map_err(invalid_body)
}

fn invalid_body(e: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidRequest(format!(
        "Invalid request body: {e}; expected {{\"mcp_id\": \"...\", \"tool\": \"...\", \"arguments\": {{...}}}}"
    ))
}

/// The upstream pool's view of a registered MCP. The name carries the row
/// id, so a removed and re-added MCP never reuses the old connection.
pub(super) fn upstream_spec(mcp: &Mcp) -> UpstreamSpec {
    UpstreamSpec {
        name: upstream_name(&mcp.slug, mcp.row_id),
        transport: mcp.transport.clone(),
        timeout: mcp.timeout,
    }
}

/// The pool's name for the MCP stored in row `row_id` under `slug`.
pub(super) fn upstream_name(slug: &str, row_id: i64) -> String {
    format!("{slug}#{row_id}")
}
