//! How a granted MCP's tool list is kept: `key_mcp_access.tools_json`,
//! `NULL` for every tool or a JSON array of names. A value that does not
//! read as a list of names (written by another program) grants no tools:
//! a damaged grant fails closed, never open.

use crate::domain::{McpGrant, ToolAccess};

/// The column's value for `tools`.
pub(super) fn tools_column(tools: &ToolAccess) -> Option<String> {
    match tools {
        ToolAccess::All => None,
        // A list of strings always serializes.
        ToolAccess::Only(names) => Some(serde_json::to_string(names).unwrap_or_default()),
    }
}

/// The grant of MCP `slug` with the column's value `tools_json`.
pub(super) fn grant_from(slug: String, tools_json: Option<String>) -> McpGrant {
    let tools = match tools_json {
        None => ToolAccess::All,
        Some(json) => ToolAccess::only(serde_json::from_str(&json).unwrap_or_else(|_| {
            tracing::warn!(mcp = %slug, "unreadable tool list in key_mcp_access: no tools granted");
            Vec::new()
        })),
    };
    McpGrant { slug, tools }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_lists_round_trip_and_damaged_ones_grant_nothing() {
        let only = ToolAccess::only(vec!["b".into(), "a".into()]);
        let stored = tools_column(&only);
        assert_eq!(stored.as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(grant_from("gh".into(), stored).tools, only);
        assert_eq!(grant_from("gh".into(), None).tools, ToolAccess::All);
        let damaged = grant_from("gh".into(), Some(r#"[1, 2]"#.into()));
        assert_eq!(damaged.tools, ToolAccess::Only(Vec::new()));
        assert!(!damaged.tools.allows("1"));
    }
}
