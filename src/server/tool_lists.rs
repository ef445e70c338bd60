//! The live tool lists behind the effective-access preview, asked of the
//! upstreams through a pool (the console passes its server's, so nothing
//! new is started when the server already runs them; `keys access` brings
//! its own). What an operator sees of a failure names only the MCP: the
//! detail (commands, URLs) is logged, as for callers of `/mcp`.

use crate::access_preview::ToolList;
use crate::domain::Mcp;
use crate::store::McpPins;
use crate::upstream::{UpstreamError, Upstreams};

/// Each of `mcps`' tool names now, in order, asked of all at once; with
/// each MCP's pins (as the store has them), the tools a pinned MCP holds
/// back are told apart from those clients are shown.
pub async fn live_tool_lists(
    upstreams: &Upstreams,
    mcps: &[(Mcp, McpPins)],
) -> Vec<(String, ToolList)> {
    let specs: Vec<_> = mcps.iter().map(|(m, _)| super::upstream_spec(m)).collect();
    let answers = upstreams.tools_of_each(&specs).await;
    mcps.iter()
        .zip(answers)
        .map(|((mcp, pins), answer)| {
            let list = match answer {
                Ok(tools) => {
                    let (shown, held): (Vec<_>, Vec<_>) = tools
                        .iter()
                        .partition(|t| super::tool_pins::shown_by(pins, t));
                    let names = |list: Vec<&rmcp::model::Tool>| {
                        list.into_iter().map(|t| t.name.to_string()).collect()
                    };
                    ToolList::Listed {
                        names: names(shown),
                        withheld: names(held),
                    }
                }
                Err(e) => {
                    tracing::warn!(mcp = %mcp.slug, error = %e, "tool list for the access preview");
                    ToolList::Unreachable(unreachable_text(&e))
                }
            };
            (mcp.slug.clone(), list)
        })
        .collect()
}

fn unreachable_text(error: &UpstreamError) -> String {
    match error {
        UpstreamError::Timeout(_) => "the upstream did not answer in time".to_owned(),
        _ => "the upstream cannot be reached".to_owned(),
    }
}
