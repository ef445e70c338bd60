//! An upstream that speaks only the 2026-07-28 revision behind plexmcp: an
//! rmcp server that refuses `initialize` (it supports no revision with that
//! handshake) and asks for sampling the 2026 way, with an `input_required`
//! answer. Clients of the session revisions, of 2026-07-28 and of the REST
//! call are all served by it, and its input requests reach the client that
//! made the call as that client's own kind of request.

#![allow(deprecated)] // sampling belongs to the revisions tested here

mod support;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ErrorData, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ServerInfo,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler};
use serde_json::{Value, json};
use support::mcp_session::{Seen, TestClient, call, connect, text_of};
use support::{Env, Server};

/// A server on the 2026-07-28 revision only. `ask` needs a sampling answer
/// from the client: the first round returns `input_required`, the retry
/// (with the answer and the request state) finishes the call.
#[derive(Clone, Default)]
struct ModernOnly {
    /// The `_meta` of every request it got, to see what the gateway sent.
    metas: Arc<Mutex<Vec<Value>>>,
}

impl ServerHandler for ModernOnly {
    fn get_info(&self) -> ServerInfo {
        serde_json::from_value(json!({
            "protocolVersion": "2026-07-28",
            "capabilities": { "tools": {} },
            "serverInfo": { "name": "modern-only", "version": "1.0" },
            "instructions": "only the 2026-07-28 revision"
        }))
        .expect("server info")
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Owned(vec![ProtocolVersion::V_2026_07_28])
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tool = |name: &str| json!({ "name": name, "inputSchema": { "type": "object" } });
        Ok(
            serde_json::from_value(json!({ "tools": [tool("echo"), tool("ask"), tool("shout")] }))
                .unwrap(),
        )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.metas
            .lock()
            .unwrap()
            .push(serde_json::to_value(&context.meta).unwrap_or_default());
        let text = |text: String| {
            CallToolResponse::Complete(
                serde_json::from_value::<CallToolResult>(
                    json!({ "content": [{ "type": "text", "text": text }] }),
                )
                .unwrap(),
            )
        };
        match request.name.as_ref() {
            // Logs at the level the request's metadata asks for, if any.
            "shout" => {
                if let Some(level) = context.meta.0.get("io.modelcontextprotocol/logLevel") {
                    let params = serde_json::from_value(
                        json!({ "level": level, "data": "shouted at the asked level" }),
                    )
                    .unwrap();
                    let _ = context.peer.notify_logging_message(params).await;
                }
                Ok(text("shouted".to_owned()))
            }
            "echo" => Ok(text(format!(
                "echo: {}",
                request
                    .arguments
                    .as_ref()
                    .and_then(|a| a.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ))),
            "ask" => match (&request.input_responses, &request.request_state) {
                (Some(responses), Some(state)) if state == "asked-once" => {
                    let answer = responses["question"]["content"]["text"]
                        .as_str()
                        .unwrap_or("(no text)");
                    Ok(text(format!("the client said: {answer}")))
                }
                _ => Ok(CallToolResponse::InputRequired(
                    serde_json::from_value(json!({
                        "resultType": "input_required",
                        "inputRequests": {
                            "question": {
                                "method": "sampling/createMessage",
                                "params": {
                                    "messages": [{ "role": "user", "content": { "type": "text", "text": "who are you?" } }],
                                    "maxTokens": 20
                                }
                            }
                        },
                        "requestState": "asked-once"
                    }))
                    .expect("input_required result"),
                )),
            },
            _ => Err(ErrorData::invalid_params("no such tool", None)),
        }
    }
}

/// Serves `ModernOnly` over Streamable HTTP without sessions (the revision
/// has none) on a free loopback port; its URL.
async fn start_modern_only(server: ModernOnly) -> String {
    let config = StreamableHttpServerConfig::default().with_legacy_session_mode(false);
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = axum::Router::new().nest_service("/mcp", service);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn gateway_in_front_of(upstream: &ModernOnly) -> (Env, Server, String) {
    let url = start_modern_only(upstream.clone()).await;
    let env = Env::new();
    env.cli_ok(&["mcps", "add", "modern", "--url", &url]);
    let (_, key) = env.create_key("client", &[]);
    let server = Server::start(&env).await;
    (env, server, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_client_is_served_by_an_upstream_that_refuses_initialize() {
    let upstream = ModernOnly::default();
    let (_env, server, key) = gateway_in_front_of(&upstream).await;
    let (client, seen) = connect(&server, "modern", &key, "legacy-client").await;

    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("modern-only"),
        "the upstream's own server info"
    );
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["echo", "ask", "shout"]);

    let echoed = client
        .call_tool(call("echo", json!({ "message": "hi" })))
        .await
        .expect("echo");
    assert!(text_of(&echoed).contains("echo: hi"), "{echoed:?}");

    // The upstream's input request reaches this client as the sampling
    // request of its own revision; its answer finishes the call.
    let asked = client.call_tool(call("ask", json!({}))).await.expect("ask");
    assert!(
        text_of(&asked).contains("the client said: answer from legacy-client"),
        "{asked:?}"
    );
    assert_eq!(seen.lock().unwrap().sampled.len(), 1);

    // `logging/setLevel` has no 2026 counterpart: the session's level is
    // named in each later request, and the upstream's logs reach the client.
    client
        .set_level(serde_json::from_value(json!({ "level": "info" })).unwrap())
        .await
        .expect("logging/setLevel");
    client
        .call_tool(call("shout", json!({})))
        .await
        .expect("shout");
    support::mcp_session::until(&seen, "the upstream's log message", |seen| {
        seen.logs
            .iter()
            .any(|l| l.contains("shouted at the asked level"))
    })
    .await;
    let last = upstream.metas.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["io.modelcontextprotocol/logLevel"], "info", "{last}");

    // Every request upstream carried the 2026 lifecycle metadata, with the
    // client's own capabilities (so the upstream could ask it to sample).
    let metas = upstream.metas.lock().unwrap().clone();
    assert!(metas.len() >= 4, "{metas:?}");
    for meta in &metas {
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert!(
            meta["io.modelcontextprotocol/clientCapabilities"]["sampling"].is_object(),
            "{meta}"
        );
    }
    client.cancel().await.ok();

    // The same through the aggregate endpoint, under its `<mcp>__` names.
    let (aggregate, seen) =
        support::mcp_session::connect_to(&server, "/mcp", &key, "aggregate-client").await;
    let asked = aggregate
        .call_tool(call("modern__ask", json!({})))
        .await
        .expect("modern__ask");
    assert!(
        text_of(&asked).contains("the client said: answer from aggregate-client"),
        "{asked:?}"
    );
    assert_eq!(seen.lock().unwrap().sampled.len(), 1);
    aggregate.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2026_client_and_a_rest_caller_are_served_by_it_too() {
    let upstream = ModernOnly::default();
    let (_env, server, key) = gateway_in_front_of(&upstream).await;

    // A 2026-07-28 client: the input request is passed on to it as one,
    // and its retry finishes the call upstream.
    let mut headers = HashMap::new();
    headers.insert(
        HeaderName::from_static("authorization"),
        HeaderValue::from_str(&format!("ApiKey {key}")).unwrap(),
    );
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp/modern", server.base))
            .custom_headers(headers);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let client = TestClient {
        name: "modern-client",
        seen: seen.clone(),
    }
    .serve_with_lifecycle(
        StreamableHttpClientTransport::from_config(config),
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .expect("2026-07-28 client through plexmcp");
    assert_eq!(
        client.peer_info().expect("discovered").protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    let asked = client.call_tool(call("ask", json!({}))).await.expect("ask");
    assert!(
        text_of(&asked).contains("the client said: answer from modern-client"),
        "{asked:?}"
    );
    assert_eq!(seen.lock().unwrap().sampled.len(), 1);

    // The seed's REST call, on the gateway's shared connection.
    let reply = server.echo(&key, "modern", "rest").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.to_string().contains("echo: rest"),
        "{}",
        reply.body
    );
    // A REST caller has nothing to answer an input request with.
    let body = json!({ "mcp_id": "modern", "tool": "ask", "arguments": {} });
    let refused = server.call(Some(&key), &body).await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("call it from an MCP client")),
        "{}",
        refused.body
    );
    client.cancel().await.ok();
}
