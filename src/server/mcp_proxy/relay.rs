//! The upstream side of one proxy connection: the rmcp client handler that
//! receives what the upstream sends and passes it to the one downstream
//! client the connection serves at the time. How depends on the link's
//! [`Mode`]: in a session, server-to-client requests (sampling,
//! elicitation, roots, ping) go to the client's peer and its answer comes
//! back, and notifications are re-sent to it; for a stateless 2026-07-28
//! request, requests become the input requests of a multi-round-trip
//! answer (`stateless.rs`) and only the request's own progress and logs
//! reach it; for a `subscriptions/listen` stream, only the list and
//! resource notifications it asked for. Progress tokens are the one thing
//! rewritten: rmcp gives every upstream request its own token, so the
//! token the client chose is looked up and put back.

#![allow(deprecated)] // sampling, roots and logging are deprecated in 2026-07-28, not in the revisions served here

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use rmcp::model::{
    CancelledNotificationParam, ClientConfig, ClientResult, CreateMessageRequest,
    CreateMessageRequestParams, CreateMessageResult, ElicitRequest, ElicitRequestParams,
    ElicitResult, ErrorData, InputRequest, ListRootsRequest, ListRootsResult, LoggingLevel,
    LoggingMessageNotificationParam, PingRequest, ProgressNotificationParam, ProgressToken,
    RequestId, ResourceUpdatedNotificationParam, ServerRequest,
};
use rmcp::service::{NotificationContext, OriginatingRequestId, RequestContext, SubscriptionSink};
use rmcp::{ClientHandler, Peer, RoleClient, RoleServer, ServiceError};

use crate::upstream::Arrivals;

/// A server-to-client request turned into an input request of a
/// stateless answer; `answer` gets the client's response to it.
pub struct Ask {
    pub request: InputRequest,
    pub answer: oneshot::Sender<Result<Value, ErrorData>>,
}

/// Whom the upstream's traffic is for.
pub enum Mode {
    /// One downstream session: everything goes to its client.
    Session,
    /// One stateless request at a time (a lease, `stateless.rs`).
    Rounds(mpsc::Sender<Ask>),
    /// One `subscriptions/listen` stream.
    Listen(SubscriptionSink),
}

/// What the two halves of a proxy connection share.
pub struct Link {
    mode: Mode,
    /// The downstream client: the session's, or the current stateless request's.
    downstream: Mutex<Option<Peer<RoleServer>>>,
    /// Stateless requests only: the lowest log level the current request
    /// asked for; without one it gets no log messages.
    log_floor: Mutex<Option<LoggingLevel>>,
    /// The upstream connection, once open.
    pub upstream: OnceLock<Peer<RoleClient>>,
    /// Upstream progress token → the token the downstream client chose.
    pub progress: Mutex<HashMap<ProgressToken, ProgressToken>>,
    /// Progress and log notifications the upstream sent, counted by the
    /// transport as they arrive (`upstream/counted.rs`)…
    pub arrivals: Arrivals,
    /// …and those of them the relay has dealt with (passed on or not).
    handled: AtomicU64,
    /// Downstream requests being forwarded, oldest first: a request the
    /// upstream sends meanwhile is delivered on the newest one's stream.
    pub in_flight: Mutex<Vec<RequestId>>,
    /// Whether the client declared anything it could be asked (sampling,
    /// elicitation, roots, or an extension or experimental capability the
    /// gateway cannot judge): only then may the upstream send it requests.
    pub client_answers: bool,
}

impl Link {
    pub fn new(mode: Mode, downstream: Option<Peer<RoleServer>>) -> Link {
        Link {
            mode,
            downstream: Mutex::new(downstream),
            log_floor: Mutex::new(None),
            upstream: OnceLock::new(),
            progress: Mutex::default(),
            arrivals: Arrivals::default(),
            handled: AtomicU64::new(0),
            in_flight: Mutex::default(),
            client_answers: false,
        }
    }

    /// The link of a session whose client declared `capabilities`.
    pub fn for_client(mut self, capabilities: &rmcp::model::ClientCapabilities) -> Link {
        self.client_answers = capabilities.sampling.is_some()
            || capabilities.elicitation.is_some()
            || capabilities.roots.is_some()
            || capabilities
                .extensions
                .as_ref()
                .is_some_and(|e| !e.is_empty())
            || capabilities
                .experimental
                .as_ref()
                .is_some_and(|e| !e.is_empty());
        self
    }

    /// Waits until the progress and log notifications the upstream sent
    /// before its answer have been dealt with. rmcp hands each notification
    /// to a task of its own, so one sent just before an answer (a last
    /// progress step, a log line) may still be on its way when the answer
    /// is, and the answer would close the request's stream in front of it.
    /// The transport counted them in order, so everything that came before
    /// the answer is in `arrivals` by now; the wait ends when `handled`
    /// reaches it, or after `SETTLE_LIMIT` should a client be too slow to
    /// take a notification (the answer is not held back for it). In a
    /// session only progress shares the request's stream (log messages go
    /// to the `GET` stream, in no order with the answer), so a request
    /// without a progress token has nothing to wait for.
    pub async fn settle(&self, progress_asked: bool) {
        if matches!(self.mode, Mode::Session) && !progress_asked {
            return;
        }
        let arrived = self.arrivals.load(Ordering::Acquire);
        let limit = tokio::time::Instant::now() + SETTLE_LIMIT;
        let mut spins = 0u32;
        while self.handled.load(Ordering::Acquire) < arrived {
            if tokio::time::Instant::now() >= limit {
                tracing::debug!(
                    arrived,
                    "answer sent before every notification was passed on"
                );
                return;
            }
            // The tasks usually run within a few yields; past that, sleep
            // rather than spin a core.
            if spins < 64 {
                spins += 1;
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }

    /// Counts one progress or log notification as dealt with when the
    /// guard drops, whichever way its handler returns.
    fn handling(&self) -> Handling<'_> {
        Handling(&self.handled)
    }

    /// A stateless request starts using (or stops using) the connection.
    pub fn serve(&self, downstream: Option<Peer<RoleServer>>, log_floor: Option<LoggingLevel>) {
        *lock(&self.downstream) = downstream;
        *lock(&self.log_floor) = log_floor;
    }

    /// The level the client wants log messages at: a stateless request's
    /// own, or the one a session set for an upstream on the 2026-07-28
    /// revision (which is told it with every request).
    pub fn log_floor(&self) -> Option<LoggingLevel> {
        *lock(&self.log_floor)
    }

    pub fn set_log_floor(&self, level: Option<LoggingLevel>) {
        *lock(&self.log_floor) = level;
    }

    fn downstream_peer(&self) -> Option<Peer<RoleServer>> {
        lock(&self.downstream).clone()
    }

    /// Whether the upstream connection has ended (the process exited, the
    /// HTTP session was lost): the session can no longer be served.
    pub fn upstream_lost(&self) -> bool {
        self.upstream
            .get()
            .is_some_and(|peer| peer.is_transport_closed())
    }

    /// Sends a server-to-client request to the downstream client: in a
    /// session on the stream of the request that (most likely) caused it;
    /// for a stateless request as an input request of its answer.
    async fn relay(&self, mut request: ServerRequest) -> Result<Answer, ErrorData> {
        let peer = match &self.mode {
            Mode::Session => self.downstream_peer().ok_or_else(|| {
                ErrorData::internal_error("the client session is not ready", None)
            })?,
            Mode::Rounds(asks) => return ask(asks, request).await,
            Mode::Listen(_) => {
                return Err(ErrorData::invalid_request(
                    "a subscription stream cannot answer requests",
                    None,
                ));
            }
        };
        if let Some(origin) = lock(&self.in_flight).last().cloned() {
            use rmcp::model::GetExtensions;
            request
                .extensions_mut()
                .insert(OriginatingRequestId(origin));
        }
        let answer = peer.send_request(request).await.map_err(|e| match e {
            ServiceError::McpError(error) => error,
            other => ErrorData::internal_error(
                format!(
                    "the client did not answer: {}",
                    crate::upstream::describe(&other)
                ),
                None,
            ),
        })?;
        Ok(Answer::Typed(answer))
    }

    /// The downstream client's answer to one input request of an upstream
    /// on the 2026-07-28 revision, asked as the request it stands for.
    pub async fn fulfil(&self, input: InputRequest) -> Result<Value, ErrorData> {
        let request = match input {
            InputRequest::CreateMessage(r) => ServerRequest::CreateMessageRequest(r),
            InputRequest::Elicitation(r) => ServerRequest::ElicitRequest(r),
            InputRequest::ListRoots(r) => ServerRequest::ListRootsRequest(r),
            _ => {
                return Err(ErrorData::invalid_params(
                    "the upstream asked for an input the gateway does not know",
                    None,
                ));
            }
        };
        match self.relay(request).await? {
            Answer::Json(value) => Ok(value),
            Answer::Typed(result) => serde_json::to_value(result).map_err(|_| unexpected()),
        }
    }

    fn sink(&self) -> Option<&SubscriptionSink> {
        match &self.mode {
            Mode::Listen(sink) => Some(sink),
            _ => None,
        }
    }

    /// Where list and resource notifications go: a session's client, or a
    /// subscription stream (a stateless request has no place for them).
    fn notified(&self) -> Option<Peer<RoleServer>> {
        match self.mode {
            Mode::Session => self.downstream_peer(),
            _ => None,
        }
    }
}

struct Handling<'a>(&'a AtomicU64);

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// Longest an answer waits for the notifications sent before it.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A downstream client's answer to a relayed request.
enum Answer {
    /// From a session's client, through rmcp.
    Typed(ClientResult),
    /// From a stateless client's input responses, as it sent it.
    Json(Value),
}

impl Answer {
    fn into<T: DeserializeOwned>(
        self,
        pick: fn(ClientResult) -> Option<T>,
    ) -> Result<T, ErrorData> {
        match self {
            Answer::Typed(result) => pick(result).ok_or_else(unexpected),
            Answer::Json(value) => serde_json::from_value(value).map_err(|e| {
                ErrorData::invalid_params(
                    format!("the client's input response is malformed: {e}"),
                    None,
                )
            }),
        }
    }
}

/// Hands a server-to-client request to the stateless request being
/// served, and waits for the client's response to come back with its retry.
async fn ask(asks: &mpsc::Sender<Ask>, request: ServerRequest) -> Result<Answer, ErrorData> {
    let request = match request {
        ServerRequest::CreateMessageRequest(r) => InputRequest::CreateMessage(r),
        ServerRequest::ElicitRequest(r) => InputRequest::Elicitation(r),
        ServerRequest::ListRootsRequest(r) => InputRequest::ListRoots(r),
        // The gateway is the one alive here; a stateless client is not pinged.
        ServerRequest::PingRequest(_) => return Ok(Answer::Typed(ClientResult::empty(()))),
        _ => {
            return Err(ErrorData::method_not_found::<rmcp::model::PingRequestMethod>());
        }
    };
    let (answer, answered) = oneshot::channel();
    asks.send(Ask { request, answer })
        .await
        .map_err(|_| no_client())?;
    answered.await.map_err(|_| no_client())?.map(Answer::Json)
}

fn no_client() -> ErrorData {
    ErrorData::internal_error("no client is waiting for this request", None)
}

/// The client handler of a proxy session's upstream connection.
#[derive(Clone)]
pub struct Relay {
    pub link: Arc<Link>,
    /// What the gateway tells the upstream about itself: the downstream
    /// client's own capabilities, so the upstream asks only for what that
    /// client can do.
    pub config: ClientConfig,
    /// On the aggregate endpoint, this upstream's MCP id: the resource
    /// URIs it names are mapped to the ones the client was given.
    pub uri_prefix: Option<String>,
}

fn unexpected() -> ErrorData {
    ErrorData::internal_error("the client sent an unexpected answer", None)
}

impl ClientHandler for Relay {
    fn get_info(&self) -> ClientConfig {
        self.config.clone()
    }

    async fn ping(&self, _context: RequestContext<RoleClient>) -> Result<(), ErrorData> {
        self.link
            .relay(ServerRequest::PingRequest(PingRequest::default()))
            .await
            .map(|_| ())
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let request = ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params));
        self.link.relay(request).await?.into(|r| match r {
            ClientResult::CreateMessageResult(result) => Some(*result),
            _ => None,
        })
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let request = ServerRequest::ListRootsRequest(ListRootsRequest::default());
        self.link.relay(request).await?.into(|r| match r {
            ClientResult::ListRootsResult(result) => Some(result),
            _ => None,
        })
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
        self.link.relay(request).await?.into(|r| match r {
            ClientResult::ElicitResult(result) => Some(result),
            _ => None,
        })
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _handling = self.link.handling();
        // Progress for a request the client asked none for is not passed on.
        let Some(token) = lock(&self.link.progress)
            .get(&params.progress_token)
            .cloned()
        else {
            return;
        };
        params.progress_token = token;
        if let Some(peer) = self.link.downstream_peer() {
            let _ = peer.notify_progress(params).await;
        }
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _handling = self.link.handling();
        let wanted = match self.link.mode {
            Mode::Session => true,
            Mode::Rounds(_) => {
                lock(&self.link.log_floor).is_some_and(|floor| rank(params.level) >= rank(floor))
            }
            Mode::Listen(_) => false,
        };
        if wanted && let Some(peer) = self.link.downstream_peer() {
            let _ = peer.notify_logging_message(params).await;
        }
    }

    async fn on_resource_updated(
        &self,
        mut params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(slug) = &self.uri_prefix {
            params.uri = super::names::wrap_uri(slug, &params.uri);
        }
        if let Some(sink) = self.link.sink() {
            let _ = sink.notify_resource_updated(params.uri).await;
        } else if let Some(peer) = self.link.notified() {
            let _ = peer.notify_resource_updated(params).await;
        }
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(sink) = self.link.sink() {
            let _ = sink.notify_resource_list_changed().await;
        } else if let Some(peer) = self.link.notified() {
            let _ = peer.notify_resource_list_changed().await;
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(sink) = self.link.sink() {
            let _ = sink.notify_tool_list_changed().await;
        } else if let Some(peer) = self.link.notified() {
            let _ = peer.notify_tool_list_changed().await;
        }
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(sink) = self.link.sink() {
            let _ = sink.notify_prompt_list_changed().await;
        } else if let Some(peer) = self.link.notified() {
            let _ = peer.notify_prompt_list_changed().await;
        }
    }

    async fn on_cancelled(
        &self,
        params: CancelledNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // rmcp cancels the relayed request's handler itself; nothing else waits on it.
        tracing::debug!(request = ?params.request_id, "upstream cancelled a request it sent");
    }
}

/// Severity order of log levels (the enum has no `Ord`).
fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// Locks a std mutex, ignoring poisoning (the guarded maps stay consistent).
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
