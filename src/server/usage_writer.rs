//! The single writer of usage events. Requests hand events to a bounded
//! channel and never wait on SQLite; one thread commits whatever has
//! queued up as one transaction, so batches grow with load by themselves.
//! What it cannot record (a full queue, a refused batch) is counted for the
//! console and summarised in the log at most once per `WARN_EVERY`, so a
//! full disk cannot flood the log as well. Between batches it also prunes
//! raw events past the retention period (`usage_pruner`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::usage_pruner::{Pruner, Retention};
use crate::store::{Store, UsageEvent};

/// Events waiting beyond this are dropped (and counted) rather than
/// letting a stalled disk slow down requests.
pub const QUEUE_CAPACITY: usize = 65_536;
/// Upper bound on one transaction, so a backlog is committed in steps.
pub const MAX_BATCH: usize = 8_192;
/// How long the writer waits after the first event of a batch; also the
/// most a crash can lose beyond what was already queued.
pub const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);
/// The least time between two warnings about lost usage events.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

enum Message {
    Event(UsageEvent),
    /// Everything sent before this has been committed when it is answered.
    Flush(oneshot::Sender<()>),
}

/// Counters shared with whoever shows server health.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub written: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    pub dropped: AtomicU64,
    pub failed_batches: AtomicU64,
    /// Events in the failed batches: lost with them.
    pub failed_events: AtomicU64,
    /// Committed events by MCP id, then outcome, for the metrics.
    by_mcp: std::sync::Mutex<McpCounts>,
}

type McpCounts = std::collections::BTreeMap<String, std::collections::BTreeMap<&'static str, u64>>;

/// Most MCP ids the per-MCP counts tell apart; more are counted as `other`.
const MCP_SERIES_MAX: usize = 256;

impl WriterStats {
    /// Committed events by MCP id (`none` without one, `other` for a name
    /// the key was refused, which need not exist) and outcome.
    pub fn by_mcp(&self) -> Vec<(String, &'static str, u64)> {
        let counts = self.by_mcp.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .flat_map(|(mcp, outcomes)| outcomes.iter().map(|(o, n)| (mcp.clone(), *o, *n)))
            .collect()
    }

    /// Counts a committed batch: one lock per batch, on the writer's thread.
    fn count_by_mcp(&self, batch: &[UsageEvent]) {
        let mut counts = self.by_mcp.lock().unwrap_or_else(|p| p.into_inner());
        for event in batch {
            let named = match (&event.mcp_slug, event.outcome) {
                (_, "unauthorized_mcp") => "other",
                (Some(slug), _) => slug.as_str(),
                (None, _) => "none",
            };
            let mcp = if counts.contains_key(named) || counts.len() < MCP_SERIES_MAX {
                named
            } else {
                "other"
            };
            if !counts.contains_key(mcp) {
                counts.insert(mcp.to_owned(), Default::default());
            }
            if let Some(outcomes) = counts.get_mut(mcp) {
                *outcomes.entry(event.outcome).or_default() += 1;
            }
        }
    }

    pub fn losses(&self) -> Losses {
        Losses {
            dropped: self.dropped.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            failed_events: self.failed_events.load(Ordering::Relaxed),
        }
    }
}

/// Usage events not recorded, since the writer started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses {
    pub dropped: u64,
    pub failed_batches: u64,
    pub failed_events: u64,
}

impl Losses {
    /// Events lost either way.
    pub fn events(self) -> u64 {
        self.dropped.saturating_add(self.failed_events)
    }

    fn since(self, earlier: Losses) -> Losses {
        Losses {
            dropped: self.dropped.saturating_sub(earlier.dropped),
            failed_batches: self.failed_batches.saturating_sub(earlier.failed_batches),
            failed_events: self.failed_events.saturating_sub(earlier.failed_events),
        }
    }
}

/// Decides when lost events are worth a warning: the first loss at once,
/// later ones summarised at most once per `WARN_EVERY`. The clock is
/// passed in, so the limit is tested without waiting.
#[derive(Debug, Default)]
struct LossReport {
    reported: Losses,
    last_warning: Option<Instant>,
    last_error: Option<String>,
}

impl LossReport {
    /// Remembers why the latest batch failed, for the next summary.
    fn failed(&mut self, error: String) {
        self.last_error = Some(error);
    }

    /// The warning to log at `now` for losses up to `total`, if one is due.
    fn due(&mut self, total: Losses, now: Instant) -> Option<String> {
        let quiet = self
            .last_warning
            .is_some_and(|at| now.saturating_duration_since(at) < WARN_EVERY);
        if quiet {
            return None;
        }
        self.summary(total, now)
    }

    /// The warning for anything not yet reported, whenever it was lost (at shutdown).
    fn remaining(&mut self, total: Losses, now: Instant) -> Option<String> {
        self.summary(total, now)
    }

    fn summary(&mut self, total: Losses, now: Instant) -> Option<String> {
        let new = total.since(self.reported);
        if new == Losses::default() {
            return None;
        }
        let mut parts = Vec::new();
        if new.dropped > 0 {
            parts.push(format!(
                "{} dropped because the queue was full (the database is too slow or locked)",
                new.dropped
            ));
        }
        if new.failed_batches > 0 {
            let batches = if new.failed_batches == 1 {
                "1 failed batch".to_string()
            } else {
                format!("{} failed batches", new.failed_batches)
            };
            let why = self.last_error.as_deref().unwrap_or("unknown error");
            parts.push(format!(
                "{} lost in {batches} (last error: {why})",
                new.failed_events
            ));
        }
        let mut line = format!("usage events not recorded: {}", parts.join("; "));
        if self.last_warning.is_some() {
            line.push_str(&format!(
                " since the last warning; {} lost since start",
                total.events()
            ));
        }
        self.reported = total;
        self.last_warning = Some(now);
        Some(line)
    }
}

/// Cheap handle requests use to record events.
#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<Message>,
    stats: Arc<WriterStats>,
    retention: Arc<Retention>,
}

impl UsageSink {
    /// Never blocks: a full queue drops the event and counts it.
    pub fn record(&self, event: UsageEvent) {
        if self.tx.try_send(Message::Event(event)).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until every event recorded so far is committed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Events waiting in the queue for the writer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }

    /// How long raw events are kept, and how many were pruned.
    pub fn retention(&self) -> &Arc<Retention> {
        &self.retention
    }
}

/// Starts the writer thread and hands out sinks.
pub struct UsageWriter {
    sink: UsageSink,
}

impl UsageWriter {
    /// With the default retention (`config::DEFAULT_RETENTION_DAYS`).
    pub fn start(store: Store) -> std::io::Result<UsageWriter> {
        UsageWriter::start_with_retention(store, crate::config::DEFAULT_RETENTION_DAYS)
    }

    /// Raw events older than `retention_days` are pruned from the first
    /// turn on. The thread ends by itself once every sink is dropped.
    pub fn start_with_retention(store: Store, retention_days: u32) -> std::io::Result<UsageWriter> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriterStats::default());
        let retention = Retention::new(retention_days);
        // Only for waiting on the queue with a deadline (pruning is due
        // even when no events come); SQLite work runs outside it.
        let clock = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let thread_stats = stats.clone();
        let pruner = Pruner::new(retention.clone(), Instant::now());
        std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(store, rx, &thread_stats, pruner, &clock))?;
        Ok(UsageWriter {
            sink: UsageSink {
                tx,
                stats,
                retention,
            },
        })
    }

    pub fn sink(&self) -> UsageSink {
        self.sink.clone()
    }

    /// Commits everything recorded so far; used at shutdown.
    pub async fn finish(self) {
        self.sink.flush().await;
    }
}

/// What waiting on the queue brought.
enum Next {
    Message(Message),
    /// Nothing within the wait: time for a pruning step.
    Idle,
    /// Every sink is gone.
    Closed,
}

fn next_message(
    rx: &mut mpsc::Receiver<Message>,
    wait: Duration,
    clock: &tokio::runtime::Runtime,
) -> Next {
    match rx.try_recv() {
        Ok(message) => return Next::Message(message),
        Err(mpsc::error::TryRecvError::Disconnected) => return Next::Closed,
        Err(mpsc::error::TryRecvError::Empty) if wait.is_zero() => return Next::Idle,
        Err(mpsc::error::TryRecvError::Empty) => {}
    }
    // The timer is created inside `block_on`: it needs the runtime's clock.
    match clock.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
        Ok(Some(message)) => Next::Message(message),
        Ok(None) => Next::Closed,
        Err(_) => Next::Idle,
    }
}

fn wall_clock_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn run(
    mut store: Store,
    mut rx: mpsc::Receiver<Message>,
    stats: &WriterStats,
    mut pruner: Pruner,
    clock: &tokio::runtime::Runtime,
) {
    if let Err(e) = store.relax_durability() {
        tracing::warn!(error = %e, "usage writer keeps full fsync");
    }
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut waiters = Vec::new();
    let mut report = LossReport::default();
    loop {
        let first = match next_message(&mut rx, pruner.due_in(Instant::now()), clock) {
            Next::Message(message) => message,
            Next::Idle => {
                pruner.step(&mut store, Instant::now(), wall_clock_ms());
                continue;
            }
            Next::Closed => break,
        };
        // Let a busy server's events gather for a moment, so one transaction
        // carries hundreds instead of a handful; a flush is served at once.
        if matches!(first, Message::Event(_)) {
            std::thread::sleep(BATCH_WINDOW);
        }
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Event(e) => batch.push(e),
                Message::Flush(done) => waiters.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        commit(&mut store, &mut batch, stats, &mut report);
        if let Some(warning) = report.due(stats.losses(), Instant::now()) {
            tracing::warn!("{warning}");
        }
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
        // Between write batches: one small pruning step when one is due.
        pruner.step(&mut store, Instant::now(), wall_clock_ms());
    }
    commit(&mut store, &mut batch, stats, &mut report);
    if let Some(warning) = report.remaining(stats.losses(), Instant::now()) {
        tracing::warn!("{warning}");
    }
}

fn commit(
    store: &mut Store,
    batch: &mut Vec<UsageEvent>,
    stats: &WriterStats,
    report: &mut LossReport,
) {
    if batch.is_empty() {
        return;
    }
    match store.record_usage(batch) {
        Ok(()) => {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats
                .written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            stats.count_by_mcp(batch);
        }
        Err(e) => {
            // Counted here, logged by `LossReport`: one line per batch would flood the log.
            report.failed(e.to_string());
            stats
                .failed_events
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_mcp_counts_name_real_mcps_and_stay_bounded() {
        let stats = WriterStats::default();
        let event = |mcp: Option<String>, outcome: &'static str| UsageEvent {
            key_row: 1,
            mcp_slug: mcp,
            tool: None,
            outcome,
            http_status: 200,
            latency_us: 1,
            client_ip: None,
            user_agent: None,
            at_ms: 0,
        };
        let mut batch = vec![
            event(Some("github".into()), "ok"),
            event(Some("github".into()), "ok"),
            event(Some("made-up".into()), "unauthorized_mcp"),
            event(None, "invalid_request"),
        ];
        batch.extend((0..MCP_SERIES_MAX + 10).map(|n| event(Some(format!("m{n}")), "ok")));
        stats.count_by_mcp(&batch);
        let counts = stats.by_mcp();
        let of = |mcp: &str, outcome: &str| {
            counts
                .iter()
                .find(|(m, o, _)| m == mcp && *o == outcome)
                .map_or(0, |(_, _, n)| *n)
        };
        assert_eq!(of("github", "ok"), 2);
        assert_eq!(
            of("other", "unauthorized_mcp"),
            1,
            "a refused name is not a label"
        );
        assert_eq!(of("none", "invalid_request"), 1);
        let names: std::collections::BTreeSet<&str> =
            counts.iter().map(|(m, _, _)| m.as_str()).collect();
        assert!(names.len() <= MCP_SERIES_MAX + 1, "{}", names.len());
        assert!(
            of("other", "ok") > 0,
            "past the cap, names are counted as other"
        );
    }

    fn lost(dropped: u64, failed_batches: u64) -> Losses {
        Losses {
            dropped,
            failed_batches,
            failed_events: failed_batches * 10,
        }
    }

    #[test]
    fn the_first_loss_warns_at_once_and_later_ones_once_per_interval() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut report = LossReport::default();
        assert_eq!(report.due(Losses::default(), at(0)), None, "nothing lost");

        report.failed("database or disk is full".into());
        let first = report.due(lost(0, 1), at(0)).expect("first loss warns");
        assert!(
            first.contains("10 lost in 1 failed batch (last error: database or disk is full)"),
            "{first}"
        );
        assert!(
            !first.contains("since"),
            "the first line needs no totals: {first}"
        );

        // A thousand more failures within the interval: no more lines.
        for i in 1..=1000 {
            assert_eq!(report.due(lost(i, 1 + i), at(i * 59 / 1000)), None);
        }
        let summary = report
            .due(lost(1000, 1001), at(60))
            .expect("one summary after the interval");
        assert!(
            summary.contains("1000 dropped because the queue was full"),
            "{summary}"
        );
        assert!(
            summary.contains("10000 lost in 1000 failed batches"),
            "{summary}"
        );
        assert!(
            summary.ends_with("since the last warning; 11010 lost since start"),
            "{summary}"
        );
        // Nothing new: silence, however long.
        assert_eq!(report.due(lost(1000, 1001), at(600)), None);
    }

    #[test]
    fn losses_within_the_last_interval_are_reported_at_shutdown() {
        let start = Instant::now();
        let mut report = LossReport::default();
        assert!(report.due(lost(5, 0), start).is_some());
        assert_eq!(report.due(lost(7, 0), start + Duration::from_secs(1)), None);
        let last = report
            .remaining(lost(7, 0), start + Duration::from_secs(2))
            .expect("the pending two are not forgotten");
        assert!(last.contains("2 dropped"), "{last}");
        assert_eq!(report.remaining(lost(7, 0), start), None);
    }
}
