//! Per-key rate limits, counted in this process's memory: one token bucket
//! per key row that has a limit (its own or its org's default), kept as
//! GCRA's single "theoretical arrival time", so a check is a lock, a
//! lookup and a few additions. Each entry also counts the key's requests
//! per second over the last minute and how often it was refused, for the
//! console's detail pane.
//!
//! The table holds only keys that have a limit and made a request since
//! this process started; [`KeyRateLimits::tracked`] and
//! [`KeyRateLimits::forget`] let the sweeper drop keys that were revoked,
//! expired, deleted or lost their limit, so it never outgrows the live
//! keys. A changed limit starts a fresh, full bucket at the new settings.
//!
//! Nothing here is shared between processes: N gateways on one database
//! each allow a key its whole limit (see the README).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::domain::{KeyRecord, RateLimit};

/// Seconds of per-second request counts kept for "requests in the last minute".
const RECENT_SECS: usize = 60;

/// A refusal: the key used up its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub limit: RateLimit,
    /// Whole seconds until one request would be allowed (at least 1).
    pub retry_after: u64,
}

/// What the console shows about a key's limit in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateSnapshot {
    /// Requests (allowed or refused) in the last 60 seconds.
    pub last_minute: u64,
    /// Requests refused over the limit since this process started.
    pub hits: u64,
}

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    /// The key's public id, for the sweeper to ask the verifier about it.
    lookup_id: String,
    /// When the bucket is full again, as an offset from the table's
    /// origin; every allowed request moves it one interval later.
    full_at: Duration,
    recent: Recent,
    hits: u64,
}

/// Request counts per second over the last [`RECENT_SECS`] seconds.
#[derive(Debug)]
struct Recent {
    counts: [u32; RECENT_SECS],
    /// The latest second (since the origin) whose slot is in use.
    last: u64,
}

impl Recent {
    fn new(second: u64) -> Recent {
        Recent {
            counts: [0; RECENT_SECS],
            last: second,
        }
    }

    fn count(&mut self, second: u64) {
        if second > self.last {
            // Slots of the seconds skipped since hold counts a minute old.
            let skipped = (second - self.last).min(RECENT_SECS as u64);
            for s in 0..skipped {
                self.counts[slot(second - s)] = 0;
            }
            self.last = second;
        }
        let at = &mut self.counts[slot(self.last)];
        *at = at.saturating_add(1);
    }

    fn last_minute(&self, second: u64) -> u64 {
        let oldest = second.saturating_sub(RECENT_SECS as u64 - 1);
        (oldest.max(self.last.saturating_sub(RECENT_SECS as u64 - 1))..=self.last)
            .map(|s| u64::from(self.counts[slot(s)]))
            .sum()
    }
}

fn slot(second: u64) -> usize {
    (second % RECENT_SECS as u64) as usize
}

#[derive(Debug)]
pub struct KeyRateLimits {
    /// Offsets are measured from here, so no `Instant` arithmetic can overflow.
    origin: Instant,
    table: Mutex<HashMap<i64, Bucket>>,
}

impl Default for KeyRateLimits {
    fn default() -> Self {
        KeyRateLimits {
            origin: Instant::now(),
            table: Mutex::new(HashMap::new()),
        }
    }
}

impl KeyRateLimits {
    fn table(&self) -> MutexGuard<'_, HashMap<i64, Bucket>> {
        // A panic while holding the lock leaves only counters behind; keep going.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request by `key` at `now` against its effective limit;
    /// a key without one is not tracked at all.
    pub fn check(&self, key: &KeyRecord, now: Instant) -> Result<(), Limited> {
        let Some((limit, _)) = key.effective_rate_limit() else {
            return Ok(());
        };
        let at = now.saturating_duration_since(self.origin);
        let second = at.as_secs();
        let mut table = self.table();
        let bucket = table.entry(key.row_id).or_insert_with(|| Bucket {
            limit,
            lookup_id: key.id.clone(),
            full_at: at,
            recent: Recent::new(second),
            hits: 0,
        });
        if bucket.limit != limit {
            // Edited: the new limit applies from a full bucket, at once.
            bucket.limit = limit;
            bucket.full_at = at;
        }
        bucket.recent.count(second);
        let interval = limit.interval();
        let depth = interval.saturating_mul(limit.burst);
        let after = bucket.full_at.max(at).saturating_add(interval);
        if after.saturating_sub(at) > depth {
            bucket.hits = bucket.hits.saturating_add(1);
            // When one more interval has drained: `after - depth` from the origin.
            let wait = after.saturating_sub(depth).saturating_sub(at);
            return Err(Limited {
                limit,
                retry_after: whole_seconds_up(wait).max(1),
            });
        }
        bucket.full_at = after;
        Ok(())
    }

    /// This process's counts for the key in row `key_row`, if it has any.
    pub fn snapshot(&self, key_row: i64, now: Instant) -> Option<RateSnapshot> {
        let second = now.saturating_duration_since(self.origin).as_secs();
        self.table().get(&key_row).map(|b| RateSnapshot {
            last_minute: b.recent.last_minute(second),
            hits: b.hits,
        })
    }

    /// Every tracked key: row and public id.
    pub fn tracked(&self) -> Vec<(i64, String)> {
        self.table()
            .iter()
            .map(|(row, b)| (*row, b.lookup_id.clone()))
            .collect()
    }

    /// Drops the entries of keys that no longer need one.
    pub fn forget(&self, rows: &[i64]) {
        let mut table = self.table();
        for row in rows {
            table.remove(row);
        }
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn whole_seconds_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{McpAccess, RatePeriod};

    fn key(row_id: i64, limit: Option<RateLimit>) -> KeyRecord {
        KeyRecord {
            row_id,
            org_id: 1,
            id: format!("KEY{row_id:05}"),
            name: "k".into(),
            description: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
            created_by: "t".into(),
            expires_at: None,
            revoked_at: None,
            revoked_by: None,
            rotated_from: None,
            last_used_at: None,
            request_count: 0,
            access: McpAccess::All,
            rate_limit: limit,
            org_rate_limit: None,
            succession: Default::default(),
        }
    }

    fn per_minute(requests: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit {
            requests,
            per: RatePeriod::Minute,
            burst,
        })
    }

    #[test]
    fn a_burst_then_one_request_per_interval() {
        let limits = KeyRateLimits::default();
        let t0 = limits.origin;
        let secs = |s: u64| t0 + Duration::from_secs(s);
        let k = key(1, per_minute(6, 3));
        for _ in 0..3 {
            assert_eq!(limits.check(&k, t0), Ok(()));
        }
        let refused = limits.check(&k, t0).unwrap_err();
        assert_eq!(refused.retry_after, 10, "one token every 10 s");
        assert_eq!(
            limits
                .check(&k, t0 + Duration::from_millis(500))
                .unwrap_err()
                .retry_after,
            10,
            "9.5 s rounds up"
        );
        assert_eq!(limits.check(&k, secs(10)), Ok(()));
        assert!(limits.check(&k, secs(10)).is_err());
        // Idle long enough, the whole burst is back, and no more.
        for _ in 0..3 {
            assert_eq!(limits.check(&k, secs(100)), Ok(()));
        }
        assert!(limits.check(&k, secs(100)).is_err());
        let seen = limits.snapshot(1, secs(100)).unwrap();
        assert_eq!(seen.hits, 4);
        assert_eq!(
            seen.last_minute, 4,
            "the requests at 100 s; those at 0-10 s are over a minute old"
        );
        assert_eq!(limits.snapshot(1, secs(161)).unwrap().last_minute, 0);
    }

    #[test]
    fn keys_are_counted_apart_and_unlimited_ones_not_at_all() {
        let limits = KeyRateLimits::default();
        let t0 = limits.origin;
        let a = key(1, per_minute(1, 1));
        let b = key(2, per_minute(1, 1));
        assert_eq!(limits.check(&a, t0), Ok(()));
        assert!(limits.check(&a, t0).is_err());
        assert_eq!(limits.check(&b, t0), Ok(()), "another key is untouched");
        let free = key(3, None);
        for _ in 0..1000 {
            assert_eq!(limits.check(&free, t0), Ok(()));
        }
        assert_eq!(limits.len(), 2, "keys without a limit take no room");
        limits.forget(&[1]);
        assert_eq!(limits.tracked(), vec![(2, "KEY00002".to_string())]);
    }

    #[test]
    fn an_org_default_applies_and_an_edit_starts_a_full_bucket() {
        let limits = KeyRateLimits::default();
        let t0 = limits.origin;
        let mut k = key(1, None);
        k.org_rate_limit = per_minute(2, 2);
        assert!(limits.check(&k, t0).is_ok() && limits.check(&k, t0).is_ok());
        assert!(limits.check(&k, t0).is_err(), "the org's default counts");
        k.rate_limit = per_minute(100, 5);
        for _ in 0..5 {
            assert_eq!(limits.check(&k, t0), Ok(()), "the key's own limit wins");
        }
        assert!(limits.check(&k, t0).is_err());
    }

    #[test]
    fn extreme_limits_neither_overflow_nor_panic() {
        let limits = KeyRateLimits::default();
        let t0 = limits.origin;
        let slow = key(
            1,
            Some(RateLimit {
                requests: 1,
                per: RatePeriod::Hour,
                burst: crate::rules::RATE_MAX,
            }),
        );
        assert_eq!(limits.check(&slow, t0), Ok(()));
        let fast = key(
            2,
            Some(RateLimit {
                requests: crate::rules::RATE_MAX,
                per: RatePeriod::Second,
                burst: 1,
            }),
        );
        assert_eq!(limits.check(&fast, t0), Ok(()));
        assert_eq!(limits.check(&fast, t0).unwrap_err().retry_after, 1);
        let hourly = key(
            3,
            Some(RateLimit {
                requests: 1,
                per: RatePeriod::Hour,
                burst: 1,
            }),
        );
        assert_eq!(limits.check(&hourly, t0), Ok(()));
        assert_eq!(limits.check(&hourly, t0).unwrap_err().retry_after, 3600);
    }
}
