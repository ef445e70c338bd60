//! Tool pinning for the CLI and the console: pin, unpin, approve and
//! read an MCP's recorded tools. The store does the work in one audited
//! transaction each; here the operator's input is checked and "nothing
//! to approve" becomes a clear error, the same for both front ends.

use super::{AdminError, Result};
use crate::domain::{Actor, Org, Timestamp};
use crate::rules;
use crate::store::{PinSummary, Store, StoreError, ToolRecord};

/// Longest tool name an approval may name: no upstream tool name that
/// long is worth typing, and the error that echoes it stays one line.
const MAX_TOOL_NAME: usize = 1024;

/// Pins (or with `pinned == false` unpins) the MCP `slug`; `false` if it
/// already was so. Pinning approves what it lists now; unpinning approves
/// whatever was pending, since nothing of an unpinned MCP is withheld.
pub fn set_mcp_pinned(
    store: &mut Store,
    org: &Org,
    slug: &str,
    pinned: bool,
    actor: &Actor,
    now: Timestamp,
) -> Result<bool> {
    Ok(store.set_mcp_pinned(org.row_id, slug, pinned, actor, now)?)
}

/// Approves the pending tools of `slug` (all, or only `tool`) as its
/// upstream lists them now; each approval is audited. Naming a tool that
/// is already approved is an error, so a script learns it approved
/// nothing; with no tool named, an empty answer means none were pending.
pub fn approve_tools(
    store: &mut Store,
    org: &Org,
    slug: &str,
    tool: Option<&str>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Vec<String>> {
    if let Some(tool) = tool
        && (tool.is_empty() || tool.len() > MAX_TOOL_NAME || rules::visible(tool) != tool)
    {
        return Err(AdminError::Store(StoreError::NotFound(format!(
            "MCP '{slug}' has no tool named '{}' (see `plexmcp mcps tools {slug}`)",
            rules::visible(&tool.chars().take(64).collect::<String>())
        ))));
    }
    let approved = store.approve_mcp_tools(org.row_id, slug, tool, actor, now)?;
    if let Some(tool) = tool
        && approved.is_empty()
    {
        return Err(AdminError::Store(StoreError::Conflict(format!(
            "tool '{tool}' of MCP '{slug}' is already approved; there is nothing to approve"
        ))));
    }
    Ok(approved)
}

/// Every recorded tool of the MCP `slug`, by name.
pub fn mcp_tools(store: &Store, org: &Org, slug: &str) -> Result<Vec<ToolRecord>> {
    Ok(store.mcp_tools(org.row_id, slug)?)
}

/// Pinning at a glance for the MCP `slug`.
pub fn pin_summary(store: &Store, org: &Org, slug: &str) -> Result<PinSummary> {
    let summaries = store.mcp_pin_summaries(org.row_id)?;
    summaries.get(slug).copied().ok_or_else(|| {
        AdminError::Store(StoreError::NotFound(format!(
            "no MCP '{slug}' in this organization (see `plexmcp mcps list`)"
        )))
    })
}
