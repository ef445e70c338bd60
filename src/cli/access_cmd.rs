//! `plexmcp keys access KEY`: which tools of which MCPs a key can call
//! now — its grant met with the tool lists the upstreams give right now
//! (started for the question and stopped after it, as the server would
//! start them). An upstream that cannot be reached is said so, with the
//! grant shown anyway.

use chrono::Utc;
use serde_json::json;

use super::CliResult;
use super::format::{self, clean};
use crate::access_preview::{Callable, McpPreview, ToolList, change_lines, preview};
use crate::domain::{KeyRecord, KeyStatus, McpAccess, Org};
use crate::server::tool_lists::live_tool_lists;
use crate::store::{Store, StoreError};
use crate::upstream::Upstreams;

pub fn run(
    store: &Store,
    org: &Org,
    key: &KeyRecord,
    proposed: Option<&McpAccess>,
    json: bool,
) -> CliResult {
    let mcps = store.list_mcps(org.row_id)?;
    if let Some(McpAccess::Only(grants)) = proposed
        && let Some(unknown) = grants
            .iter()
            .find(|g| !mcps.iter().any(|m| m.slug == g.slug))
    {
        return Err(StoreError::UnknownMcp {
            slug: unknown.slug.clone(),
            org: org.slug.clone(),
        }
        .into());
    }
    // Ask each upstream either access grants, once.
    let asked = mcps
        .into_iter()
        .filter(|m| key.access.allows(&m.slug) || proposed.is_some_and(|p| p.allows(&m.slug)))
        .map(|m| store.mcp_pins(m.row_id).map(|pins| (m, pins)))
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lists = runtime.block_on(async {
        let upstreams = Upstreams::new();
        let lists = live_tool_lists(&upstreams, &asked).await;
        upstreams.shutdown().await;
        lists
    });
    let shown_for = |access: &McpAccess| {
        preview(access, lists.iter().map(|(s, _)| s.as_str()), |slug| {
            lists
                .iter()
                .find(|(s, _)| s == slug)
                .map_or(&ToolList::Pending, |(_, l)| l)
        })
    };
    let now = shown_for(&key.access);
    let after = proposed.map(|p| (p, shown_for(p)));
    let status = key.status(Utc::now());
    if json {
        let mut out = json!({
            "key": key.prefix(),
            "status": status.as_str(),
            "mcp_access": format::access_json(&key.access),
            "tool_access": format::tool_access_json(&key.access),
            "mcps": now.iter().map(preview_json).collect::<Vec<_>>(),
        });
        if let Some((access, shown)) = &after {
            out["after_edit"] = json!({
                "mcp_access": format::access_json(access),
                "tool_access": format::tool_access_json(access),
                "mcps": shown.iter().map(preview_json).collect::<Vec<_>>(),
            });
        }
        return Ok(format::print_json(&out)?);
    }
    let name = clean(&key.name);
    match status {
        KeyStatus::Active => println!("Key {} (\"{name}\") can call now:", key.prefix()),
        other => println!(
            "Key {} (\"{name}\") is {}: it can call nothing now. Its grant:",
            key.prefix(),
            other.as_str()
        ),
    }
    print_previews(&key.access, &now);
    if let Some((access, shown)) = &after {
        println!("With access {} (not saved):", access.describe());
        print_previews(access, shown);
        for line in change_lines(&now, shown) {
            println!("  {}", clean(&line));
        }
    }
    Ok(())
}

fn print_previews(access: &McpAccess, shown: &[McpPreview]) {
    if shown.is_empty() {
        println!("  no MCPs (its access is {})", access.describe());
        return;
    }
    let width = shown.iter().map(|p| p.slug.len()).max().unwrap_or(0);
    for mcp in shown {
        println!("  {:width$}  {}", mcp.slug, clean(&mcp.summary()));
    }
}

fn preview_json(mcp: &McpPreview) -> serde_json::Value {
    let mut out = json!({
        "mcp": mcp.slug,
        "granted": format::tools_json(&mcp.granted),
    });
    match &mcp.now {
        Callable::Tools {
            callable,
            offered,
            withheld,
            missing,
        } => {
            out["reachable"] = json!(true);
            out["tools"] = json!(callable);
            out["offered"] = json!(offered);
            out["withheld"] = json!(withheld);
            out["missing"] = json!(missing);
        }
        Callable::Unreachable(why) => {
            out["reachable"] = json!(false);
            out["error"] = json!(why);
        }
        // Not reached: every granted MCP was asked above.
        Callable::Pending => out["reachable"] = json!(false),
    }
    out
}
