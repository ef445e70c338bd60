//! Rotation's hand-over in SQL: linking the old key to its replacement,
//! bringing its expiry forward to the end of a grace period, giving it an
//! idle limit, and the question every count of active keys asks ("does
//! this key still work at time T?") in the same terms as
//! `KeyRecord::status`, so the plan limit and the server agree.

use chrono::TimeDelta;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Result, Store, StoreError, opt_ts, secs, ts};
use crate::domain::{KeyRecord, Timestamp};

pub use crate::domain::Handover;

/// How many client addresses the "still used by" list names at most.
pub const RECENT_CLIENTS: u32 = 10;

/// SQL that is true for a row of `table` still working at `now_param`:
/// not revoked, not expired, and not past its idle limit.
pub(super) fn still_active(table: &str, now_param: &str) -> String {
    format!(
        "{table}.revoked_at IS NULL
         AND ({table}.expires_at IS NULL OR {table}.expires_at > {now_param})
         AND ({table}.idle_limit_secs IS NULL
              OR max(coalesce({table}.replaced_at, 0), coalesce({table}.last_accepted_at, 0))
                 + {table}.idle_limit_secs > {now_param})"
    )
}

/// Refuses to rotate a key whose replacement still stands: a second
/// replacement would leave two keys claiming to succeed it.
pub(super) fn ensure_not_replaced(tx: &Transaction<'_>, old: &KeyRecord) -> Result<()> {
    let standing: Option<String> = tx
        .query_row(
            "SELECT r.lookup_id FROM api_keys k JOIN api_keys r ON r.id = k.replaced_by
             WHERE k.id = ?1 AND r.revoked_at IS NULL",
            [old.row_id],
            |r| r.get(0),
        )
        .optional()?;
    match standing {
        Some(by) => {
            let by = format!("{}{by}", crate::keys::KEY_PREFIX);
            Err(StoreError::Conflict(format!(
                "key {} was already replaced by {by}: rotate {by} instead, or revoke {} (plexmcp keys revoke {})",
                old.prefix(),
                old.prefix(),
                old.prefix()
            )))
        }
        None => Ok(()),
    }
}

/// `24h`, `30m`, `2d 4h`: a span as the audit trail writes it.
pub fn span_text(span: TimeDelta) -> String {
    let secs = span.num_seconds();
    let parts = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut rest = secs;
    let mut out = Vec::new();
    for (unit, suffix) in parts {
        if rest >= unit {
            out.push(format!("{}{suffix}", rest / unit));
            rest %= unit;
        }
    }
    if out.is_empty() {
        "0s".to_owned()
    } else {
        out.join(" ")
    }
}

/// Links `old` to its replacement (row `new_row`) and applies the
/// hand-over; returns what changed on `old`, for its audit event.
pub(super) fn hand_over(
    tx: &Transaction<'_>,
    old: &KeyRecord,
    new_row: i64,
    handover: &Handover,
    now: Timestamp,
) -> Result<Vec<String>> {
    tx.execute(
        "UPDATE api_keys SET replaced_by = ?1, replaced_at = ?2 WHERE id = ?3",
        params![new_row, secs(now), old.row_id],
    )?;
    let Handover::Keep { grace, idle } = *handover else {
        return Ok(vec!["revoked now".to_owned()]);
    };
    let mut changes = Vec::new();
    if grace.is_none() && idle.is_none() {
        changes.push("kept until revoked".to_owned());
    }
    if let Some(grace) = grace {
        // Read under the write lock: the expiry as stored, not as last seen.
        let expires: Option<Timestamp> = opt_ts(tx.query_row(
            "SELECT expires_at FROM api_keys WHERE id = ?1",
            [old.row_id],
            |r| r.get(0),
        )?);
        let end = now.checked_add_signed(grace).unwrap_or(now);
        let shown = |at: Option<Timestamp>| {
            at.map_or_else(
                || "never".to_owned(),
                |at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            )
        };
        if expires.is_none_or(|at| end < at) {
            tx.execute(
                "UPDATE api_keys SET expires_at = ?1 WHERE id = ?2",
                params![secs(end), old.row_id],
            )?;
            changes.push(format!(
                "grace {}: expires: {} -> {}",
                span_text(grace),
                shown(expires),
                shown(Some(end))
            ));
        } else {
            changes.push(format!(
                "grace {}: it expires sooner, at {}",
                span_text(grace),
                shown(expires)
            ));
        }
    }
    if let Some(idle) = idle {
        tx.execute(
            "UPDATE api_keys SET idle_limit_secs = ?1 WHERE id = ?2",
            params![idle.num_seconds().max(1), old.row_id],
        )?;
        changes.push(format!("ends once unused for {}", span_text(idle)));
    }
    Ok(changes)
}

/// A client address that used a key recently, for watching a cutover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentClient {
    pub ip: String,
    pub last_seen: Timestamp,
}

impl Store {
    /// The client addresses that sent requests with the key since `since`,
    /// most recent first, at most `RECENT_CLIENTS`, and how many there
    /// were in all. Read from the per-client table the usage writer keeps,
    /// so its cost is the number of addresses, not of requests.
    pub fn clients_since(
        &self,
        key_row: i64,
        since: Timestamp,
    ) -> Result<(Vec<RecentClient>, u64)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT client_ip, last_seen FROM key_clients
             WHERE key_id = ?1 AND last_seen >= ?2 ORDER BY last_seen DESC, client_ip LIMIT ?3",
        )?;
        let clients = stmt
            .query_map(params![key_row, secs(since), RECENT_CLIENTS], |r| {
                Ok(RecentClient {
                    ip: r.get(0)?,
                    last_seen: ts(r.get(1)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let total: i64 = self.conn.query_row(
            "SELECT count(*) FROM key_clients WHERE key_id = ?1 AND last_seen >= ?2",
            params![key_row, secs(since)],
            |r| r.get(0),
        )?;
        Ok((clients, u64::try_from(total).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_like_the_cli_writes_them() {
        assert_eq!(span_text(TimeDelta::hours(24)), "1d");
        assert_eq!(span_text(TimeDelta::minutes(30)), "30m");
        assert_eq!(span_text(TimeDelta::seconds(2)), "2s");
        assert_eq!(span_text(TimeDelta::minutes(26 * 60 + 5)), "1d 2h 5m");
        assert_eq!(span_text(TimeDelta::zero()), "0s");
    }
}
