//! `plexmcp keys access KEY`: which tools of which MCPs a key can call
//! now — its grant met with the tool lists the upstreams give right now
//! (started for the question and stopped after it, as the server would
//! start them). An upstream that cannot be reached is said so, with the
//! grant shown anyway.

use chrono::Utc;
use serde_json::json;

use super::CliResult;
use super::format::{self, clean};
use crate::access_preview::{Callable, McpPreview, ToolList, preview};
use crate::domain::{KeyRecord, KeyStatus, Org};
use crate::server::tool_lists::live_tool_lists;
use crate::store::Store;
use crate::upstream::Upstreams;

pub fn run(store: &Store, org: &Org, key: &KeyRecord, json: bool) -> CliResult {
    let granted: Vec<_> = store
        .list_mcps(org.row_id)?
        .into_iter()
        .filter(|m| key.access.allows(&m.slug))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lists = runtime.block_on(async {
        let upstreams = Upstreams::new();
        let lists = live_tool_lists(&upstreams, &granted).await;
        upstreams.shutdown().await;
        lists
    });
    let shown = preview(&key.access, lists.iter().map(|(s, _)| s.as_str()), |slug| {
        lists
            .iter()
            .find(|(s, _)| s == slug)
            .map_or(&ToolList::Pending, |(_, l)| l)
    });
    let status = key.status(Utc::now());
    if json {
        let mcps: Vec<_> = shown.iter().map(preview_json).collect();
        let out = json!({
            "key": key.prefix(),
            "status": status.as_str(),
            "mcp_access": format::access_json(&key.access),
            "tool_access": format::tool_access_json(&key.access),
            "mcps": mcps,
        });
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
    if shown.is_empty() {
        println!("  no MCPs (its access is {})", key.access.describe());
        return Ok(());
    }
    let width = shown.iter().map(|p| p.slug.len()).max().unwrap_or(0);
    for mcp in &shown {
        println!("  {:width$}  {}", mcp.slug, clean(&mcp.summary()));
    }
    Ok(())
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
            missing,
        } => {
            out["reachable"] = json!(true);
            out["tools"] = json!(callable);
            out["offered"] = json!(offered);
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
