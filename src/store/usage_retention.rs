//! Raw usage events after they are written: pruned once older than the
//! retention period, streamed out for export, and summarised (oldest
//! event, database size) for `org show`. The hourly roll-ups, per-client
//! table and per-key totals are never touched here, so every statistic
//! read from them survives the raw events.

use rusqlite::params;

use super::{RecentRequest, Result, Store, StoreError};

/// Which raw events to export: one organization's, optionally one key's,
/// optionally only from a time on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery {
    pub org_id: i64,
    /// The key's row id.
    pub key_row: Option<i64>,
    /// Unix milliseconds; events at or after it.
    pub since_ms: Option<i64>,
}

/// One raw usage event as exported: the request as the console's Activity
/// shows it, plus which key made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub id: i64,
    /// The key's lookup id (its display prefix without `pmcp_`).
    pub key: String,
    pub key_name: String,
    pub request: RecentRequest,
}

/// How big the database is, as SQLite counts it (committed WAL included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbSize {
    pub bytes: u64,
    /// Pages freed (by pruning, for instance) that new writes reuse
    /// before the file grows again.
    pub free_bytes: u64,
}

/// The record's own columns, then the request's in `RecentRequest::from_row`'s order.
const RECORD_COLUMNS: &str = "e.id, k.lookup_id, k.name, e.at_ms, e.mcp_slug, e.tool, e.outcome, e.http_status, e.latency_us, e.client_ip, e.user_agent";

fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UsageRecord> {
    Ok(UsageRecord {
        id: r.get(0)?,
        key: r.get(1)?,
        key_name: r.get(2)?,
        request: RecentRequest::from_row(r, 3)?,
    })
}

impl Store {
    /// Deletes at most `limit` raw events older than `before_ms`, oldest
    /// first, in one short transaction (found through the time index), and
    /// says how many went. Callers repeat it to work through a backlog, so
    /// the write lock is never held for more than one small batch.
    pub fn prune_usage_events(&mut self, before_ms: i64, limit: u32) -> Result<u64> {
        let tx = self.write_tx()?;
        let deleted = tx
            .prepare_cached(
                "DELETE FROM usage_events WHERE id IN
                    (SELECT id FROM usage_events WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
            )?
            .execute(params![before_ms, limit])?;
        tx.commit()?;
        Ok(deleted as u64)
    }

    /// The time (unix ms) of the organization's oldest raw event, if any:
    /// one index probe per key.
    pub fn oldest_usage_event(&self, org_id: i64) -> Result<Option<i64>> {
        Ok(self.conn.query_row(
            "SELECT min((SELECT min(at_ms) FROM usage_events WHERE key_id = k.id))
             FROM api_keys k WHERE k.org_id = ?1",
            [org_id],
            |r| r.get(0),
        )?)
    }

    pub fn database_size(&self) -> Result<DbSize> {
        let pragma = |name: &str| -> Result<u64> {
            let v: i64 = self.conn.pragma_query_value(None, name, |r| r.get(0))?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        let page = pragma("page_size")?;
        Ok(DbSize {
            bytes: pragma("page_count")?.saturating_mul(page),
            free_bytes: pragma("freelist_count")?.saturating_mul(page),
        })
    }

    /// Every matching raw event, oldest first, handed to `each` as it is
    /// read: an export of any size holds one row in memory.
    pub fn usage_each<E: From<StoreError>>(
        &self,
        query: &UsageQuery,
        mut each: impl FnMut(&UsageRecord) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        // Two statements rather than `?2 IS NULL OR …`, so each walks the
        // index that already yields its rows in time order.
        let since = query.since_ms.unwrap_or(i64::MIN);
        let from = "FROM usage_events e JOIN api_keys k ON k.id = e.key_id";
        let (sql, key_row) = match query.key_row {
            Some(key_row) => (
                format!(
                    "SELECT {RECORD_COLUMNS} {from}
                     WHERE e.key_id = ?3 AND k.org_id = ?1 AND e.at_ms >= ?2 ORDER BY e.at_ms, e.id"
                ),
                Some(key_row),
            ),
            None => (
                format!(
                    "SELECT {RECORD_COLUMNS} {from}
                     WHERE k.org_id = ?1 AND e.at_ms >= ?2 ORDER BY e.at_ms, e.id"
                ),
                None,
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(StoreError::from)?;
        let mut rows = match key_row {
            Some(key_row) => stmt.query(params![query.org_id, since, key_row]),
            None => stmt.query(params![query.org_id, since]),
        }
        .map_err(StoreError::from)?;
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            each(&record_from_row(row).map_err(StoreError::from)?)?;
        }
        Ok(())
    }
}
