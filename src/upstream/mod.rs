//! Connections from the gateway to the real MCP servers ("upstreams").
//!
//! Applications talk to the gateway; the gateway talks to upstreams through the
//! official Rust SDK (`rmcp`) acting as an MCP *client*. This module owns those
//! client connections so the HTTP side only has to say "call tool X on upstream
//! Y" and get back the upstream's result, or one of three errors.
//!
//! Why a pool rather than a connection per request:
//! - stdio upstreams are child processes; starting one per request would cost
//!   a process spawn plus an MCP handshake every time, so each is started on
//!   first use and kept running (`stdio.rs`).
//! - Streamable HTTP upstreams keep session state on the server; one session
//!   per upstream is reused (`http.rs`).
//! - The tool list is needed to reject unknown tools without a round trip, so
//!   it is fetched once per connection and cached alongside it (`connection.rs`).
//!
//! Lifecycle rules live in `pool.rs`: one connection per [`UpstreamSpec`] name,
//! lazily created, shared by concurrent calls, replaced when it dies or when
//! the spec behind the name changes.

mod backoff;
pub mod call_time;
mod child;
mod connection;
mod counted;
#[cfg(test)]
mod fake_tests;
mod http;
mod lifecycle;
mod pool;
mod stdio;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use connection::{OpenedClient, open_client};
pub use counted::Arrivals;
pub use pool::{Health, UpstreamHealth, Upstreams};

/// How to reach an upstream MCP server: the same description the store
/// keeps for a registered MCP.
pub use crate::domain::McpTransport as Transport;

/// Everything needed to connect to one upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamSpec {
    /// Stable identity of this upstream config, e.g. "default/everything#3". If a spec with the same name
    /// arrives with a different transport/timeout, the old connection is dropped and a new one made.
    pub name: String,
    /// How to reach the server.
    pub transport: Transport,
    /// Limit for each call, and separately for connecting (spawn or HTTP
    /// session set-up, handshake and the first `tools/list`).
    pub timeout: Duration,
}

/// Why an upstream operation failed. Messages are always a single line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The tool is not in the upstream's (cached) tool list.
    #[error("unknown tool '{0}'")]
    UnknownTool(String),
    /// Spawn failed, connection refused, process died mid-call, protocol garbage, error reply…
    #[error("{0}")]
    Failed(String),
    /// The upstream's tool answered with a JSON-RPC error of its own.
    #[error("upstream tool answered error {code}: {message}")]
    Rejected { code: i32, message: String },
    /// The upstream did not answer within the spec's timeout.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
}

/// Upper bound on the length of an error message built from upstream output,
/// so a misbehaving server cannot flood the gateway's responses or logs.
const MAX_MESSAGE_LEN: usize = 400;

/// Squashes a message to one line of bounded length: line breaks and other
/// control characters become spaces and runs of spaces collapse.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE_LEN));
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        if out.len() + c.len_utf8() > MAX_MESSAGE_LEN {
            out.push('…');
            return out;
        }
        out.push(c);
    }
    out.truncate(out.trim_end().len());
    out
}

/// Describes an error together with its `source()` chain on one line,
/// skipping sources whose text the message already contains (many error
/// types repeat their cause in their own `Display`). rmcp's wrappers that
/// only add type names are looked through.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    use rmcp::transport::DynamicTransportError;
    use rmcp::transport::streamable_http_client::StreamableHttpError;

    let mut text = String::new();
    let mut next = Some(err);
    while let Some(current) = next {
        if let Some(dynamic) = current.downcast_ref::<DynamicTransportError>() {
            next = Some(dynamic.error.as_ref());
            continue;
        }
        if let Some(StreamableHttpError::Client(inner)) =
            current.downcast_ref::<StreamableHttpError<reqwest::Error>>()
        {
            next = Some(inner);
            continue;
        }
        let part = current.to_string();
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = current.source();
    }
    one_line(&text)
}

/// Describes a failed MCP handshake without rmcp's type-name-laden wrapping.
pub(crate) fn describe_handshake(err: &rmcp::service::ClientInitializeError) -> String {
    use rmcp::service::ClientInitializeError as E;
    match err {
        E::TransportError { error, context } => {
            one_line(&format!("{context}: {}", describe(error)))
        }
        E::ConnectionClosed(waiting_for) => {
            format!("upstream closed the connection while the gateway waited for the {waiting_for}")
        }
        E::JsonRpcError(data) => one_line(&format!(
            "upstream rejected initialize (error {}): {}",
            data.code.0, data.message
        )),
        other => describe(other),
    }
}
