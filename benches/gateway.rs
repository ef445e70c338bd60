//! `cargo bench --bench gateway`: what the gateway costs on top of the MCP
//! servers behind it, measured in one run on loopback.
//!
//! Rows (same concurrency, same fixed window, warm-up excluded):
//! - direct stdio / direct HTTP: an rmcp client (configured like the
//!   gateway's upstream pool) calling the reference server's `echo` tool on
//!   its own child process / on the reference server's Streamable HTTP;
//! - through plexmcp stdio / HTTP: `POST /mcp` with a valid key to the
//!   in-process gateway, which forwards to an MCP of that transport;
//! - session stdio / session HTTP: one MCP session on `/mcp/{id}` with a
//!   valid key (opened with `initialize`), the same load generator sending
//!   JSON-RPC `tools/call echo` in it, through the session's own upstream
//!   connection of that transport (a client that declared no capabilities:
//!   the gateway's direct path for plain calls);
//! - session stdio, asking client: the same from a client that declared
//!   sampling and elicitation, so every call takes rmcp's full session path
//!   (the upstream could ask it something on the call's stream);
//! - auth only: a valid key for an MCP it may not use (403, no upstream).
//!
//! Then the same binary is started as a separate `plexmcp serve` process to
//! read the server's own memory idle and under load.
//!
//! Options (flag or environment): `--duration` (`PLEXMCP_BENCH_DURATION`,
//! seconds, default 10), `--warmup` (`PLEXMCP_BENCH_WARMUP`, default 2),
//! `--concurrency` (`PLEXMCP_BENCH_CONCURRENCY`, default 16),
//! `--serve-duration` (`PLEXMCP_BENCH_SERVE_DURATION`, default 3; 0 skips
//! the separate-process part), `--no-log` (no request log in the gateway),
//! `--only direct-stdio,through-stdio,session-stdio,session-stdio-asking,direct-http,through-http,session-http,auth` (some
//! rows only, e.g. under a profiler), `--rate-limit 1000000/s`
//! (`PLEXMCP_BENCH_RATE_LIMIT`: every seeded key gets that limit, so the
//! rows include the rate limit check), `--tool-access` (the keys get
//! per-tool grants: the good key `es:echo,get-sum` and `eh:echo,get-sum`,
//! the other key `es:get-sum` and `other`, so the auth row is refused as
//! `unauthorized_tool` after the grant's tool check).

#[path = "../tests/support/install.rs"]
mod install;
#[path = "support/report.rs"]
mod report;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use plexmcp::admin::{self, KeyRequest, McpRequest};
use plexmcp::domain::{Actor, McpAccess};
use plexmcp::server::Gateway;
use plexmcp::store::Store;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use report::{Samples, memory_kib, mib, thousands, verdict};

const ECHO_BODY: &str = r#"{"mcp_id":"MCP","tool":"echo","arguments":{"message":"hi"}}"#;

struct Options {
    duration: Duration,
    warmup: Duration,
    concurrency: usize,
    serve_duration: Duration,
    log: bool,
    only: String,
    /// A rate limit put on every seeded key (`--rate-limit 1000000/s`),
    /// high enough never to refuse: what the check costs.
    rate_limit: Option<plexmcp::domain::RateLimit>,
    /// Per-tool grants on the seeded keys (`--tool-access`).
    tool_access: bool,
}

impl Options {
    fn parse() -> Options {
        let secs = |name, env, default: f64| {
            Duration::from_secs_f64(report::option(name, env, default).max(0.0))
        };
        Options {
            duration: secs("duration", "PLEXMCP_BENCH_DURATION", 10.0),
            warmup: secs("warmup", "PLEXMCP_BENCH_WARMUP", 2.0),
            concurrency: report::option("concurrency", "PLEXMCP_BENCH_CONCURRENCY", 16usize).max(1),
            serve_duration: secs("serve-duration", "PLEXMCP_BENCH_SERVE_DURATION", 3.0),
            log: !report::flag("no-log"),
            only: report::option("only", "PLEXMCP_BENCH_ONLY", String::new()),
            rate_limit: {
                let spec = report::option("rate-limit", "PLEXMCP_BENCH_RATE_LIMIT", String::new());
                (!spec.is_empty())
                    .then(|| match plexmcp::rules::rate_limit(&spec, None) {
                        Ok(spec) => spec.limit(),
                        Err(e) => {
                            eprintln!("error: --rate-limit: {e}");
                            std::process::exit(2);
                        }
                    })
                    .flatten()
            },
            tool_access: report::flag("tool-access"),
        }
    }

    fn runs(&self, row: &str) -> bool {
        self.only.is_empty() || self.only.split(',').any(|r| r == row)
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let entry = check_test_deps()?;
    let dir = tempfile::tempdir()?;
    let http = ReferenceHttp::start(&entry)?;
    let seeded = seed(
        &dir.path().join("bench.db"),
        &entry,
        &http.url(),
        options.rate_limit,
        options.tool_access,
    )?;

    println!(
        "plexmcp gateway benchmark: {} in flight, {:.0} s per row after {:.0} s warm-up; {}",
        options.concurrency,
        options.duration.as_secs_f64(),
        options.warmup.as_secs_f64(),
        report::machine()
    );
    if options.log {
        // Like `plexmcp serve`: one info line per request (to a file here).
        let log = std::fs::File::create(dir.path().join("gateway.log"))?;
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,rmcp=warn"))
            .with_writer(std::sync::Mutex::new(log))
            .with_ansi(false)
            .init();
    }

    // The gateway gets the machine's cores, as `plexmcp serve` would; the
    // load generator runs on one more thread of its own.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gateway")
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("loadgen")
        .build()?;

    // Direct rows: the rmcp client gets as many threads as the gateway.
    let rmcp_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rmcp-client")
        .build()?;

    let baseline = memory_kib(None);
    let cancel = CancellationToken::new();
    let (addr, state, serving) = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let gateway = Gateway::new(Store::open(&seeded.db)?)?;
        let state = gateway.state().clone();
        let serving = tokio::spawn(gateway.serve(listener, cancel.clone()));
        anyhow::Ok((addr, state, serving))
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let idle = memory_kib(None);

    let through = |mcp: &str, key: &str, expect: StatusCode| Target {
        addr,
        key: key.to_string(),
        path: "/mcp".into(),
        headers: Vec::new(),
        body: Bytes::from(ECHO_BODY.replace("MCP", mcp)),
        expect,
    };
    let via_stdio = through("es", &seeded.good_key, StatusCode::OK);
    let via_http = through("eh", &seeded.good_key, StatusCode::OK);
    let forbidden = through("es", &seeded.other_key, StatusCode::FORBIDDEN);

    // Sanity: every path answers as expected before anything is timed.
    client_rt.block_on(async {
        for target in [&via_stdio, &via_http, &forbidden] {
            target.check_once().await?;
        }
        anyhow::Ok(())
    })?;

    let mut rows = Vec::new();
    let load_peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, on) = (load_peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                if let Some((rss, _)) = memory_kib(None) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    if options.runs("direct-stdio") {
        let client = rmcp_rt.block_on(rmcp_stdio(&entry))?;
        rows.push(run_rmcp("direct stdio", &rmcp_rt, &client, &options));
        rmcp_rt.block_on(client.cancel()).ok();
    }
    if options.runs("through-stdio") {
        rows.push(run_http(
            "through plexmcp stdio",
            &client_rt,
            &via_stdio,
            &options,
        )?);
    }
    if options.runs("session-stdio") {
        let session = client_rt.block_on(session_target(addr, &seeded.good_key, "es", "{}"))?;
        rows.push(run_session(
            "session stdio",
            &client_rt,
            &session,
            &options,
        )?);
    }
    if options.runs("session-stdio-asking") {
        let asking = r#"{"sampling":{},"elicitation":{}}"#;
        let session = client_rt.block_on(session_target(addr, &seeded.good_key, "es", asking))?;
        rows.push(run_session(
            "session stdio, asking client",
            &client_rt,
            &session,
            &options,
        )?);
    }
    if options.runs("direct-http") {
        let client = rmcp_rt.block_on(rmcp_http(&http.url()))?;
        rows.push(run_rmcp("direct HTTP", &rmcp_rt, &client, &options));
        rmcp_rt.block_on(client.cancel()).ok();
    }
    if options.runs("through-http") {
        rows.push(run_http(
            "through plexmcp HTTP",
            &client_rt,
            &via_http,
            &options,
        )?);
    }
    if options.runs("session-http") {
        let session = client_rt.block_on(session_target(addr, &seeded.good_key, "eh", "{}"))?;
        rows.push(run_session("session HTTP", &client_rt, &session, &options)?);
    }
    if options.runs("auth") {
        rows.push(run_http(
            "auth only (403)",
            &client_rt,
            &forbidden,
            &options,
        )?);
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.join().ok();
    let after = memory_kib(None);

    cancel.cancel();
    server_rt.block_on(async {
        match tokio::time::timeout(Duration::from_secs(20), serving).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(anyhow::anyhow!("gateway stopped with an error: {e}")),
            Ok(Err(e)) => Err(anyhow::anyhow!("gateway task failed: {e}")),
            Err(_) => Err(anyhow::anyhow!("gateway did not stop within 20 s")),
        }
    })?;
    let usage = state.usage.stats();
    let written = usage.written.load(Ordering::Relaxed);
    let dropped = usage.dropped.load(Ordering::Relaxed);

    print_table(&rows);
    print_cpu(&rows, IN_PROCESS);
    let rate = |name: &str| rows.iter().find(|r| r.name == name).map(Row::rate);
    let ratio = |through: &str, direct: &str| match (rate(through), rate(direct)) {
        (Some(t), Some(d)) if d > 0.0 => Some(t / d),
        _ => None,
    };
    let shown = |r: Option<f64>| r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.2}"));
    let stdio_ratio = ratio("through plexmcp stdio", "direct stdio");
    let http_ratio = ratio("through plexmcp HTTP", "direct HTTP");
    let session_stdio_ratio = ratio("session stdio", "direct stdio");
    let session_http_ratio = ratio("session HTTP", "direct HTTP");
    let asking_ratio = ratio("session stdio, asking client", "direct stdio");
    println!();
    println!(
        "through ÷ direct, stdio: {}   (target ≥ 0.90: {})",
        shown(stdio_ratio),
        stdio_ratio.map_or("n/a", |r| verdict(r >= 0.9))
    );
    println!("through ÷ direct, HTTP:  {}", shown(http_ratio));
    println!(
        "session ÷ direct, stdio: {} (REST: {}); HTTP: {} (REST: {})",
        shown(session_stdio_ratio),
        shown(stdio_ratio),
        shown(session_http_ratio),
        shown(http_ratio)
    );
    println!(
        "session ÷ direct, stdio, a client that can be asked (full session path): {}",
        shown(asking_ratio)
    );
    let auth = rows
        .iter()
        .find(|r| r.name.starts_with("auth"))
        .map_or(0.0, Row::rate);
    println!(
        "auth only: {} req/s   (target ≥ 25,000: {})",
        thousands(auth),
        verdict(auth >= 25_000.0)
    );
    println!(
        "usage events written by the gateway: {}, dropped: {dropped}{}",
        thousands(written as f64),
        if options.log {
            "; request log on"
        } else {
            "; request log off"
        }
    );
    if let (Some((base, _)), Some((idle, _)), Some((_, hwm))) = (baseline, idle, after) {
        println!(
            "bench process RSS (gateway in-process, includes the load generator and direct clients): \
             before gateway {}, gateway idle {}, peak sampled under load {}, VmHWM {}",
            mib(base),
            mib(idle),
            mib(load_peak.load(Ordering::Relaxed)),
            mib(hwm)
        );
    }

    if !options.serve_duration.is_zero() {
        serve_process(&seeded, &client_rt, &options)?;
    }
    drop(http);
    Ok(())
}

/// The reference server's entry point, installed first if needed (the
/// same pinned install as the tests'), or the one line saying why not.
fn check_test_deps() -> anyhow::Result<PathBuf> {
    match install::try_server_everything() {
        Ok(entry) => Ok(entry),
        Err(why) => {
            eprintln!("error: {why}");
            std::process::exit(1);
        }
    }
}

/// Kills the child (and waits for it) when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_listening(child: &mut Child, port: u16, what: &str) -> anyhow::Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(false);
        }
        if StdTcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what} did not start listening on port {port} within 20 s")
}

/// `node <server-everything> streamableHttp` on a free port.
struct ReferenceHttp {
    _child: ChildGuard,
    port: u16,
}

impl ReferenceHttp {
    fn start(entry: &Path) -> anyhow::Result<ReferenceHttp> {
        for _ in 0..5 {
            let port = free_port()?;
            let mut child = Command::new("node")
                .arg(entry)
                .arg("streamableHttp")
                .env("PORT", port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting node")?;
            // The port may be taken between picking and binding; try another.
            if wait_listening(&mut child, port, "server-everything")? {
                return Ok(ReferenceHttp {
                    _child: ChildGuard(child),
                    port,
                });
            }
        }
        bail!("server-everything (streamableHttp) never started listening")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

struct Seeded {
    db: PathBuf,
    /// May use the stdio MCP `es` and the HTTP MCP `eh`.
    good_key: String,
    /// May only use `other`, so calling `es` is the 403 path.
    other_key: String,
}

/// A fresh database: the stdio and HTTP MCPs, one key for both, one key
/// for neither.
fn seed(
    db: &Path,
    entry: &Path,
    url: &str,
    rate_limit: Option<plexmcp::domain::RateLimit>,
    tool_access: bool,
) -> anyhow::Result<Seeded> {
    let mut store = Store::open(db)?;
    let org = store.org("default")?;
    let actor = Actor {
        user: "bench".into(),
        addr: None,
    };
    let now = Utc::now();
    let stdio = shlex::try_join(["node", entry.to_str().context("UTF-8 path")?, "stdio"])?;
    for (slug, stdio, url) in [
        ("es", Some(stdio), None),
        ("eh", None, Some(url.to_string())),
        ("other", Some("true".to_string()), None),
    ] {
        let request = McpRequest {
            slug: slug.into(),
            stdio,
            url,
            ..McpRequest::default()
        };
        admin::add_mcp(&mut store, &org, &request, &actor, now)?;
    }
    // Grants as `--mcp` takes them; with `--tool-access`, limited to tools.
    let mut key = |name: &str, access: &[&str]| -> anyhow::Result<String> {
        let grants = access
            .iter()
            .map(|spec| plexmcp::rules::mcp_grant(spec).map_err(|e| anyhow::anyhow!(e.message)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let request = KeyRequest {
            name: name.into(),
            description: None,
            expires: "never".into(),
            access: McpAccess::only(grants),
        };
        let (_, key) =
            admin::create_key_limited(&mut store, &org, &request, rate_limit, &actor, now)?;
        Ok(key.expose().to_string())
    };
    Ok(Seeded {
        db: db.to_path_buf(),
        good_key: if tool_access {
            key("bench", &["es:echo,get-sum", "eh:echo,get-sum"])?
        } else {
            key("bench", &["es", "eh"])?
        },
        other_key: if tool_access {
            key("no-access", &["es:get-sum", "other"])?
        } else {
            key("no-access", &["other"])?
        },
    })
}

/// The gateway's rmcp client identity (see `src/upstream/connection.rs`).
struct BenchClient;

impl ClientHandler for BenchClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("plexmcp-bench", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }
}

type Client = RunningService<RoleClient, BenchClient>;

async fn rmcp_stdio(entry: &Path) -> anyhow::Result<Client> {
    let mut command = tokio::process::Command::new("node");
    command.arg(entry).arg("stdio").kill_on_drop(true);
    let (process, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()?;
    Ok(BenchClient.serve(process).await?)
}

async fn rmcp_http(url: &str) -> anyhow::Result<Client> {
    // As the gateway's pool: up to 64 concurrent POSTs per session.
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).max_concurrent_requests(64);
    Ok(BenchClient
        .serve(StreamableHttpClientTransport::from_config(config))
        .await?)
}

/// One MCP session on `/mcp/{mcp}` with `key`, opened as an MCP client
/// with `capabilities` does (`initialize`, then `notifications/initialized`), and the
/// `tools/call echo` the load generator then sends in it. The load
/// generator is the REST rows' own, so the row measures the gateway's
/// session path, not a client library.
async fn session_target(
    addr: SocketAddr,
    key: &str,
    mcp: &str,
    capabilities: &str,
) -> anyhow::Result<Target> {
    let mut target = Target {
        addr,
        key: key.to_owned(),
        path: format!("/mcp/{mcp}"),
        headers: vec![("accept", "application/json, text/event-stream".into())],
        body: Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{capabilities},"clientInfo":{{"name":"plexmcp-bench","version":"1"}}}}}}"#
        )),
        expect: StatusCode::OK,
    };
    let mut sender = target.connect().await?;
    let (headers, _) = target
        .exchange(&mut sender)
        .await
        .map_err(anyhow::Error::msg)?;
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("initialize answered without a session"))?;
    target.headers.push(("mcp-session-id", session));
    target
        .headers
        .push(("mcp-protocol-version", "2025-11-25".into()));
    target.body = Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    target.expect = StatusCode::ACCEPTED;
    target.send(&mut sender).await.map_err(anyhow::Error::msg)?;
    target.body = session_call(1);
    target.expect = StatusCode::OK;
    target.check_once().await?;
    Ok(target)
}

/// One row's outcome.
struct Row {
    name: &'static str,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    window: Duration,
    latency_us: Samples,
    /// CPU seconds used during the window, by thread name (and "children").
    cpu: BTreeMap<String, f64>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }
}

/// What one worker collected.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    latency_us: Vec<f64>,
}

/// The measurement window shared by a row's workers.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

impl Window {
    /// CPU seconds used by each thread group and the child processes
    /// between `from` and `until` (call before `from`).
    fn cpu_used(self) -> BTreeMap<String, f64> {
        std::thread::sleep(self.from.saturating_duration_since(Instant::now()));
        let before = report::cpu_by_thread_name();
        std::thread::sleep(self.until.saturating_duration_since(Instant::now()));
        let mut after = report::cpu_by_thread_name();
        for (name, secs) in &mut after {
            *secs -= before.get(name).copied().unwrap_or(0.0);
        }
        after
    }

    fn after_warmup(options: &Options) -> Window {
        let from = Instant::now() + options.warmup;
        Window {
            from,
            until: from + options.duration,
        }
    }

    /// Calls back to back until the window closes; only calls that start
    /// and finish inside the window count.
    async fn drive(self, mut caller: Caller) -> Tally {
        let mut tally = Tally::default();
        loop {
            let start = Instant::now();
            if start >= self.until {
                return tally;
            }
            let result = caller.call().await;
            let done = Instant::now();
            if start < self.from || done > self.until {
                continue;
            }
            match result {
                Ok(()) => {
                    tally.ok += 1;
                    tally
                        .latency_us
                        .push(done.duration_since(start).as_secs_f64() * 1e6);
                }
                Err(e) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert(e);
                }
            }
        }
    }
}

/// One worker's way of making a call.
enum Caller {
    /// `tools/call echo` over an rmcp session.
    Rmcp(Peer<RoleClient>),
    /// `POST /mcp` on a keep-alive connection of its own.
    Http(Target, SendRequest<Full<Bytes>>),
}

impl Caller {
    async fn call(&mut self) -> Result<(), String> {
        match self {
            Caller::Rmcp(peer) => {
                let mut params = CallToolRequestParams::new("echo");
                params.arguments = serde_json::json!({ "message": "hi" }).as_object().cloned();
                peer.call_tool_once(params)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Caller::Http(target, sender) => target.send(sender).await.map(drop),
        }
    }
}

/// Runs one worker per caller on `rt` and gathers what they counted.
fn run(name: &'static str, rt: &Runtime, callers: Vec<Caller>, options: &Options) -> Row {
    let window = Window::after_warmup(options);
    let cpu = std::thread::spawn(move || window.cpu_used());
    let tallies = rt.block_on(async {
        let workers: Vec<_> = callers
            .into_iter()
            .map(|caller| tokio::spawn(window.drive(caller)))
            .collect();
        let mut tallies = Vec::new();
        for worker in workers {
            tallies.push(worker.await.unwrap_or_default());
        }
        tallies
    });
    collect(name, options, tallies, cpu.join().unwrap_or_default())
}

fn collect(
    name: &'static str,
    options: &Options,
    tallies: Vec<Tally>,
    cpu: BTreeMap<String, f64>,
) -> Row {
    let mut row = Row {
        name,
        ok: 0,
        errors: 0,
        first_error: None,
        window: options.duration,
        latency_us: Samples::new(Vec::new()),
        cpu,
    };
    let mut latencies = Vec::new();
    for t in tallies {
        row.ok += t.ok;
        row.errors += t.errors;
        if row.first_error.is_none() {
            row.first_error = t.first_error;
        }
        latencies.extend(t.latency_us);
    }
    row.latency_us = Samples::new(latencies);
    eprintln!(
        "  {name}: {} req/s{}",
        thousands(row.rate()),
        row.first_error
            .as_ref()
            .map(|e| format!(" ({} errors, first: {e})", row.errors))
            .unwrap_or_default()
    );
    row
}

/// `concurrency` tasks calling the tool through one rmcp session, as the
/// gateway's pool does.
fn run_rmcp(name: &'static str, rt: &Runtime, client: &Client, options: &Options) -> Row {
    let callers = (0..options.concurrency)
        .map(|_| Caller::Rmcp(client.peer().clone()))
        .collect();
    run(name, rt, callers, options)
}

/// What the load generator sends to the gateway.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    key: String,
    /// `/mcp` (REST), or `/mcp/{id}` for a session's JSON-RPC.
    path: String,
    /// Headers besides the key's (a session's id and revision).
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    expect: StatusCode,
}

impl Target {
    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// One keep-alive request; the body is read in full.
    async fn send(&self, sender: &mut SendRequest<Full<Bytes>>) -> Result<Bytes, String> {
        self.exchange(sender).await.map(|(_, body)| body)
    }

    /// [`Self::send`], with the response's headers.
    async fn exchange(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
    ) -> Result<(header::HeaderMap, Bytes), String> {
        sender.ready().await.map_err(|e| e.to_string())?;
        let mut request = Request::post(self.path.as_str())
            .header(header::HOST, "127.0.0.1")
            .header(header::AUTHORIZATION, format!("ApiKey {}", self.key))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "plexmcp-bench");
        for (name, value) in &self.headers {
            request = request.header(*name, value.as_str());
        }
        let request = request
            .body(Full::new(self.body.clone()))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        if status != self.expect {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok((parts.headers, body))
    }

    async fn check_once(&self) -> anyhow::Result<()> {
        let mut sender = self.connect().await?;
        let body = self.send(&mut sender).await.map_err(anyhow::Error::msg)?;
        if self.expect == StatusCode::OK && !String::from_utf8_lossy(&body).contains("hi") {
            bail!("unexpected echo result: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

/// `concurrency` keep-alive connections, one request in flight on each.
fn run_http(
    name: &'static str,
    rt: &Runtime,
    target: &Target,
    options: &Options,
) -> anyhow::Result<Row> {
    run_targets(name, rt, vec![target.clone(); options.concurrency], options)
}

/// [`run_http`] for a session: each connection's requests carry an id of
/// their own (ids in flight in one session must differ).
fn run_session(
    name: &'static str,
    rt: &Runtime,
    target: &Target,
    options: &Options,
) -> anyhow::Result<Row> {
    let targets = (1..=options.concurrency)
        .map(|id| Target {
            body: session_call(id),
            ..target.clone()
        })
        .collect();
    run_targets(name, rt, targets, options)
}

/// One caller per target, each on a connection of its own.
fn run_targets(
    name: &'static str,
    rt: &Runtime,
    targets: Vec<Target>,
    options: &Options,
) -> anyhow::Result<Row> {
    let callers = rt.block_on(async {
        let mut callers = Vec::new();
        for target in targets {
            let sender = target.connect().await?;
            callers.push(Caller::Http(target, sender));
        }
        anyhow::Ok(callers)
    })?;
    Ok(run(name, rt, callers, options))
}

/// `tools/call echo` as JSON-RPC request `id` in a session.
fn session_call(id: usize) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"hi"}}}}}}"#
    ))
}

/// Where the CPU went, per request: the machine has few cores, so this
/// shows what a row costs and whether the cores were saturated.
/// Columns of the in-process rows: (label, thread or process groups).
const IN_PROCESS: &[(&str, &[&str])] = &[
    ("load generator", &["loadgen"]),
    ("rmcp client", &["rmcp-client"]),
    ("gateway", &["gateway"]),
    ("usage writer", &["usage-writer"]),
    ("node (MCP servers)", &["child:node", "grandchild:node"]),
];
/// The separate-process rows: `plexmcp serve` is a child, its stdio MCP a
/// grandchild.
const SEPARATE: &[(&str, &[&str])] = &[
    ("load generator", &["loadgen"]),
    ("plexmcp serve process", &["child:plexmcp"]),
    ("node (MCP servers)", &["child:node", "grandchild:node"]),
];

fn print_cpu(rows: &[Row], groups: &[(&str, &[&str])]) {
    println!();
    print!("| CPU µs per request |");
    for (label, _) in groups {
        print!(" {label} |");
    }
    println!(" other | cores busy |");
    println!("|---|{}---:|---:|", "---:|".repeat(groups.len()));
    for row in rows {
        let n = row.ok.max(1) as f64;
        let total: f64 = row.cpu.values().filter(|v| **v > 0.0).sum();
        print!("| {} |", row.name);
        let mut known = 0.0;
        for (_, names) in groups {
            let secs: f64 = names
                .iter()
                .map(|name| row.cpu.get(*name).copied().unwrap_or(0.0).max(0.0))
                .sum();
            known += secs;
            print!(" {:.1} |", secs * 1e6 / n);
        }
        println!(
            " {:.1} | {:.2} |",
            (total - known).max(0.0) * 1e6 / n,
            total / row.window.as_secs_f64()
        );
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| row | req/s | p50 | p99 | errors |");
    println!("|---|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.name,
            thousands(row.rate()),
            report::micros(row.latency_us.median()),
            report::micros(row.latency_us.pct(99.0)),
            row.errors
        );
    }
}

/// `plexmcp serve` as its own process on the same database: its memory when
/// idle, while the load generator drives it, and afterwards.
fn serve_process(seeded: &Seeded, client_rt: &Runtime, options: &Options) -> anyhow::Result<()> {
    let binary = env!("CARGO_BIN_EXE_plexmcp");
    let log = std::fs::File::create(seeded.db.with_extension("serve.log"))?;
    let mut started = None;
    for _ in 0..5 {
        let port = free_port()?;
        let mut child = Command::new(binary)
            .arg("--db")
            .arg(&seeded.db)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.try_clone()?)
            .spawn()
            .context("starting plexmcp serve")?;
        if wait_listening(&mut child, port, "plexmcp serve")? {
            started = Some((ChildGuard(child), port));
            break;
        }
    }
    let Some((child, port)) = started else {
        bail!("plexmcp serve never started listening");
    };
    let pid = child.0.id();
    std::thread::sleep(Duration::from_millis(500));
    let idle = memory_kib(Some(pid)).context("reading the server's /proc status")?;

    let short = Options {
        duration: options.serve_duration,
        warmup: Duration::from_secs(1).min(options.warmup),
        concurrency: options.concurrency,
        serve_duration: options.serve_duration,
        log: options.log,
        only: String::new(),
        rate_limit: options.rate_limit,
        tool_access: options.tool_access,
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let to = |mcp: &str, key: &str, expect| Target {
        addr,
        key: key.to_string(),
        path: "/mcp".into(),
        headers: Vec::new(),
        body: Bytes::from(ECHO_BODY.replace("MCP", mcp)),
        expect,
    };
    println!();
    println!(
        "plexmcp serve as its own process ({:.0} s per row, request log to a file):",
        short.duration.as_secs_f64()
    );
    let rows = [
        run_http(
            "serve: through stdio",
            client_rt,
            &to("es", &seeded.good_key, StatusCode::OK),
            &short,
        )?,
        run_http(
            "serve: through HTTP",
            client_rt,
            &to("eh", &seeded.good_key, StatusCode::OK),
            &short,
        )?,
        run_http(
            "serve: auth only (403)",
            client_rt,
            &to("es", &seeded.other_key, StatusCode::FORBIDDEN),
            &short,
        )?,
    ];
    print_table(&rows);
    print_cpu(&rows, SEPARATE);
    std::thread::sleep(Duration::from_millis(500));
    let after = memory_kib(Some(pid)).context("reading the server's /proc status")?;
    println!();
    println!(
        "serve RSS: idle after start {} (target ≤ 40 MB: {}); peak under load (VmHWM) {} (target ≤ 100 MB: {}); idle after load {}",
        mib(idle.0),
        verdict(idle.0 <= 40 * 1024),
        mib(after.1),
        verdict(after.1 <= 100 * 1024),
        mib(after.0)
    );
    drop(child);
    Ok(())
}
