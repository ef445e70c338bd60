//! Building the Streamable HTTP client transport for an upstream.
//!
//! The session itself is driven by rmcp. What lives here:
//! - configuration that keeps a gateway from amplifying trouble: the
//!   background SSE stream gives up after a few reconnects instead of retrying
//!   forever, and bad header configuration is rejected up front with a clear
//!   message instead of failing every request;
//! - [`Client`], a thin layer over rmcp's reqwest client that makes a lost
//!   session recoverable. The spec says a server answers an unknown session id
//!   with 404, which rmcp handles by re-initializing. Common servers (the
//!   TypeScript SDK's examples among them) answer 400 with a JSON-RPC error
//!   that carries no id, which rmcp cannot match to the request, so the call
//!   would hang until its timeout, and every later call too. An id-less
//!   error in direct reply to a request on a session is therefore treated as
//!   "session expired" (rmcp re-initializes once and retries that request
//!   once); without a session the error is tied to the request it answers;
//! - errors with the upstream's URL in them (rmcp logs them, the gateway
//!   logs them) carry it redacted: no user name, password or query values,
//!   which is where people put tokens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, JsonRpcMessage};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::{BoxedSseResponse, ExponentialBackoff};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};

use super::UpstreamError;

/// Headers the transport manages itself; rmcp refuses requests that set them.
const RESERVED: &[&str] = &["accept", "mcp-session-id", "last-event-id"];

/// Simultaneous POSTs per upstream session (rmcp's default is 16).
const MAX_CONCURRENT_REQUESTS: usize = 64;

/// Reconnect attempts for an interrupted SSE stream before giving up.
const SSE_RECONNECTS: usize = 3;

pub(super) fn transport(
    url: &str,
    headers: &[(String, String)],
) -> Result<StreamableHttpClientTransport<Client>, UpstreamError> {
    let mut custom = HashMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            UpstreamError::Failed(super::one_line(&format!(
                "invalid HTTP header name '{name}'"
            )))
        })?;
        if RESERVED.contains(&header.as_str()) {
            return Err(UpstreamError::Failed(format!(
                "HTTP header '{}' is managed by the MCP transport and cannot be configured",
                header.as_str()
            )));
        }
        let value = HeaderValue::from_str(value.trim()).map_err(|_| {
            UpstreamError::Failed(format!(
                "invalid value for HTTP header '{}'",
                header.as_str()
            ))
        })?;
        custom.insert(header, value);
    }

    let mut backoff = ExponentialBackoff::default();
    backoff.max_times = Some(SSE_RECONNECTS);
    backoff.max_delay = Some(Duration::from_secs(10));

    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .custom_headers(custom)
        .max_concurrent_requests(MAX_CONCURRENT_REQUESTS)
        .reinit_on_expired_session(true);
    config.retry_config = Arc::new(backoff);

    // Like rmcp's default client: no idle pooling (avoids delayed-ACK stalls
    // on half-read connections) and no redirects that would turn a POST into
    // a GET or replay headers to another host.
    let inner = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| {
            UpstreamError::Failed(format!(
                "could not set up HTTP client: {}",
                super::describe(&e)
            ))
        })?;
    Ok(StreamableHttpClientTransport::with_client(
        Client { inner },
        config,
    ))
}

/// rmcp's reqwest client, plus the lost-session handling described above.
#[derive(Clone)]
pub(super) struct Client {
    inner: reqwest::Client,
}

impl StreamableHttpClient for Client {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = max_sse_event_size;
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            limits,
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let request_id = match &message {
            JsonRpcMessage::Request(request) => Some(request.id.clone()),
            _ => None,
        };
        let on_session = session_id.is_some();
        let response = self
            .inner
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await
            .map_err(redacted)?;
        match (response, request_id) {
            (StreamableHttpPostResponse::Json(JsonRpcMessage::Error(mut error), sid), Some(id))
                if error.id.is_none() =>
            {
                if on_session {
                    tracing::debug!(
                        target: "plexmcp::upstream",
                        "session rejected ({}); re-initializing",
                        super::one_line(&error.error.message)
                    );
                    return Err(StreamableHttpError::SessionExpired);
                }
                error.id = Some(id);
                Ok(StreamableHttpPostResponse::Json(
                    JsonRpcMessage::Error(error),
                    sid,
                ))
            }
            (response, _) => Ok(response),
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
            .map_err(redacted)
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxedSseResponse, StreamableHttpError<Self::Error>> {
        self.inner
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
            .map_err(redacted)
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxedSseResponse, StreamableHttpError<Self::Error>> {
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
            .map_err(redacted)
    }
}

/// `error` with any URL in it redacted.
fn redacted(mut error: StreamableHttpError<reqwest::Error>) -> StreamableHttpError<reqwest::Error> {
    if let StreamableHttpError::Client(inner) = &mut error
        && let Some(url) = inner.url_mut()
    {
        redact_url(url);
    }
    error
}

/// Masks the parts of a URL that may hold secrets: user name, password,
/// query values (names stay, to say what was there) and the fragment.
fn redact_url(url: &mut reqwest::Url) {
    const MASK: &str = "***";
    if !url.username().is_empty() {
        let _ = url.set_username(MASK);
    }
    if url.password().is_some() {
        let _ = url.set_password(Some(MASK));
    }
    if url.query().is_some() {
        let names: Vec<String> = url
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(names.iter().map(|name| (name.as_str(), MASK)));
    }
    url.set_fragment(None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets_but_keep_where_they_point() {
        let mut url =
            reqwest::Url::parse("https://user:hunter2@mcp.example.com:8443/mcp?token=abc&v=2#frag")
                .unwrap();
        redact_url(&mut url);
        assert_eq!(
            url.as_str(),
            "https://***:***@mcp.example.com:8443/mcp?token=***&v=***"
        );
        let mut plain = reqwest::Url::parse("http://127.0.0.1:9/mcp").unwrap();
        redact_url(&mut plain);
        assert_eq!(plain.as_str(), "http://127.0.0.1:9/mcp");
    }
}
