//! The single writer of usage events. Requests hand events to a bounded
//! channel and never wait on SQLite; one thread commits whatever has
//! queued up as one transaction, so batches grow with load by themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, UsageEvent};

/// Events waiting beyond this are dropped (and counted) rather than
/// letting a stalled disk slow down requests.
pub const QUEUE_CAPACITY: usize = 65_536;
/// Upper bound on one transaction, so a backlog is committed in steps.
pub const MAX_BATCH: usize = 8_192;
/// How long the writer waits after the first event of a batch; also the
/// most a crash can lose beyond what was already queued.
pub const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

enum Message {
    Event(UsageEvent),
    /// Everything sent before this has been committed when it is answered.
    Flush(oneshot::Sender<()>),
}

/// Counters shared with whoever shows server health.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub failed_batches: AtomicU64,
}

/// Cheap handle requests use to record events.
#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<Message>,
    stats: Arc<WriterStats>,
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

    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }
}

/// Starts the writer thread and hands out sinks.
pub struct UsageWriter {
    sink: UsageSink,
}

impl UsageWriter {
    /// The thread ends by itself once every sink is dropped.
    pub fn start(store: Store) -> std::io::Result<UsageWriter> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(store, rx, &thread_stats))?;
        Ok(UsageWriter {
            sink: UsageSink { tx, stats },
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

fn run(mut store: Store, mut rx: mpsc::Receiver<Message>, stats: &WriterStats) {
    if let Err(e) = store.relax_durability() {
        tracing::warn!(error = %e, "usage writer keeps full fsync");
    }
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut waiters = Vec::new();
    while let Some(first) = rx.blocking_recv() {
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
        commit(&mut store, &mut batch, stats);
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
    }
    commit(&mut store, &mut batch, stats);
}

fn commit(store: &mut Store, batch: &mut Vec<UsageEvent>, stats: &WriterStats) {
    if batch.is_empty() {
        return;
    }
    match store.record_usage(batch) {
        Ok(()) => {
            stats
                .written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        Err(e) => {
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, events = batch.len(), "could not write usage events");
        }
    }
    batch.clear();
}
