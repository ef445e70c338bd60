//! What the aggregate endpoint `/mcp` shows of its members: the lists it
//! gathers and how their entries are renamed (per `names`), the union of
//! the members' capabilities, and the instructions naming them.

use rmcp::model::{
    ClientRequest, ErrorData, PaginatedRequestParams, PromptsCapability, ResourcesCapability,
    ServerCapabilities, ServerPeerInfo, ToolsCapability,
};
use serde_json::Value;

use super::names::{self, prefixed, wrap_uri};
use super::session_upstream::optional;

/// The lists the aggregate gathers, with where each keeps its entries and
/// which field of an entry names it.
#[derive(Clone, Copy)]
pub enum List {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl List {
    pub fn field(self) -> &'static str {
        match self {
            List::Tools => "tools",
            List::Prompts => "prompts",
            List::Resources => "resources",
            List::Templates => "resourceTemplates",
        }
    }

    pub fn request(self, cursor: Option<String>) -> ClientRequest {
        let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        match self {
            List::Tools => ClientRequest::ListToolsRequest(optional(params)),
            List::Prompts => ClientRequest::ListPromptsRequest(optional(params)),
            List::Resources => ClientRequest::ListResourcesRequest(optional(params)),
            List::Templates => ClientRequest::ListResourceTemplatesRequest(optional(params)),
        }
    }

    /// Whether an upstream with `capabilities` has this list at all.
    pub fn offered(self, capabilities: &ServerCapabilities) -> bool {
        match self {
            List::Tools => capabilities.tools.is_some(),
            List::Prompts => capabilities.prompts.is_some(),
            List::Resources | List::Templates => capabilities.resources.is_some(),
        }
    }

    /// Names `entry` of MCP `slug` as the aggregate lists it.
    pub fn rename(self, slug: &str, entry: &mut Value) {
        let (field, map): (&str, fn(&str, &str) -> String) = match self {
            List::Tools | List::Prompts => ("name", prefixed),
            List::Resources => ("uri", wrap_uri),
            List::Templates => ("uriTemplate", wrap_uri),
        };
        if let Some(own) = entry.get(field).and_then(Value::as_str) {
            let mapped = map(slug, own);
            entry[field] = Value::String(mapped);
        }
    }
}

/// The typed result for a gathered list.
pub fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value).map_err(|e| {
        tracing::warn!(error = %e, "aggregate list: entries the gateway cannot represent");
        ErrorData::internal_error("an upstream listed entries the gateway cannot read", None)
    })
}

/// What the aggregate offers: whatever any member offers.
pub fn union<'a>(members: impl Iterator<Item = &'a ServerPeerInfo>) -> ServerCapabilities {
    let mut all = ServerCapabilities::default();
    for info in members {
        let own = &info.capabilities;
        if let Some(tools) = &own.tools {
            let merged = all.tools.get_or_insert_with(ToolsCapability::default);
            merged.list_changed = either(merged.list_changed, tools.list_changed);
        }
        if let Some(prompts) = &own.prompts {
            let merged = all.prompts.get_or_insert_with(PromptsCapability::default);
            merged.list_changed = either(merged.list_changed, prompts.list_changed);
        }
        if let Some(resources) = &own.resources {
            let merged = all
                .resources
                .get_or_insert_with(ResourcesCapability::default);
            merged.list_changed = either(merged.list_changed, resources.list_changed);
            merged.subscribe = either(merged.subscribe, resources.subscribe);
        }
        if own.completions.is_some() {
            all.completions.get_or_insert_with(Default::default);
        }
        if own.logging.is_some() {
            all.logging.get_or_insert_with(Default::default);
        }
    }
    all
}

fn either(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (None, None) => None,
        _ => Some(false),
    }
}

pub fn instructions(members: &[(&str, &ServerPeerInfo)]) -> String {
    let mut text = format!(
        "The MCP servers this API key may use, behind one: tools and prompts are named \
         <mcp_id>{sep}<name>, resources are {scheme}<mcp_id>/<uri>. Connected: {list}.",
        sep = names::SEPARATOR,
        scheme = names::URI_SCHEME,
        list = if members.is_empty() {
            "none".to_owned()
        } else {
            members
                .iter()
                .map(|(slug, _)| *slug)
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    for (slug, info) in members {
        if let Some(own) = info.instructions.as_deref().filter(|s| !s.is_empty()) {
            text.push_str(&format!("\n\n[{slug}] {own}"));
        }
    }
    text
}
