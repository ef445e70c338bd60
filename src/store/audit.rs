//! Reading the audit trail; writing happens inside each change's transaction.

use rusqlite::params;

use super::{Result, Store, ts};
use crate::domain::AuditEvent;

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
}
