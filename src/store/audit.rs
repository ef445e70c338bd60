//! Reading the audit trail: one target's latest events, an organization's
//! events filtered by key and time (listed, or streamed for export), and
//! verifying the hash chain. Writing happens inside each change's own
//! transaction (`audit_chain::append`).

use rusqlite::params;

use super::audit_chain::{CHAIN_COLUMNS, ChainReport, ChainedRow, Verifier};
use super::{Result, Store, StoreError, secs, ts};
use crate::domain::{AuditEvent, Timestamp};

/// Which events of an organization to read. Database-wide events (such as
/// `database.restored`, which belong to no organization) are included
/// unless a key is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub org_id: i64,
    /// Only events about this key (its lookup id).
    pub key: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
}

/// One stored event with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    /// The organization's slug; `None` for database-wide events.
    pub org: Option<String>,
    pub event: AuditEvent,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// The filter shared by listing and export; parameters ?1 org, ?2 key, ?3 since.
const QUERY_FROM: &str = "FROM audit_events e LEFT JOIN orgs o ON o.id = e.org_id
     WHERE (e.org_id = ?1 OR (e.org_id IS NULL AND ?2 IS NULL))
       AND (?2 IS NULL OR (e.target_kind = 'key' AND e.target_id = ?2))
       AND (?3 IS NULL OR e.at >= ?3)";
const RECORD_COLUMNS: &str = "e.id, o.slug, e.at, e.actor, e.actor_addr, e.action, e.target_kind, e.target_id, e.detail, e.prev_hash, e.hash";

fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        id: r.get(0)?,
        org: r.get(1)?,
        event: AuditEvent {
            at: ts(r.get(2)?),
            actor: r.get(3)?,
            actor_addr: r.get(4)?,
            action: r.get(5)?,
            target_kind: r.get(6)?,
            target_id: r.get(7)?,
            detail: r.get(8)?,
        },
        prev_hash: r.get(9)?,
        hash: r.get(10)?,
    })
}

impl Store {
    /// The latest events about one target (e.g. `("key", lookup_id)`), newest first.
    pub fn audit_for(
        &self,
        target_kind: &str,
        target_id: &str,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, actor, actor_addr, action, target_kind, target_id, detail FROM audit_events
             WHERE target_kind = ?1 AND target_id = ?2 ORDER BY at DESC, id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![target_kind, target_id, limit], |r| {
            Ok(AuditEvent {
                at: ts(r.get(0)?),
                actor: r.get(1)?,
                actor_addr: r.get(2)?,
                action: r.get(3)?,
                target_kind: r.get(4)?,
                target_id: r.get(5)?,
                detail: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The latest `limit` matching events, newest first (in the order they
    /// were written, which is the chain's).
    pub fn audit_latest(&self, query: &AuditQuery, limit: u32) -> Result<Vec<AuditRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} {QUERY_FROM} ORDER BY e.id DESC LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![query.org_id, query.key, query.since.map(secs), limit],
            record_from_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every matching event, oldest first, handed to `each` one at a time
    /// as it is read, so an export of any size needs no more memory than one.
    pub fn audit_each<E: From<StoreError>>(
        &self,
        query: &AuditQuery,
        mut each: impl FnMut(&AuditRecord) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} {QUERY_FROM} ORDER BY e.id"
            ))
            .map_err(StoreError::from)?;
        let mut rows = stmt
            .query(params![query.org_id, query.key, query.since.map(secs)])
            .map_err(StoreError::from)?;
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            each(&record_from_row(row).map_err(StoreError::from)?)?;
        }
        Ok(())
    }

    /// Checks the whole database's chain, row by row in id order, and stops
    /// at the first broken link. With `expected_head` (a hash recorded from
    /// an earlier report) it also says whether that event is still in the
    /// chain, which a rewrite of the whole chain cannot preserve.
    pub fn verify_audit_chain(&self, expected_head: Option<&str>) -> Result<ChainReport> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {CHAIN_COLUMNS} FROM audit_events ORDER BY id"
        ))?;
        let mut rows = stmt.query([])?;
        let mut verifier = Verifier::default();
        let mut expected_head_at = None;
        while let Some(row) = rows.next()? {
            let row = ChainedRow::from_row(row)?;
            if let Err(broken) = verifier.check(&row) {
                return Ok(verifier.report(Some(broken), expected_head_at));
            }
            if expected_head.is_some() && row.hash.as_deref() == expected_head {
                expected_head_at = Some(row.id);
            }
        }
        Ok(verifier.report(None, expected_head_at))
    }
}
