//! `plexmcp mcps pin | unpin | approve | tools`: tool pinning (see
//! `server::tool_pins`). Each change is one audited store transaction and
//! bumps the auth generation, so a running gateway withholds or serves a
//! tool from its next request on.

use serde::Serialize;

use super::CliResult;
use super::format::{self, clean, human, rfc3339};
use crate::admin;
use crate::domain::{Actor, Org, Timestamp};
use crate::store::{Store, ToolRecord, ToolState};

pub fn pin(store: &mut Store, org: &Org, id: &str, actor: &Actor, now: Timestamp) -> CliResult {
    if !admin::set_mcp_pinned(store, org, id, true, actor, now)? {
        println!("MCP '{id}' is already pinned.");
        return Ok(());
    }
    let summary = admin::pin_summary(store, org, id)?;
    match summary.tools {
        0 => println!(
            "Pinned MCP '{id}'. Its first tool listing will be trusted; later new or changed tools are withheld until approved."
        ),
        n => println!(
            "Pinned MCP '{id}' with its {n} tools as listed; new or changed tools are withheld until approved."
        ),
    }
    Ok(())
}

pub fn unpin(store: &mut Store, org: &Org, id: &str, actor: &Actor, now: Timestamp) -> CliResult {
    if admin::set_mcp_pinned(store, org, id, false, actor, now)? {
        println!("Unpinned MCP '{id}'. Its tools are served as its upstream lists them.");
    } else {
        println!("MCP '{id}' is not pinned.");
    }
    Ok(())
}

pub fn approve(
    store: &mut Store,
    org: &Org,
    id: &str,
    tool: Option<&str>,
    actor: &Actor,
    now: Timestamp,
) -> CliResult {
    let approved = admin::approve_tools(store, org, id, tool, actor, now)?;
    if approved.is_empty() {
        println!("MCP '{id}' has no tools awaiting approval.");
        return Ok(());
    }
    let names: Vec<String> = approved.iter().map(|n| clean(n)).collect();
    println!(
        "Approved {} tool{} of MCP '{id}': {}.",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    Ok(())
}

pub fn tools(store: &Store, org: &Org, id: &str, json: bool) -> CliResult {
    let pinned = admin::pin_summary(store, org, id)?.pinned;
    let tools = admin::mcp_tools(store, org, id)?;
    if json {
        let items: Vec<ToolJson> = tools.iter().map(|t| tool_json(t, pinned)).collect();
        return Ok(format::print_json(&items)?);
    }
    if tools.is_empty() {
        println!(
            "No tools recorded for MCP '{id}' yet: they are recorded when a client first lists them."
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tools
        .iter()
        .map(|t| {
            vec![
                clean(&t.name),
                state_text(t.state, pinned),
                human(t.first_seen_at),
                human(t.changed_at),
            ]
        })
        .collect();
    format::print_table(&["TOOL", "STATE", "FIRST SEEN", "LAST CHANGED"], &rows);
    let pending = tools.iter().filter(|t| t.state.is_pending()).count();
    if pinned && pending > 0 {
        println!(
            "{pending} withheld; review with `plexmcp mcps tools {id} --json` (old and new), approve with `plexmcp mcps approve {id} [TOOL]`."
        );
    }
    Ok(())
}

/// A state as the table shows it: pending tools say they are withheld
/// only where they are (a pinned MCP).
fn state_text(state: ToolState, pinned: bool) -> String {
    if pinned && state.is_pending() {
        format!("{} — withheld", state.as_str())
    } else {
        state.as_str().to_owned()
    }
}

/// A tool's fingerprint and what it covers.
#[derive(Debug, Serialize)]
pub struct FingerprintJson {
    pub hash: String,
    /// The name, description and input schema fingerprinted.
    pub tool: serde_json::Value,
}

/// The JSON tool object of `mcps tools --json`.
#[derive(Debug, Serialize)]
pub struct ToolJson {
    pub name: String,
    /// `approved`, `new`, `changed` or `removed`.
    pub state: &'static str,
    /// Kept from clients now (a new or changed tool of a pinned MCP).
    pub withheld: bool,
    pub first_seen_at: String,
    pub changed_at: String,
    pub removed_at: Option<String>,
    /// As the upstream lists it (or listed it last).
    pub seen: FingerprintJson,
    /// As approved; `null` for a tool never approved.
    pub approved: Option<FingerprintJson>,
}

fn fingerprint_json(hash: &str, canonical: &str) -> FingerprintJson {
    FingerprintJson {
        hash: hash.to_owned(),
        // Stored canonical JSON; text that does not parse is shown as text.
        tool: serde_json::from_str(canonical)
            .unwrap_or_else(|_| serde_json::Value::String(canonical.to_owned())),
    }
}

fn tool_json(tool: &ToolRecord, pinned: bool) -> ToolJson {
    ToolJson {
        name: tool.name.clone(),
        state: tool.state.as_str(),
        withheld: pinned && tool.state.is_pending(),
        first_seen_at: rfc3339(tool.first_seen_at),
        changed_at: rfc3339(tool.changed_at),
        removed_at: tool.removed_at.map(rfc3339),
        seen: fingerprint_json(&tool.seen_hash, &tool.seen_tool),
        approved: tool
            .approved_hash
            .as_deref()
            .zip(tool.approved_tool.as_deref())
            .map(|(hash, canonical)| fingerprint_json(hash, canonical)),
    }
}
