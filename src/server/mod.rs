//! The HTTP side: `POST /mcp` and `GET /healthz` on axum. `Gateway` owns
//! what requests share (verifier, upstream pool, usage writer, live
//! counters); `serve` runs it on a bound listener until a cancellation
//! token fires, then finishes in-flight requests and drains the usage
//! writer. The console starts the very same `serve` as a background task.

mod authorize;
pub mod client_addr;
pub mod connections;
mod error;
mod jsonrpc;
pub mod limiter;
pub mod live;
mod mcp;
pub mod mcp_proxy;
pub mod metrics;
pub mod rate_limits;
mod tool_access;
pub mod tool_lists;
pub mod tool_pins;
mod upstream_reaper;
pub mod usage_pruner;
pub mod usage_writer;

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, MAX_BODY_BYTES};
pub use limiter::FailureLimiter;
pub use live::LiveStats;
pub use mcp::{CallRequest, decode_call, upstream_name, upstream_spec};

use crate::auth::Verifier;
use crate::store::{Store, StoreError};
use crate::upstream::Upstreams;
use usage_writer::{UsageSink, UsageWriter};

/// What every request handler shares.
pub struct AppState {
    pub verifier: Verifier,
    pub upstreams: Upstreams,
    pub usage: UsageSink,
    pub live: Arc<LiveStats>,
    pub limiter: FailureLimiter,
    /// Per-key rate limits, counted in this process (the console reads them).
    pub rate_limits: Arc<rate_limits::KeyRateLimits>,
    /// Peers whose forwarding headers name the client (limiter, usage).
    pub trusted_proxies: client_addr::TrustedProxies,
    /// `/mcp/{mcp_id}`: sessions and rmcp's transport.
    pub proxy: mcp_proxy::McpProxy,
    /// Request counters for `GET /metrics` (on its own listener).
    pub metrics: metrics::Metrics,
    /// Tool fingerprints and what pinned MCPs withhold.
    pub pins: Arc<tool_pins::ToolPins>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The server's parts, built before anything listens.
pub struct Gateway {
    state: Arc<AppState>,
    writer: UsageWriter,
    /// For the task that closes removed MCPs' upstreams while serving.
    reaper_store: Store,
    /// The database file, whose size `/metrics` reports.
    db: std::path::PathBuf,
    /// Where `GET /metrics` is served, if anywhere.
    metrics_listener: Option<TcpListener>,
}

impl Gateway {
    /// Opens the connections it needs from `store`: a reader and a change
    /// probe for the verifier, one for the usage writer, one for the
    /// upstream reaper.
    pub fn new(store: Store) -> Result<Gateway, ServeError> {
        Gateway::with_proxy_settings(store, mcp_proxy::ProxySettings::default())
    }

    /// As [`Gateway::new`], with the MCP endpoint's session and origin settings.
    pub fn with_proxy_settings(
        store: Store,
        settings: mcp_proxy::ProxySettings,
    ) -> Result<Gateway, ServeError> {
        Gateway::with_settings(store, settings, crate::config::DEFAULT_RETENTION_DAYS)
    }

    /// As [`Gateway::with_proxy_settings`]; the usage writer keeps raw
    /// usage events `usage_retention_days` and prunes older ones.
    pub fn with_settings(
        store: Store,
        settings: mcp_proxy::ProxySettings,
        usage_retention_days: u32,
    ) -> Result<Gateway, ServeError> {
        let writer = UsageWriter::start_with_retention(store.reopen()?, usage_retention_days)?;
        let reaper_store = store.reopen()?;
        let db = store.path().to_path_buf();
        let pins = Arc::new(tool_pins::ToolPins::start(&store)?);
        let state = Arc::new(AppState {
            verifier: Verifier::new(store)?,
            upstreams: Upstreams::new(),
            usage: writer.sink(),
            live: Arc::new(LiveStats::default()),
            limiter: FailureLimiter::default(),
            rate_limits: Arc::default(),
            trusted_proxies: settings.trusted_proxies.clone(),
            proxy: mcp_proxy::McpProxy::new(settings),
            metrics: metrics::Metrics::default(),
            pins,
        });
        Ok(Gateway {
            state,
            writer,
            reaper_store,
            db,
            metrics_listener: None,
        })
    }

    /// Also serves `GET /metrics` on `listener` (never on the API's).
    pub fn with_metrics(mut self, listener: TcpListener) -> Gateway {
        self.metrics_listener = Some(listener);
        self
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Serves until `cancel` fires; then stops accepting, lets in-flight
    /// requests finish, closes upstreams and commits every usage event.
    pub async fn serve(
        self,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> Result<(), ServeError> {
        let reaping = cancel.child_token();
        let reaper = upstream_reaper::spawn(
            self.reaper_store,
            self.state.upstreams.clone(),
            reaping.clone(),
        );
        let sweeper = mcp_proxy::spawn_sweeper(self.state.clone(), reaping.clone());
        // The per-request counters cost ~2 µs a request (a tenth of an
        // authenticated 403): only counted when someone can scrape them.
        let app = if self.metrics_listener.is_some() {
            router(self.state.clone())
        } else {
            routes(self.state.clone())
        };
        let scraping = self.metrics_listener.map(|listener| {
            let app = metrics::router(self.state.clone(), self.db.clone());
            let stop = cancel.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            })
        });
        // Open MCP streams would hold a graceful shutdown forever: they end first.
        let state = self.state.clone();
        let streams = cancel.clone();
        let ending = tokio::spawn(async move {
            streams.cancelled().await;
            state.proxy.shutdown();
        });
        connections::serve(listener, app, cancel, connections::Limits::default()).await;
        self.state.proxy.shutdown();
        let _ = ending.await;
        reaping.cancel();
        let _ = reaper.await;
        let _ = sweeper.await;
        if let Some(scraping) = scraping {
            let _ = scraping.await;
        }
        self.state.upstreams.shutdown().await;
        self.writer.finish().await;
        self.state.pins.flush().await;
        Ok(())
    }
}

/// Every route, with the request counters of `/metrics`.
pub fn router(state: Arc<AppState>) -> Router {
    routes(state.clone()).layer(axum::middleware::from_fn_with_state(state, metrics::track))
}

/// Every route, uncounted.
fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/mcp",
            post(mcp::post)
                .get(mcp_proxy::aggregate)
                .delete(mcp_proxy::aggregate),
        )
        .route("/mcp/{mcp_id}", any(mcp_proxy::guard))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(state)
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    (
        axum::http::StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": { "code": "not_found", "message": "No such endpoint; use POST /mcp" }
        })),
    )
}

/// Runs the gateway over `store` on `listener` until `cancel` fires.
pub async fn serve(
    store: Store,
    listener: TcpListener,
    cancel: CancellationToken,
) -> Result<(), ServeError> {
    Gateway::new(store)?.serve(listener, cancel).await
}
