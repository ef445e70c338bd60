//! The console: terminal setup and teardown, the `/mcp` server as a
//! background task, and one `tokio::select!` loop over terminal events, a
//! one-second tick and effect results. Input becomes an `Action`, the app
//! returns an `Effect`, effects run off the UI thread and come back as
//! actions; drawing only reads the app.

pub mod action;
pub mod app;
mod clipboard;
mod effects;
pub mod forms;
pub mod layout;
pub mod palette;
pub mod panes;
pub mod scroll;
pub mod theme;
pub mod tool_diff;
pub mod ui;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event, EventStream, KeyEventKind, MouseEventKind,
};
use ratatui::crossterm::execute;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use action::{Action, ServerStatus};
use app::{App, Effect};
use effects::Executor;
use theme::Theme;

use crate::server::live::Health;
use crate::server::rate_limits::KeyRateLimits;
use crate::server::usage_writer::WriterStats;
use crate::server::{Gateway, LiveStats};
use crate::store::Store;

/// How the console was asked to start.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    pub db: PathBuf,
    pub org: String,
    /// `None` with `--no-server`.
    pub listen: Option<SocketAddr>,
    /// Sessions, hosts and origins of the built-in server's MCP endpoint.
    pub proxy: crate::server::mcp_proxy::ProxySettings,
    /// Where the built-in server serves `GET /metrics`; `None` is off.
    pub metrics_listen: Option<SocketAddr>,
    /// Days the built-in server's usage writer keeps raw usage events.
    pub usage_retention_days: u32,
    /// Active keys expiring within this are flagged (`console.expiring_within`).
    pub expiring_within: chrono::TimeDelta,
}

/// How long quitting waits for in-flight requests and the usage writer.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub fn run(options: ConsoleOptions) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the console needs a terminal; use `plexmcp serve` for the API alone, or the keys, mcps and org commands"
        );
    }
    // Open (and if needed create) the database before the terminal is
    // taken over, so a bad path is reported as a plain error line.
    let store = Store::open(&options.db)?;
    store.org(&options.org)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("plexmcp")
        .build()?;
    runtime.block_on(console(store, options))
}

struct BackgroundServer {
    status: ServerStatus,
    /// The request counters and the usage writer's, for the status bar.
    counters: Option<(Arc<LiveStats>, Arc<WriterStats>)>,
    /// Per-key rate limit counts, for the detail pane.
    rate_limits: Option<Arc<KeyRateLimits>>,
    /// The server's upstream pool, which the console's tool lists use too.
    upstreams: Option<crate::upstream::Upstreams>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn start_server(
    store: &Store,
    options: &ConsoleOptions,
    cancel: &CancellationToken,
) -> BackgroundServer {
    let (listen, metrics_listen) = (options.listen, options.metrics_listen);
    let not_running = |status| BackgroundServer {
        status,
        counters: None,
        rate_limits: None,
        upstreams: None,
        task: None,
    };
    let Some(addr) = listen else {
        return not_running(ServerStatus::Off);
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(error = %e, %addr, "server not started");
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                format!("{addr} is in use")
            } else {
                format!("{addr}: {e}")
            };
            return not_running(ServerStatus::Failed(why));
        }
    };
    let mut gateway = match store.reopen().map_err(Into::into).and_then(|store| {
        Gateway::with_settings(store, options.proxy.clone(), options.usage_retention_days)
    }) {
        Ok(gateway) => gateway,
        Err(e) => return not_running(ServerStatus::Failed(e.to_string())),
    };
    // Metrics are an extra: the console serves without them if their address is taken.
    if let Some(metrics_addr) = metrics_listen {
        match TcpListener::bind(metrics_addr).await {
            Ok(listener) => {
                tracing::info!("serving GET /metrics on http://{metrics_addr}");
                gateway = gateway.with_metrics(listener);
            }
            Err(e) => tracing::warn!(error = %e, %metrics_addr, "metrics not served"),
        }
    }
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    tracing::info!("serving POST /mcp on http://{bound}");
    let counters = (
        gateway.state().live.clone(),
        gateway.state().usage.stats().clone(),
    );
    let rate_limits = gateway.state().rate_limits.clone();
    let upstreams = gateway.state().upstreams.clone();
    let cancel = cancel.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = gateway.serve(listener, cancel).await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    BackgroundServer {
        status: ServerStatus::running(bound, &Health::default()),
        counters: Some(counters),
        rate_limits: Some(rate_limits),
        upstreams: Some(upstreams),
        task: Some(task),
    }
}

async fn console(store: Store, options: ConsoleOptions) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let server = start_server(&store, &options, &cancel).await;

    install_panic_hook();
    let mut terminal = ratatui::try_init()?;
    execute!(std::io::stdout(), EnableMouseCapture)?;
    let outcome = event_loop(&mut terminal, store, &options, &server).await;
    let _ = execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();

    cancel.cancel();
    let stopped = match server.task {
        Some(task) => tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_ok(),
        None => true,
    };
    if !stopped {
        eprintln!(
            "warning: the server did not stop within {SHUTDOWN_GRACE:?}; some usage may not be recorded"
        );
    }
    outcome
}

/// Restores the terminal (mouse mode included) before a panic is printed.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        ratatui::restore();
        previous(info);
    }));
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    store: Store,
    options: &ConsoleOptions,
    server: &BackgroundServer,
) -> anyhow::Result<()> {
    let (results, incoming) = mpsc::unbounded_channel();
    let mut executor = Executor::new(store, results);
    if let Some(limits) = &server.rate_limits {
        executor = executor.with_rate_limits(limits.clone());
    }
    if let Some(upstreams) = &server.upstreams {
        executor = executor.with_upstreams(upstreams.clone());
    }
    let outcome = run_loop(terminal, &mut executor, incoming, options, server).await;
    if server.upstreams.is_none() {
        // The console's own pool (no server): stop what it started.
        executor.upstreams().shutdown().await;
    }
    outcome
}

async fn run_loop(
    terminal: &mut DefaultTerminal,
    executor: &mut Executor,
    mut incoming: mpsc::UnboundedReceiver<Action>,
    options: &ConsoleOptions,
    server: &BackgroundServer,
) -> anyhow::Result<()> {
    let theme = Theme::from_env();
    let mut app = App::new(&options.org, Utc::now(), server.status.clone());
    app.expiring_within = options.expiring_within;
    executor.spawn(app.start());
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));

    loop {
        // The app decides what input means from the size the frame is drawn at.
        let size = terminal.size()?;
        if app.screen != Some((size.width, size.height)) {
            app.update(Action::Resize {
                width: size.width,
                height: size.height,
            });
        }
        terminal.draw(|frame| ui::render(&app, frame, &theme))?;

        let action = tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => match to_action(event) {
                    Some(action) => action,
                    None => continue,
                },
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            Some(action) = incoming.recv() => action,
            _ = tick.tick() => {
                if let Some((live, usage)) = &server.counters {
                    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
                    if let ServerStatus::Running { addr, .. } = &app.server {
                        let status = ServerStatus::running(addr.clone(), &live.health(usage, now));
                        app.update(Action::Server(status));
                    }
                }
                Action::Tick(Utc::now())
            }
        };
        match app.update(action) {
            None => {}
            Some(Effect::Quit) => return Ok(()),
            Some(Effect::Copy(text)) => {
                let mut stdout = std::io::stdout();
                let osc52 = clipboard::osc52(&mut stdout, &text);
                let _ = stdout.flush();
                // The system clipboard may wait on the display server: off
                // the UI task; its report arrives as `Action::Copied`.
                executor.finish_copy(text, osc52);
            }
            Some(effect) => executor.spawn(effect),
        }
        if app.quit {
            return Ok(());
        }
    }
}

fn to_action(event: Event) -> Option<Action> {
    match event {
        Event::Key(key) if key.kind != KeyEventKind::Release => Some(Action::Key(key)),
        Event::Mouse(mouse) => match mouse.kind {
            MouseEventKind::Down(_) => Some(Action::Click {
                column: mouse.column,
                row: mouse.row,
            }),
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => Some(Action::Scroll {
                notches: if mouse.kind == MouseEventKind::ScrollDown {
                    1
                } else {
                    -1
                },
                column: mouse.column,
                row: mouse.row,
            }),
            _ => None,
        },
        Event::Resize(width, height) => Some(Action::Resize { width, height }),
        _ => None,
    }
}
