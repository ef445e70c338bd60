//! `cargo bench --bench console`: the console with 100,000 keys and
//! 10,000,000 usage events.
//!
//! - seeding: builds the database (see `support/seed.rs`);
//! - first frame: what the console does from start until the key list is
//!   on screen (open the store, open the server's connections, load the
//!   list, lay it out, draw), and until the selected key's statistics are;
//! - detail statistics: `Store::key_usage` for the key owning the events;
//! - one frame: drawing the loaded console into a 120×40 `TestBackend`;
//! - list actions on 100,000 keys (informational): moving the selection,
//!   changing the sort, typing into the filter, each with its redraw.
//!
//! Options: `--keys N` (`PLEXMCP_BENCH_KEYS`, default 100000), `--events N`
//! (`PLEXMCP_BENCH_EVENTS`, default 10000000), `--db PATH` (reuse that
//! database, or build it there if missing; default: a temporary one),
//! `--frames N` (default 300).

#[path = "support/report.rs"]
mod report;
#[path = "support/seed.rs"]
mod seed;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use plexmcp::server::Gateway;
use plexmcp::store::Store;
use plexmcp::tui::action::{Action, Detail, OrgChoice, ServerStatus, Snapshot};
use plexmcp::tui::app::App;
use plexmcp::tui::theme::Theme;
use plexmcp::tui::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;

use report::{Samples, dur, micros, verdict};

const ORG: &str = "default";
/// As the console's detail pane asks for.
const RECENT: u32 = 12;
const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;
/// First-frame runs; the median is the result.
const RUNS: usize = 7;

type Term = Terminal<TestBackend>;

fn main() -> anyhow::Result<()> {
    let keys: usize = report::option("keys", "PLEXMCP_BENCH_KEYS", 100_000);
    let events: u64 = report::option("events", "PLEXMCP_BENCH_EVENTS", 10_000_000);
    let frames: usize = report::option("frames", "PLEXMCP_BENCH_FRAMES", 300);
    let kept: Option<PathBuf> = report::option("db", "PLEXMCP_BENCH_DB", String::new())
        .parse()
        .ok()
        .filter(|p: &PathBuf| !p.as_os_str().is_empty());
    let dir = tempfile::tempdir()?;
    let db = kept.unwrap_or_else(|| dir.path().join("console.db"));

    println!(
        "plexmcp console benchmark; {}; load average {}",
        report::machine(),
        report::load_average()
    );
    let mut seeded_hot = None;
    if db.exists() {
        println!("reusing {}", db.display());
    } else {
        let seeded = seed::build(&db, seed::Spec { keys, events }, Utc::now())?;
        println!(
            "seeded {} keys and {} usage events ({} on the newest key) in {:.1} s; {:.0} MB on disk",
            report::thousands(keys as f64),
            report::thousands(events as f64),
            report::thousands(seeded.hot_key_events as f64),
            seeded.elapsed.as_secs_f64(),
            std::fs::metadata(&db)?.len() as f64 / 1e6
        );
        seeded_hot = Some(seeded.hot_key_row);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let _guard = runtime.enter();
    let theme = Theme { color: true };

    // First frame, several times (each run opens everything afresh).
    println!();
    println!("first frame (open store + server connections, load the list, draw):");
    let mut list_times = Vec::new();
    let mut detail_times = Vec::new();
    let (mut list_cpu, mut detail_cpu) = (Vec::new(), Vec::new());
    let mut step_times: Vec<(&str, Vec<f64>)> = Vec::new();
    let mut last = None;
    for _ in 0..RUNS {
        let (timings, app) = first_frame(&db, &theme)?;
        for (i, (step, took)) in timings.steps.iter().enumerate() {
            if step_times.len() <= i {
                step_times.push((step, Vec::new()));
            }
            step_times[i].1.push(took.as_secs_f64() * 1e6);
        }
        list_times.push(timings.list.0.as_secs_f64() * 1e6);
        detail_times.push(timings.detail.0.as_secs_f64() * 1e6);
        list_cpu.push(timings.list.1.as_secs_f64() * 1e6);
        detail_cpu.push(timings.detail.1.as_secs_f64() * 1e6);
        last = Some(app);
    }
    for (step, times) in step_times {
        let times = Samples::new(times);
        println!("  {step:<30} median {}", micros(times.median()));
    }
    let list = Samples::new(list_times);
    let detail = Samples::new(detail_times);
    let (list_cpu, detail_cpu) = (Samples::new(list_cpu), Samples::new(detail_cpu));
    println!(
        "  key list on screen: median {} (CPU {}), worst {} of {RUNS}   (target ≤ 150 ms: {})",
        micros(list.median()),
        micros(list_cpu.median()),
        micros(list.max()),
        verdict(list.median() <= 150_000.0)
    );
    println!(
        "  … and the selected key's statistics: median {} (CPU {}), worst {}",
        micros(detail.median()),
        micros(detail_cpu.median()),
        micros(detail.max())
    );
    let mut app = last.expect("at least one run");

    // Detail statistics for the busiest key.
    let store = Store::open(&db)?;
    let hot = app
        .selected_key()
        .map(|k| k.row_id)
        .expect("a key is selected");
    // The console opens on the newest key, which the seed made the busiest.
    anyhow::ensure!(
        seeded_hot.is_none_or(|row| row == hot),
        "the busiest key is not selected first"
    );
    let first_call = timed(|| store.key_usage(hot, Utc::now(), RECENT)).1;
    let mut stats = Vec::new();
    let mut usage = None;
    for _ in 0..30 {
        let (u, took) = timed(|| store.key_usage(hot, Utc::now(), RECENT));
        stats.push(took.as_secs_f64() * 1e6);
        usage = Some(u?);
    }
    let stats = Samples::new(stats);
    let usage = usage.expect("30 runs");
    println!();
    println!(
        "detail statistics (Store::key_usage) over {} events of one key: first call {}, then median {}, worst {}   (target ≤ 50 ms: {})",
        report::thousands(usage.total as f64),
        dur(first_call),
        micros(stats.median()),
        micros(stats.max()),
        verdict(stats.max() <= 50_000.0 && first_call <= Duration::from_millis(50))
    );

    // One frame of the loaded console, drawn over and over.
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT))?;
    let steady = frame_times(&mut terminal, frames, &app, &theme)?;
    println!();
    println!(
        "one frame (120×40, {} keys, statistics shown), {frames} draws: median {}, p99 {}, worst {}   (target ≤ 16 ms: {})",
        report::thousands(app.keys.len() as f64),
        micros(steady.median()),
        micros(steady.pct(99.0)),
        micros(steady.max()),
        verdict(steady.pct(99.0) <= 16_000.0)
    );

    // Actions on the whole list, each followed by its redraw (informational).
    println!();
    println!(
        "list actions on {} keys, update + redraw:",
        report::thousands(app.keys.len() as f64)
    );
    let key = |c: KeyCode| Action::Key(KeyEvent::from(c));
    let action_times = |label: &str,
                        actions: Vec<Action>,
                        app: &mut App,
                        terminal: &mut Term|
     -> anyhow::Result<()> {
        let mut times = Vec::new();
        for action in actions {
            let started = Instant::now();
            app.update(action);
            terminal.draw(|f| ui::render(app, f, &theme))?;
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
        let times = Samples::new(times);
        println!(
            "  {label:<34} median {}, worst {} ({} samples)",
            micros(times.median()),
            micros(times.max()),
            times.len()
        );
        Ok(())
    };
    let downs: Vec<Action> = (0..200).map(|_| key(KeyCode::PageDown)).collect();
    action_times("page down", downs, &mut app, &mut terminal)?;
    let sorts: Vec<Action> = (0..10).map(|_| key(KeyCode::Char('s'))).collect();
    action_times("change sort (s)", sorts, &mut app, &mut terminal)?;
    app.update(key(KeyCode::Char('/')));
    let typing: Vec<Action> = "billing-0".chars().map(|c| key(KeyCode::Char(c))).collect();
    action_times(
        "type into the filter (per key)",
        typing,
        &mut app,
        &mut terminal,
    )?;
    let erase: Vec<Action> = (0..9).map(|_| key(KeyCode::Backspace)).collect();
    action_times("erase the filter (per key)", erase, &mut app, &mut terminal)?;
    Ok(())
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

struct FirstFrame {
    steps: Vec<(&'static str, Duration)>,
    /// Start until the key list is drawn: wall time, and this thread's CPU time.
    list: (Duration, Duration),
    /// Start until the selected key's statistics are drawn too.
    detail: (Duration, Duration),
}

/// The console's start-up path, step by step (see `tui::run`,
/// `tui::start_server`, `tui::effects::load` and `detail`).
fn first_frame(db: &std::path::Path, theme: &Theme) -> anyhow::Result<(FirstFrame, App)> {
    let started = Instant::now();
    let cpu = report::thread_cpu();
    let mut steps = Vec::new();
    let mut step = |name, since: &mut Instant| {
        steps.push((name, since.elapsed()));
        *since = Instant::now();
    };
    let mut at = Instant::now();
    let store = Store::open(db)?;
    store.org(ORG)?;
    step("open the store", &mut at);
    let gateway = Gateway::new(store.reopen()?)?;
    step("open the server's connections", &mut at);

    let now = Utc::now();
    let org = store.org(ORG)?;
    let active_keys = store.active_key_count(org.row_id, now)?;
    step("count active keys", &mut at);
    let orgs = store
        .list_orgs(now)?
        .into_iter()
        .map(OrgChoice::from)
        .collect();
    step("list orgs", &mut at);
    let keys = store.list_keys(org.row_id)?;
    step("list keys", &mut at);
    let mcps = store.list_mcps(org.row_id)?;
    step("list MCPs", &mut at);
    let snapshot = Snapshot {
        org_slug: org.slug.clone(),
        plan: org.plan,
        active_keys,
        orgs,
        keys,
        mcps,
        pins: Default::default(),
    };

    let mut app = App::new(ORG, now, ServerStatus::Off);
    let areas = ui::areas(Rect::new(0, 0, WIDTH, HEIGHT));
    app.update(Action::Layout {
        list: areas.list,
        detail: areas.detail,
    });
    app.update(Action::Loaded(Box::new(snapshot)));
    step("build the view", &mut at);
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT))?;
    terminal.draw(|f| ui::render(&app, f, theme))?;
    step("draw", &mut at);
    let list = (started.elapsed(), report::thread_cpu() - cpu);

    let key_row = app
        .selected_key()
        .map(|k| k.row_id)
        .expect("keys were seeded");
    let usage = store.key_usage(key_row, Utc::now(), RECENT)?;
    step("key statistics", &mut at);
    let lookup = store.lookup_id_of(key_row)?;
    let audit = store.audit_for("key", &lookup, RECENT)?;
    step("key audit trail", &mut at);
    app.update(Action::DetailLoaded(Box::new(Detail {
        key_row,
        usage,
        audit,
        // What is timed is the loading and drawing, not the capped-list note.
        more_requests: false,
        more_events: false,
        rate: None,
    })));
    terminal.draw(|f| ui::render(&app, f, theme))?;
    step("draw with statistics", &mut at);
    let detail = (started.elapsed(), report::thread_cpu() - cpu);
    drop(gateway);
    Ok((
        FirstFrame {
            steps,
            list,
            detail,
        },
        app,
    ))
}

/// Draws `app` `n` times.
fn frame_times(terminal: &mut Term, n: usize, app: &App, theme: &Theme) -> anyhow::Result<Samples> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        terminal.draw(|f| ui::render(app, f, theme))?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok(Samples::new(times))
}
