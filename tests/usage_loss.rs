//! Usage the writer could not record is never silent: events dropped on a
//! full queue and batches the store refused are counted, summarised at warn
//! in the log, and shown in the console's status bar. The store is made to
//! fail the way an outside program can make it: a trigger that aborts every
//! usage insert (as a full disk would), or a write lock held long enough for
//! the queue to fill.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use plexmcp::admin::{self, KeyRequest};
use plexmcp::domain::{Actor, McpAccess};
use plexmcp::server::Gateway;
use plexmcp::server::usage_writer::{MAX_BATCH, QUEUE_CAPACITY};
use plexmcp::store::{Store, UsageEvent};
use plexmcp::tui::action::ServerStatus;
use plexmcp::tui::app::App;
use plexmcp::tui::theme::Theme;
use plexmcp::tui::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// Everything logged by this test binary, whichever thread logged it.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || Captured(sink.clone()))
            .init();
        logs
    })
}

struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Warn lines logged so far that contain `needle`.
fn warnings_with(needle: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    text.lines()
        .filter(|l| l.contains("WARN") && l.contains(needle))
        .map(str::to_string)
        .collect()
}

fn event(key_row: i64) -> UsageEvent {
    UsageEvent {
        key_row,
        mcp_slug: None,
        tool: None,
        outcome: "unauthorized_mcp",
        http_status: 403,
        latency_us: 100,
        client_ip: Some("127.0.0.1".into()),
        user_agent: None,
        at_ms: chrono::Utc::now().timestamp_millis(),
    }
}

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap()
}

/// The console's status bar (the first line) for this server status.
fn status_bar(status: ServerStatus) -> String {
    let mut app = App::new("default", chrono::Utc::now(), status);
    app.update(plexmcp::tui::action::Action::Resize {
        width: 120,
        height: 40,
    });
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal
        .draw(|f| ui::render(&app, f, &Theme { color: false }))
        .unwrap();
    let buffer = terminal.backend().buffer();
    (0..120).map(|x| buffer[(x, 0)].symbol()).collect()
}

/// A gateway over a fresh database with one key, plus the database's
/// path and the key's row (usage events must name a real key).
fn gateway() -> (Gateway, tempfile::TempDir, std::path::PathBuf, i64) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plexmcp.db");
    let mut store = Store::open(&db).expect("open store");
    let org = store.org("default").unwrap();
    let request = KeyRequest {
        name: "loss".into(),
        description: None,
        expires: "never".into(),
        access: McpAccess::All,
    };
    let actor = Actor {
        user: "tester".into(),
        addr: None,
    };
    let (record, _) = admin::create_key(&mut store, &org, &request, &actor, chrono::Utc::now())
        .expect("create a key");
    let gateway = Gateway::new(store).expect("gateway");
    (gateway, dir, db, record.row_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_usage_batches_are_logged_counted_and_shown() {
    logs();
    let (gateway, _dir, db, key) = gateway();
    // Every usage insert now fails, as it would on a full disk.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_usage BEFORE INSERT ON usage_events
             BEGIN SELECT RAISE(ABORT, 'simulated: database or disk is full'); END;",
        )
        .unwrap();
    let sink = gateway.state().usage.clone();
    for _ in 0..3 {
        sink.record(event(key));
        sink.flush().await; // one batch each
    }

    let health = gateway.state().live.health(sink.stats(), unix_now());
    let lost = health.usage_lost;
    assert_eq!(
        (lost.failed_batches, lost.failed_events, lost.dropped),
        (3, 3, 0),
        "{health:?}"
    );

    let bar = status_bar(ServerStatus::running("127.0.0.1:8470", &health));
    assert!(bar.contains("usage: 3 batches failed (3 events)"), "{bar}");

    let warned = warnings_with("simulated: database or disk is full");
    assert!(!warned.is_empty(), "no warn line about the failed batches");
    assert!(
        warned[0].contains("usage events"),
        "says what was lost: {warned:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_usage_events_are_logged_counted_and_shown() {
    logs();
    let (gateway, _dir, db, key) = gateway();
    let sink = gateway.state().usage.clone();
    // Another program holds the write lock, so the writer waits and its
    // queue fills; what does not fit is dropped.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let sent = QUEUE_CAPACITY + MAX_BATCH + 1000;
    for _ in 0..sent {
        sink.record(event(key));
    }
    locker.execute_batch("ROLLBACK").unwrap();
    sink.flush().await;

    let health = gateway.state().live.health(sink.stats(), unix_now());
    let dropped = health.usage_lost.dropped;
    assert!(dropped >= 1000, "{health:?}");
    let bar = status_bar(ServerStatus::running("127.0.0.1:8470", &health));
    assert!(
        bar.contains(&format!("usage: {dropped} events dropped")),
        "{bar}"
    );
    let warned = warnings_with("dropped because the queue was full");
    assert!(
        warned
            .iter()
            .any(|l| l.contains(&format!("{dropped} dropped"))),
        "no warn line about the dropped events: {warned:?}"
    );
}
