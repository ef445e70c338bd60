//! Per-client-IP limit on failed authentication. After too many failures
//! in a window an address gets 429 until the window ends, unless it
//! presents a key this process already verified (so one bad client behind
//! a shared address cannot lock out a good one).
//!
//! Failures that need argon2 are counted before it runs: the attempt
//! reserves one of its address's failures and gives it back if the key was
//! right, so concurrent attempts cannot overrun the budget.
//!
//! The table of addresses is bounded. When it is full the oldest entry is
//! forgotten to make room, so an attacker who fills it only lets some of
//! its own addresses start over; an address with no failure on record is
//! never refused. IPv6 clients are counted per /64, since one host can use
//! any address of its block.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; beyond this the oldest is forgotten.
pub const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Debug, Default)]
struct Table {
    windows: HashMap<IpAddr, Window>,
    /// The same entries ordered by when their window started, oldest first.
    by_age: BTreeSet<(Instant, IpAddr)>,
}

impl Table {
    fn remove(&mut self, client: IpAddr, started: Instant) {
        self.windows.remove(&client);
        self.by_age.remove(&(started, client));
    }
}

#[derive(Debug)]
pub struct FailureLimiter {
    table: Mutex<Table>,
    max_failures: u32,
    window: Duration,
    max_tracked: usize,
}

/// One failure counted ahead of an expensive check; hand it back with
/// [`FailureLimiter::release`] if the check passes.
#[derive(Debug)]
#[must_use = "a reservation not released stays counted as a failure"]
pub struct Reservation {
    client: IpAddr,
    started: Instant,
}

impl Default for FailureLimiter {
    fn default() -> Self {
        FailureLimiter::new(MAX_FAILURES, WINDOW, MAX_TRACKED)
    }
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration, max_tracked: usize) -> Self {
        FailureLimiter {
            table: Mutex::new(Table::default()),
            max_failures,
            window,
            max_tracked: max_tracked.max(1),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock leaves only counters behind; keep going.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(seconds to wait)` when `ip` has used up its failures.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let table = self.table();
        let w = table.windows.get(&client_of(ip))?;
        self.retry_after(w, now)
    }

    /// Counts one failed authentication from `ip`.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut table = self.table();
        let w = self.window_of(&mut table, client_of(ip), now);
        w.failures = w.failures.saturating_add(1);
    }

    /// Counts a failure for `ip` before an attempt whose outcome is not
    /// known yet, or `Err(seconds to wait)` if it has none left.
    pub fn reserve(&self, ip: IpAddr, now: Instant) -> Result<Reservation, u64> {
        let client = client_of(ip);
        let mut table = self.table();
        let w = self.window_of(&mut table, client, now);
        if let Some(retry_after) = self.retry_after(w, now) {
            return Err(retry_after);
        }
        w.failures += 1;
        Ok(Reservation {
            client,
            started: w.started,
        })
    }

    /// Gives back a reserved failure: the attempt succeeded. An address
    /// left with no failures is forgotten, so good clients take no room.
    pub fn release(&self, reservation: Reservation) {
        let Reservation { client, started } = reservation;
        let mut table = self.table();
        let Some(w) = table.windows.get_mut(&client) else {
            return; // forgotten to make room meanwhile
        };
        if w.started != started {
            return; // counted in a window that has ended
        }
        w.failures = w.failures.saturating_sub(1);
        if w.failures == 0 {
            table.remove(client, started);
        }
    }

    /// Clients tracked right now.
    pub fn tracked(&self) -> usize {
        self.table().windows.len()
    }

    fn retry_after(&self, w: &Window, now: Instant) -> Option<u64> {
        let age = now.saturating_duration_since(w.started);
        (age < self.window && w.failures >= self.max_failures)
            .then(|| self.window.saturating_sub(age).as_secs().max(1))
    }

    /// `client`'s current window: a fresh one if it had none or it ended,
    /// after forgetting the oldest entries if the table is full.
    fn window_of<'t>(&self, table: &'t mut Table, client: IpAddr, now: Instant) -> &'t mut Window {
        if let Some(w) = table.windows.get(&client).copied()
            && now.saturating_duration_since(w.started) >= self.window
        {
            table.remove(client, w.started);
        }
        if !table.windows.contains_key(&client) {
            while table.windows.len() >= self.max_tracked {
                // Oldest first, which also takes every ended window first.
                let Some((started, oldest)) = table.by_age.pop_first() else {
                    break;
                };
                table.remove(oldest, started);
            }
            table.by_age.insert((now, client));
        }
        table.windows.entry(client).or_insert(Window {
            started: now,
            failures: 0,
        })
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
    fn a_full_table_refuses_no_new_address_and_forgets_the_oldest() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let later = |s| t0 + Duration::from_secs(s);
        limiter.record_failure(ip(1), t0);
        limiter.record_failure(ip(2), later(1));
        // Full: an address without failures is never refused…
        assert_eq!(limiter.blocked(ip(3), later(2)), None);
        // …and its failures count like anyone's: the oldest entry makes room.
        for _ in 0..3 {
            assert_eq!(limiter.blocked(ip(3), later(2)), None);
            limiter.record_failure(ip(3), later(2));
        }
        assert_eq!(limiter.blocked(ip(3), later(2)), Some(60));
        assert_eq!(limiter.tracked(), 2, "the table stays bounded");
        // ip(1) was the oldest: forgotten, it starts over with a full budget.
        limiter.record_failure(ip(1), later(3));
        limiter.record_failure(ip(1), later(3));
        assert_eq!(limiter.blocked(ip(1), later(3)), None);
        assert_eq!(limiter.tracked(), 2);
        // Expired windows go before live ones, whatever their order.
        let limiter = FailureLimiter::new(3, Duration::from_secs(60), 2);
        limiter.record_failure(ip(1), t0);
        for _ in 0..3 {
            limiter.record_failure(ip(2), later(30));
        }
        limiter.record_failure(ip(3), later(61));
        assert_eq!(
            limiter.blocked(ip(2), later(61)),
            Some(29),
            "the expired window went, not the blocked address"
        );
    }

    #[test]
    fn reservations_count_before_the_outcome_and_come_back_on_success() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        let held: Vec<Reservation> = (0..3)
            .map(|_| limiter.reserve(ip(1), t0).expect("budget left"))
            .collect();
        assert_eq!(
            limiter.reserve(ip(1), t0).err(),
            Some(60),
            "the budget is spent while the attempts are still running"
        );
        assert_eq!(limiter.blocked(ip(1), t0), Some(60));
        for reservation in held {
            limiter.release(reservation);
        }
        assert_eq!(limiter.blocked(ip(1), t0), None);
        assert_eq!(
            limiter.tracked(),
            0,
            "a client whose attempts passed takes no room"
        );

        // A reservation from a window that has ended gives nothing back.
        let old = limiter.reserve(ip(2), t0).unwrap();
        let later = t0 + Duration::from_secs(61);
        for _ in 0..3 {
            limiter.record_failure(ip(2), later);
        }
        limiter.release(old);
        assert_eq!(limiter.blocked(ip(2), later), Some(60));
    }

    #[test]
    fn one_ipv6_48_cannot_lock_anyone_out() {
        let limiter = FailureLimiter::default();
        let t0 = Instant::now();
        // One failure from every /64 of 2001:db8:7::/48, and on into the next /48.
        let subnet = |n: u128| IpAddr::V6(((0x2001_0db8_0007_u128 << 80) + (n << 64) + 1).into());
        let subnets = MAX_TRACKED as u128 + 1_000;
        for n in 0..subnets {
            limiter.record_failure(subnet(n), t0);
        }
        assert_eq!(limiter.tracked(), MAX_TRACKED, "memory stays bounded");
        // Nobody new is refused: other IPv6 clients, IPv4 clients…
        assert_eq!(
            limiter.blocked("2001:db8:ffff::1".parse().unwrap(), t0),
            None
        );
        assert_eq!(limiter.blocked(ip(9), t0), None);
        // …nor any /64 of the flood that still has budget left.
        assert_eq!(limiter.blocked(subnet(subnets - 1), t0), None);
        assert_eq!(limiter.blocked(subnet(0), t0), None);
        // The limit still holds for a /64 that keeps failing.
        let busy = subnet(subnets - 1);
        for _ in 1..MAX_FAILURES {
            limiter.record_failure(busy, t0);
        }
        assert_eq!(limiter.blocked(busy, t0), Some(WINDOW.as_secs()));
    }
}
