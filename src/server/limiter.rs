//! Per-client-IP limit on failed authentication. After too many failures
//! in a window an address gets 429 until the window ends, unless it
//! presents a key this process already verified (so one bad client behind
//! a shared address cannot lock out a good one). When the table of
//! addresses is full, unknown addresses are refused rather than let
//! through untracked: the limiter fails closed. IPv6 clients are counted
//! per /64, since one host can use any address of its block.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; beyond this, stale entries are pruned and,
/// if none are stale, new failing addresses are refused.
pub const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Debug)]
pub struct FailureLimiter {
    windows: Mutex<HashMap<IpAddr, Window>>,
    max_failures: u32,
    window: Duration,
    max_tracked: usize,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        FailureLimiter::new(MAX_FAILURES, WINDOW, MAX_TRACKED)
    }
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration, max_tracked: usize) -> Self {
        FailureLimiter {
            windows: Mutex::new(HashMap::new()),
            max_failures,
            window,
            max_tracked,
        }
    }

    /// `Some(seconds to wait)` when `ip` has used up its failures.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let ip = client_of(ip);
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(&ip) {
            Some(w)
                if now.duration_since(w.started) < self.window
                    && w.failures >= self.max_failures =>
            {
                let left = self.window.saturating_sub(now.duration_since(w.started));
                Some(left.as_secs().max(1))
            }
            Some(_) => None,
            // Untracked because the table is full: refuse rather than forget.
            None if windows.len() >= self.max_tracked => Some(self.window.as_secs().max(1)),
            None => None,
        }
    }

    /// Counts one failed authentication from `ip`.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let ip = client_of(ip);
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= self.max_tracked && !windows.contains_key(&ip) {
            let window = self.window;
            windows.retain(|_, w| now.duration_since(w.started) < window);
            if windows.len() >= self.max_tracked {
                return; // still full: `blocked` refuses this address
            }
        }
        let w = windows.entry(ip).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(w.started) >= self.window {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }
}

/// The unit one client is counted as: an IPv4 address (also when it comes
/// IPv4-mapped), or an IPv6 /64, the block a single host or site is
/// usually handed; counting single IPv6 addresses would let one client
/// rotate through billions of them and fill the table.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.blocked(ip(1), t0), None);
            limiter.record_failure(ip(1), t0);
        }
        assert_eq!(limiter.blocked(ip(1), t0), Some(60));
        assert_eq!(
            limiter.blocked(ip(1), t0 + Duration::from_secs(45)),
            Some(15)
        );
        assert_eq!(limiter.blocked(ip(2), t0), None, "other clients unaffected");
        assert_eq!(limiter.blocked(ip(1), t0 + Duration::from_secs(61)), None);
        limiter.record_failure(ip(1), t0 + Duration::from_secs(61));
        assert_eq!(
            limiter.blocked(ip(1), t0 + Duration::from_secs(61)),
            None,
            "a new window starts over"
        );
    }

    #[test]
    fn a_full_table_fails_closed() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60), 2);
        let t0 = Instant::now();
        limiter.record_failure(ip(1), t0);
        limiter.record_failure(ip(2), t0);
        limiter.record_failure(ip(3), t0);
        assert!(
            limiter.blocked(ip(3), t0).is_some(),
            "untracked address refused"
        );
        assert_eq!(
            limiter.blocked(ip(1), t0),
            None,
            "tracked addresses keep their budget"
        );
        // Once old windows expire, room is made again.
        let later = t0 + Duration::from_secs(61);
        limiter.record_failure(ip(3), later);
        assert_eq!(limiter.blocked(ip(3), later), None);
    }
}
