//! 2026-07-28 clients on the MCP endpoints: no `initialize`, no session,
//! every request on its own. Upstreams are reached over sessions of the
//! revisions before it, so this is the bridge between the two:
//!
//! - Every request runs on an upstream connection *leased* to it alone,
//!   introduced to the upstream with the client's own capabilities (what an
//!   upstream offers may depend on them: server-everything lists its
//!   sampling tool only to clients that can sample): everything the
//!   upstream sends meanwhile belongs to that request. Its progress, and log messages at the level
//!   its `_meta` asks for, go on the request's own stream. A sampling,
//!   elicitation or roots request from the upstream becomes an
//!   `input_required` answer whose `requestState` names the parked call;
//!   the client's retry carries `inputResponses`, which are handed to the
//!   upstream as its answers, and the call goes on where it was, until it
//!   ends or asks again (only `tools/call`, `prompts/get` and
//!   `resources/read` may ask). Idle leases are kept per key, upstream and
//!   client capabilities and reused, so a request costs what it costs in a
//!   session.
//! - `subscriptions/listen` gets an upstream connection of its own for as
//!   long as its stream stays open (`resources/subscribe` upstream for the
//!   URIs it names).
//!
//! Leases, parked calls and subscription streams are bounded in number
//! (the gateway's session cap) and in time: a parked call whose client does
//! not come back within the MCP's timeout is dropped with its lease (the
//! upstream connection closes), and idle leases close after the session
//! idle time.

#![allow(deprecated)] // logging levels belong to the upstream's revision

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rmcp::RoleServer;
use rmcp::model::{
    ClientCapabilities, ClientRequest, ErrorData, Implementation, InitializeRequestParams,
    InputRequests, InputRequiredResult, InputResponses, LoggingLevel, ServerPeerInfo, ServerResult,
    SetLevelRequestParams, SubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::relay::{Ask, Link, Mode, lock};
use super::session_upstream::{Origin, Route, SessionUpstream, forward_on, upstream_error};
use super::sessions::Binding;
use crate::upstream::UpstreamSpec;

/// Idle leases kept for one key, upstream and client kind.
const IDLE_PER_KIND: usize = 4;
/// Input requests one upstream may have waiting in a lease's queue.
const ASK_QUEUE: usize = 8;

/// The upstream a stateless request is for.
pub struct Member<'a> {
    pub slug: &'a str,
    pub spec: &'a UpstreamSpec,
    /// On `/mcp`, resource URIs the upstream names are mapped (`names.rs`).
    pub aggregated: bool,
}

/// What one round of a stateless request answers.
pub enum Round {
    Done(Box<ServerResult>),
    Input(InputRequiredResult),
}

pub struct Bridge {
    idle: Mutex<HashMap<LeaseKind, Vec<(Instant, Lease)>>>,
    parked: Mutex<HashMap<String, Parked>>,
    listens: Mutex<HashMap<u64, (Binding, CancellationToken)>>,
    next_listen: AtomicU64,
    /// Leases and subscription connections in existence.
    open: Arc<AtomicUsize>,
    max_open: usize,
    idle_for: Duration,
}

/// Which leases are interchangeable: same key, upstream and client
/// capabilities (what the upstream was told the client can do).
#[derive(Clone, PartialEq, Eq, Hash)]
struct LeaseKind {
    key_row: i64,
    spec: UpstreamSpec,
    aggregated: bool,
    capabilities: String,
}

struct Lease {
    kind: LeaseKind,
    upstream: SessionUpstream,
    asks: mpsc::Receiver<Ask>,
    /// The log level last set upstream on this connection.
    level: Option<LoggingLevel>,
    _counted: Counted,
}

/// Counts one open upstream connection while it lives.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A call going on upstream on its lease.
struct Running {
    lease: Lease,
    result: oneshot::Receiver<Result<ServerResult, ErrorData>>,
    /// Ends the upstream call (the upstream is told it was cancelled),
    /// also when the call is dropped unfinished (a parked call expired);
    /// after the call ended it does nothing.
    cancel: CancelOnDrop,
    /// Input requests handed to the client, by the id it was given.
    answers: HashMap<String, oneshot::Sender<Result<Value, ErrorData>>>,
    asked: u64,
}

struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A call waiting for its client's input responses.
struct Parked {
    key_row: i64,
    slug: String,
    method: &'static str,
    until: Instant,
    running: Running,
}

enum Event {
    Finished(Result<ServerResult, ErrorData>),
    Asked(Ask),
    Cancelled,
}

impl Bridge {
    pub fn new(max_open: usize, idle_for: Duration) -> Bridge {
        Bridge {
            idle: Mutex::default(),
            parked: Mutex::default(),
            listens: Mutex::default(),
            next_listen: AtomicU64::new(1),
            open: Arc::default(),
            max_open,
            idle_for,
        }
    }

    /// One round of a request from a stateless client (see the module): a
    /// new call on a lease, or, with `requestState`, the parked call it
    /// names, given the client's answers.
    pub async fn run(
        self: &Arc<Self>,
        binding: &Binding,
        member: Member<'_>,
        mut request: ClientRequest,
        context: &RequestContext<RoleServer>,
    ) -> Result<Round, ErrorData> {
        let method = method_of(&request);
        let (responses, state) = take_round_trip(&mut request);
        let running = match state {
            Some(handle) => {
                let mut parked = lock(&self.parked);
                // Only the key, MCP and method that started the call may
                // pick it up; to anyone else it does not exist.
                let theirs = parked.get(&handle).is_some_and(|p| {
                    p.key_row == binding.key_row
                        && p.slug == member.slug
                        && p.method == method
                        && p.until > Instant::now()
                });
                let found = if theirs { parked.remove(&handle) } else { None };
                drop(parked);
                let mut running = found.map(|p| p.running).ok_or_else(|| {
                    ErrorData::invalid_params(
                        "requestState is unknown or has expired; send the request again without it",
                        None,
                    )
                })?;
                answer(&mut running, responses.unwrap_or_default());
                running
            }
            None => self.start(binding, &member, request, context).await?,
        };
        running
            .lease
            .upstream
            .link
            .serve(Some(context.peer.clone()), context.meta.log_level());
        self.wait(
            running,
            member.slug,
            member.spec.timeout,
            binding.key_row,
            method,
            context,
        )
        .await
    }

    /// The upstream's answer to `initialize`, as this client would get it.
    pub async fn discover(
        &self,
        binding: &Binding,
        member: Member<'_>,
        context: &RequestContext<RoleServer>,
    ) -> Result<Arc<ServerPeerInfo>, ErrorData> {
        let lease = self.lease(binding, &member, context).await?;
        let info = lease.upstream.info.clone();
        self.keep(lease);
        Ok(info)
    }

    async fn start(
        &self,
        binding: &Binding,
        member: &Member<'_>,
        request: ClientRequest,
        context: &RequestContext<RoleServer>,
    ) -> Result<Running, ErrorData> {
        let mut lease = self.lease(binding, member, context).await?;
        // A queued request from a call that ended cannot be answered.
        while let Ok(stale) = lease.asks.try_recv() {
            let _ = stale.answer.send(Err(ErrorData::internal_error(
                "the request it belonged to has ended",
                None,
            )));
        }
        if let Some(level) = context.meta.log_level()
            && lease.level != Some(level)
            && lease.upstream.info.capabilities.logging.is_some()
        {
            lease
                .upstream
                .peer
                .set_level(SetLevelRequestParams::new(level))
                .await
                .map_err(|e| upstream_error(member.slug, e))?;
            lease.level = Some(level);
        }
        let cancel = CancellationToken::new();
        let origin = Origin {
            id: context.id.clone(),
            meta: context.meta.clone(),
            ct: cancel.clone(),
        };
        let (done, result) = oneshot::channel();
        let peer = lease.upstream.peer.clone();
        let link = lease.upstream.link.clone();
        let slug = member.slug.to_owned();
        let timeout = member.spec.timeout;
        tokio::spawn(async move {
            let route = Route {
                peer: &peer,
                slug: &slug,
                timeout,
                link: &link,
            };
            let answer = forward_on(route, request, origin).await;
            let _ = done.send(answer);
        });
        Ok(Running {
            lease,
            result,
            cancel: CancelOnDrop(cancel),
            answers: HashMap::new(),
            asked: 0,
        })
    }

    /// Waits for the call to end or ask the client something.
    async fn wait(
        self: &Arc<Self>,
        mut running: Running,
        slug: &str,
        timeout: Duration,
        key_row: i64,
        method: &'static str,
        context: &RequestContext<RoleServer>,
    ) -> Result<Round, ErrorData> {
        let event = tokio::select! {
            result = &mut running.result => Event::Finished(result.unwrap_or_else(|_| {
                Err(ErrorData::internal_error(format!("Upstream MCP '{slug}' failed"), None))
            })),
            Some(ask) = running.lease.asks.recv() => Event::Asked(ask),
            () = context.ct.cancelled() => Event::Cancelled,
        };
        match event {
            Event::Finished(result) => {
                self.give_back(running);
                result.map(|answer| Round::Done(Box::new(answer)))
            }
            Event::Asked(first) => {
                let mut requests = InputRequests::new();
                let mut next = Some(first);
                while let Some(ask) = next {
                    running.asked += 1;
                    let id = format!("plexmcp-{}", running.asked);
                    requests.insert(id.clone(), ask.request);
                    running.answers.insert(id, ask.answer);
                    next = running.lease.asks.try_recv().ok();
                }
                running.lease.upstream.link.serve(None, None);
                let handle = new_handle()?;
                let mut parked = lock(&self.parked);
                let now = Instant::now();
                parked.retain(|_, p| p.until > now);
                parked.insert(
                    handle.clone(),
                    Parked {
                        key_row,
                        slug: slug.to_owned(),
                        method,
                        until: now + timeout,
                        running,
                    },
                );
                Ok(Round::Input(InputRequiredResult::new(
                    Some(requests),
                    Some(handle),
                )))
            }
            Event::Cancelled => {
                // The upstream is told at once; the lease is reusable once
                // the call has ended there.
                running.cancel.0.cancel();
                let bridge = self.clone();
                tokio::spawn(async move {
                    let _ = (&mut running.result).await;
                    bridge.give_back(running);
                });
                Err(ErrorData::internal_error("cancelled by the client", None))
            }
        }
    }

    /// Keeps a finished call's lease for the next request of its kind,
    /// unless its upstream connection has ended or enough are kept.
    fn give_back(&self, mut running: Running) {
        // The call is over: answers nobody gave go back as errors.
        answer(&mut running, InputResponses::new());
        self.keep(running.lease);
    }

    fn keep(&self, lease: Lease) {
        lease.upstream.link.serve(None, None);
        if lease.upstream.link.upstream_lost() {
            return;
        }
        let mut idle = lock(&self.idle);
        let kept = idle.entry(lease.kind.clone()).or_default();
        if kept.len() < IDLE_PER_KIND {
            kept.push((Instant::now(), lease));
        }
    }

    fn take_idle(&self, kind: &LeaseKind) -> Option<Lease> {
        let mut idle = lock(&self.idle);
        let kept = idle.get_mut(kind)?;
        while let Some((_, lease)) = kept.pop() {
            if !lease.upstream.link.upstream_lost() {
                return Some(lease);
            }
        }
        None
    }

    fn count_one(&self) -> Result<Counted, ErrorData> {
        let open = self.open.fetch_add(1, Ordering::AcqRel);
        let counted = Counted(self.open.clone());
        if open >= self.max_open {
            // Idle leases are the first to go when the gateway is full.
            let freed = {
                let mut idle = lock(&self.idle);
                let before: usize = idle.values().map(Vec::len).sum();
                idle.clear();
                before
            };
            if freed == 0 || self.open.load(Ordering::Acquire) > self.max_open {
                return Err(ErrorData::internal_error(
                    format!(
                        "Too many MCP requests in progress (at most {}); try again shortly",
                        self.max_open
                    ),
                    Some(serde_json::json!({ "code": "too_many_sessions" })),
                ));
            }
        }
        Ok(counted)
    }

    /// An idle lease of this request's kind, or a new one.
    async fn lease(
        &self,
        binding: &Binding,
        member: &Member<'_>,
        context: &RequestContext<RoleServer>,
    ) -> Result<Lease, ErrorData> {
        let capabilities = context.meta.client_capabilities().unwrap_or_default();
        let kind = LeaseKind {
            key_row: binding.key_row,
            spec: member.spec.clone(),
            aggregated: member.aggregated,
            capabilities: serde_json::to_string(&capabilities).unwrap_or_default(),
        };
        if let Some(lease) = self.take_idle(&kind) {
            return Ok(lease);
        }
        let counted = self.count_one()?;
        let (asks_to, asks) = mpsc::channel(ASK_QUEUE);
        let client = client_of(capabilities, context);
        let upstream = SessionUpstream::open(
            member.slug,
            member.spec,
            &client,
            Link::new(Mode::Rounds(asks_to), None),
            member.aggregated.then(|| member.slug.to_owned()),
        )
        .await?;
        Ok(Lease {
            kind,
            upstream,
            asks,
            level: None,
            _counted: counted,
        })
    }

    /// Serves one `subscriptions/listen` stream until the client closes it,
    /// its key may no longer use the MCPs (the sweeper ends it), or an
    /// upstream connection ends. Each member gets a connection of its own,
    /// subscribed to its own resource URIs among `uris`.
    pub async fn listen(
        &self,
        binding: &Binding,
        members: Vec<(Member<'_>, Vec<String>)>,
        context: SubscriptionContext,
    ) -> Result<(), ErrorData> {
        let mut upstreams = Vec::new();
        for (member, uris) in members {
            let counted = self.count_one()?;
            let request = context.request_context();
            let capabilities = request.meta.client_capabilities().unwrap_or_default();
            let client = client_of(capabilities, request);
            let upstream = SessionUpstream::open(
                member.slug,
                member.spec,
                &client,
                Link::new(Mode::Listen(context.sink().clone()), None),
                member.aggregated.then(|| member.slug.to_owned()),
            )
            .await?;
            let subscribable = upstream
                .info
                .capabilities
                .resources
                .as_ref()
                .is_some_and(|r| r.subscribe == Some(true));
            if subscribable {
                for uri in uris {
                    upstream
                        .peer
                        .subscribe(SubscribeRequestParams::new(uri))
                        .await
                        .map_err(|e| upstream_error(member.slug, e))?;
                }
            }
            upstreams.push((upstream, counted));
        }
        let ended = CancellationToken::new();
        let id = self.next_listen.fetch_add(1, Ordering::Relaxed);
        lock(&self.listens).insert(id, (binding.clone(), ended.clone()));
        let mut checks = tokio::time::interval(Duration::from_secs(1));
        let outcome = loop {
            tokio::select! {
                () = context.cancelled() => break Ok(()),
                () = ended.cancelled() => break Ok(()),
                _ = checks.tick() => {
                    if let Some((lost, _)) = upstreams.iter().find(|(u, _)| u.link.upstream_lost()) {
                        break Err(ErrorData::internal_error(
                            format!("Upstream MCP '{}' closed its connection", lost.slug),
                            None,
                        ));
                    }
                }
            }
        };
        lock(&self.listens).remove(&id);
        outcome
    }

    /// Subscription streams open now, for the sweeper to re-check.
    pub fn listening(&self) -> Vec<(u64, Binding)> {
        lock(&self.listens)
            .iter()
            .map(|(id, (binding, _))| (*id, binding.clone()))
            .collect()
    }

    /// Ends a subscription stream (its key may no longer use it).
    pub fn end_listen(&self, id: u64) {
        if let Some((_, ended)) = lock(&self.listens).remove(&id) {
            ended.cancel();
        }
    }

    /// Drops parked calls whose client did not come back in time, and
    /// leases idle longer than the session idle time.
    pub fn sweep(&self) {
        let now = Instant::now();
        let expired: Vec<Parked> = {
            let mut parked = lock(&self.parked);
            let gone: Vec<String> = parked
                .iter()
                .filter(|(_, p)| p.until <= now)
                .map(|(k, _)| k.clone())
                .collect();
            gone.iter().filter_map(|k| parked.remove(k)).collect()
        };
        drop(expired);
        let mut idle = lock(&self.idle);
        for kept in idle.values_mut() {
            kept.retain(|(since, _)| now.duration_since(*since) < self.idle_for);
        }
        idle.retain(|_, kept| !kept.is_empty());
    }

    /// Upstream connections held for stateless requests and streams.
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// Hands the client's answers to the upstream requests waiting for them;
/// a request it left unanswered gets an error.
fn answer(running: &mut Running, responses: InputResponses) {
    let mut responses = responses;
    for (id, waiting) in running.answers.drain() {
        let _ = waiting.send(responses.remove(&id).ok_or_else(|| {
            ErrorData::invalid_params("the client did not answer this request", None)
        }));
    }
}

/// The `initialize` the upstream gets for a stateless client: its
/// capabilities and identity from the request's `_meta`.
fn client_of(
    capabilities: ClientCapabilities,
    context: &RequestContext<RoleServer>,
) -> InitializeRequestParams {
    let info = context
        .meta
        .client_info()
        .unwrap_or_else(|| Implementation::new("plexmcp-client", env!("CARGO_PKG_VERSION")));
    InitializeRequestParams::new(capabilities, info)
}

fn method_of(request: &ClientRequest) -> &'static str {
    match request {
        ClientRequest::CallToolRequest(_) => "tools/call",
        ClientRequest::GetPromptRequest(_) => "prompts/get",
        ClientRequest::ReadResourceRequest(_) => "resources/read",
        _ => "other",
    }
}

/// Takes the multi-round-trip fields out of a request: the upstream
/// speaks a revision without them.
fn take_round_trip(request: &mut ClientRequest) -> (Option<InputResponses>, Option<String>) {
    match request {
        ClientRequest::CallToolRequest(r) => (
            r.params.input_responses.take(),
            r.params.request_state.take(),
        ),
        ClientRequest::GetPromptRequest(r) => (
            r.params.input_responses.take(),
            r.params.request_state.take(),
        ),
        ClientRequest::ReadResourceRequest(r) => (
            r.params.input_responses.take(),
            r.params.request_state.take(),
        ),
        _ => (None, None),
    }
}

/// What a stateless client asking to set its log level is told.
pub fn no_level_without_a_session() -> ErrorData {
    // Nothing outlives a stateless request to keep a level in.
    ErrorData::invalid_request(
        "logging/setLevel needs a session; in 2026-07-28 send the level as \
         io.modelcontextprotocol/logLevel in each request's _meta",
        None,
    )
}

/// An unguessable name for a parked call.
fn new_handle() -> Result<String, ErrorData> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|_| ErrorData::internal_error("no randomness available", None))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
