//! rmcp's local session manager with the gateway's own bookkeeping around
//! it. Every session event passes here, so this is where a session's use is
//! counted for idle expiry (rmcp's own keep-alive counts only its worker's
//! events: a client listening on its `GET` stream, or waiting on a long
//! call, would be cut off).
//!
//! And one kind of request skips rmcp's session machinery: a plain
//! `tools/call` on `/mcp/{mcp_id}` from a client that can be asked nothing,
//! without a progress token ([`GatewaySessions::call_directly`]). Nothing
//! can travel on such a call's stream (no progress was asked for; the
//! upstream may not send requests to a client that declared no capability
//! for them; a session's log messages go to its `GET` stream), so the guard
//! forwards it on the session's own upstream connection and answers it as
//! JSON. The hops through rmcp's transport, session worker, service loop,
//! a handler task and a per-request stream cost more than the call itself
//! (issue 10's session benchmark row). The transport's header checks are
//! made first, more strictly (`fast_lane`).

use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use rmcp::model::{
    CallToolRequest, CallToolRequestMethod, CallToolRequestParams, ClientJsonRpcMessage,
    ClientNotification, ClientRequest, JsonRpcVersion2_0, RequestId, RequestMetaObject,
    ServerJsonRpcMessage,
};
use rmcp::transport::common::server_side_http::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};

use super::session_upstream::{Origin, Route, forward_on};
use super::sessions::{Activity, Direct, SessionBook};

pub struct GatewaySessions {
    pub local: LocalSessionManager,
    pub book: SessionBook,
}

impl GatewaySessions {
    pub fn new(local: LocalSessionManager) -> GatewaySessions {
        GatewaySessions {
            local,
            book: SessionBook::default(),
        }
    }

    /// The answer to `body`, a request in session `id`, if it is a plain
    /// call that may skip rmcp (see the module); `None` leaves it to rmcp.
    pub async fn call_directly(&self, id: &str, call: PlainCall) -> Option<Vec<u8>> {
        let (activity, Some(direct)) = self.book.activity(id)? else {
            return None;
        };
        if direct.link.client_answers || direct.link.upstream_lost() {
            return None;
        }
        let PlainCall {
            id: request_id,
            params: mut call,
            ..
        } = call;
        let meta = call.meta.take().unwrap_or_default();
        if meta.0.0.contains_key(PROGRESS_TOKEN)
            || meta.0.0.contains_key(PROTOCOL_VERSION)
            || !self.local.has_session(&SessionId::from(id)).await.ok()?
        {
            return None;
        }
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(call));
        // Counted as use while it runs (and from when it ends).
        let answer = forward(&activity, &direct, request_id, meta, request).await;
        serde_json::to_vec(&answer).ok()
    }

    /// Counts a session event as use; the session's activity, if bound.
    fn touched(&self, id: &SessionId) -> Option<Arc<Activity>> {
        let (activity, _) = self.book.activity(id)?;
        activity.touch();
        Some(activity)
    }

    /// Keeps the session counted as busy while `stream` is open.
    fn tracked<S: Stream>(
        &self,
        id: &SessionId,
        stream: S,
    ) -> impl Stream<Item = S::Item> + use<S> {
        let open = self.touched(id).map(|activity| activity.open());
        stream.map(move |item| {
            let _ = &open;
            item
        })
    }
}

/// A `tools/call` request as the client sent it, read as that (the
/// general message type tries each kind of message in turn, which cost
/// more than the rest of the gateway's work on a call). Unknown members
/// are ignored, as rmcp's own message type ignores them.
#[derive(serde::Deserialize)]
pub struct PlainCall {
    // Both checked by being read: only "2.0" and "tools/call" read.
    #[allow(dead_code)]
    jsonrpc: JsonRpcVersion2_0,
    #[allow(dead_code)]
    method: CallToolRequestMethod,
    id: RequestId,
    params: CallToolRequestParams,
}

impl PlainCall {
    /// `body` as a `tools/call` request, if that is what it is.
    pub fn read(body: &[u8]) -> Option<PlainCall> {
        serde_json::from_slice(body).ok()
    }

    /// The request's id as JSON (what usage and answers are matched by).
    pub fn id(&self) -> serde_json::Value {
        serde_json::to_value(&self.id).unwrap_or_default()
    }

    /// The tool it calls.
    pub fn tool(&self) -> &str {
        &self.params.name
    }
}

/// `_meta` keys that send a call down the full path: a progress token (its
/// notifications need the request's stream) and a 2026-07-28 per-request
/// revision (answered by the stateless side).
const PROGRESS_TOKEN: &str = "progressToken";
const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// Forwards a plain call on the session's upstream and answers it.
async fn forward(
    activity: &Arc<Activity>,
    direct: &Direct,
    id: RequestId,
    meta: RequestMetaObject,
    request: ClientRequest,
) -> ServerJsonRpcMessage {
    let _open = activity.open();
    let call = activity.call(id.clone());
    let origin = Origin {
        id: id.clone(),
        meta,
        ct: call.cancel.clone(),
    };
    let answer = match direct.link.upstream.get() {
        Some(peer) => {
            let route = Route {
                peer,
                slug: &direct.slug,
                timeout: direct.timeout,
                link: &direct.link,
            };
            forward_on(route, request, origin).await
        }
        None => Err(super::session_upstream::unexpected(&direct.slug)),
    };
    match answer {
        Ok(result) => ServerJsonRpcMessage::response(result, id),
        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
    }
}

impl SessionManager for GatewaySessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.local.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        let answer = self.local.initialize_session(id, message).await;
        if answer.is_err() {
            // The client is told nothing of this session: it would never be
            // used, bound or expired.
            let _ = self.local.close_session(id).await;
        }
        answer
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.local.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.book.forget(id);
        self.local.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.local.create_stream(id, message).await?;
        Ok(self.tracked(id, stream))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        if let Some(activity) = self.touched(id)
            && let ClientJsonRpcMessage::Notification(notification) = &message
            && let ClientNotification::CancelledNotification(cancelled) = &notification.notification
            && let Some(request) = &cancelled.params.request_id
        {
            activity.cancel(request);
        }
        self.local.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.local.create_standalone_stream(id).await?;
        Ok(self.tracked(id, stream))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let stream = self.local.resume(id, last_event_id).await?;
        Ok(self.tracked(id, stream))
    }

    fn event_store(
        &self,
    ) -> Option<Arc<dyn rmcp::transport::streamable_http_server::session::EventStore>> {
        self.local.event_store()
    }
}

#[cfg(test)]
mod tests {
    use super::PlainCall;

    #[test]
    fn only_a_tools_call_reads_as_a_plain_call_and_keeps_its_meta() {
        let call = PlainCall::read(
            br#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","extra":1,
                "params":{"name":"echo","arguments":{"message":"hi"},"_meta":{"progressToken":7}}}"#,
        )
        .expect("a tools/call");
        assert_eq!(call.id(), serde_json::json!("a-1"));
        assert_eq!(call.tool(), "echo");
        let meta = call.params.meta.as_ref().expect("_meta kept");
        assert!(meta.0.0.contains_key(super::PROGRESS_TOKEN));
        for other in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"echo"}}"#[..],
            br#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#,
            br#"{"id":1,"method":"tools/call","params":{"name":"echo"}}"#,
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","params":{"name":"e"}}"#,
            b"not json",
        ] {
            assert!(
                PlainCall::read(other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
