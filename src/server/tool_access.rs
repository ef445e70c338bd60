//! The tool step of the one authorization decision: which tools of a
//! granted MCP a key may see and call. Every place that lists tools or
//! calls one asks here in one line — REST, one-shot JSON-RPC, `/mcp/{id}`
//! (sessions, their direct path, 2026-07-28) and the aggregate `/mcp` — so
//! a tool outside the key's grant is absent from every list it gets and
//! never reaches an upstream.
//!
//! Over JSON-RPC a refused call is answered exactly as an unknown tool is:
//! with a tool limit on an MCP, every name outside the list is refused here
//! before any upstream is asked, so the answer is the same whether the
//! upstream has such a tool or not. REST says `unauthorized_tool` (403),
//! likewise for any name outside the list. The check is a binary search of
//! the key's cached grant: nothing is allocated or read per request.
//!
//! Prompts and resources are not tools: a tool limit leaves them as they
//! are (README, "Per-tool access").

use rmcp::model::{ErrorData, Tool};
use serde_json::Value;

use super::ApiError;
use crate::auth::KeyState;
use crate::domain::KeyRecord;

/// Whether `key` may call (and see) `tool` of the MCP `slug`.
pub fn may_call(key: &KeyRecord, slug: &str, tool: &str) -> bool {
    key.access.allows_tool(slug, tool)
}

/// The REST answer for a tool outside the key's grant.
pub fn authorize_tool(key: &KeyRecord, slug: &str, tool: &str) -> Result<(), ApiError> {
    if may_call(key, slug, tool) {
        Ok(())
    } else {
        Err(ApiError::UnauthorizedTool)
    }
}

/// Whether a request the key may send to `slug` names a tool it may not
/// call: such a request is refused as an unknown tool, and recorded as
/// `unauthorized_tool` in the key's usage.
pub fn is_forbidden_tool(key: &KeyRecord, slug: &str, tool: &str) -> bool {
    key.access.allows(slug) && !may_call(key, slug, tool)
}

/// What a JSON-RPC client is told about a tool it may not call: word for
/// word what it is told about a tool that does not exist.
pub fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("Unknown tool: {name}"), None)
}

/// The key a request on an MCP endpoint was authorized with, carried in
/// its grant so the session's handler filters by the key as it is now
/// (each request brings the current one), not as it was at `initialize`.
#[derive(Clone)]
pub struct ToolGrant(KeyState);

impl ToolGrant {
    pub fn new(key: &KeyState) -> ToolGrant {
        ToolGrant(key.clone())
    }

    pub fn allows(&self, slug: &str, tool: &str) -> bool {
        may_call(&self.0, slug, tool)
    }

    /// Drops the tools of `slug` the key may not call from a typed list.
    pub fn retain_tools(&self, slug: &str, tools: &mut Vec<Tool>) {
        tools.retain(|tool| self.allows(slug, &tool.name));
    }

    /// Drops them from a list of tools as JSON (named by the upstream).
    pub fn retain_entries(&self, slug: &str, tools: &mut Vec<Value>) {
        tools.retain(|tool| {
            tool.get("name")
                .and_then(Value::as_str)
                .is_some_and(|name| self.allows(slug, name))
        });
    }
}
