//! What a request's answer says, for its usage record. Streamable HTTP
//! answers a JSON-RPC request with HTTP 200 whether it succeeded or not:
//! the error is inside, as a JSON body or an event on the request's SSE
//! stream. The response's frames are looked at as they pass (only a frame
//! that could hold an error is parsed) and the request's own error answer,
//! matched by id, gives the outcome the REST API would have recorded.

use serde_json::Value;

// Standard JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

/// The usage outcome and REST-equivalent status of an error answer to the
/// request `id` found in `frame` (a JSON body or SSE events), if any.
pub fn error_outcome(frame: &[u8], id: &Value) -> Option<(&'static str, u16)> {
    // Cheap test first: most frames are results and never parsed.
    if !contains(frame, b"\"error\"") {
        return None;
    }
    let text = std::str::from_utf8(frame).ok()?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return outcome_of(trimmed, id);
    }
    text.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .find_map(|data| outcome_of(data.trim(), id))
}

fn outcome_of(message: &str, id: &Value) -> Option<(&'static str, u16)> {
    let message: Value = serde_json::from_str(message).ok()?;
    if message.get("id") != Some(id) {
        return None;
    }
    let error = message.get("error")?;
    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    let text = error.get("message").and_then(Value::as_str).unwrap_or("");
    Some(match code {
        crate::server::tool_pins::TOOL_WITHHELD_CODE => ("tool_withheld", 403),
        INVALID_PARAMS if text.starts_with("Unknown tool") => ("unknown_tool", 404),
        PARSE_ERROR | INVALID_REQUEST | METHOD_NOT_FOUND | INVALID_PARAMS => {
            ("invalid_request", 400)
        }
        INTERNAL_ERROR if text.ends_with("timed out") => ("upstream_timeout", 504),
        // The gateway's own failures and any error the upstream answered.
        _ => ("upstream_error", 502),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_answers_are_found_in_json_and_sse_by_their_id() {
        let id = json!(7);
        let json_body =
            br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Unknown tool: x"}}"#;
        assert_eq!(error_outcome(json_body, &id), Some(("unknown_tool", 404)));
        let sse = b"id: 0/1\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32603,\"message\":\"Upstream MCP 'a' timed out\"}}\n\n";
        assert_eq!(error_outcome(sse, &id), Some(("upstream_timeout", 504)));
        let upstream_own = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32002,"message":"nope"}}"#;
        assert_eq!(
            error_outcome(upstream_own, &id),
            Some(("upstream_error", 502))
        );
        let missing = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"m"}}"#;
        assert_eq!(error_outcome(missing, &id), Some(("invalid_request", 400)));
    }

    #[test]
    fn results_other_ids_and_tool_errors_are_not_errors() {
        let id = json!("a");
        // Another request's error (a server-to-client answer, say).
        let other = br#"{"jsonrpc":"2.0","id":"b","error":{"code":-32603,"message":"x"}}"#;
        assert_eq!(error_outcome(other, &id), None);
        // A result that merely mentions "error", and a tool's isError result.
        let result = br#"{"jsonrpc":"2.0","id":"a","result":{"content":[{"type":"text","text":"\"error\""}],"isError":true}}"#;
        assert_eq!(error_outcome(result, &id), None);
        let progress = b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"error\":1}}\n\n";
        assert_eq!(error_outcome(progress, &id), None);
        assert_eq!(error_outcome(b"\xff\xfe\"error\"", &id), None);
    }
}
