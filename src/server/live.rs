//! Live request counters for the console's status bar: totals plus a
//! 60-second sliding window, lock-free so the request path pays a few
//! atomic adds. `health` joins them with what the usage writer lost, so
//! the status bar reads one summary.

use std::sync::atomic::{AtomicU64, Ordering};

use super::usage_writer::{Losses, WriterStats};

const WINDOW_SECS: usize = 60;

#[derive(Debug)]
pub struct LiveStats {
    pub total: AtomicU64,
    pub errors: AtomicU64,
    /// Per second slot: (unix second it belongs to, requests, errors).
    slots: [(AtomicU64, AtomicU64, AtomicU64); WINDOW_SECS],
}

impl Default for LiveStats {
    fn default() -> Self {
        LiveStats {
            total: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            slots: std::array::from_fn(|_| {
                (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0))
            }),
        }
    }
}

/// Requests and errors in the last minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub requests: u64,
    pub errors: u64,
}

/// What the console's status bar shows about a running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// Requests and errors in the last minute.
    pub requests: u64,
    pub errors: u64,
    /// Usage events the writer could not record, since start.
    pub usage_lost: Losses,
}

impl LiveStats {
    /// The last minute of requests plus the usage writer's losses.
    pub fn health(&self, usage: &WriterStats, unix_secs: u64) -> Health {
        let window = self.last_minute(unix_secs);
        Health {
            requests: window.requests,
            errors: window.errors,
            usage_lost: usage.losses(),
        }
    }

    pub fn record(&self, unix_secs: u64, error: bool) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[(unix_secs as usize) % WINDOW_SECS];
        // A slot left from a minute ago is reset by the first request of its new second.
        if slot.0.swap(unix_secs, Ordering::Relaxed) != unix_secs {
            slot.1.store(0, Ordering::Relaxed);
            slot.2.store(0, Ordering::Relaxed);
        }
        slot.1.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
            slot.2.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn last_minute(&self, unix_secs: u64) -> Window {
        let oldest = unix_secs.saturating_sub(WINDOW_SECS as u64 - 1);
        self.slots
            .iter()
            .filter(|s| (oldest..=unix_secs).contains(&s.0.load(Ordering::Relaxed)))
            .fold(Window::default(), |w, s| Window {
                requests: w.requests + s.1.load(Ordering::Relaxed),
                errors: w.errors + s.2.load(Ordering::Relaxed),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_the_last_minute_only() {
        let live = LiveStats::default();
        live.record(1000, false);
        live.record(1000, true);
        live.record(1030, false);
        assert_eq!(
            live.last_minute(1030),
            Window {
                requests: 3,
                errors: 1
            }
        );
        assert_eq!(
            live.last_minute(1070),
            Window {
                requests: 1,
                errors: 0
            }
        );
        live.record(1060, false); // reuses the slot of second 1000
        assert_eq!(
            live.last_minute(1060),
            Window {
                requests: 2,
                errors: 0
            }
        );
        assert_eq!(live.total.load(Ordering::Relaxed), 4);
    }
}
