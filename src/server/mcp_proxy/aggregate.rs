//! The downstream side of one session on the aggregate endpoint `/mcp`:
//! every MCP the key may use, behind one MCP server. At `initialize` the
//! session connects to each of them at once, each under its own timeout;
//! an upstream that cannot be reached is left out of the session (and
//! logged) rather than failing or stalling it. Lists are gathered from the
//! members concurrently and named per [`names`]; a request naming a tool,
//! prompt or resource goes to the one member it names, under the name the
//! upstream gave it. Like `/mcp/{mcp_id}`, each session has connections of
//! its own, so one client's notifications, log level, subscriptions and
//! server-to-client requests never reach another.

#![allow(deprecated)] // subscribe, logging and sampling belong to the revisions served here

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequest,
    CompleteRequestParams, CompleteResult, CompletionInfo, ErrorData, GetPromptRequest,
    GetPromptRequestParams, GetPromptResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, PromptsCapability, ReadResourceRequest,
    ReadResourceRequestParams, ReadResourceResponse, Reference, ResourcesCapability,
    ServerCapabilities, ServerConfig, ServerResult, SetLevelRequest, SetLevelRequestParams,
    SubscribeRequest, SubscribeRequestParams, ToolsCapability, UnsubscribeRequest,
    UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::handler::{SERVED_VERSIONS, negotiate};
use super::names::{self, prefixed, split_name, unwrap_uri, wrap_uri};
use super::relay::Link;
use super::session_upstream::{SessionUpstream, optional, unexpected};
use crate::upstream::UpstreamSpec;

/// Most pages read from one upstream for one list (a hostile upstream
/// could hand out cursors forever).
const MAX_PAGES: usize = 100;
/// Most entries taken from one upstream for one list.
const MAX_ENTRIES: usize = 10_000;

/// What a request on `/mcp` was authorized for: the MCPs the key may use.
#[derive(Clone)]
pub struct AggregateGrant {
    pub members: Vec<(String, UpstreamSpec)>,
    /// Filled at `initialize` with the links of the members reached.
    pub links: Arc<OnceLock<Vec<Arc<Link>>>>,
}

#[derive(Default)]
pub struct AggregateHandler {
    members: OnceLock<Vec<SessionUpstream>>,
    info: OnceLock<ServerConfig>,
}

/// The lists the aggregate gathers, with where each keeps its entries and
/// which field of an entry names it.
#[derive(Clone, Copy)]
enum List {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl List {
    fn field(self) -> &'static str {
        match self {
            List::Tools => "tools",
            List::Prompts => "prompts",
            List::Resources => "resources",
            List::Templates => "resourceTemplates",
        }
    }

    fn request(self, cursor: Option<String>) -> ClientRequest {
        let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        match self {
            List::Tools => ClientRequest::ListToolsRequest(optional(params)),
            List::Prompts => ClientRequest::ListPromptsRequest(optional(params)),
            List::Resources => ClientRequest::ListResourcesRequest(optional(params)),
            List::Templates => ClientRequest::ListResourceTemplatesRequest(optional(params)),
        }
    }

    /// Whether an upstream with `capabilities` has this list at all.
    fn offered(self, capabilities: &ServerCapabilities) -> bool {
        match self {
            List::Tools => capabilities.tools.is_some(),
            List::Prompts => capabilities.prompts.is_some(),
            List::Resources | List::Templates => capabilities.resources.is_some(),
        }
    }

    /// Names `entry` of MCP `slug` as the aggregate lists it.
    fn rename(self, slug: &str, entry: &mut Value) {
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

impl AggregateHandler {
    fn members(&self) -> Result<&[SessionUpstream], ErrorData> {
        self.members
            .get()
            .map(Vec::as_slice)
            .ok_or_else(|| ErrorData::invalid_request("the session is not initialized", None))
    }

    fn member(&self, slug: &str) -> Result<Option<&SessionUpstream>, ErrorData> {
        Ok(self.members()?.iter().find(|m| m.slug == slug))
    }

    /// Every entry of `list` from every member that offers it, renamed,
    /// asked of all at once; a member that fails is left out and logged.
    async fn gather(
        &self,
        list: List,
        context: &RequestContext<RoleServer>,
    ) -> Result<Value, ErrorData> {
        let members = self.members()?;
        let asked = members
            .iter()
            .filter(|m| list.offered(&m.info.capabilities))
            .map(|member| async move {
                let entries = all_pages(member, list, context).await;
                (member, entries)
            });
        let mut gathered = Vec::new();
        for (member, entries) in futures_util::future::join_all(asked).await {
            match entries {
                Ok(entries) => {
                    for mut entry in entries {
                        list.rename(&member.slug, &mut entry);
                        gathered.push(entry);
                    }
                }
                Err(e) => tracing::warn!(
                    mcp = %member.slug,
                    list = list.field(),
                    error = %e.message,
                    "aggregate list: upstream left out"
                ),
            }
        }
        Ok(json!({ list.field(): gathered }))
    }

    /// Forwards a request naming a tool or prompt to the member it names.
    async fn named<T>(
        &self,
        name: &str,
        what: &str,
        context: RequestContext<RoleServer>,
        build: impl FnOnce(String) -> ClientRequest,
        take: impl FnOnce(ServerResult) -> Option<T>,
    ) -> Result<T, ErrorData> {
        let unknown = || ErrorData::invalid_params(format!("Unknown {what}: {name}"), None);
        let (slug, own) = split_name(name).ok_or_else(unknown)?;
        let member = self.member(slug)?.ok_or_else(unknown)?;
        let answer = member.forward(build(own.to_owned()), &context).await?;
        take(answer).ok_or_else(|| unexpected(slug))
    }

    /// The member a resource URI given out here belongs to, and its own URI.
    fn by_uri<'a>(&self, uri: &'a str) -> Result<(&SessionUpstream, &'a str), ErrorData> {
        let unknown = || ErrorData::resource_not_found(format!("Unknown resource: {uri}"), None);
        let (slug, own) = unwrap_uri(uri).ok_or_else(unknown)?;
        let member = self.member(slug)?.ok_or_else(unknown)?;
        Ok((member, own))
    }
}

/// All pages of `list` from one member, within the caps.
async fn all_pages(
    member: &SessionUpstream,
    list: List,
    context: &RequestContext<RoleServer>,
) -> Result<Vec<Value>, ErrorData> {
    let mut entries = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = member.forward(list.request(cursor), context).await?;
        let mut page = serde_json::to_value(&page).map_err(|_| unexpected(&member.slug))?;
        let Some(Value::Array(listed)) = page.get_mut(list.field()).map(Value::take) else {
            return Err(unexpected(&member.slug));
        };
        if entries.len() + listed.len() > MAX_ENTRIES {
            return Err(ErrorData::internal_error(
                format!("more than {MAX_ENTRIES} {}", list.field()),
                None,
            ));
        }
        entries.extend(listed);
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => cursor = Some(next.to_owned()),
            _ => return Ok(entries),
        }
    }
    Err(ErrorData::internal_error(
        format!("more than {MAX_PAGES} pages"),
        None,
    ))
}

/// The typed result for a gathered list.
fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value).map_err(|e| {
        tracing::warn!(error = %e, "aggregate list: entries the gateway cannot represent");
        ErrorData::internal_error("an upstream listed entries the gateway cannot read", None)
    })
}

/// What the aggregate offers: whatever any member offers.
fn union(members: &[SessionUpstream]) -> ServerCapabilities {
    let mut all = ServerCapabilities::default();
    for member in members {
        let own = &member.info.capabilities;
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

fn instructions(members: &[SessionUpstream]) -> String {
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
                .map(|m| m.slug.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    for member in members {
        if let Some(own) = member
            .info
            .instructions
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            text.push_str(&format!("\n\n[{}] {own}", member.slug));
        }
    }
    text
}

impl ServerHandler for AggregateHandler {
    fn get_info(&self) -> ServerConfig {
        self.info.get().cloned().unwrap_or_default()
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [rmcp::model::ProtocolVersion]> {
        Cow::Borrowed(&SERVED_VERSIONS)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        if self.members.get().is_some() {
            return Err(ErrorData::invalid_request(
                "the session is already initialized",
                None,
            ));
        }
        let grant = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<AggregateGrant>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("request without authorization", None))?;
        context.peer.set_peer_info(request.clone());
        let opening = grant.members.iter().map(|(slug, spec)| {
            SessionUpstream::open(slug, spec, &request, &context.peer, Some(slug.clone()))
        });
        // Failures were logged by `open`; the session goes on without them.
        let members: Vec<SessionUpstream> = futures_util::future::join_all(opening)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        let _ = grant
            .links
            .set(members.iter().map(|m| m.link.clone()).collect());
        let mut info = InitializeResult::new(union(&members));
        info.protocol_version = negotiate(&request.protocol_version);
        info.server_info = Implementation::new("plexmcp", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(instructions(&members));
        let _ = self.info.set(info.clone());
        let _ = self.members.set(members);
        Ok(info)
    }

    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        // The gateway itself answers: a ping asks whether the session is alive.
        self.members().map(|_| ())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        typed(self.gather(List::Tools, &context).await?)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        self.named(
            &name,
            "tool",
            context,
            |own| {
                let mut request = request;
                request.name = Cow::Owned(own);
                ClientRequest::CallToolRequest(CallToolRequest::new(request))
            },
            |answer| match answer {
                ServerResult::CallToolResult(result) => Some(CallToolResponse::Complete(result)),
                _ => None,
            },
        )
        .await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        typed(self.gather(List::Prompts, &context).await?)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let name = request.name.clone();
        self.named(
            &name,
            "prompt",
            context,
            |own| {
                let mut request = request;
                request.name = own;
                ClientRequest::GetPromptRequest(GetPromptRequest::new(request))
            },
            |answer| match answer {
                ServerResult::GetPromptResult(result) => Some(GetPromptResponse::Complete(result)),
                _ => None,
            },
        )
        .await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        typed(self.gather(List::Resources, &context).await?)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        typed(self.gather(List::Templates, &context).await?)
    }

    async fn read_resource(
        &self,
        mut request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let asked = request.uri.clone();
        let (member, own) = self.by_uri(&asked)?;
        request.uri = own.to_owned();
        let answer = member
            .forward(
                ClientRequest::ReadResourceRequest(ReadResourceRequest::new(request)),
                &context,
            )
            .await?;
        let ServerResult::ReadResourceResult(result) = answer else {
            return Err(unexpected(&member.slug));
        };
        // The contents name the URI they are of: the one the client knows.
        let mut value = serde_json::to_value(&result).map_err(|_| unexpected(&member.slug))?;
        if let Some(Value::Array(contents)) = value.get_mut("contents") {
            for content in contents {
                if let Some(uri) = content.get("uri").and_then(Value::as_str) {
                    let mapped = wrap_uri(&member.slug, uri);
                    content["uri"] = Value::String(mapped);
                }
            }
        }
        let result = serde_json::from_value(value).map_err(|_| unexpected(&member.slug))?;
        Ok(ReadResourceResponse::Complete(result))
    }

    async fn subscribe(
        &self,
        mut request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let asked = request.uri.clone();
        let (member, own) = self.by_uri(&asked)?;
        request.uri = own.to_owned();
        let request = ClientRequest::SubscribeRequest(SubscribeRequest::new(request));
        member.forward(request, &context).await.map(|_| ())
    }

    async fn unsubscribe(
        &self,
        mut request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let asked = request.uri.clone();
        let (member, own) = self.by_uri(&asked)?;
        request.uri = own.to_owned();
        let request = ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(request));
        member.forward(request, &context).await.map(|_| ())
    }

    async fn complete(
        &self,
        mut request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        // Routed by what is being completed: a prompt's or a template's argument.
        let member = match &mut request.r#ref {
            Reference::Prompt(prompt) => {
                let named =
                    split_name(&prompt.name).map(|(slug, own)| (slug.to_owned(), own.to_owned()));
                let member = named.and_then(|(slug, own)| {
                    let member = self.member(&slug).ok().flatten()?;
                    prompt.name = own;
                    Some(member)
                });
                member.ok_or_else(|| {
                    ErrorData::invalid_params(format!("Unknown prompt: {}", prompt.name), None)
                })?
            }
            Reference::Resource(template) => {
                let asked = template.uri.clone();
                let (member, own) = self.by_uri(&asked)?;
                template.uri = own.to_owned();
                member
            }
            _ => {
                return Err(ErrorData::invalid_params(
                    "completion of an unknown kind of reference",
                    None,
                ));
            }
        };
        let answer = member
            .forward(
                ClientRequest::CompleteRequest(CompleteRequest::new(request)),
                &context,
            )
            .await?;
        match answer {
            ServerResult::CompleteResult(result) => Ok(result),
            // An upstream that sends nothing usable completes to nothing.
            ServerResult::EmptyResult(_) => Ok(CompleteResult::new(CompletionInfo::default())),
            _ => Err(unexpected(&member.slug)),
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // Every member that logs gets the client's level.
        let members = self.members()?;
        let asked = members
            .iter()
            .filter(|m| m.info.capabilities.logging.is_some())
            .map(|member| {
                let request = ClientRequest::SetLevelRequest(SetLevelRequest::new(request.clone()));
                let context = &context;
                async move { (member, member.forward(request, context).await) }
            });
        for (member, answer) in futures_util::future::join_all(asked).await {
            if let Err(e) = answer {
                tracing::warn!(mcp = %member.slug, error = %e.message, "logging/setLevel failed upstream");
            }
        }
        Ok(())
    }
}
