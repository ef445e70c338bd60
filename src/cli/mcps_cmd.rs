//! `plexmcp mcps …`

use chrono::Utc;

use super::format::{self, clean, human};
use super::{CliResult, McpsCommand, pins_cmd};
use crate::admin::{self, McpRequest};
use crate::config;
use crate::domain::Mcp;
use crate::store::{PinSummary, Store};

pub fn run(store: &mut Store, org_slug: &str, cmd: McpsCommand) -> CliResult {
    let org = store.org(org_slug)?;
    let actor = config::actor_from_env();
    let now = Utc::now();
    match cmd {
        McpsCommand::Add {
            id,
            stdio,
            url,
            name,
            env,
            inherit_env,
            header,
            timeout,
            pinned,
        } => {
            let req = McpRequest {
                slug: id,
                name,
                stdio,
                url,
                env,
                inherit_env,
                headers: header,
                timeout_secs: timeout,
                pinned,
            };
            let mcp = admin::add_mcp(store, &org, &req, &actor, now)?;
            println!(
                "Added MCP '{}' ({} {}{}) to organization '{}'.",
                mcp.slug,
                mcp.transport.kind(),
                clean(&mcp.transport.target()),
                if pinned { ", pinned" } else { "" },
                org.slug
            );
            Ok(())
        }
        McpsCommand::List { json } => {
            let mcps = store.list_mcps(org.row_id)?;
            let pins = store.mcp_pin_summaries(org.row_id)?;
            let pins_of = |m: &Mcp| pins.get(&m.slug).copied().unwrap_or_default();
            if json {
                let items: Vec<_> = mcps
                    .iter()
                    .map(|m| format::mcp_json(m, pins_of(m)))
                    .collect();
                return Ok(format::print_json(&items)?);
            }
            if mcps.is_empty() {
                println!(
                    "No MCPs in organization '{}'. Add one with: plexmcp mcps add ID --stdio \"CMD ARGS\" | --url URL",
                    org.slug
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = mcps
                .iter()
                .map(|m| {
                    let pins = pins_of(m);
                    vec![
                        m.slug.clone(),
                        clean(&m.name),
                        m.transport.kind().to_string(),
                        clean(&m.transport.target()),
                        format!("{}s", m.timeout.as_secs()),
                        pinned_cell(pins),
                        clean(&m.transport.secret_names().join(",")),
                        clean(&m.transport.inherited_names().join(",")),
                    ]
                })
                .collect();
            format::print_table(
                &[
                    "ID",
                    "NAME",
                    "TRANSPORT",
                    "TARGET",
                    "TIMEOUT",
                    "PINNED",
                    "ENV/HEADERS",
                    "INHERITS",
                ],
                &rows,
            );
            Ok(())
        }
        McpsCommand::Show { id, json } => {
            let mcp = store.mcp_by_slug(org.row_id, &id)?.ok_or_else(|| {
                super::CliError::Failed(format!(
                    "no MCP '{id}' in organization '{}' (see `plexmcp mcps list`)",
                    org.slug
                ))
            })?;
            let pins = admin::pin_summary(store, &org, &id)?;
            if json {
                return Ok(format::print_json(&format::mcp_json(&mcp, pins))?);
            }
            show(&mcp, pins);
            Ok(())
        }
        McpsCommand::Remove { id } => {
            admin::remove_mcp(store, &org, &id, &actor, now)?;
            println!("Removed MCP '{id}'. Keys can no longer call it.");
            Ok(())
        }
        McpsCommand::Pin { id } => pins_cmd::pin(store, &org, &id, &actor, now),
        McpsCommand::Unpin { id } => pins_cmd::unpin(store, &org, &id, &actor, now),
        McpsCommand::Approve { id, tool } => {
            pins_cmd::approve(store, &org, &id, tool.as_deref(), &actor, now)
        }
        McpsCommand::Tools { id, json } => pins_cmd::tools(store, &org, &id, json),
    }
}

/// `yes (N withheld)` / `yes` / `no`, for the MCP table.
fn pinned_cell(pins: PinSummary) -> String {
    match (pins.pinned, format::withheld(pins)) {
        (false, _) => "no".to_owned(),
        (true, 0) => "yes".to_owned(),
        (true, n) => format!("yes ({n} withheld)"),
    }
}

fn show(mcp: &Mcp, pins: PinSummary) {
    let changed = pins
        .last_changed
        .map_or_else(|| "never (no listing seen yet)".to_owned(), human);
    let lines = [
        ("ID", mcp.slug.clone()),
        ("Name", clean(&mcp.name)),
        ("Transport", mcp.transport.kind().to_string()),
        ("Target", clean(&mcp.transport.target())),
        ("Timeout", format!("{}s", mcp.timeout.as_secs())),
        (
            "Env/headers",
            clean(&mcp.transport.secret_names().join(",")),
        ),
        ("Created", human(mcp.created_at)),
        ("Pinned", if pins.pinned { "yes" } else { "no" }.to_owned()),
        ("Tools", pins.tools.to_string()),
        ("Withheld", format::withheld(pins).to_string()),
        ("Tools changed", changed),
    ];
    for (label, value) in lines {
        println!("{:<14}{value}", format!("{label}:"));
    }
    if format::withheld(pins) > 0 {
        println!(
            "Review with `plexmcp mcps tools {}`; approve with `plexmcp mcps approve {} [TOOL]`.",
            mcp.slug, mcp.slug
        );
    }
}
