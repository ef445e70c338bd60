//! The downstream side of one session on the aggregate endpoint `/mcp`:
//! every MCP the key may use, behind one MCP server. At `initialize` the
//! session connects to each of them at once, each under its own timeout;
//! an upstream that cannot be reached is left out of the session (and
//! logged) rather than failing or stalling it. Lists are gathered from the
//! members concurrently and named per [`names`]; a request naming a tool,
//! prompt or resource goes to the one member it names, under the name the
//! upstream gave it. Like `/mcp/{mcp_id}`, each session has connections of
//! its own, so one client's notifications, log level, subscriptions and
//! server-to-client requests never reach another. A 2026-07-28 client has
//! no session: each of its requests reaches the members over the
//! stateless bridge (`stateless.rs`), with the same names.

#![allow(deprecated)] // subscribe, logging and sampling belong to the revisions served here

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequest,
    CompleteRequestParams, CompleteResult, CompletionInfo, ErrorData, GetPromptRequest,
    GetPromptRequestParams, GetPromptResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequest, ReadResourceRequestParams,
    ReadResourceResponse, Reference, ServerConfig, ServerResult, SetLevelRequest,
    SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams, UnsubscribeRequest,
    UnsubscribeRequestParams,
};
use rmcp::model::{DiscoverResult, ServerPeerInfo, SubscriptionFilter};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{RoleServer, ServerHandler};
use serde_json::{Value, json};

use super::aggregate_view::{List, instructions, typed, union};
use super::handler::{ALL_VERSIONS, mark_complete, negotiate, stateless_info};
use super::names::{split_name, unwrap_uri, wrap_uri};
use super::relay::{Link, Mode};
use super::session_upstream::{SessionUpstream, unexpected};
use super::sessions::Binding;
use super::stateless::{Bridge, Member, Round};
use crate::server::tool_access::{ToolGrant, unknown_tool};
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
    /// The key and MCPs the request was authorized for.
    pub binding: Binding,
    /// Which tools of each member the key may see and call, as of this request.
    pub tools: ToolGrant,
    /// Where stateless (2026-07-28) requests find their upstreams.
    pub bridge: Arc<Bridge>,
    /// Filled at `initialize` with the links of the members reached.
    pub links: Arc<OnceLock<Vec<Arc<Link>>>>,
    /// What pinned MCPs withhold, as of this request.
    pub pins: crate::server::tool_pins::PinsAt,
}

#[derive(Default)]
pub struct AggregateHandler {
    members: OnceLock<Vec<SessionUpstream>>,
    info: OnceLock<ServerConfig>,
}

/// One member as a request reaches it: over the session's connection, or
/// (a stateless client) over the bridge.
#[derive(Clone, Copy)]
enum Upstream<'a> {
    Session(&'a SessionUpstream),
    Bridged {
        slug: &'a str,
        spec: &'a UpstreamSpec,
        grant: &'a AggregateGrant,
    },
}

impl Upstream<'_> {
    fn slug(&self) -> &str {
        match self {
            Upstream::Session(member) => &member.slug,
            Upstream::Bridged { slug, .. } => slug,
        }
    }

    /// Forwards `request`; a stateless round may end with the upstream
    /// asking the client something.
    async fn converse(
        &self,
        request: ClientRequest,
        context: &RequestContext<RoleServer>,
    ) -> Result<Round, ErrorData> {
        match self {
            Upstream::Session(member) => member
                .forward(request, context)
                .await
                .map(|answer| Round::Done(Box::new(answer))),
            Upstream::Bridged { slug, spec, grant } => {
                let member = Member {
                    slug,
                    spec,
                    aggregated: true,
                };
                let mut round = grant
                    .bridge
                    .run(&grant.binding, member, request, context)
                    .await?;
                if let Round::Done(answer) = &mut round {
                    mark_complete(answer.as_mut());
                }
                Ok(round)
            }
        }
    }

    /// Forwards a request that cannot ask anything back.
    async fn forward(
        &self,
        request: ClientRequest,
        context: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        match self.converse(request, context).await? {
            Round::Done(answer) => Ok(*answer),
            Round::Input(_) => Err(unexpected(self.slug())),
        }
    }
}

fn grant_of(context: &RequestContext<RoleServer>) -> Result<&AggregateGrant, ErrorData> {
    super::granted::<AggregateGrant>(context)
}

impl AggregateHandler {
    /// A handler without members serves a stateless client (rmcp makes
    /// one per request; a session's handler has them from `initialize`).
    fn stateless(&self) -> bool {
        self.members.get().is_none()
    }

    fn member<'a>(
        &'a self,
        slug: &str,
        context: &'a RequestContext<RoleServer>,
    ) -> Result<Option<Upstream<'a>>, ErrorData> {
        if let Some(members) = self.members.get() {
            return Ok(members
                .iter()
                .find(|m| m.slug == slug)
                .map(Upstream::Session));
        }
        let grant = grant_of(context)?;
        Ok(grant
            .members
            .iter()
            .find(|(own, _)| own == slug)
            .map(|(slug, spec)| Upstream::Bridged { slug, spec, grant }))
    }

    /// Every member reached, with what it told about itself; for a
    /// stateless client, each asked now (at once; one that cannot be
    /// reached is left out and logged).
    async fn reached<'a>(
        &'a self,
        context: &'a RequestContext<RoleServer>,
    ) -> Result<Vec<(Upstream<'a>, Arc<ServerPeerInfo>)>, ErrorData> {
        if let Some(members) = self.members.get() {
            return Ok(members
                .iter()
                .map(|m| (Upstream::Session(m), m.info.clone()))
                .collect());
        }
        let grant = grant_of(context)?;
        let asked = grant.members.iter().map(|(slug, spec)| async move {
            let member = Member {
                slug,
                spec,
                aggregated: true,
            };
            let info = grant.bridge.discover(&grant.binding, member, context).await;
            (Upstream::Bridged { slug, spec, grant }, info)
        });
        Ok(futures_util::future::join_all(asked)
            .await
            .into_iter()
            .filter_map(|(member, info)| match info {
                Ok(info) => Some((member, info)),
                Err(e) => {
                    tracing::warn!(mcp = %member.slug(), error = %e.message, "aggregate: upstream left out");
                    None
                }
            })
            .collect())
    }

    /// Every entry of `list` from every member that offers it, renamed,
    /// asked of all at once; a member that fails is left out and logged.
    async fn gather(
        &self,
        list: List,
        context: &RequestContext<RoleServer>,
    ) -> Result<Value, ErrorData> {
        let members = self.reached(context).await?;
        let asked = members
            .iter()
            .filter(|(_, info)| list.offered(&info.capabilities))
            .map(|(member, _)| async move {
                let entries = all_pages(member, list, context).await;
                (member, entries)
            });
        let mut gathered = Vec::new();
        for (member, entries) in futures_util::future::join_all(asked).await {
            match entries {
                Ok(mut entries) => {
                    if let List::Tools = list {
                        // The pins judge the member's whole list; the
                        // key's grant narrows what is left.
                        let grant = grant_of(context)?;
                        super::withheld::withhold_member(grant, member.slug(), &mut entries).await;
                        grant.tools.retain_entries(member.slug(), &mut entries);
                    }
                    for mut entry in entries {
                        list.rename(member.slug(), &mut entry);
                        gathered.push(entry);
                    }
                }
                Err(e) => tracing::warn!(
                    mcp = %member.slug(),
                    list = list.field(),
                    error = %e.message,
                    "aggregate list: upstream left out"
                ),
            }
        }
        let mut answer = json!({ list.field(): gathered });
        if self.stateless() {
            // 2026-07-28 clients take a result only if it says it is whole.
            answer["resultType"] = json!("complete");
        }
        Ok(answer)
    }

    /// Forwards a request naming a tool or prompt to the member it names.
    async fn named(
        &self,
        name: &str,
        what: &str,
        context: &RequestContext<RoleServer>,
        build: impl FnOnce(String) -> ClientRequest,
    ) -> Result<(Round, String), ErrorData> {
        let unknown = || ErrorData::invalid_params(format!("Unknown {what}: {name}"), None);
        let (slug, own) = split_name(name).ok_or_else(unknown)?;
        let member = self.member(slug, context)?.ok_or_else(unknown)?;
        let round = member.converse(build(own.to_owned()), context).await?;
        Ok((round, slug.to_owned()))
    }

    /// The member a resource URI given out here belongs to, and its own URI.
    fn by_uri<'a, 'u>(
        &'a self,
        uri: &'u str,
        context: &'a RequestContext<RoleServer>,
    ) -> Result<(Upstream<'a>, &'u str), ErrorData> {
        let unknown = || ErrorData::resource_not_found(format!("Unknown resource: {uri}"), None);
        let (slug, own) = unwrap_uri(uri).ok_or_else(unknown)?;
        let member = self.member(slug, context)?.ok_or_else(unknown)?;
        Ok((member, own))
    }
}

/// All pages of `list` from one member, within the caps.
async fn all_pages(
    member: &Upstream<'_>,
    list: List,
    context: &RequestContext<RoleServer>,
) -> Result<Vec<Value>, ErrorData> {
    let mut entries = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = member.forward(list.request(cursor), context).await?;
        let mut page = serde_json::to_value(&page).map_err(|_| unexpected(member.slug()))?;
        let Some(Value::Array(listed)) = page.get_mut(list.field()).map(Value::take) else {
            return Err(unexpected(member.slug()));
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

impl ServerHandler for AggregateHandler {
    fn get_info(&self) -> ServerConfig {
        self.info.get().cloned().unwrap_or_else(stateless_info)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [rmcp::model::ProtocolVersion]> {
        Cow::Borrowed(&ALL_VERSIONS)
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        let reached = self.reached(&context).await?;
        let named: Vec<(&str, &ServerPeerInfo)> = reached
            .iter()
            .map(|(member, info)| (member.slug(), info.as_ref()))
            .collect();
        let mut info = InitializeResult::new(union(named.iter().map(|(_, info)| *info)));
        info.server_info = Implementation::new("plexmcp", env!("CARGO_PKG_VERSION"));
        info.instructions = Some(instructions(&named));
        Ok(DiscoverResult::from_server_info(
            ALL_VERSIONS.to_vec(),
            info,
        ))
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
        let grant = grant_of(&context)?.clone();
        context.peer.set_peer_info(request.clone());
        let opening = grant.members.iter().map(|(slug, spec)| {
            SessionUpstream::open(
                slug,
                spec,
                &request,
                Link::new(Mode::Session, Some(context.peer.clone())),
                Some(slug.clone()),
            )
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
        let mut info = InitializeResult::new(union(members.iter().map(|m| m.info.as_ref())));
        info.protocol_version = negotiate(&request.protocol_version);
        info.server_info = Implementation::new("plexmcp", env!("CARGO_PKG_VERSION"));
        let named: Vec<(&str, &ServerPeerInfo)> = members
            .iter()
            .map(|m| (m.slug.as_str(), m.info.as_ref()))
            .collect();
        info.instructions = Some(instructions(&named));
        let _ = self.info.set(info.clone());
        let _ = self.members.set(members);
        Ok(info)
    }

    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        // The gateway itself answers: a ping asks whether the session is alive.
        Ok(())
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
        if let Some((slug, own)) = split_name(&name)
            && !grant_of(&context)?.tools.allows(slug, own)
        {
            return Err(unknown_tool(&name));
        }
        let (round, slug) = self
            .named(&name, "tool", &context, |own| {
                let mut request = request;
                request.name = Cow::Owned(own);
                ClientRequest::CallToolRequest(CallToolRequest::new(request))
            })
            .await?;
        match round {
            Round::Input(input) => Ok(CallToolResponse::InputRequired(input)),
            Round::Done(answer) => match *answer {
                ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(result)),
                _ => Err(unexpected(&slug)),
            },
        }
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
        let (round, slug) = self
            .named(&name, "prompt", &context, |own| {
                let mut request = request;
                request.name = own;
                ClientRequest::GetPromptRequest(GetPromptRequest::new(request))
            })
            .await?;
        match round {
            Round::Input(input) => Ok(GetPromptResponse::InputRequired(input)),
            Round::Done(answer) => match *answer {
                ServerResult::GetPromptResult(result) => Ok(GetPromptResponse::Complete(result)),
                _ => Err(unexpected(&slug)),
            },
        }
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
        let (member, own) = self.by_uri(&asked, &context)?;
        request.uri = own.to_owned();
        let round = member
            .converse(
                ClientRequest::ReadResourceRequest(ReadResourceRequest::new(request)),
                &context,
            )
            .await?;
        let slug = member.slug();
        let answer = match round {
            Round::Input(input) => return Ok(ReadResourceResponse::InputRequired(input)),
            Round::Done(answer) => *answer,
        };
        let ServerResult::ReadResourceResult(result) = answer else {
            return Err(unexpected(slug));
        };
        // The contents name the URI they are of: the one the client knows.
        let mut value = serde_json::to_value(&result).map_err(|_| unexpected(slug))?;
        if let Some(Value::Array(contents)) = value.get_mut("contents") {
            for content in contents {
                if let Some(uri) = content.get("uri").and_then(Value::as_str) {
                    let mapped = wrap_uri(slug, uri);
                    content["uri"] = Value::String(mapped);
                }
            }
        }
        let result = serde_json::from_value(value).map_err(|_| unexpected(slug))?;
        Ok(ReadResourceResponse::Complete(result))
    }

    async fn subscribe(
        &self,
        mut request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let asked = request.uri.clone();
        let (member, own) = self.by_uri(&asked, &context)?;
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
        let (member, own) = self.by_uri(&asked, &context)?;
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
                    let member = self.member(&slug, &context).ok().flatten()?;
                    prompt.name = own;
                    Some(member)
                });
                member.ok_or_else(|| {
                    ErrorData::invalid_params(format!("Unknown prompt: {}", prompt.name), None)
                })?
            }
            Reference::Resource(template) => {
                let asked = template.uri.clone();
                let (member, own) = self.by_uri(&asked, &context)?;
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
            _ => Err(unexpected(member.slug())),
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let Some(members) = self.members.get() else {
            return Err(super::stateless::no_level_without_a_session());
        };
        // Every member that logs gets the client's level.
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

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Sessions subscribe with resources/subscribe instead.
        self.stateless().then(|| requested.clone())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let grant = grant_of(context.request_context())?.clone();
        let asked = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        // Each member gets its own URIs among those asked for; list
        // changes come from every member.
        let members = grant
            .members
            .iter()
            .map(|(slug, spec)| {
                let uris = asked
                    .iter()
                    .filter_map(|uri| unwrap_uri(uri))
                    .filter(|(owner, _)| owner == slug)
                    .map(|(_, own)| own.to_owned())
                    .collect();
                let member = Member {
                    slug,
                    spec,
                    aggregated: true,
                };
                (member, uris)
            })
            .collect();
        grant.bridge.listen(&grant.binding, members, context).await
    }
}
