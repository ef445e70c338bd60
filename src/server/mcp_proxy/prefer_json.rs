//! A session's answer to a POSTed request, as JSON when it can be. rmcp's
//! session transport answers every request with an SSE stream, even a
//! plain result with nothing before it. Streamable HTTP lets the server
//! pick either, and the stream costs the client more than the answer: the
//! rmcp client, for one, gives up waiting for the stream to end and drops
//! the connection, so a busy client opened a TCP connection for one
//! request in three. When the request's own answer is the first message on
//! its stream and comes within [`WINDOW`], it is sent as an
//! `application/json` body; anything else before it (progress, a log line,
//! a request to the client) or a slower answer keeps the stream, with what
//! was read put back in front, so nothing is lost or reordered.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::Value;

/// How long the answer may take and still be sent as JSON; a slower call
/// keeps its stream, whose keep-alive comments hold idle proxies open.
pub const WINDOW: Duration = Duration::from_secs(1);
/// What is read ahead looking for the answer; a bigger first message is
/// streamed as it came.
const MOST_READ_AHEAD: usize = 4 * 1024 * 1024;

/// `response` to the request `id`, turned into JSON where the module says.
pub async fn prefer_json(response: Response, id: &Value) -> Response {
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_stream || !response.status().is_success() {
        return response;
    }
    let (mut parts, mut body) = response.into_parts();
    let mut read = Vec::<Bytes>::new();
    let mut pending = Vec::<u8>::new();
    let deadline = tokio::time::Instant::now() + WINDOW;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            // Slow, ended, or broken: the stream goes on (or ends) as it is.
            _ => break,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        read.push(data);
        match first_message(&mut pending) {
            Seen::Nothing if pending.len() <= MOST_READ_AHEAD => continue,
            Seen::Answer(answered, data) if answered == *id => {
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                parts.headers.remove(header::CACHE_CONTROL);
                parts.headers.remove("x-accel-buffering");
                parts.headers.remove(header::TRANSFER_ENCODING);
                // The rest of the stream (its end) is dropped with `body`.
                // The upstream's bytes as they were, not re-serialized.
                return Response::from_parts(parts, Body::from(data));
            }
            _ => break,
        }
    }
    let replay = futures_util::stream::iter(read.into_iter().map(Ok::<Bytes, axum::Error>));
    let rest = body.into_data_stream();
    Response::from_parts(parts, Body::from_stream(replay.chain(rest)))
}

/// What is read of a message to tell an answer: the rest is skipped, not
/// built (a tool result can be megabytes).
#[derive(serde::Deserialize)]
struct Head {
    id: Option<Value>,
    result: Option<serde::de::IgnoredAny>,
    error: Option<serde::de::IgnoredAny>,
}

enum Seen {
    /// No message yet (only comments, the priming event, or a partial event).
    Nothing,
    /// The first message: a response or error, its id and the message as sent.
    Answer(Value, String),
    /// The first message is something else.
    Other,
}

/// Takes complete SSE events off the front of `pending` until one carries
/// a message.
fn first_message(pending: &mut Vec<u8>) -> Seen {
    loop {
        let Some(end) = find_event_end(pending) else {
            return Seen::Nothing;
        };
        let event: Vec<u8> = pending.drain(..end).collect();
        let Ok(event) = std::str::from_utf8(&event) else {
            return Seen::Other;
        };
        let data: Vec<&str> = event
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        let data = data.join("\n");
        if data.trim().is_empty() {
            continue; // the priming event, a keep-alive comment
        }
        return match serde_json::from_str::<Head>(&data) {
            Ok(Head {
                id: Some(id),
                result,
                error,
            }) if result.is_some() || error.is_some() => Seen::Answer(id, data),
            _ => Seen::Other,
        };
    }
}

/// Where the first SSE event of `bytes` ends (after its blank line).
fn find_event_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sse(events: &[&str]) -> Response {
        let chunks: Vec<Result<Bytes, axum::Error>> = events
            .iter()
            .map(|e| Ok(Bytes::from(e.to_string())))
            .collect();
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .unwrap()
    }

    async fn text(response: Response) -> (String, String) {
        let kind = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (kind, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_lone_answer_after_the_priming_event_becomes_json() {
        let answer = r#"{"jsonrpc":"2.0","id":7,"result":{"ok":true}}"#;
        let response = sse(&[
            "id: 0\nretry: 1000\ndata: \n\n",
            &format!("data: {answer}\n\n"),
        ]);
        let (kind, body) = text(prefer_json(response, &json!(7)).await).await;
        assert_eq!(kind, "application/json");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            serde_json::from_str::<Value>(answer).unwrap()
        );
    }

    #[tokio::test]
    async fn anything_before_the_answer_keeps_the_whole_stream_in_order() {
        let progress =
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";
        let answer = "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n";
        let response = sse(&["data: \n\n", progress, answer]);
        let (kind, body) = text(prefer_json(response, &json!(7)).await).await;
        assert_eq!(kind, "text/event-stream");
        assert_eq!(body, format!("data: \n\n{progress}{answer}"));
    }

    #[tokio::test]
    async fn an_event_split_across_frames_is_put_together_and_another_id_is_left_alone() {
        let response = sse(&["data: {\"jsonrpc\":\"2.0\",\"id\":", "3,\"result\":{}}\n\n"]);
        let (kind, body) = text(prefer_json(response, &json!(7)).await).await;
        assert_eq!(kind, "text/event-stream");
        assert!(body.contains("\"id\":3"), "{body}");
        let response = sse(&[
            "data: {\"jsonrpc\":\"2.0\",\"id\":",
            "7,\"result\":{}}\r\n\r\n",
        ]);
        let (kind, _) = text(prefer_json(response, &json!(7)).await).await;
        assert_eq!(kind, "application/json");
    }

    #[tokio::test]
    async fn a_json_answer_passes_untouched() {
        let response = Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let (kind, body) = text(prefer_json(response, &json!(1)).await).await;
        assert_eq!((kind.as_str(), body.as_str()), ("application/json", "{}"));
    }
}
