//! Prometheus metrics on a listener of their own (`metrics.listen`), never
//! on the public one. Requests pay only relaxed atomic adds into fixed
//! arrays (no locks, no maps): every label comes from a closed set
//! (endpoint kind, method, status, auth reason), so no client can grow the
//! series. Gauges (queue depth, sessions, database size) are read at scrape.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::auth::Reason;

/// Which API answered: the shape of the answer, not the client's intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Rest,
    JsonRpc,
    McpProxy,
    /// `/healthz` and unknown paths.
    Other,
}

const ENDPOINTS: [&str; 4] = ["rest", "jsonrpc", "mcp_proxy", "other"];
/// The endpoints whose upstream time is told apart (`POST /mcp`): the
/// first two of [`ENDPOINTS`]. Sessions on `/mcp/{id}` answer from rmcp's
/// tasks, and their streams outlive the response headers.
const TIMED: usize = 2;

/// Time a request spent waiting on upstream tool calls, set by the
/// handler as a response extension for [`track`].
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTime(pub std::time::Duration);
const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "other"];
/// Statuses the gateway answers with; anything else is counted as "other".
const STATUSES: [u16; 17] = [
    200, 202, 204, 400, 401, 403, 404, 405, 406, 408, 413, 415, 429, 500, 502, 503, 504,
];
const STATUS_SLOTS: usize = STATUSES.len() + 1;
const REASONS: [Reason; 5] = [
    Reason::Missing,
    Reason::Malformed,
    Reason::NotFound,
    Reason::Revoked,
    Reason::Expired,
];
/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A histogram of atomics: one count per bucket (not cumulative) plus the
/// sum in microseconds, so observing is two adds.
#[derive(Debug, Default)]
struct Latency {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

impl Latency {
    fn observe(&self, micros: u64) {
        let secs = micros as f64 / 1e6;
        let slot = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
    }
}

/// The request-path counters.
#[derive(Debug)]
pub struct Metrics {
    requests: Vec<AtomicU64>,
    latency: [Latency; ENDPOINTS.len()],
    /// Upstream tool-call time, and the rest of the request's time.
    upstream: [Latency; TIMED],
    overhead: [Latency; TIMED],
    auth_failures: [AtomicU64; REASONS.len()],
    rate_limited: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: (0..ENDPOINTS.len() * METHODS.len() * STATUS_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: Default::default(),
            upstream: Default::default(),
            overhead: Default::default(),
            auth_failures: Default::default(),
            rate_limited: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// One answered request; `upstream` is the part of `micros` it waited
    /// on upstream tool calls, where known.
    pub fn request(
        &self,
        endpoint: Endpoint,
        method: &Method,
        status: u16,
        micros: u64,
        upstream: Option<u64>,
    ) {
        let method = match *method {
            Method::GET => 0,
            Method::POST => 1,
            Method::DELETE => 2,
            _ => 3,
        };
        let slot = STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUSES.len());
        let at = (endpoint as usize * METHODS.len() + method) * STATUS_SLOTS + slot;
        self.requests[at].fetch_add(1, Ordering::Relaxed);
        self.latency[endpoint as usize].observe(micros);
        if let Some(overhead) = self.overhead.get(endpoint as usize) {
            if let Some(upstream_us) = upstream {
                self.upstream[endpoint as usize].observe(upstream_us);
            }
            overhead.observe(micros.saturating_sub(upstream.unwrap_or(0)));
        }
        if status == 429 {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn auth_failure(&self, reason: Reason) {
        let at = REASONS.iter().position(|&r| r == reason).unwrap_or(0);
        self.auth_failures[at].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts every request on the public router; the JSON-RPC handler marks
/// its answers with [`Endpoint::JsonRpc`] as a response extension.
pub async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path_kind = match request.uri().path() {
        "/mcp" => Endpoint::Rest,
        p if p.starts_with("/mcp/") => Endpoint::McpProxy,
        _ => Endpoint::Other,
    };
    let response = next.run(request).await;
    let endpoint = response
        .extensions()
        .get::<Endpoint>()
        .copied()
        .unwrap_or(path_kind);
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let upstream = response
        .extensions()
        .get::<UpstreamTime>()
        .map(|t| u64::try_from(t.0.as_micros()).unwrap_or(u64::MAX));
    state.metrics.request(
        endpoint,
        &method,
        response.status().as_u16(),
        micros,
        upstream,
    );
    response
}

/// What a scrape reads besides the request counters.
struct Scraped {
    state: Arc<AppState>,
    db: PathBuf,
}

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraped").field("db", &self.db).finish()
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.state.metrics;
        let mut family = encoder.encode_descriptor(
            "plexmcp_requests",
            "Requests answered, by endpoint kind, HTTP method and status.",
            None,
            MetricType::Counter,
        )?;
        for (e, endpoint) in ENDPOINTS.iter().enumerate() {
            for (mi, method) in METHODS.iter().enumerate() {
                for s in 0..STATUS_SLOTS {
                    let value = m.requests[(e * METHODS.len() + mi) * STATUS_SLOTS + s]
                        .load(Ordering::Relaxed);
                    if value == 0 {
                        continue;
                    }
                    let status = STATUSES
                        .get(s)
                        .map_or_else(|| "other".to_owned(), u16::to_string);
                    let labels = [
                        ("endpoint", endpoint.to_string()),
                        ("method", method.to_string()),
                        ("status", status),
                    ];
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        histograms(
            &mut encoder,
            "plexmcp_request_duration_seconds",
            "Time from request to response headers, by endpoint kind (upstream time included).",
            &m.latency,
        )?;
        histograms(
            &mut encoder,
            "plexmcp_upstream_call_duration_seconds",
            "Time POST /mcp requests waited on upstream tool calls, by endpoint kind.",
            &m.upstream,
        )?;
        histograms(
            &mut encoder,
            "plexmcp_gateway_overhead_seconds",
            "Time of POST /mcp requests not spent waiting on upstreams (auth, checks, encoding), by endpoint kind.",
            &m.overhead,
        )?;
        let mut family = encoder.encode_descriptor(
            "plexmcp_auth_failures",
            "Refused API keys, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (at, reason) in REASONS.iter().enumerate() {
            let value = m.auth_failures[at].load(Ordering::Relaxed);
            let labels = [("reason", reason.as_str().to_owned())];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        counter(
            &mut encoder,
            "plexmcp_rate_limited",
            "Requests answered 429 (too many failed authentications).",
            m.rate_limited.load(Ordering::Relaxed),
        )?;
        let (connects, connect_failures) = self.state.upstreams.connect_counts();
        counter(
            &mut encoder,
            "plexmcp_upstream_connects",
            "Upstream MCP connections opened (a reconnect counts again).",
            connects,
        )?;
        counter(
            &mut encoder,
            "plexmcp_upstream_connect_failures",
            "Upstream MCP connection attempts that failed.",
            connect_failures,
        )?;
        let health = self.state.upstreams.health();
        let mut family = encoder.encode_descriptor(
            "plexmcp_upstream_up",
            "Whether the shared connection to an upstream (`<mcp id>#<row>`) is usable now.",
            None,
            MetricType::Gauge,
        )?;
        for upstream in &health {
            let labels = [("upstream", upstream.name.clone())];
            ConstGauge::new(i64::from(upstream.is_up())).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "plexmcp_upstream_restarts",
            "Times the shared connection to an upstream was opened again after the first.",
            None,
            MetricType::Counter,
        )?;
        for upstream in &health {
            let labels = [("upstream", upstream.name.clone())];
            ConstCounter::new(upstream.restarts).encode(family.encode_family(&labels)?)?;
        }
        gauge(
            &mut encoder,
            "plexmcp_mcp_sessions_open",
            "MCP sessions open on /mcp/{mcp_id}.",
            i64::try_from(self.state.proxy.sessions_open()).unwrap_or(i64::MAX),
        )?;
        let usage = &self.state.usage;
        let stats = usage.stats();
        gauge(
            &mut encoder,
            "plexmcp_usage_queue_depth",
            "Usage events waiting for the writer.",
            i64::try_from(usage.queued()).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut encoder,
            "plexmcp_usage_batches",
            "Usage batches committed.",
            stats.batches.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "plexmcp_usage_events_written",
            "Usage events committed.",
            stats.written.load(Ordering::Relaxed),
        )?;
        let mut family = encoder.encode_descriptor(
            "plexmcp_mcp_requests",
            "Requests recorded in usage, by MCP id and outcome (as the usage writer commits them).",
            None,
            MetricType::Counter,
        )?;
        for (mcp, outcome, n) in stats.by_mcp() {
            let labels = [("mcp", mcp), ("outcome", outcome.to_owned())];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        let losses = stats.losses();
        counter(
            &mut encoder,
            "plexmcp_usage_events_dropped",
            "Usage events dropped because the writer's queue was full.",
            losses.dropped,
        )?;
        counter(
            &mut encoder,
            "plexmcp_usage_failed_batches",
            "Usage batches whose commit failed (their events are lost).",
            losses.failed_batches,
        )?;
        let retention = usage.retention();
        counter(
            &mut encoder,
            "plexmcp_usage_events_pruned",
            "Raw usage events deleted past usage.retention_days (hourly statistics stay).",
            retention.pruned(),
        )?;
        gauge(
            &mut encoder,
            "plexmcp_usage_retention_days",
            "Days raw usage events are kept.",
            i64::from(retention.days()),
        )?;
        gauge(
            &mut encoder,
            "plexmcp_database_size_bytes",
            "Size of the database file plus its write-ahead log.",
            i64::try_from(database_size(&self.db)).unwrap_or(i64::MAX),
        )?;
        Ok(())
    }
}

/// One histogram per endpoint kind, labelled with its name.
fn histograms(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    by_endpoint: &[Latency],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (latency, endpoint) in by_endpoint.iter().zip(ENDPOINTS) {
        // Per-bucket counts: the encoder makes them cumulative.
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&latency.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = latency.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let labels = [("endpoint", endpoint.to_string())];
        family
            .encode_family(&labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                sum, count, &buckets, None,
            )?;
    }
    Ok(())
}

/// The database file plus `-wal`, from metadata only: opening the file
/// would drop SQLite's POSIX locks (see `Store::open`).
fn database_size(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.to_path_buf(), PathBuf::from(wal)]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// The metrics listener's router: `GET /metrics` and nothing else.
pub fn router(state: Arc<AppState>, db: PathBuf) -> Router {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scraped { state, db }));
    let registry = Arc::new(registry);
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "only GET /metrics here\n") })
        .with_state(registry)
}

async fn scrape(State(registry): State<Arc<Registry>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::prometheus_text::encode(&mut body, &registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_count_each_observation_once() {
        let latency = Latency::default();
        latency.observe(500); // 0.5 ms: first bucket
        latency.observe(20_000_000); // 20 s: +Inf
        let counts: Vec<u64> = latency
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts[0], 1);
        assert_eq!(counts[BUCKETS.len()], 1);
        assert_eq!(counts.iter().sum::<u64>(), 2);
        assert_eq!(latency.sum_us.load(Ordering::Relaxed), 20_000_500);
    }
}
