//! One-shot JSON-RPC on `POST /mcp`, for simple clients (curl, scripts)
//! that send neither a session id nor Streamable HTTP's `Accept: ...,
//! text/event-stream` (MCP clients that do get the full aggregate server,
//! `mcp_proxy::aggregate`): `initialize`, `ping`, `tools/list` (the tools of
//! every MCP the key may use, named `<mcp_id>__<tool>`) and `tools/call`,
//! each answered with one JSON response, no session. `tools/call` goes over
//! the shared upstream pool, as the REST call does.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::authorize::{Denied, authorize_mcp, may_use};
use super::mcp::upstream_spec;
use super::tool_access::may_call;
use super::{ApiError, AppState};
use crate::domain::KeyRecord;
use crate::rules;
use crate::upstream::UpstreamError;

/// Protocol versions this server speaks; the first is preferred.
pub const PROTOCOL_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// Separates the MCP id from the upstream tool name in listed tool names.
pub use super::mcp_proxy::SEPARATOR;

// JSON-RPC error codes.
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;
/// As the MCP endpoints answer their 429s (`mcp_proxy::guard`).
const TOO_MANY: i64 = -32029;

/// A JSON-RPC exchange's answer plus what the usage record should say.
pub struct RpcOutcome {
    pub response: Response,
    /// The `/mcp` error code this maps to (`ok` on success).
    pub code: &'static str,
    /// The status the REST API would have used, so error rates count alike.
    pub status: u16,
    pub mcp: Option<String>,
    pub tool: Option<String>,
}

fn outcome(response: Response, code: &'static str, status: u16) -> RpcOutcome {
    RpcOutcome {
        response,
        code,
        status,
        mcp: None,
        tool: None,
    }
}

fn result(id: &Value, result: Value) -> Response {
    axum::Json(json!({ "jsonrpc": "2.0", "id": id, "result": result })).into_response()
}

fn error(id: &Value, code: i64, message: impl Into<String>) -> Response {
    let body =
        json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message.into() } });
    axum::Json(body).into_response()
}

/// The answer to a JSON-RPC message refused before it was looked at
/// because its key is over its rate limit: an error for its id, with the REST code
/// and `retry_after` in `data`, as HTTP 429 with `Retry-After`.
pub fn rate_limited(message: &Value, refusal: &ApiError) -> RpcOutcome {
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let mut data = json!({ "code": refusal.code() });
    if let Some(retry_after) = refusal.retry_after() {
        data["retry_after"] = json!(retry_after);
    }
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": TOO_MANY, "message": refusal.message(), "data": data },
    });
    let mut response = (refusal.status(), axum::Json(body)).into_response();
    refusal.add_headers(&mut response);
    let mut answered = outcome(response, refusal.code(), refusal.status().as_u16());
    answered.tool = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    answered
}

pub async fn handle(state: &AppState, key: &KeyRecord, message: Value) -> RpcOutcome {
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        // A response or something else from the client: nothing to answer.
        return outcome(StatusCode::ACCEPTED.into_response(), "ok", 202);
    };
    let Some(id) = message.get("id").cloned() else {
        // Notifications (`notifications/initialized`, cancellations) need no reply.
        let mut o = outcome(StatusCode::ACCEPTED.into_response(), "ok", 202);
        o.tool = Some(method.to_string());
        return o;
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return outcome(
            error(&id, INVALID_REQUEST, "jsonrpc must be \"2.0\""),
            "invalid_request",
            400,
        );
    }
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let mut answered = match method {
        "initialize" => outcome(result(&id, initialize(&params)), "ok", 200),
        "ping" => outcome(result(&id, json!({})), "ok", 200),
        "tools/list" => outcome(result(&id, list_tools(state, key).await), "ok", 200),
        "tools/call" => return call_tool(state, key, &id, &params).await,
        _ => outcome(
            error(
                &id,
                METHOD_NOT_FOUND,
                format!(
                    "Method not found: {method} (one-shot JSON-RPC has initialize, ping, tools/list \
                     and tools/call; for everything else open an MCP session: POST initialize with \
                     Accept: application/json, text/event-stream)"
                ),
            ),
            "invalid_request",
            400,
        ),
    };
    answered.tool = Some(method.to_string());
    answered
}

fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked
        .filter(|v| PROTOCOL_VERSIONS.contains(v))
        .unwrap_or(PROTOCOL_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "plexmcp", "version": env!("CARGO_PKG_VERSION") },
        "instructions": format!(
            "Tools of the MCP servers this API key may use, named <mcp_id>{SEPARATOR}<tool>."
        ),
    })
}

/// Every tool of every MCP the key may use, asked of all of them at once
/// (so a few broken upstreams cost one timeout, not the sum). An upstream
/// that cannot be reached is left out (and logged) rather than failing the
/// whole list; one that failed just now is not asked again until its
/// back-off ends.
async fn list_tools(state: &AppState, key: &KeyRecord) -> Value {
    let mcps = match state.verifier.live_mcps(key.org_id).await {
        Ok(mcps) => mcps,
        Err(e) => {
            tracing::error!(error = %e, "listing MCPs failed");
            Vec::new()
        }
    };
    let allowed: Vec<_> = mcps.iter().filter(|m| may_use(key, &m.slug)).collect();
    let specs: Vec<_> = allowed.iter().map(|mcp| upstream_spec(mcp)).collect();
    for (mcp, spec) in allowed.iter().zip(&specs) {
        super::tool_pins::relist_if_pinned(state, mcp, spec).await;
    }
    let answers = state.upstreams.tools_of_each(&specs).await;
    let mut tools = Vec::new();
    for ((mcp, spec), answer) in allowed.iter().zip(&specs).zip(answers) {
        match answer {
            Ok(list) => {
                let shown = super::tool_pins::visible_in(state, mcp, &list).await;
                for tool in list
                    .iter()
                    .zip(shown)
                    .filter_map(|(t, shown)| shown.then_some(t))
                    .filter(|t| may_call(key, &mcp.slug, &t.name))
                {
                    let Ok(mut value) = serde_json::to_value(tool) else {
                        continue;
                    };
                    value["name"] = json!(format!("{}{SEPARATOR}{}", mcp.slug, tool.name));
                    tools.push(value);
                }
            }
            Err(e) => {
                tracing::warn!(mcp = %mcp.slug, upstream = %spec.name, error = %e, "tools/list: upstream unavailable")
            }
        }
    }
    json!({ "tools": tools })
}

/// A refusal by the tool pins as JSON-RPC: a withheld tool is named with
/// why; one the pins do not know is answered as any unknown tool.
fn withheld_outcome(id: &Value, name: &str, refused: ApiError) -> RpcOutcome {
    match refused {
        ApiError::ToolWithheld(why) => outcome(
            error(id, super::tool_pins::TOOL_WITHHELD_CODE, why),
            "tool_withheld",
            403,
        ),
        ApiError::UnknownTool { .. } => outcome(
            error(id, INVALID_PARAMS, format!("Unknown tool: {name}")),
            "unknown_tool",
            404,
        ),
        _ => outcome(
            error(id, INTERNAL_ERROR, "Internal error"),
            "internal_error",
            500,
        ),
    }
}

async fn call_tool(state: &AppState, key: &KeyRecord, id: &Value, params: &Value) -> RpcOutcome {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some((mcp_id, tool)) = name.split_once(SEPARATOR) else {
        let response = error(id, INVALID_PARAMS, format!("Unknown tool: {name}"));
        return outcome(response, "unknown_tool", 404);
    };
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map.clone()),
        Some(_) => {
            return outcome(
                error(id, INVALID_PARAMS, "arguments must be an object"),
                "invalid_request",
                400,
            );
        }
    };
    let unauthorized = || {
        outcome(
            error(id, INVALID_PARAMS, "Unauthorized MCP"),
            "unauthorized_mcp",
            403,
        )
    };
    // A name that cannot be an MCP id is neither looked up nor recorded.
    if !rules::is_slug(mcp_id) {
        return unauthorized();
    }
    let named = |mut o: RpcOutcome| {
        o.mcp = Some(mcp_id.to_string());
        o.tool = Some(tool.to_string());
        o
    };
    let mcp = match authorize_mcp(state, key, mcp_id).await {
        Ok(mcp) => mcp,
        Err(Denied::Unauthorized) => return named(unauthorized()),
        Err(Denied::Internal) => {
            return named(outcome(
                error(id, INTERNAL_ERROR, "Internal error"),
                "internal_error",
                500,
            ));
        }
    };
    if !may_call(key, &mcp.slug, tool) {
        // Told as an unknown tool is; recorded as what it is.
        let refused = error(id, INVALID_PARAMS, format!("Unknown tool: {name}"));
        return named(outcome(refused, "unauthorized_tool", 403));
    }
    let spec = upstream_spec(&mcp);
    if let Err(refused) = super::tool_pins::pool_call_allowed(state, &mcp, &spec, tool).await {
        return named(withheld_outcome(id, name, refused));
    }
    let answer = match state.upstreams.call(&spec, tool, arguments).await {
        Ok(value) => outcome(result(id, value), "ok", 200),
        Err(UpstreamError::UnknownTool(_)) => outcome(
            error(id, INVALID_PARAMS, format!("Unknown tool: {name}")),
            "unknown_tool",
            404,
        ),
        // The tool's own error answer goes to the client as the tool gave it.
        Err(UpstreamError::Rejected { code, message }) => {
            outcome(error(id, i64::from(code), message), "upstream_error", 502)
        }
        // Transport detail is logged, never answered.
        Err(e @ UpstreamError::Timeout(_)) => {
            tracing::warn!(mcp = mcp_id, upstream = %spec.name, error = %e, "tools/call timed out");
            outcome(
                error(
                    id,
                    INTERNAL_ERROR,
                    format!("Upstream MCP '{mcp_id}' timed out"),
                ),
                "upstream_timeout",
                504,
            )
        }
        Err(e @ UpstreamError::Failed(_)) => {
            tracing::warn!(mcp = mcp_id, upstream = %spec.name, error = %e, "tools/call failed");
            outcome(
                error(
                    id,
                    INTERNAL_ERROR,
                    format!("Upstream MCP '{mcp_id}' failed"),
                ),
                "upstream_error",
                502,
            )
        }
    };
    named(answer)
}
