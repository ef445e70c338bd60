//! What the guard reads of a POST body before anything else: whether it
//! is the seed's REST body, and for a JSON-RPC request its id, method and
//! the name it is about (for authorization and the usage record). Only
//! those fields are read; a call's arguments or a long result are skipped,
//! not built.

use serde_json::Value;

/// What the guard needs of a POST body.
pub struct Peeked {
    /// An object without `jsonrpc`: the seed's REST body.
    pub rest_call: bool,
    /// A request's id, method and the name it is about (tool, prompt,
    /// resource URI); `None` for anything that is not a request.
    pub request: Option<(Value, String, Option<String>)>,
}

/// What is read of a JSON-RPC message; the rest (a call's arguments, say)
/// is skipped, not built.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(default, deserialize_with = "present")]
    jsonrpc: Option<serde::de::IgnoredAny>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

#[derive(serde::Deserialize)]
struct Params<'a> {
    #[serde(borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<std::borrow::Cow<'a, str>>,
}

/// A field that is there, even as `null` (`"id": null` is an id).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Reads `body`; `None` if it is not JSON. A message of an unusual shape
/// (params not an object, a name not a string, repeated keys) is read
/// whole instead.
pub fn read_head(body: &[u8]) -> Option<Peeked> {
    if let Ok(head) = serde_json::from_slice::<Head>(body) {
        let request = match (head.id, head.method) {
            (Some(id), Some(method)) => {
                let params = head.params;
                let name = match method.as_ref() {
                    "tools/call" | "prompts/get" => params.and_then(|p| p.name),
                    "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                        params.and_then(|p| p.uri)
                    }
                    _ => None,
                };
                Some((id, method.into_owned(), name.map(|n| n.into_owned())))
            }
            _ => None,
        };
        return Some(Peeked {
            rest_call: head.jsonrpc.is_none(),
            request,
        });
    }
    let message = serde_json::from_slice::<Value>(body).ok()?;
    Some(Peeked {
        rest_call: matches!(&message, Value::Object(map) if !map.contains_key("jsonrpc")),
        request: peek(&message).map(|(method, name)| {
            (
                message.get("id").cloned().unwrap_or(Value::Null),
                method,
                name,
            )
        }),
    })
}

/// The JSON-RPC method of a request and the name it is about (tool,
/// prompt, resource URI), or `None` for anything that is not a request.
fn peek(message: &Value) -> Option<(String, Option<String>)> {
    message.get("id")?;
    let method = message.get("method")?.as_str()?.to_owned();
    let params = message.get("params");
    let field = match method.as_str() {
        "tools/call" | "prompts/get" => "name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        _ => return Some((method, None)),
    };
    let name = params
        .and_then(|p| p.get(field))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((method, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_named_by_what_they_use_and_other_messages_are_not_requests() {
        let named = |m: Value| peek(&m);
        let call =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}});
        assert_eq!(
            named(call),
            Some(("tools/call".into(), Some("echo".into())))
        );
        let read = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "demo://a"}});
        assert_eq!(
            named(read),
            Some(("resources/read".into(), Some("demo://a".into())))
        );
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        assert_eq!(named(list), Some(("tools/list".into(), None)));
        // A call without a name is still a request, named by its method downstream.
        let nameless = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"});
        assert_eq!(named(nameless), Some(("tools/call".into(), None)));
        let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(named(notification), None);
        let response = json!({"jsonrpc": "2.0", "id": 3, "result": {}});
        assert_eq!(named(response), None);
        assert_eq!(named(json!([1, 2])), None);
    }

    #[test]
    fn the_quick_read_of_a_body_says_what_reading_it_whole_says() {
        for body in [
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"deep": [1, {"x": null}]}}}),
            json!({"jsonrpc": "2.0", "id": "a", "method": "resources/read", "params": {"uri": "demo://r"}}),
            json!({"jsonrpc": "2.0", "id": null, "method": "ping"}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 3, "result": {}}),
            json!({"jsonrpc": null, "id": 3, "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": [1]}),
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": 7}}),
            json!({"mcp_id": "a", "tool": "b", "arguments": {}}),
            json!([1, 2]),
            json!("text"),
        ] {
            let bytes = serde_json::to_vec(&body).unwrap();
            let quick = read_head(&bytes).expect("JSON");
            let whole_rest = matches!(&body, Value::Object(m) if !m.contains_key("jsonrpc"));
            let whole = peek(&body).map(|(method, name)| (body["id"].clone(), method, name));
            assert_eq!(quick.rest_call, whole_rest, "{body}");
            assert_eq!(quick.request, whole, "{body}");
        }
        assert!(read_head(b"{not json").is_none());
    }
}
