//! An rmcp client as an MCP client app would be: it answers sampling with
//! its own name, declines elicitation, and notes every request and
//! notification it receives, so tests can tell which client got what.

#![allow(deprecated)] // sampling, elicitation and logging belong to the revisions tested here

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequestParams, ElicitResult, ElicitationAction, Implementation,
    LoggingMessageNotificationParam, ProgressNotificationParam, ProtocolVersion,
    ResourceUpdatedNotificationParam, SamplingMessage,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};

use super::Server;

/// What one test client saw.
#[derive(Default)]
pub struct Seen {
    pub sampled: Vec<String>,
    pub elicited: Vec<String>,
    pub progress: Vec<f64>,
    pub logs: Vec<String>,
    /// URIs of `notifications/resources/updated`.
    pub updated: Vec<String>,
}

/// An MCP client that answers sampling with its own name, declines
/// elicitation, and notes every request and notification it receives.
#[derive(Clone)]
pub struct TestClient {
    pub name: &'static str,
    pub seen: Arc<Mutex<Seen>>,
}

impl ClientHandler for TestClient {
    fn get_info(&self) -> ClientConfig {
        let capabilities: ClientCapabilities =
            serde_json::from_value(json!({ "sampling": {}, "elicitation": {}, "roots": {} }))
                .expect("client capabilities");
        ClientConfig::new(capabilities, Implementation::new(self.name, "1.0"))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let asked = serde_json::to_string(&params.messages).unwrap_or_default();
        self.seen.lock().unwrap().sampled.push(asked);
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(format!("answer from {}", self.name)),
            "test-model".into(),
        ))
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let asked = serde_json::to_string(&params).unwrap_or_default();
        self.seen.lock().unwrap().elicited.push(asked);
        Ok(ElicitResult::new(ElicitationAction::Decline))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen.lock().unwrap().progress.push(params.progress);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen.lock().unwrap().logs.push(params.data.to_string());
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen.lock().unwrap().updated.push(params.uri);
    }
}

pub type Client = RunningService<RoleClient, TestClient>;

/// Where a test reaches plexmcp: the `serve` process or an in-process gateway.
pub trait Target {
    fn base(&self) -> &str;
    fn http(&self) -> &reqwest::Client;
}

impl Target for Server {
    fn base(&self) -> &str {
        &self.base
    }
    fn http(&self) -> &reqwest::Client {
        &self.client
    }
}

/// An MCP session on `/mcp/{mcp}` with `key`.
pub async fn connect(
    server: &impl Target,
    mcp: &str,
    key: &str,
    name: &'static str,
) -> (Client, Arc<Mutex<Seen>>) {
    connect_to(server, &format!("/mcp/{mcp}"), key, name).await
}

/// An MCP session on `path` (`/mcp` or `/mcp/{id}`) with `key`.
pub async fn connect_to(
    server: &impl Target,
    path: &str,
    key: &str,
    name: &'static str,
) -> (Client, Arc<Mutex<Seen>>) {
    let mut headers = HashMap::new();
    headers.insert(
        HeaderName::from_static("authorization"),
        HeaderValue::from_str(&format!("ApiKey {key}")).unwrap(),
    );
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}{path}", server.base()))
        .custom_headers(headers);
    let transport = StreamableHttpClientTransport::from_config(config);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let client = TestClient {
        name,
        seen: seen.clone(),
    };
    let service = client
        .serve(transport)
        .await
        .expect("MCP session through plexmcp");
    (service, seen)
}

pub fn call(name: &str, arguments: Value) -> CallToolRequestParams {
    serde_json::from_value(json!({ "name": name, "arguments": arguments })).expect("call params")
}

pub fn text_of(result: &rmcp::model::CallToolResult) -> String {
    serde_json::to_value(&result.content).unwrap().to_string()
}

/// Waits (up to a generous limit) until `done` holds for what was seen.
pub async fn until(seen: &Arc<Mutex<Seen>>, what: &str, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&seen.lock().unwrap()) {
        assert!(Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
