//! Retention of raw usage events, run by the usage writer between its
//! write batches, so pruning never competes with it for the write lock
//! and requests (which only queue events) never wait on it. Each step
//! deletes one small batch in its own transaction; a backlog (the first
//! start after months, a shortened retention) is worked through one batch
//! per writer turn. Hourly roll-ups are left alone, so statistics stay.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::store::Store;

/// Raw events deleted per transaction: a few milliseconds of write lock.
pub const PRUNE_BATCH: u32 = 1_000;
/// How often the writer looks for events past the retention once it has
/// caught up; an index probe, so cheap.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
const DAY_MS: i64 = 86_400_000;

/// The retention in days, shared with whoever may change it while the
/// writer runs (`serve` on SIGHUP).
#[derive(Debug)]
pub struct Retention {
    days: AtomicU32,
    /// Raw events pruned since start, for `/metrics`.
    pruned: AtomicU64,
}

impl Retention {
    pub fn new(days: u32) -> Arc<Retention> {
        Arc::new(Retention {
            days: AtomicU32::new(days.max(1)),
            pruned: AtomicU64::new(0),
        })
    }

    pub fn days(&self) -> u32 {
        self.days.load(Ordering::Relaxed)
    }

    /// Takes effect at the writer's next check (within `PRUNE_EVERY`).
    pub fn set_days(&self, days: u32) {
        self.days.store(days.max(1), Ordering::Relaxed);
    }

    pub fn pruned(&self) -> u64 {
        self.pruned.load(Ordering::Relaxed)
    }
}

/// The writer's pruning schedule and the round in progress.
#[derive(Debug)]
pub struct Pruner {
    retention: Arc<Retention>,
    /// When the next step is due; at start, at once.
    next: Instant,
    /// Deleted in the round in progress, for one log line when it ends.
    round: u64,
}

impl Pruner {
    pub fn new(retention: Arc<Retention>, now: Instant) -> Pruner {
        Pruner {
            retention,
            next: now,
            round: 0,
        }
    }

    /// How long the writer may wait for events before a step is due.
    pub fn due_in(&self, now: Instant) -> Duration {
        self.next.saturating_duration_since(now)
    }

    /// One batch, if a step is due at `now`; `now_ms` is the wall clock
    /// (unix ms) the retention is counted back from. A full batch leaves
    /// the next step due at once; anything less ends the round.
    pub fn step(&mut self, store: &mut Store, now: Instant, now_ms: i64) {
        if now < self.next {
            return;
        }
        let days = self.retention.days();
        let before_ms = now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS));
        match store.prune_usage_events(before_ms, PRUNE_BATCH) {
            Ok(deleted) => {
                self.retention.pruned.fetch_add(deleted, Ordering::Relaxed);
                self.round += deleted;
                if deleted == u64::from(PRUNE_BATCH) {
                    self.next = now;
                    return;
                }
                if self.round > 0 {
                    tracing::info!(
                        "pruned {} raw usage events older than {days} days (hourly statistics kept)",
                        self.round
                    );
                }
            }
            // Tried again at the next check: at most one line per interval.
            Err(e) => tracing::warn!(error = %e, "pruning old usage events failed"),
        }
        self.round = 0;
        self.next = now + PRUNE_EVERY;
    }
}
