//! Per-tool grants as operators write them: `--mcp github` (every tool) or
//! `--mcp github:get_issue,search_issues` (only those), and the tool names
//! such a list may hold. The console's tool picker checks typed names here
//! too, so both front ends accept exactly the same grants.

use super::{Field, RuleError, is_slug, one_visible_line, slug};
use crate::domain::{McpGrant, ToolAccess};

/// Longest tool name accepted (the MCP specification's own limit).
pub const TOOL_NAME_MAX: usize = 128;
/// Most tools one grant may list: enough for any real server, and it keeps
/// a key's cached grant (and its audit line) bounded.
pub const TOOLS_PER_GRANT_MAX: usize = 1000;

/// A tool name in a grant: 1–128 characters, no whitespace, no `,` (which
/// separates names in `--mcp`), nothing invisible. The MCP specification
/// asks servers for `A-Z a-z 0-9 _ - .`; other printable names are taken
/// too, since a grant has to name the upstream's tools as they are.
pub fn tool_name(raw: &str) -> Result<String, RuleError> {
    let bad = |why: String| RuleError {
        field: Field::McpAccess,
        message: why,
    };
    let len = raw.chars().count();
    if len == 0 {
        return Err(bad("a tool name must not be empty".into()));
    }
    if len > TOOL_NAME_MAX {
        return Err(bad(format!(
            "tool name is {len} characters; the limit is {TOOL_NAME_MAX}"
        )));
    }
    if let Some(c) = raw.chars().find(|c| c.is_whitespace() || *c == ',') {
        return Err(bad(format!(
            "tool name '{}' contains {}; tool names have no spaces or commas",
            raw.escape_debug(),
            if c == ',' { "','" } else { "a space" }
        )));
    }
    one_visible_line(raw, "tool name", Field::McpAccess)?;
    Ok(raw.to_string())
}

/// A tool list: each name checked, at least one, at most
/// [`TOOLS_PER_GRANT_MAX`]; sorted with duplicates dropped.
pub fn tool_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<ToolAccess, RuleError> {
    let tools = names
        .into_iter()
        .map(tool_name)
        .collect::<Result<Vec<_>, _>>()?;
    let access = ToolAccess::only(tools);
    match &access {
        ToolAccess::Only(tools) if tools.is_empty() => Err(RuleError {
            field: Field::McpAccess,
            message: "list at least one tool, or give the MCP id alone for all its tools".into(),
        }),
        ToolAccess::Only(tools) if tools.len() > TOOLS_PER_GRANT_MAX => Err(RuleError {
            field: Field::McpAccess,
            message: format!(
                "{} tools listed; one MCP's grant may list at most {TOOLS_PER_GRANT_MAX}",
                tools.len()
            ),
        }),
        _ => Ok(access),
    }
}

/// One `--mcp` value other than `all`: an MCP id, alone (every tool) or
/// followed by `:` and a comma-separated tool list.
pub fn mcp_grant(raw: &str) -> Result<McpGrant, RuleError> {
    let raw = raw.trim();
    let (id, tools) = match raw.split_once(':') {
        Some((id, tools)) => (id, Some(tools)),
        None => (raw, None),
    };
    if !is_slug(id) {
        let mut e = slug(id, "MCP id").expect_err("not a slug");
        e.field = Field::McpAccess;
        if tools.is_some() {
            e.message
                .push_str(" (write MCP:TOOL,TOOL, e.g. github:get_issue,search_issues)");
        }
        return Err(e);
    }
    let tools = match tools {
        None => ToolAccess::All,
        Some(list) => {
            // `github:` names no tool at all: say so, rather than "empty name".
            let names: Vec<&str> = match list.trim() {
                "" => Vec::new(),
                list => list.split(',').map(str::trim).collect(),
            };
            tool_list(names).map_err(|mut e| {
                e.message = format!("--mcp {id}: {}", e.message);
                e
            })?
        }
    };
    Ok(McpGrant {
        slug: id.to_string(),
        tools,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_read_as_written() {
        assert_eq!(mcp_grant("github").unwrap(), McpGrant::all_tools("github"));
        assert_eq!(
            mcp_grant("github:search_issues,get_issue,get_issue").unwrap(),
            McpGrant {
                slug: "github".into(),
                tools: ToolAccess::Only(vec!["get_issue".into(), "search_issues".into()]),
            }
        );
        // A tool name may hold ':' after the first one, and dots.
        assert_eq!(
            mcp_grant("fs:a:b,v1.read").unwrap().describe(),
            "fs:a:b,v1.read"
        );
    }

    #[test]
    fn bad_grants_say_what_is_wrong_in_one_line() {
        for (raw, says) in [
            ("github:", "list at least one tool"),
            ("github:a,,b", "must not be empty"),
            ("github:a b", "no spaces or commas"),
            ("Git Hub:x", "MCP id 'Git Hub' is not valid"),
            ("git_hub", "MCP id 'git_hub' is not valid"),
        ] {
            let e = mcp_grant(raw).unwrap_err();
            assert!(e.message.contains(says), "{raw}: {}", e.message);
            assert!(!e.message.contains('\n'));
            assert_eq!(e.field, Field::McpAccess);
        }
        let long = format!("gh:{}", "t".repeat(TOOL_NAME_MAX + 1));
        assert!(
            mcp_grant(&long)
                .unwrap_err()
                .message
                .contains("limit is 128")
        );
        let many: Vec<String> = (0..=TOOLS_PER_GRANT_MAX).map(|i| format!("t{i}")).collect();
        let e = mcp_grant(&format!("gh:{}", many.join(","))).unwrap_err();
        assert!(e.message.contains("at most 1000"), "{}", e.message);
    }

    #[test]
    fn a_tool_list_is_a_set() {
        let tools = tool_list(["b", "a", "b"]).unwrap();
        assert!(tools.allows("a") && tools.allows("b") && !tools.allows("c"));
        assert_eq!(tools, ToolAccess::Only(vec!["a".into(), "b".into()]));
    }
}
