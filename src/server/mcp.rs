//! `POST /mcp`: authenticate, decode, authorize, forward, count. The order
//! matters: the key is checked before the body is read, so unauthenticated
//! clients cannot make the server buffer a megabyte; and every request that
//! reached a key is recorded as a usage event, success or not. Names in a
//! request are the client's choice, so only bounded ones are kept: an MCP
//! id only if it could be one, a tool or method name cut to a fixed length.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::authorize::{Denied, authorize_mcp, within_rate_limit};
use super::client_addr::request_client;
use super::error::{ApiError, MAX_BODY_BYTES};
use super::limiter::{FailureLimiter, Reservation};
use super::{AppState, jsonrpc, tool_access};
use crate::auth::{AuthError, KeyState, Reason};
use crate::domain::Mcp;
use crate::rules;
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

/// `POST /mcp`: MCP clients (they send a session id or a protocol version,
/// or, per Streamable HTTP, accept an event stream) get the aggregate MCP
/// server; everything else is the REST call, or a one-shot JSON-RPC
/// message answered without a session.
pub async fn post(state: State<Arc<AppState>>, request: Request) -> Response {
    if speaks_streamable_http(request.headers()) {
        super::mcp_proxy::aggregate(state, request).await
    } else {
        call(state, request).await
    }
}

fn speaks_streamable_http(headers: &HeaderMap) -> bool {
    headers.contains_key("mcp-session-id")
        || headers.contains_key("mcp-protocol-version")
        || headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

pub async fn call(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let client = request_client(
        request.extensions(),
        request.headers(),
        &state.trusted_proxies,
    );
    let client_ip = client.map(|ip| ip.to_string());
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
    let (result, upstream_time) =
        crate::upstream::call_time::measure(handle(&state, request, client, &mut outcome)).await;
    let (status, code, mut response) = match result {
        Ok(Reply::Call(value)) => (200, "ok", axum::Json(value).into_response()),
        Ok(Reply::Rpc(rpc)) => {
            outcome.mcp = rpc.mcp;
            outcome.tool = rpc.tool;
            let mut response = rpc.response;
            response
                .extensions_mut()
                .insert(super::metrics::Endpoint::JsonRpc);
            (rpc.status, rpc.code, response)
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
    if let Some(spent) = upstream_time {
        response
            .extensions_mut()
            .insert(super::metrics::UpstreamTime(spent));
    }
    state.live.record(now.as_secs(), status >= 400);
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let (mcp, tool) = recorded_names(outcome.mcp, outcome.tool);
    // The access line: on, off or sampled (`log.access`).
    if crate::logging::access_line_due() {
        tracing::info!(
            status,
            code,
            latency_us,
            key = outcome.key_row,
            mcp = mcp.as_deref(),
            tool = tool.as_deref(),
            "POST /mcp"
        );
    }
    if let Some(key_row) = outcome.key_row {
        state.usage.record(UsageEvent {
            key_row,
            mcp_slug: mcp,
            tool,
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
/// `Err` means a header was there but unusable, or the headers disagree:
/// with two different keys (or one unusable header among several) there
/// is no telling which one the client meant, so none is picked. The same
/// key given more than once is not ambiguous and is accepted.
pub(super) fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let authorization = headers.get_all(header::AUTHORIZATION).iter().map(|value| {
        let (scheme, key) = value
            .to_str()
            .map_err(|_| ())?
            .trim()
            .split_once(' ')
            .ok_or(())?;
        if scheme.eq_ignore_ascii_case("apikey") || scheme.eq_ignore_ascii_case("bearer") {
            Ok(key.trim())
        } else {
            Err(())
        }
    });
    let x_api_key = headers
        .get_all("x-api-key")
        .iter()
        .map(|value| value.to_str().map(str::trim).map_err(|_| ()));
    let mut presented = None;
    for key in authorization.chain(x_api_key) {
        let key = key?;
        match presented {
            Some(earlier) if earlier != key => return Err(()),
            _ => presented = Some(key),
        }
    }
    Ok(presented)
}

/// Longest tool or method name a usage record keeps, in characters.
const RECORDED_NAME_MAX: usize = 128;

/// The MCP id and tool (or JSON-RPC method) a usage record may keep: an
/// MCP id only if it could be one, and its tool only with it; a tool or
/// method name longer than [`RECORDED_NAME_MAX`] is cut and ends in `…`,
/// so it cannot pass for the whole name. (The store further keeps an MCP
/// id only if it names a live MCP.)
pub(super) fn recorded_names(
    mcp: Option<String>,
    tool: Option<String>,
) -> (Option<String>, Option<String>) {
    match mcp {
        Some(mcp) if !rules::is_slug(&mcp) => (None, None),
        mcp => (mcp, tool.map(bounded_name)),
    }
}

fn bounded_name(name: String) -> String {
    let mut cuts = name.char_indices().map(|(at, _)| at);
    match (cuts.nth(RECORDED_NAME_MAX - 1), cuts.next()) {
        (Some(last), Some(_)) => format!("{}…", &name[..last]),
        _ => name,
    }
}

async fn handle(
    state: &AppState,
    request: Request,
    client: Option<IpAddr>,
    outcome: &mut Outcome,
) -> Result<Reply, ApiError> {
    let (parts, body) = request.into_parts();
    let key = authenticate(state, &parts.headers, client, &mut outcome.key_row).await?;

    let bytes = read_body(body).await?;
    let decoded = decode_body(&bytes)?;
    // Every call counts against the key's rate limit, whatever it asks for.
    let limited = within_rate_limit(state, &key).err();
    let request = match decoded {
        Decoded::Call(request) => request,
        // MCP clients speak JSON-RPC on the same path.
        Decoded::JsonRpc(message) => {
            return Ok(Reply::Rpc(match limited {
                Some(refusal) => jsonrpc::rate_limited(&message, &refusal),
                None => jsonrpc::handle(state, &key, message).await,
            }));
        }
    };
    // A name that cannot be an MCP id is not recorded (recorded_names).
    outcome.mcp = Some(request.mcp_id.clone());
    outcome.tool = Some(request.tool.clone());
    if let Some(refusal) = limited {
        return Err(refusal);
    }
    let mcp = authorize_mcp(state, &key, &request.mcp_id)
        .await
        .map_err(denied_error)?;
    tool_access::authorize_tool(&key, &mcp.slug, &request.tool)?;

    let spec = upstream_spec(&mcp);
    super::tool_pins::pool_call_allowed(state, &mcp, &spec, &request.tool).await?;
    state
        .upstreams
        .call(&spec, &request.tool, request.arguments)
        .await
        .map_err(|e| upstream_api_error(&mcp.slug, &spec.name, e))
        .map(Reply::Call)
}

/// Checks the key a request presents, under the failure limiter: the
/// same rules for every endpoint. `key_row` is set as soon as a key row
/// is known, so even a refused attempt can be recorded against it.
pub(super) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: Option<IpAddr>,
    key_row: &mut Option<i64>,
) -> Result<KeyState, ApiError> {
    let presented = presented_key(headers);
    // A client that keeps failing is turned away before any key work,
    // unless it presents a key this process has already verified.
    let blocked = client.and_then(|ip| state.limiter.blocked(ip, Instant::now()));
    if let Some(retry_after) = blocked {
        let known_good = matches!(presented, Ok(Some(k)) if state.verifier.is_known_good(k));
        if !known_good {
            return Err(ApiError::RateLimited { retry_after });
        }
    }
    let presented = match presented {
        Ok(presented) => presented,
        Err(()) => {
            if let Some(ip) = client {
                state.limiter.record_failure(ip, Instant::now());
            }
            state.metrics.auth_failure(Reason::Malformed);
            return Err(ApiError::InvalidApiKey(Reason::Malformed));
        }
    };
    let mut attempt = Attempt {
        limiter: &state.limiter,
        client,
        reserved: None,
        retry_after: None,
        settled: false,
    };
    let authenticated = state
        .verifier
        .authenticate_within(presented, chrono::Utc::now(), || attempt.reserve())
        .await;
    match authenticated {
        Ok(key) => {
            attempt.settle(false);
            *key_row = Some(key.row_id);
            Ok(key)
        }
        Err(AuthError::Refused {
            reason,
            key_row: row,
        }) => {
            attempt.settle(true);
            state.metrics.auth_failure(reason);
            *key_row = row;
            Err(ApiError::InvalidApiKey(reason))
        }
        Err(AuthError::Throttled) => {
            let retry_after = attempt.retry_after.unwrap_or(1);
            attempt.settle(false);
            Err(ApiError::RateLimited { retry_after })
        }
        Err(e) => {
            // Our failure, not the client's: nothing is charged.
            attempt.settle(false);
            tracing::error!(error = %e, "authentication failed");
            Err(ApiError::Internal)
        }
    }
}

/// The REST answer for a refused authorization.
pub(super) fn denied_error(denied: Denied) -> ApiError {
    match denied {
        Denied::Unauthorized => ApiError::UnauthorizedMcp,
        Denied::Internal => ApiError::Internal,
    }
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

/// One request's standing with the failure limiter while its key is
/// checked. A failure reserved before argon2 comes back if the key was
/// good; a refusal without one is counted when settled; and a client that
/// hangs up mid-check (the handler is then dropped) is charged a failure,
/// or attempts would be free.
struct Attempt<'a> {
    limiter: &'a FailureLimiter,
    client: Option<IpAddr>,
    reserved: Option<Reservation>,
    /// Set when the limiter refused a reservation: seconds to wait.
    retry_after: Option<u64>,
    settled: bool,
}

impl Attempt<'_> {
    /// Asked by the verifier before an argon2 run: may this client spend
    /// one of its failures on it?
    fn reserve(&mut self) -> bool {
        let Some(ip) = self.client else {
            return true;
        };
        match self.limiter.reserve(ip, Instant::now()) {
            Ok(reservation) => {
                self.reserved = Some(reservation);
                true
            }
            Err(retry_after) => {
                self.retry_after = Some(retry_after);
                false
            }
        }
    }

    /// Ends the attempt: `failed` keeps (or counts) one failure, otherwise
    /// a reserved one is given back.
    fn settle(mut self, failed: bool) {
        self.settled = true;
        match (self.reserved.take(), failed) {
            (Some(reservation), false) => self.limiter.release(reservation),
            (Some(_), true) => {} // counted when it was reserved
            (None, true) => self.charge(),
            (None, false) => {}
        }
    }

    fn charge(&self) {
        if let Some(ip) = self.client {
            self.limiter.record_failure(ip, Instant::now());
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        // A reservation already counts; only an attempt without one is charged.
        if !self.settled && self.reserved.is_none() {
            self.charge();
        }
    }
}

/// A body must arrive within this once the headers have (slow uploads
/// would otherwise hold a connection and a buffer indefinitely).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub(super) async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
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
pub fn upstream_spec(mcp: &Mcp) -> UpstreamSpec {
    UpstreamSpec {
        name: upstream_name(&mcp.slug, mcp.row_id),
        transport: mcp.transport.clone(),
        timeout: mcp.timeout,
    }
}

/// The pool's name for the MCP stored in row `row_id` under `slug`.
pub fn upstream_name(slug: &str, row_id: i64) -> String {
    format!("{slug}#{row_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_names_are_bounded_and_marked_when_cut() {
        let name = |n: usize| "é".repeat(n);
        let tool = |n| {
            recorded_names(Some("alpha".into()), Some(name(n)))
                .1
                .unwrap()
        };
        assert_eq!(
            tool(RECORDED_NAME_MAX),
            name(RECORDED_NAME_MAX),
            "fits: kept whole"
        );
        let cut = tool(RECORDED_NAME_MAX + 1);
        assert_eq!(cut.chars().count(), RECORDED_NAME_MAX);
        assert_eq!(cut, format!("{}…", name(RECORDED_NAME_MAX - 1)));
        assert_eq!(tool(1_000_000).chars().count(), RECORDED_NAME_MAX);
        // A JSON-RPC method has no MCP and is bounded the same way.
        let method = recorded_names(None, Some("m".repeat(500))).1.unwrap();
        assert_eq!(method.chars().count(), RECORDED_NAME_MAX);
        // Something that cannot be an MCP id is kept neither with nor as its tool.
        assert_eq!(
            recorded_names(Some("Not An Id".into()), Some("echo".into())),
            (None, None)
        );
    }
}
