//! Where tool pinning (`server::tool_pins`) meets the MCP endpoints: the
//! tool lists a session or stateless request gets on `/mcp/{id}` and
//! `/mcp` lose what a pinned MCP withholds, and `guard` refuses calls to
//! such tools before anything reaches rmcp or an upstream, on every path
//! (session, its direct lane, stateless).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmcp::model::ListToolsResult;
use serde_json::{Value, json};

use super::Grant;
use super::aggregate::AggregateGrant;
use super::names::split_name;
use super::sessions::Scope;
use crate::server::tool_pins::{McpRef, PinsAt, TOOL_WITHHELD_CODE, Withheld};

/// `/mcp/{id}`: one page (or all) of the upstream's tools.
pub async fn withhold_page(grant: &Grant, listed: &mut ListToolsResult, paged: bool) {
    if let Scope::One(row, slug) = &grant.binding.scope {
        let complete = !paged && listed.next_cursor.is_none();
        let mcp = McpRef { row: *row, slug };
        grant
            .pins
            .withhold_tools(mcp, &mut listed.tools, complete)
            .await;
    }
}

/// `/mcp`: every tool of the member `slug`, before they are renamed.
pub async fn withhold_member(grant: &AggregateGrant, slug: &str, entries: &mut Vec<Value>) {
    if let Some(row) = row_of(&grant.binding.scope, slug) {
        let mcp = McpRef { row, slug };
        grant.pins.withhold_entries(mcp, entries).await;
    }
}

fn row_of(scope: &Scope, slug: &str) -> Option<i64> {
    scope
        .members()
        .into_iter()
        .find(|(_, own)| *own == slug)
        .map(|(row, _)| row)
}

/// The answer to a `tools/call` of `name` (as the client named it: on
/// `/mcp`, `<mcp_id>__<tool>`) that the pins refuse, if they do; `id` is
/// the request's, so the client's SDK hands the message to its caller.
pub async fn refuse_call(
    pins: &PinsAt,
    scope: &Scope,
    name: &str,
    id: Option<&Value>,
) -> Option<Response> {
    let (row, slug, tool) = match scope {
        Scope::One(row, slug) => (*row, slug.as_str(), name),
        Scope::All(_) => {
            // A name the session cannot route is the aggregate's to answer.
            let (slug, tool) = split_name(name)?;
            (row_of(scope, slug)?, slug, tool)
        }
    };
    let refused = pins.refusal(McpRef { row, slug }, tool).await?;
    let (code, message, data) = match &refused {
        Withheld::Unknown => (-32602, format!("Unknown tool: {name}"), json!(null)),
        Withheld::Unreadable => (-32603, "Internal error".to_owned(), json!(null)),
        withheld => (
            TOOL_WITHHELD_CODE,
            withheld.message().unwrap_or_default(),
            json!({ "code": "tool_withheld", "mcp": slug, "tool": tool }),
        ),
    };
    let mut error = json!({ "code": code, "message": message });
    if !data.is_null() {
        error["data"] = data;
    }
    let body =
        json!({ "jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error });
    // 200, as Streamable HTTP answers any JSON-RPC error to a request.
    Some((StatusCode::OK, axum::Json(body)).into_response())
}
