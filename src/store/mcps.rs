//! Upstream MCP servers registered in an org. Removal is a soft delete so
//! old usage and audit records still name the MCP.

use std::time::Duration;

use rusqlite::{OptionalExtension, Row, params};

use super::{Result, Store, StoreError, audit, is_unique_violation, secs, ts};
use crate::domain::{Actor, Mcp, McpTransport, Timestamp};

/// An MCP about to be registered, already validated by `rules`.
#[derive(Debug, Clone)]
pub struct NewMcp {
    pub slug: String,
    pub name: String,
    pub transport: McpTransport,
    pub timeout: Duration,
    /// Withhold new or changed tools until approved (`tool_pins`).
    pub pinned: bool,
}

const MCP_COLUMNS: &str = "id, org_id, slug, name, transport, command, args_json, env_json, inherit_env_json, url, headers_json, timeout_ms, created_at";

/// A stored MCP column that cannot be read back. Failing loudly matters:
/// an MCP silently read without its headers would reach its upstream
/// without the `Authorization` the operator configured.
#[derive(Debug, thiserror::Error)]
#[error(
    "MCP '{slug}' has an unreadable {column} in the database ({why}); remove it and add it again"
)]
struct Unreadable {
    slug: String,
    column: &'static str,
    why: String,
}

/// Decodes a JSON column of the row, or fails naming the MCP and column.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    column: &'static str,
) -> rusqlite::Result<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| {
        let slug = row.get::<_, String>("slug").unwrap_or_default();
        let index = row.as_ref().column_index(column).unwrap_or(usize::MAX);
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(Unreadable {
                slug,
                column,
                why: e.to_string(),
            }),
        )
    })
}

fn mcp_from_row(row: &Row<'_>) -> rusqlite::Result<Mcp> {
    let kind: String = row.get("transport")?;
    let transport = if kind == "http" {
        McpTransport::Http {
            url: row.get::<_, Option<String>>("url")?.unwrap_or_default(),
            headers: json_column(row, "headers_json")?,
        }
    } else {
        McpTransport::Stdio {
            command: row.get::<_, Option<String>>("command")?.unwrap_or_default(),
            args: json_column(row, "args_json")?,
            env: json_column(row, "env_json")?,
            inherit_env: json_column(row, "inherit_env_json")?,
        }
    };
    let timeout_ms: i64 = row.get("timeout_ms")?;
    let timeout_ms = u64::try_from(timeout_ms).map_err(|_| {
        let index = row
            .as_ref()
            .column_index("timeout_ms")
            .unwrap_or(usize::MAX);
        rusqlite::Error::IntegralValueOutOfRange(index, timeout_ms)
    })?;
    Ok(Mcp {
        row_id: row.get("id")?,
        org_id: row.get("org_id")?,
        slug: row.get("slug")?,
        name: row.get("name")?,
        transport,
        timeout: Duration::from_millis(timeout_ms),
        created_at: ts(row.get("created_at")?),
    })
}

impl Store {
    /// Live (not removed) MCPs of an org, by slug.
    pub fn list_mcps(&self, org_id: i64) -> Result<Vec<Mcp>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {MCP_COLUMNS} FROM mcps WHERE org_id = ?1 AND deleted_at IS NULL ORDER BY slug"
        ))?;
        let rows = stmt.query_map([org_id], mcp_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A live MCP by slug; `None` for unknown or removed ones.
    pub fn mcp_by_slug(&self, org_id: i64, slug: &str) -> Result<Option<Mcp>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {MCP_COLUMNS} FROM mcps WHERE org_id = ?1 AND slug = ?2 AND deleted_at IS NULL"
                ),
                params![org_id, slug],
                mcp_from_row,
            )
            .optional()?)
    }

    pub fn add_mcp(
        &mut self,
        org_id: i64,
        new: &NewMcp,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Mcp> {
        let to_json = |pairs: &Vec<(String, String)>| {
            serde_json::to_string(pairs).unwrap_or_else(|_| "[]".into())
        };
        let (command, args, env, inherit_env, url, headers) = match &new.transport {
            McpTransport::Stdio {
                command,
                args,
                env,
                inherit_env,
            } => (
                Some(command.as_str()),
                serde_json::to_string(args).unwrap_or_else(|_| "[]".into()),
                to_json(env),
                serde_json::to_string(inherit_env).unwrap_or_else(|_| "[]".into()),
                None,
                "[]".to_string(),
            ),
            McpTransport::Http { url, headers } => (
                None,
                "[]".to_string(),
                "[]".to_string(),
                "[]".to_string(),
                Some(url.as_str()),
                to_json(headers),
            ),
        };
        let timeout_ms = i64::try_from(new.timeout.as_millis()).unwrap_or(i64::MAX);
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO mcps (org_id, slug, name, transport, command, args_json, env_json, inherit_env_json, url, headers_json, timeout_ms, created_at, pinned)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                org_id,
                new.slug,
                new.name,
                new.transport.kind(),
                command,
                args,
                env,
                inherit_env,
                url,
                headers,
                timeout_ms,
                secs(now),
                i64::from(new.pinned)
            ],
        )
        .map_err(|e| {
            if is_unique_violation(&e, "mcps") {
                StoreError::Conflict(format!(
                    "an MCP with id '{}' already exists in this organization",
                    new.slug
                ))
            } else {
                e.into()
            }
        })?;
        let mut detail = format!("{} {}", new.transport.kind(), new.transport.target());
        if new.pinned {
            detail.push_str(", pinned");
        }
        audit(
            &tx,
            org_id,
            now,
            actor,
            "mcp.added",
            "mcp",
            &new.slug,
            Some(&detail),
        )?;
        tx.commit()?;
        self.mcp_by_slug(org_id, &new.slug)?.ok_or_else(|| {
            StoreError::NotFound(format!("MCP '{}' vanished after adding it", new.slug))
        })
    }

    /// Soft-deletes an MCP: keys lose access to it at once.
    pub fn remove_mcp(
        &mut self,
        org_id: i64,
        slug: &str,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        let changed = tx.execute(
            "UPDATE mcps SET deleted_at = ?1 WHERE org_id = ?2 AND slug = ?3 AND deleted_at IS NULL",
            params![secs(now), org_id, slug],
        )?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!(
                "no MCP '{slug}' in this organization (see `plexmcp mcps list`)"
            )));
        }
        audit(&tx, org_id, now, actor, "mcp.removed", "mcp", slug, None)?;
        tx.commit()?;
        Ok(())
    }
}

impl Store {
    /// `(row id, slug)` of every live MCP in every org: the upstreams the
    /// server may still need connections to.
    pub fn live_mcp_ids(&self) -> Result<Vec<(i64, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, slug FROM mcps WHERE deleted_at IS NULL ORDER BY id")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rusqlite::Connection;

    use crate::domain::{Actor, McpTransport};
    use crate::store::Store;

    #[test]
    fn a_database_from_before_inherit_env_upgrades_and_keeps_its_mcps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plexmcp.db");
        drop(Store::open(&path).unwrap());
        // Turn it back into schema version 1, with an MCP as version 1 wrote it.
        let conn = Connection::open(&path).unwrap();
        // Newest first: each down migration undoes the one above it.
        for down in [
            include_str!("../../assets/migrations/0007_rotation_handover.down.sql"),
            include_str!("../../assets/migrations/0006_tool_pins.down.sql"),
            include_str!("../../assets/migrations/0005_tool_access.down.sql"),
            include_str!("../../assets/migrations/0004_rate_limits.down.sql"),
        ] {
            conn.execute_batch(down).unwrap();
        }
        conn.execute_batch(
            "ALTER TABLE mcps DROP COLUMN inherit_env_json;
             ALTER TABLE audit_events DROP COLUMN hash;
             ALTER TABLE audit_events DROP COLUMN prev_hash;
             INSERT INTO mcps (org_id, slug, name, transport, command, args_json, env_json, created_at)
             VALUES (1, 'old', 'old', 'stdio', 'old-mcp', '[\"--x\"]', '[[\"K\",\"v\"]]', 0);
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(conn);

        let mut store = Store::open(&path).unwrap();
        let org = store.org("default").unwrap();
        let old = store.mcp_by_slug(org.row_id, "old").unwrap().unwrap();
        assert_eq!(
            old.transport,
            McpTransport::Stdio {
                command: "old-mcp".into(),
                args: vec!["--x".into()],
                env: vec![("K".into(), "v".into())],
                inherit_env: Vec::new(),
            }
        );
        // And the new column is written and read back.
        let actor = Actor {
            user: "t".into(),
            addr: None,
        };
        let new = super::NewMcp {
            slug: "new".into(),
            name: "new".into(),
            transport: McpTransport::Stdio {
                command: "new-mcp".into(),
                args: Vec::new(),
                env: Vec::new(),
                inherit_env: vec!["HTTPS_PROXY".into()],
            },
            timeout: std::time::Duration::from_secs(5),
            pinned: false,
        };
        let added = store.add_mcp(org.row_id, &new, &actor, Utc::now()).unwrap();
        assert_eq!(added.transport, new.transport);
    }
}
