//! The `/mcp` API's error answers: one type, one JSON shape
//! (`{"error": {"code", "message", ...}}`), statuses as DESIGN.md's table.
//!
//! Upstream failures say only which MCP failed or timed out: the detail
//! (command lines, URLs, transport errors) is for the server log, never for
//! callers. The one exception is an upstream tool's own error answer, which
//! is passed on because it is the tool speaking, not the gateway.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::Reason;
use crate::domain::RateLimit;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    InvalidApiKey(Reason),
    UnauthorizedMcp,
    /// The key may use the MCP but not that tool (or the name is not in its tool list).
    UnauthorizedTool,
    InvalidRequest(String),
    UnknownTool {
        mcp: String,
        tool: String,
    },
    PayloadTooLarge,
    /// The body did not arrive in time.
    RequestTimeout,
    /// Too many failed authentications from this address.
    RateLimited {
        retry_after: u64,
    },
    /// The key used up its rate limit (its own or its org's default).
    KeyRateLimited {
        limit: RateLimit,
        retry_after: u64,
    },
    /// The upstream could not be reached or broke the protocol.
    Upstream {
        mcp: String,
    },
    UpstreamTimeout {
        mcp: String,
    },
    /// The upstream's tool answered with an error of its own.
    UpstreamRejected {
        mcp: String,
        message: String,
    },
    /// A pinned MCP's tool that is new or changed and not yet approved
    /// (`tool_pins`); the message names the tool, so its operator knows why.
    ToolWithheld(String),
    /// Our own fault (the store failed): logged, answered opaquely.
    Internal,
}

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidApiKey(_) => StatusCode::UNAUTHORIZED,
            ApiError::UnauthorizedMcp | ApiError::UnauthorizedTool | ApiError::ToolWithheld(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownTool { .. } => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } | ApiError::KeyRateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Upstream { .. } | ApiError::UpstreamRejected { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ApiError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `code`, also stored as a usage event's outcome.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidApiKey(_) => "invalid_api_key",
            ApiError::UnauthorizedMcp => "unauthorized_mcp",
            ApiError::UnauthorizedTool => "unauthorized_tool",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::UnknownTool { .. } => "unknown_tool",
            ApiError::ToolWithheld(_) => "tool_withheld",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::RateLimited { .. } | ApiError::KeyRateLimited { .. } => "rate_limited",
            ApiError::Upstream { .. } | ApiError::UpstreamRejected { .. } => "upstream_error",
            ApiError::UpstreamTimeout { .. } => "upstream_timeout",
            ApiError::Internal => "internal_error",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::InvalidApiKey(_) => "Invalid API Key".into(),
            ApiError::UnauthorizedMcp => "Unauthorized MCP".into(),
            ApiError::UnauthorizedTool => "Unauthorized tool".into(),
            ApiError::InvalidRequest(what) => what.clone(),
            ApiError::UnknownTool { mcp, tool } => format!("Unknown tool '{tool}' on MCP '{mcp}'"),
            ApiError::ToolWithheld(why) => why.clone(),
            ApiError::PayloadTooLarge => {
                format!("Request body is larger than {} bytes", MAX_BODY_BYTES)
            }
            ApiError::RequestTimeout => "The request body did not arrive in time".into(),
            ApiError::RateLimited { retry_after } => format!(
                "Too many failed authentication attempts from this address; retry in {retry_after} s"
            ),
            ApiError::KeyRateLimited { limit, retry_after } => {
                format!("Rate limit of this API key exceeded ({limit}); retry in {retry_after} s")
            }
            ApiError::Upstream { mcp } => format!("Upstream MCP '{mcp}' failed"),
            ApiError::UpstreamTimeout { mcp } => format!("Upstream MCP '{mcp}' timed out"),
            ApiError::UpstreamRejected { mcp, message } => {
                format!("Upstream MCP '{mcp}' answered with an error: {message}")
            }
            ApiError::Internal => "Internal error; see the server log".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code(), "message": self.message() });
        if let ApiError::InvalidApiKey(reason) = &self {
            error["reason"] = json!(reason.as_str());
        }
        if let Some(retry_after) = self.retry_after() {
            error["retry_after"] = json!(retry_after);
        }
        let mut response = (self.status(), axum::Json(json!({ "error": error }))).into_response();
        self.add_headers(&mut response);
        response
    }
}

impl ApiError {
    /// Seconds to wait before trying again, for the 429s.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after }
            | ApiError::KeyRateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The headers this error's answer carries whatever its body's shape
    /// (REST JSON or a JSON-RPC error): `WWW-Authenticate` on a 401,
    /// `Retry-After` on a 429.
    pub fn add_headers(&self, response: &mut Response) {
        match self {
            ApiError::InvalidApiKey(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey"));
            }
            ApiError::RateLimited { retry_after }
            | ApiError::KeyRateLimited { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
    }
}
