//! Rate limits as the store keeps them: three columns (requests, period in
//! seconds, burst), all set or all NULL, on a key (its own limit) and on
//! an org (the default for keys without one). Changing either bumps the
//! auth generation (migration 0004), so servers pick it up at once.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError, audit};
use crate::domain::{Actor, RateLimit, RatePeriod, Timestamp};

/// A limit from its three columns; anything incomplete (only an outside
/// tool could write that past the CHECKs) reads as no limit.
pub(super) fn limit_from(
    requests: Option<i64>,
    period_secs: Option<i64>,
    burst: Option<i64>,
) -> Option<RateLimit> {
    Some(RateLimit {
        requests: u32::try_from(requests?).ok().filter(|n| *n >= 1)?,
        per: RatePeriod::from_seconds(period_secs?)?,
        burst: u32::try_from(burst?).ok().filter(|n| *n >= 1)?,
    })
}

/// The three column values for `limit` (NULLs for none).
pub(super) fn limit_columns(limit: Option<RateLimit>) -> (Option<u32>, Option<i64>, Option<u32>) {
    match limit {
        // Periods are 1, 60 or 3600 seconds: always an i64.
        Some(l) => (
            Some(l.requests),
            Some(i64::try_from(l.per.seconds()).unwrap_or(i64::MAX)),
            Some(l.burst),
        ),
        None => (None, None, None),
    }
}

/// How the audit trail writes a limit.
pub(super) fn describe(limit: Option<RateLimit>) -> String {
    limit.map_or_else(|| "none".to_owned(), |l| l.to_string())
}

/// The org's default limit, read on `conn` (a transaction or not).
pub(super) fn org_default(conn: &rusqlite::Connection, org_id: i64) -> Result<Option<RateLimit>> {
    let row = conn
        .prepare_cached(
            "SELECT rate_requests, rate_period_secs, rate_burst FROM orgs WHERE id = ?1",
        )?
        .query_row([org_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(row.and_then(|(requests, period, burst)| limit_from(requests, period, burst)))
}

impl Store {
    /// The org's default rate limit for keys without their own.
    pub fn org_rate_limit(&self, org_id: i64) -> Result<Option<RateLimit>> {
        org_default(&self.conn, org_id)
    }

    /// Sets (or with `None` clears) the org's default rate limit and
    /// returns the one it had; an actual change is audited.
    pub fn set_org_rate_limit(
        &mut self,
        org_id: i64,
        limit: Option<RateLimit>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Option<RateLimit>> {
        let tx = self.write_tx()?;
        let slug: String = tx
            .query_row("SELECT slug FROM orgs WHERE id = ?1", [org_id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound("the organization is gone".into()))?;
        let old = org_default(&tx, org_id)?;
        if old != limit {
            let (requests, period, burst) = limit_columns(limit);
            tx.execute(
                "UPDATE orgs SET rate_requests = ?1, rate_period_secs = ?2, rate_burst = ?3 WHERE id = ?4",
                params![requests, period, burst, org_id],
            )?;
            let detail = format!(
                "default rate limit: {} -> {}",
                describe(old),
                describe(limit)
            );
            audit(
                &tx,
                org_id,
                now,
                actor,
                "org.rate_limit_changed",
                "org",
                &slug,
                Some(&detail),
            )?;
        }
        tx.commit()?;
        Ok(old)
    }
}
