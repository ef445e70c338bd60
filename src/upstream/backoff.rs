//! How long a failed connect keeps answering for its upstream.
//!
//! Without a pause, every request to a broken upstream pays a full connect
//! attempt (up to its timeout) and every `tools/list` of the aggregate
//! endpoint pays it again. The pause starts at [`FIRST_PAUSE`], doubles with
//! each failure in a row up to [`MAX_PAUSE`], and a success resets it.

use std::time::{Duration, Instant};

pub(super) const FIRST_PAUSE: Duration = Duration::from_secs(5);
pub(super) const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Failed connects in a row, and until when the last one stands.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    /// Records a failed connect at `now`; returns the pause it starts.
    pub(super) fn failed(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doublings = self.failures.saturating_sub(1).min(16);
        let pause = FIRST_PAUSE.saturating_mul(1 << doublings).min(MAX_PAUSE);
        self.until = now.checked_add(pause);
        pause
    }

    pub(super) fn succeeded(&mut self) {
        *self = Backoff::default();
    }

    /// Whether the last failure still stands at `now`.
    pub(super) fn waiting(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_minute_and_a_success_resets_them() {
        let start = Instant::now();
        let mut backoff = Backoff::default();
        assert!(!backoff.waiting(start));
        let pauses: Vec<u64> = (0..7).map(|_| backoff.failed(start).as_secs()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 60, 60, 60]);
        assert!(backoff.waiting(start + Duration::from_secs(59)));
        assert!(!backoff.waiting(start + Duration::from_secs(60)));

        backoff.succeeded();
        assert!(!backoff.waiting(start));
        assert_eq!(backoff.failed(start), FIRST_PAUSE);
        assert!(backoff.waiting(start + Duration::from_secs(4)));
        assert!(!backoff.waiting(start + FIRST_PAUSE));
    }

    #[test]
    fn many_failures_do_not_overflow() {
        let mut backoff = Backoff {
            failures: u32::MAX - 1,
            until: None,
        };
        let now = Instant::now();
        assert_eq!(backoff.failed(now), MAX_PAUSE);
        assert_eq!(backoff.failed(now), MAX_PAUSE);
    }
}
