//! API key rows, their MCP access and their lifecycle. The plan limit is
//! checked inside the same write transaction as the insert, so two
//! processes creating keys at once cannot both slip past it.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::rate_limits::{describe, limit_columns, limit_from, org_default};
use super::tool_grants::{grant_from, tools_column};
use super::{Result, Store, StoreError, audit, is_unique_violation, opt_ts, secs, ts};
use chrono::TimeDelta;

use super::handover::{self, Handover, still_active};
use crate::domain::{
    Actor, KeyRecord, McpAccess, McpGrant, Plan, RateLimit, Succession, Timestamp,
};

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
    /// Its own rate limit; `None` follows the org's default.
    pub rate_limit: Option<RateLimit>,
}

/// Changes to a key; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyEdit {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub access: Option<McpAccess>,
    /// `Some(None)` removes the key's own limit (the org's default applies).
    pub rate_limit: Option<Option<RateLimit>>,
}

/// Columns `key_from_row` reads, by position (see the test below): the
/// console lists 100,000 keys, and looking columns up by name cost more than
/// the query itself.
const KEY_COLUMNS: &str =
    "k.id, k.org_id, k.lookup_id, k.name, k.description, k.all_mcps, k.created_at, k.created_by,
    k.expires_at, k.revoked_at, k.revoked_by, k.last_used_at, k.request_count,
    (SELECT r.lookup_id FROM api_keys r WHERE r.id = k.rotated_from) AS rotated_from,
    k.rate_requests, k.rate_period_secs, k.rate_burst,
    (SELECT r.lookup_id FROM api_keys r WHERE r.id = k.replaced_by) AS replaced_by,
    k.replaced_at, k.idle_limit_secs, k.last_accepted_at";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let all: bool = row.get(5)?;
    Ok(KeyRecord {
        row_id: row.get(0)?,
        org_id: row.get(1)?,
        id: row.get(2)?,
        name: row.get(3)?,
        description: row.get(4)?,
        created_at: ts(row.get(6)?),
        created_by: row.get(7)?,
        expires_at: opt_ts(row.get(8)?),
        revoked_at: opt_ts(row.get(9)?),
        revoked_by: row.get(10)?,
        rotated_from: row.get(13)?,
        last_used_at: opt_ts(row.get(11)?),
        request_count: row.get(12)?,
        access: if all {
            McpAccess::All
        } else {
            McpAccess::Only(Vec::new())
        },
        rate_limit: limit_from(row.get(14)?, row.get(15)?, row.get(16)?),
        // The org's default is the same for all its keys: filled in after.
        org_rate_limit: None,
        succession: Succession {
            replaced_by: row.get(17)?,
            replaced_at: opt_ts(row.get(18)?),
            idle_limit: row.get::<_, Option<i64>>(19)?.map(TimeDelta::seconds),
            last_accepted_at: opt_ts(row.get(20)?),
        },
    })
}

/// The live MCPs a key with specific access may use, with their tools.
fn access_grants(conn: &rusqlite::Connection, key_row: i64) -> rusqlite::Result<Vec<McpGrant>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.slug, a.tools_json FROM key_mcp_access a JOIN mcps m ON m.id = a.mcp_id
         WHERE a.key_id = ?1 AND m.deleted_at IS NULL ORDER BY m.slug",
    )?;
    let rows = stmt.query_map([key_row], |r| Ok(grant_from(r.get(0)?, r.get(1)?)))?;
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
        access: McpAccess::Only(grants),
        ..
    }) = key.as_mut()
    {
        *grants = access_grants(conn, *row_id)?;
    }
    if let Some(key) = key.as_mut() {
        key.org_rate_limit = org_default(conn, key.org_id)?;
    }
    Ok(key)
}

/// Resolves granted slugs to live MCP rows of the org (refusing unknown
/// ones), each with its tool list as stored (`NULL`: every tool).
fn resolve_access(
    tx: &Transaction<'_>,
    org_id: i64,
    access: &McpAccess,
) -> Result<Vec<(i64, Option<String>)>> {
    let McpAccess::Only(grants) = access else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::with_capacity(grants.len());
    for grant in grants {
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM mcps WHERE org_id = ?1 AND slug = ?2 AND deleted_at IS NULL",
                params![org_id, grant.slug],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => rows.push((id, tools_column(&grant.tools))),
            None => {
                let org: String =
                    tx.query_row("SELECT slug FROM orgs WHERE id = ?1", [org_id], |r| {
                        r.get(0)
                    })?;
                return Err(StoreError::UnknownMcp {
                    slug: grant.slug.clone(),
                    org,
                });
            }
        }
    }
    rows.sort_unstable_by_key(|(id, _)| *id);
    rows.dedup_by_key(|(id, _)| *id);
    Ok(rows)
}

fn write_access(
    tx: &Transaction<'_>,
    key_row: i64,
    mcp_rows: &[(i64, Option<String>)],
) -> Result<()> {
    tx.execute("DELETE FROM key_mcp_access WHERE key_id = ?1", [key_row])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO key_mcp_access (key_id, mcp_id, tools_json) VALUES (?1, ?2, ?3)",
    )?;
    for (mcp, tools) in mcp_rows {
        insert.execute(params![key_row, mcp, tools])?;
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
        &format!(
            "SELECT count(*) FROM api_keys WHERE org_id = ?1 AND {}",
            still_active("api_keys", "?2")
        ),
        params![org_id, secs(now)],
        |r| r.get(0),
    )?;
    if active >= limit {
        return Err(StoreError::LimitReached {
            plan,
            limit,
            active,
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
    let (rate_requests, rate_period, rate_burst) = limit_columns(new.rate_limit);
    tx.execute(
        "INSERT INTO api_keys (org_id, lookup_id, name, description, secret_hash, all_mcps, created_at, created_by, expires_at, rotated_from,
             rate_requests, rate_period_secs, rate_burst)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
            rotated_from,
            rate_requests,
            rate_period,
            rate_burst
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

/// Refuses to change a key that is revoked now (it may have been revoked
/// by another process since the caller read it).
fn ensure_not_revoked(tx: &Transaction<'_>, key: &KeyRecord) -> Result<()> {
    let revoked: Option<i64> = tx.query_row(
        "SELECT revoked_at FROM api_keys WHERE id = ?1",
        [key.row_id],
        |r| r.get(0),
    )?;
    match revoked {
        Some(_) => Err(StoreError::Revoked(key.prefix())),
        None => Ok(()),
    }
}

impl Store {
    /// Every key of the org, newest first, revoked ones included.
    pub fn list_keys(&self, org_id: i64) -> Result<Vec<KeyRecord>> {
        // A backward scan of the table (`+` keeps SQLite off the org index)
        // is much faster for 100,000 keys than an index walk with a row
        // lookup per key. Keys are stored in creation order, so this order
        // is almost always the final one and the sort only confirms it.
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE +k.org_id = ?1 ORDER BY k.id DESC"
        ))?;
        let rows = stmt.query_map([org_id], key_from_row)?;
        let mut keys = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        // Newest first, ties by id: `ORDER BY created_at DESC, id DESC`.
        keys.sort_by_key(|k| std::cmp::Reverse((k.created_at, k.row_id)));
        self.fill_access(&mut keys)?;
        let org_limit = org_default(&self.conn, org_id)?;
        for key in &mut keys {
            key.org_rate_limit = org_limit;
        }
        Ok(keys)
    }

    /// Fills in, sorted by slug, the live MCPs (with their tools) each key
    /// with specific access may use. One pass over the access table and a map of live
    /// MCPs replace a three-way join and a sort in SQLite.
    fn fill_access(&self, keys: &mut [KeyRecord]) -> Result<()> {
        let position: HashMap<i64, usize> = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| matches!(k.access, McpAccess::Only(_)))
            .map(|(i, k)| (k.row_id, i))
            .collect();
        if position.is_empty() {
            return Ok(());
        }
        let live: HashMap<i64, String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, slug FROM mcps WHERE deleted_at IS NULL")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut stmt = self
            .conn
            .prepare("SELECT key_id, mcp_id, tools_json FROM key_mcp_access")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (key_row, mcp_row): (i64, i64) = (row.get(0)?, row.get(1)?);
            if let (Some(&i), Some(slug)) = (position.get(&key_row), live.get(&mcp_row))
                && let McpAccess::Only(grants) = &mut keys[i].access
            {
                grants.push(grant_from(slug.clone(), row.get(2)?));
            }
        }
        for key in keys {
            if let McpAccess::Only(grants) = &mut key.access {
                grants.sort_unstable_by(|a, b| a.slug.cmp(&b.slug));
            }
        }
        Ok(())
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
        let mut detail = format!("access: {}", new.access.describe());
        if let Some(limit) = new.rate_limit {
            detail.push_str(&format!("; rate limit: {limit}"));
        }
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

    /// Stores the replacement for `old` and hands `old` over as asked, in
    /// the same transaction (so the plan limit sees one key swapped for
    /// another when the old one is revoked): revoked now, kept until
    /// revoked, or kept for a grace period and/or until unused for a while.
    /// Returns the new key and the old one as it is now.
    pub fn rotate_key(
        &mut self,
        old: &KeyRecord,
        new: &NewKey<'_>,
        handover: &Handover,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(KeyRecord, KeyRecord)> {
        let tx = self.write_tx()?;
        ensure_not_revoked(&tx, old)?;
        handover::ensure_not_replaced(&tx, old)?;
        let new_prefix = format!("{}{}", crate::keys::KEY_PREFIX, new.lookup_id);
        if *handover == Handover::RevokeNow {
            revoke_in(
                &tx,
                old,
                actor,
                now,
                Some(&format!("rotated to {new_prefix}")),
            )?;
        }
        let row = insert_key(&tx, new, Some(old.row_id), actor, now)?;
        let mut created = format!(
            "rotated from {}; access: {}",
            old.prefix(),
            new.access.describe()
        );
        if let Some(limit) = new.rate_limit {
            created.push_str(&format!("; rate limit: {limit}"));
        }
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
        let mut rotated = format!("replaced by {new_prefix}");
        for change in handover::hand_over(&tx, old, row, handover, now)? {
            rotated.push_str("; ");
            rotated.push_str(&change);
        }
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
        Ok((self.key_by_row(row)?, self.key_by_row(old.row_id)?))
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
        ensure_not_revoked(&tx, key)?;
        // The values before the edit, read under the write lock: the audit
        // trail records old -> new as stored, not as the caller last saw them.
        let before = load_key(&tx, "k.id = ?1", [key.row_id])?
            .ok_or_else(|| StoreError::NotFound(format!("key {} is gone", key.prefix())))?;
        let mut changes = Vec::new();
        if let Some(name) = &edit.name {
            tx.execute(
                "UPDATE api_keys SET name = ?1 WHERE id = ?2",
                params![name, key.row_id],
            )?;
            changes.push(format!("name: {:?} -> {name:?}", before.name));
        }
        if let Some(description) = &edit.description {
            tx.execute(
                "UPDATE api_keys SET description = ?1 WHERE id = ?2",
                params![description, key.row_id],
            )?;
            let shown = |d: &Option<String>| {
                d.as_ref()
                    .map_or_else(|| "none".to_owned(), |d| format!("{d:?}"))
            };
            changes.push(format!(
                "description: {} -> {}",
                shown(&before.description),
                shown(description)
            ));
        }
        if let Some(access) = &edit.access {
            let rows = resolve_access(&tx, key.org_id, access)?;
            tx.execute(
                "UPDATE api_keys SET all_mcps = ?1 WHERE id = ?2",
                params![matches!(access, McpAccess::All), key.row_id],
            )?;
            write_access(&tx, key.row_id, &rows)?;
            changes.push(format!(
                "access: {} -> {}",
                before.access.describe(),
                access.describe()
            ));
        }
        if let Some(limit) = edit.rate_limit {
            let (requests, period, burst) = limit_columns(limit);
            tx.execute(
                "UPDATE api_keys SET rate_requests = ?1, rate_period_secs = ?2, rate_burst = ?3 WHERE id = ?4",
                params![requests, period, burst, key.row_id],
            )?;
            changes.push(format!(
                "rate limit: {} -> {}",
                describe(before.rate_limit),
                describe(limit)
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_columns_are_where_key_from_row_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let stmt = store
            .conn
            .prepare(&format!("SELECT {KEY_COLUMNS} FROM api_keys k"))
            .unwrap();
        assert_eq!(
            stmt.column_names(),
            [
                "id",
                "org_id",
                "lookup_id",
                "name",
                "description",
                "all_mcps",
                "created_at",
                "created_by",
                "expires_at",
                "revoked_at",
                "revoked_by",
                "last_used_at",
                "request_count",
                "rotated_from",
                "rate_requests",
                "rate_period_secs",
                "rate_burst",
                "replaced_by",
                "replaced_at",
                "idle_limit_secs",
                "last_accepted_at"
            ]
        );
    }

    /// `list_keys` as first written (ORDER BY and a join in SQL), kept as
    /// the reference the faster version must match exactly.
    fn list_keys_reference(store: &Store, org_id: i64) -> Vec<KeyRecord> {
        let mut access: HashMap<i64, Vec<String>> = HashMap::new();
        let mut stmt = store
            .conn
            .prepare(
                "SELECT a.key_id, m.slug FROM key_mcp_access a
                 JOIN mcps m ON m.id = a.mcp_id
                 JOIN api_keys k ON k.id = a.key_id
                 WHERE k.org_id = ?1 AND m.deleted_at IS NULL ORDER BY m.slug",
            )
            .unwrap();
        let mut rows = stmt.query([org_id]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            access
                .entry(row.get(0).unwrap())
                .or_default()
                .push(row.get(1).unwrap());
        }
        let mut stmt = store
            .conn
            .prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.org_id = ?1 ORDER BY k.created_at DESC, k.id DESC"
            ))
            .unwrap();
        let mut keys: Vec<KeyRecord> = stmt
            .query_map([org_id], key_from_row)
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for key in &mut keys {
            if let McpAccess::Only(slugs) = &mut key.access {
                *slugs = access
                    .remove(&key.row_id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(McpGrant::all_tools)
                    .collect();
            }
        }
        keys
    }

    #[test]
    fn list_keys_matches_the_reference_query() {
        use crate::domain::{McpTransport, Plan};
        use crate::store::NewMcp;
        use chrono::{TimeZone, Utc};

        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let actor = Actor {
            user: "t".into(),
            addr: None,
        };
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let other = store.create_org("other", &actor, t0).unwrap().row_id;
        for org in [1, other] {
            store.set_plan(org, Plan::Enterprise, &actor, t0).unwrap();
            for slug in ["zeta", "alpha", "mid", "gone"] {
                let new = NewMcp {
                    slug: slug.into(),
                    name: slug.into(),
                    transport: McpTransport::Stdio {
                        command: "true".into(),
                        args: Vec::new(),
                        env: Vec::new(),
                        inherit_env: Vec::new(),
                    },
                    timeout: std::time::Duration::from_secs(5),
                    pinned: false,
                };
                store.add_mcp(org, &new, &actor, t0).unwrap();
            }
        }
        let only = |slugs: &[&str]| McpAccess::only_mcps(slugs.iter().copied());
        let accesses = [
            McpAccess::All,
            only(&["zeta", "alpha", "mid"]),
            only(&["gone"]),
            only(&["mid", "gone", "alpha"]),
            only(&["zeta"]),
        ];
        let mut n = 0;
        let mut made = Vec::new();
        for org in [1, other, 1] {
            for (i, access) in accesses.iter().enumerate() {
                n += 1;
                let lookup = format!("K{n:07}");
                // Several keys share a second, so the id must break ties;
                // one is created "earlier" after later ones (clock skew).
                let at = t0 + chrono::TimeDelta::seconds([5, 5, 3, 9, 5][i]);
                let new = NewKey {
                    org_id: org,
                    lookup_id: &lookup,
                    name: "k",
                    description: None,
                    secret_hash: "x",
                    access,
                    expires_at: None,
                    rate_limit: None,
                };
                made.push(store.create_key(&new, &actor, at).unwrap());
            }
        }
        let later = t0 + chrono::TimeDelta::seconds(60);
        store
            .rotate_key(
                &made[1],
                &NewKey {
                    org_id: 1,
                    lookup_id: "ROTATED1",
                    name: "k",
                    description: None,
                    secret_hash: "x",
                    access: &only(&["mid", "zeta"]),
                    expires_at: None,
                    rate_limit: None,
                },
                &Handover::RevokeNow,
                &actor,
                later,
            )
            .unwrap();
        store.remove_mcp(1, "gone", &actor, later).unwrap();

        for org in [1, other] {
            let listed = store.list_keys(org).unwrap();
            assert_eq!(listed, list_keys_reference(&store, org));
            assert!(listed.len() >= 5);
        }
        let rotated = store.list_keys(1).unwrap().remove(0);
        assert_eq!(rotated.rotated_from.as_deref(), Some(made[1].id.as_str()));
        assert_eq!(rotated.access, only(&["mid", "zeta"]));
    }
}
