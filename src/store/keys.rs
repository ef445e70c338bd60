//! API key rows, their MCP access and their lifecycle. The plan limit is
//! checked inside the same write transaction as the insert, so two
//! processes creating keys at once cannot both slip past it.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::{Result, Store, StoreError, audit, is_unique_violation, opt_ts, secs, ts};
use crate::domain::{Actor, KeyRecord, McpAccess, Plan, Timestamp};

/// A key about to be stored: validated fields plus the argon2 hash of its text.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    pub org_id: i64,
    pub lookup_id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub secret_hash: &'a str,
    pub access: &'a McpAccess,
    pub expires_at: Option<Timestamp>,
}

/// Changes to a key; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyEdit {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub access: Option<McpAccess>,
}

const KEY_COLUMNS: &str =
    "k.id, k.org_id, k.lookup_id, k.name, k.description, k.all_mcps, k.created_at, k.created_by,
    k.expires_at, k.revoked_at, k.revoked_by, k.last_used_at, k.request_count,
    (SELECT r.lookup_id FROM api_keys r WHERE r.id = k.rotated_from) AS rotated_from";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let all: bool = row.get("all_mcps")?;
    Ok(KeyRecord {
        row_id: row.get("id")?,
        org_id: row.get("org_id")?,
        id: row.get("lookup_id")?,
        name: row.get("name")?,
        description: row.get("description")?,
        created_at: ts(row.get("created_at")?),
        created_by: row.get("created_by")?,
        expires_at: opt_ts(row.get("expires_at")?),
        revoked_at: opt_ts(row.get("revoked_at")?),
        revoked_by: row.get("revoked_by")?,
        rotated_from: row.get("rotated_from")?,
        last_used_at: opt_ts(row.get("last_used_at")?),
        request_count: row.get("request_count")?,
        access: if all {
            McpAccess::All
        } else {
            McpAccess::Only(Vec::new())
        },
    })
}

/// Slugs of the live MCPs a key with specific access may use.
fn access_slugs(conn: &rusqlite::Connection, key_row: i64) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.slug FROM key_mcp_access a JOIN mcps m ON m.id = a.mcp_id
         WHERE a.key_id = ?1 AND m.deleted_at IS NULL ORDER BY m.slug",
    )?;
    let rows = stmt.query_map([key_row], |r| r.get(0))?;
    rows.collect()
}

fn load_key(
    conn: &rusqlite::Connection,
    where_sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<KeyRecord>> {
    let mut key = conn
        .query_row(
            &format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE {where_sql}"),
            params,
            key_from_row,
        )
        .optional()?;
    if let Some(KeyRecord {
        row_id,
        access: McpAccess::Only(slugs),
        ..
    }) = key.as_mut()
    {
        *slugs = access_slugs(conn, *row_id)?;
    }
    Ok(key)
}

/// Resolves slugs to live MCP rows of the org, refusing unknown ones.
fn resolve_access(tx: &Transaction<'_>, org_id: i64, access: &McpAccess) -> Result<Vec<i64>> {
    let McpAccess::Only(slugs) = access else {
        return Ok(Vec::new());
    };
    let mut ids = Vec::with_capacity(slugs.len());
    for slug in slugs {
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM mcps WHERE org_id = ?1 AND slug = ?2 AND deleted_at IS NULL",
                params![org_id, slug],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => ids.push(id),
            None => {
                let org: String =
                    tx.query_row("SELECT slug FROM orgs WHERE id = ?1", [org_id], |r| {
                        r.get(0)
                    })?;
                return Err(StoreError::UnknownMcp {
                    slug: slug.clone(),
                    org,
                });
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn write_access(tx: &Transaction<'_>, key_row: i64, mcp_rows: &[i64]) -> Result<()> {
    tx.execute("DELETE FROM key_mcp_access WHERE key_id = ?1", [key_row])?;
    let mut insert =
        tx.prepare_cached("INSERT INTO key_mcp_access (key_id, mcp_id) VALUES (?1, ?2)")?;
    for mcp in mcp_rows {
        insert.execute(params![key_row, mcp])?;
    }
    Ok(())
}

/// Refuses a new key when the org's plan has no room for one more active key.
fn check_plan_limit(tx: &Transaction<'_>, org_id: i64, now: Timestamp) -> Result<()> {
    let (slug, plan): (String, String) =
        tx.query_row("SELECT slug, plan FROM orgs WHERE id = ?1", [org_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let plan: Plan = plan.parse().unwrap_or(Plan::Free);
    let Some(limit) = plan.key_limit() else {
        return Ok(());
    };
    let active: u32 = tx.query_row(
        "SELECT count(*) FROM api_keys WHERE org_id = ?1 AND revoked_at IS NULL
         AND (expires_at IS NULL OR expires_at > ?2)",
        params![org_id, secs(now)],
        |r| r.get(0),
    )?;
    if active >= limit {
        return Err(StoreError::LimitReached {
            plan,
            limit,
            org: slug,
        });
    }
    Ok(())
}

fn insert_key(
    tx: &Transaction<'_>,
    new: &NewKey<'_>,
    rotated_from: Option<i64>,
    actor: &Actor,
    now: Timestamp,
) -> Result<i64> {
    let mcp_rows = resolve_access(tx, new.org_id, new.access)?;
    check_plan_limit(tx, new.org_id, now)?;
    tx.execute(
        "INSERT INTO api_keys (org_id, lookup_id, name, description, secret_hash, all_mcps, created_at, created_by, expires_at, rotated_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            new.org_id,
            new.lookup_id,
            new.name,
            new.description,
            new.secret_hash,
            matches!(new.access, McpAccess::All),
            secs(now),
            actor.user,
            new.expires_at.map(secs),
            rotated_from
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e, "api_keys.lookup_id") {
            StoreError::IdCollision
        } else {
            e.into()
        }
    })?;
    let row = tx.last_insert_rowid();
    write_access(tx, row, &mcp_rows)?;
    Ok(row)
}

fn revoke_in(
    tx: &Transaction<'_>,
    key: &KeyRecord,
    actor: &Actor,
    now: Timestamp,
    detail: Option<&str>,
) -> Result<()> {
    let changed = tx.execute(
        "UPDATE api_keys SET revoked_at = ?1, revoked_by = ?2 WHERE id = ?3 AND revoked_at IS NULL",
        params![secs(now), actor.to_string(), key.row_id],
    )?;
    if changed == 0 {
        return Err(StoreError::Revoked(key.prefix()));
    }
    audit(
        tx,
        key.org_id,
        now,
        actor,
        "key.revoked",
        "key",
        &key.id,
        detail,
    )
}

impl Store {
    /// Every key of the org, newest first, revoked ones included.
    pub fn list_keys(&self, org_id: i64) -> Result<Vec<KeyRecord>> {
        let mut access: HashMap<i64, Vec<String>> = HashMap::new();
        {
            let mut stmt = self.conn.prepare(
                "SELECT a.key_id, m.slug FROM key_mcp_access a
                 JOIN mcps m ON m.id = a.mcp_id
                 JOIN api_keys k ON k.id = a.key_id
                 WHERE k.org_id = ?1 AND m.deleted_at IS NULL ORDER BY m.slug",
            )?;
            let mut rows = stmt.query([org_id])?;
            while let Some(row) = rows.next()? {
                access.entry(row.get(0)?).or_default().push(row.get(1)?);
            }
        }
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.org_id = ?1 ORDER BY k.created_at DESC, k.id DESC"
        ))?;
        let rows = stmt.query_map([org_id], key_from_row)?;
        let mut keys = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        for key in &mut keys {
            if let McpAccess::Only(slugs) = &mut key.access {
                *slugs = access.remove(&key.row_id).unwrap_or_default();
            }
        }
        Ok(keys)
    }

    /// A key of the org by its lookup id.
    pub fn key_by_lookup(&self, org_id: i64, lookup_id: &str) -> Result<Option<KeyRecord>> {
        load_key(
            &self.conn,
            "k.org_id = ?1 AND k.lookup_id = ?2",
            params![org_id, lookup_id],
        )
    }

    /// A key by lookup id in any org, with its argon2 hash (for verification).
    pub fn key_for_auth(&self, lookup_id: &str) -> Result<Option<(KeyRecord, String)>> {
        let Some(key) = load_key(&self.conn, "k.lookup_id = ?1", [lookup_id])? else {
            return Ok(None);
        };
        let hash: String = self.conn.query_row(
            "SELECT secret_hash FROM api_keys WHERE id = ?1",
            [key.row_id],
            |r| r.get(0),
        )?;
        Ok(Some((key, hash)))
    }

    /// The public id of the key with this row id.
    pub fn lookup_id_of(&self, row_id: i64) -> Result<String> {
        Ok(self.conn.query_row(
            "SELECT lookup_id FROM api_keys WHERE id = ?1",
            [row_id],
            |r| r.get(0),
        )?)
    }

    fn key_by_row(&self, row_id: i64) -> Result<KeyRecord> {
        load_key(&self.conn, "k.id = ?1", [row_id])?
            .ok_or_else(|| StoreError::NotFound("key vanished while it was being changed".into()))
    }

    /// Stores a new key and its access, subject to the plan limit.
    pub fn create_key(
        &mut self,
        new: &NewKey<'_>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<KeyRecord> {
        let tx = self.write_tx()?;
        let row = insert_key(&tx, new, None, actor, now)?;
        let detail = format!("access: {}", new.access.describe());
        audit(
            &tx,
            new.org_id,
            now,
            actor,
            "key.created",
            "key",
            new.lookup_id,
            Some(&detail),
        )?;
        tx.commit()?;
        self.key_by_row(row)
    }

    /// Stores the replacement for `old` and, if asked, revokes `old` in the
    /// same transaction (so the plan limit sees one key swapped for another).
    pub fn rotate_key(
        &mut self,
        old: &KeyRecord,
        new: &NewKey<'_>,
        revoke_old: bool,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<KeyRecord> {
        let tx = self.write_tx()?;
        let current_revoked: Option<i64> = tx.query_row(
            "SELECT revoked_at FROM api_keys WHERE id = ?1",
            [old.row_id],
            |r| r.get(0),
        )?;
        if current_revoked.is_some() {
            return Err(StoreError::Revoked(old.prefix()));
        }
        let new_prefix = format!("{}{}", crate::keys::KEY_PREFIX, new.lookup_id);
        if revoke_old {
            revoke_in(
                &tx,
                old,
                actor,
                now,
                Some(&format!("rotated to {new_prefix}")),
            )?;
        }
        let row = insert_key(&tx, new, Some(old.row_id), actor, now)?;
        let created = format!(
            "rotated from {}; access: {}",
            old.prefix(),
            new.access.describe()
        );
        audit(
            &tx,
            new.org_id,
            now,
            actor,
            "key.created",
            "key",
            new.lookup_id,
            Some(&created),
        )?;
        let rotated = format!("replaced by {new_prefix}");
        audit(
            &tx,
            old.org_id,
            now,
            actor,
            "key.rotated",
            "key",
            &old.id,
            Some(&rotated),
        )?;
        tx.commit()?;
        self.key_by_row(row)
    }

    /// Revokes a key for good. Errors if it was already revoked.
    pub fn revoke_key(
        &mut self,
        key: &KeyRecord,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<KeyRecord> {
        let tx = self.write_tx()?;
        revoke_in(&tx, key, actor, now, None)?;
        tx.commit()?;
        self.key_by_row(key.row_id)
    }

    /// Applies an edit to a key that is not revoked.
    pub fn edit_key(
        &mut self,
        key: &KeyRecord,
        edit: &KeyEdit,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<KeyRecord> {
        let tx = self.write_tx()?;
        let revoked: Option<i64> = tx.query_row(
            "SELECT revoked_at FROM api_keys WHERE id = ?1",
            [key.row_id],
            |r| r.get(0),
        )?;
        if revoked.is_some() {
            return Err(StoreError::Revoked(key.prefix()));
        }
        let mut changes = Vec::new();
        if let Some(name) = &edit.name {
            tx.execute(
                "UPDATE api_keys SET name = ?1 WHERE id = ?2",
                params![name, key.row_id],
            )?;
            changes.push(format!("name: {name}"));
        }
        if let Some(description) = &edit.description {
            tx.execute(
                "UPDATE api_keys SET description = ?1 WHERE id = ?2",
                params![description, key.row_id],
            )?;
            changes.push("description".to_string());
        }
        if let Some(access) = &edit.access {
            let rows = resolve_access(&tx, key.org_id, access)?;
            tx.execute(
                "UPDATE api_keys SET all_mcps = ?1 WHERE id = ?2",
                params![matches!(access, McpAccess::All), key.row_id],
            )?;
            write_access(&tx, key.row_id, &rows)?;
            changes.push(format!("access: {}", access.describe()));
        }
        if !changes.is_empty() {
            audit(
                &tx,
                key.org_id,
                now,
                actor,
                "key.edited",
                "key",
                &key.id,
                Some(&changes.join("; ")),
            )?;
        }
        tx.commit()?;
        self.key_by_row(key.row_id)
    }
}
