//! `plexmcp mcps …`

use chrono::Utc;

use super::format::{self, clean};
use super::{CliResult, McpsCommand};
use crate::admin::{self, McpRequest};
use crate::config;
use crate::store::Store;

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
            };
            let mcp = admin::add_mcp(store, &org, &req, &actor, now)?;
            println!(
                "Added MCP '{}' ({} {}) to organization '{}'.",
                mcp.slug,
                mcp.transport.kind(),
                clean(&mcp.transport.target()),
                org.slug
            );
            Ok(())
        }
        McpsCommand::List { json } => {
            let mcps = store.list_mcps(org.row_id)?;
            if json {
                let items: Vec<_> = mcps.iter().map(format::mcp_json).collect();
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
                    vec![
                        m.slug.clone(),
                        clean(&m.name),
                        m.transport.kind().to_string(),
                        clean(&m.transport.target()),
                        format!("{}s", m.timeout.as_secs()),
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
                    "ENV/HEADERS",
                    "INHERITS",
                ],
                &rows,
            );
            Ok(())
        }
        McpsCommand::Remove { id } => {
            admin::remove_mcp(store, &org, &id, &actor, now)?;
            println!("Removed MCP '{id}'. Keys can no longer call it.");
            Ok(())
        }
    }
}
