//! Tool fingerprints and their approvals (migration 0006): one row per
//! tool an MCP's upstream has listed, with the fingerprint seen last and
//! the one the operator approved. The gateway hands what it sees to one
//! writer (`record_tool_observations`), only when something changed; the
//! operator pins, unpins and approves here. Rows per MCP are capped, so an
//! upstream that invents tool names cannot fill the disk.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Result, Store, StoreError, audit, opt_ts, secs, ts};
use crate::domain::{Actor, Timestamp};

/// Most tool rows kept per MCP: as many as one listing may hold. A new
/// tool beyond it first pushes out the longest-removed one; with none
/// removed it is not recorded (and stays withheld on a pinned MCP).
pub const MAX_TOOLS_PER_MCP: usize = 10_000;

/// A tool as an upstream listed it, fingerprinted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenTool {
    pub name: String,
    /// Hex SHA-256 of `canonical`.
    pub hash: String,
    /// Canonical JSON of the tool's name, description and input schema.
    pub canonical: String,
}

/// What one listing of an MCP showed that the process had not seen yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolObservation {
    pub mcp_row: i64,
    /// Tools that are new, changed, or back after being removed.
    pub changed: Vec<SeenTool>,
    /// Tools a complete listing no longer has.
    pub removed: Vec<String>,
}

/// One tool's fingerprints, as the gateway's decisions need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedTool {
    pub seen: String,
    pub approved: Option<String>,
    pub removed: bool,
}

/// What decides an MCP's withholding: whether it is pinned, and its tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpPins {
    pub pinned: bool,
    pub tools: HashMap<String, PinnedTool>,
}

/// Where a tool stands against its approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolState {
    Approved,
    /// Listed, never approved.
    New,
    /// Listed with a fingerprint other than the approved one.
    Changed,
    /// No longer listed by the upstream.
    Removed,
}

impl ToolState {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolState::Approved => "approved",
            ToolState::New => "new",
            ToolState::Changed => "changed",
            ToolState::Removed => "removed",
        }
    }

    /// Whether an approval would change anything.
    pub fn is_pending(self) -> bool {
        matches!(self, ToolState::New | ToolState::Changed)
    }
}

/// One tool of an MCP, for `mcps tools` and the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRecord {
    pub name: String,
    pub state: ToolState,
    pub seen_hash: String,
    /// Canonical JSON as seen last.
    pub seen_tool: String,
    pub approved_hash: Option<String>,
    /// Canonical JSON as approved, for the diff.
    pub approved_tool: Option<String>,
    pub first_seen_at: Timestamp,
    pub changed_at: Timestamp,
    pub removed_at: Option<Timestamp>,
}

/// An MCP's pinning at a glance, for the MCP lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinSummary {
    pub pinned: bool,
    /// Tools listed now (not removed).
    pub tools: usize,
    /// New or changed tools awaiting approval (withheld if pinned).
    pub pending: usize,
    /// When any of its tools last changed, appeared or went.
    pub last_changed: Option<Timestamp>,
}

fn state_of(seen: &str, approved: Option<&str>, removed: bool) -> ToolState {
    match (removed, approved) {
        (true, _) => ToolState::Removed,
        (false, None) => ToolState::New,
        (false, Some(approved)) if approved == seen => ToolState::Approved,
        (false, Some(_)) => ToolState::Changed,
    }
}

/// A fingerprint as the audit trail shows it: short, still distinctive.
fn short(hash: Option<&str>) -> String {
    hash.map_or_else(|| "none".to_owned(), |h| h.chars().take(12).collect())
}

/// The actor of approvals the gateway makes by itself (first use).
fn gateway_actor() -> Actor {
    Actor {
        user: "plexmcp".to_owned(),
        addr: None,
    }
}

/// The live MCP `slug` of an org: `(row id, pinned)`.
fn live_mcp(tx: &rusqlite::Connection, org_id: i64, slug: &str) -> Result<(i64, bool)> {
    tx.query_row(
        "SELECT id, pinned FROM mcps WHERE org_id = ?1 AND slug = ?2 AND deleted_at IS NULL",
        params![org_id, slug],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? == 1)),
    )
    .optional()?
    .ok_or_else(|| {
        StoreError::NotFound(format!(
            "no MCP '{slug}' in this organization (see `plexmcp mcps list`)"
        ))
    })
}

/// A tool that became pending on a pinned MCP: `(MCP id, tool, state)`.
pub type NewlyWithheld = (String, String, ToolState);

impl Store {
    /// Records what listings showed, in one transaction: changed tools
    /// are upserted (approved at once on unpinned MCPs, and on a pinned MCP
    /// that had no tools yet: trust on first use, audited), removed ones
    /// marked. Returns the tools this made pending on pinned MCPs.
    pub fn record_tool_observations(
        &mut self,
        batch: &[ToolObservation],
        now: Timestamp,
    ) -> Result<Vec<NewlyWithheld>> {
        let tx = self.write_tx()?;
        let mut withheld = Vec::new();
        for observation in batch {
            record_one(&tx, observation, now, &mut withheld)?;
        }
        tx.commit()?;
        Ok(withheld)
    }

    /// The pinning of MCP row `mcp_row` (removed or unknown: unpinned, no tools).
    pub fn mcp_pins(&self, mcp_row: i64) -> Result<McpPins> {
        let pinned = self
            .conn
            .prepare_cached("SELECT pinned FROM mcps WHERE id = ?1 AND deleted_at IS NULL")?
            .query_row([mcp_row], |r| r.get::<_, i64>(0))
            .optional()?
            == Some(1);
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, seen_hash, approved_hash, removed_at IS NOT NULL FROM mcp_tools WHERE mcp_id = ?1",
        )?;
        let rows = stmt.query_map([mcp_row], |r| {
            Ok((
                r.get::<_, String>(0)?,
                PinnedTool {
                    seen: r.get(1)?,
                    approved: r.get(2)?,
                    removed: r.get(3)?,
                },
            ))
        })?;
        Ok(McpPins {
            pinned,
            tools: rows.collect::<rusqlite::Result<_>>()?,
        })
    }

    /// Every recorded tool of the live MCP `slug`, by name.
    pub fn mcp_tools(&self, org_id: i64, slug: &str) -> Result<Vec<ToolRecord>> {
        let (mcp_row, _) = live_mcp(&self.conn, org_id, slug)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, seen_hash, seen_tool, approved_hash, approved_tool, first_seen_at, changed_at, removed_at
             FROM mcp_tools WHERE mcp_id = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([mcp_row], |r| {
            let seen_hash: String = r.get(1)?;
            let approved_hash: Option<String> = r.get(3)?;
            let removed_at = opt_ts(r.get(7)?);
            Ok(ToolRecord {
                name: r.get(0)?,
                state: state_of(&seen_hash, approved_hash.as_deref(), removed_at.is_some()),
                seen_hash,
                seen_tool: r.get(2)?,
                approved_hash,
                approved_tool: r.get(4)?,
                first_seen_at: ts(r.get(5)?),
                changed_at: ts(r.get(6)?),
                removed_at,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Pinning at a glance for every live MCP of an org, by MCP id.
    pub fn mcp_pin_summaries(&self, org_id: i64) -> Result<HashMap<String, PinSummary>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.slug, m.pinned,
                count(t.name) FILTER (WHERE t.removed_at IS NULL),
                count(t.name) FILTER (WHERE t.removed_at IS NULL AND t.approved_hash IS NOT t.seen_hash),
                max(t.changed_at)
             FROM mcps m LEFT JOIN mcp_tools t ON t.mcp_id = m.id
             WHERE m.org_id = ?1 AND m.deleted_at IS NULL GROUP BY m.id",
        )?;
        let rows = stmt.query_map([org_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                PinSummary {
                    pinned: r.get::<_, i64>(1)? == 1,
                    tools: usize::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    pending: usize::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    last_changed: opt_ts(r.get(4)?),
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Pins or unpins the live MCP `slug`; returns whether that changed
    /// anything. Either way the tools it lists now become approved:
    /// pinning freezes what the operator has been using (an unpinned MCP's
    /// tools were all approved as they came), and an unpinned MCP withholds
    /// nothing, so nothing of it may stay pending.
    pub fn set_mcp_pinned(
        &mut self,
        org_id: i64,
        slug: &str,
        pinned: bool,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<bool> {
        let tx = self.write_tx()?;
        let (mcp_row, was) = live_mcp(&tx, org_id, slug)?;
        if was == pinned {
            return Ok(false);
        }
        tx.execute(
            "UPDATE mcps SET pinned = ?1 WHERE id = ?2",
            params![i64::from(pinned), mcp_row],
        )?;
        let approved = approve_pending(&tx, mcp_row, None)?;
        let listed: i64 = tx.query_row(
            "SELECT count(*) FROM mcp_tools WHERE mcp_id = ?1 AND removed_at IS NULL",
            [mcp_row],
            |r| r.get(0),
        )?;
        let (action, detail) = if pinned {
            let detail = match listed {
                0 => "no tools seen yet: the first listing will be trusted".to_owned(),
                n => format!("{n} tools pinned as listed"),
            };
            ("mcp.pinned", detail)
        } else {
            let detail = format!(
                "unpinned: tools are no longer withheld ({} pending approved)",
                approved.len()
            );
            ("mcp.unpinned", detail)
        };
        audit(&tx, org_id, now, actor, action, "mcp", slug, Some(&detail))?;
        tx.commit()?;
        Ok(true)
    }

    /// Approves what the upstream of `slug` lists now for `tool`, or for
    /// every pending tool; each approval is audited with the fingerprints
    /// it moves between. Returns the tools approved (none: nothing was
    /// pending).
    pub fn approve_mcp_tools(
        &mut self,
        org_id: i64,
        slug: &str,
        tool: Option<&str>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        let tx = self.write_tx()?;
        let (mcp_row, _) = live_mcp(&tx, org_id, slug)?;
        if let Some(tool) = tool {
            let removed: Option<bool> = tx
                .query_row(
                    "SELECT removed_at IS NOT NULL FROM mcp_tools WHERE mcp_id = ?1 AND name = ?2",
                    params![mcp_row, tool],
                    |r| r.get(0),
                )
                .optional()?;
            match removed {
                None => {
                    return Err(StoreError::NotFound(format!(
                        "MCP '{slug}' has no tool '{tool}' (see `plexmcp mcps tools {slug}`)"
                    )));
                }
                Some(true) => {
                    return Err(StoreError::Conflict(format!(
                        "tool '{tool}' of MCP '{slug}' is no longer listed by its upstream; there is nothing to approve"
                    )));
                }
                Some(false) => {}
            }
        }
        let approved = approve_pending(&tx, mcp_row, tool)?;
        for (name, old, new) in &approved {
            let kind = if old.is_some() { "changed" } else { "new" };
            let detail = format!(
                "tool '{name}' ({kind}): {} -> {}",
                short(old.as_deref()),
                short(Some(new))
            );
            audit(
                &tx,
                org_id,
                now,
                actor,
                "mcp.tool_approved",
                "mcp",
                slug,
                Some(&detail),
            )?;
        }
        tx.commit()?;
        Ok(approved.into_iter().map(|(name, _, _)| name).collect())
    }
}

/// Approves the pending (new or changed, still listed) tools of an MCP,
/// or only `tool`: `(name, old approved hash, new approved hash)` each.
fn approve_pending(
    tx: &Transaction<'_>,
    mcp_row: i64,
    tool: Option<&str>,
) -> Result<Vec<(String, Option<String>, String)>> {
    let pending: Vec<(String, Option<String>, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT name, approved_hash, seen_hash FROM mcp_tools
             WHERE mcp_id = ?1 AND removed_at IS NULL AND approved_hash IS NOT seen_hash
               AND (?2 IS NULL OR name = ?2) ORDER BY name",
        )?;
        let rows = stmt.query_map(params![mcp_row, tool], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if !pending.is_empty() {
        tx.execute(
            "UPDATE mcp_tools SET approved_hash = seen_hash, approved_tool = seen_tool
             WHERE mcp_id = ?1 AND removed_at IS NULL AND approved_hash IS NOT seen_hash
               AND (?2 IS NULL OR name = ?2)",
            params![mcp_row, tool],
        )?;
    }
    Ok(pending)
}

/// One observation's rows (see `record_tool_observations`).
fn record_one(
    tx: &Transaction<'_>,
    observation: &ToolObservation,
    now: Timestamp,
    withheld: &mut Vec<NewlyWithheld>,
) -> Result<()> {
    let mcp = tx
        .query_row(
            "SELECT org_id, slug, pinned FROM mcps WHERE id = ?1 AND deleted_at IS NULL",
            [observation.mcp_row],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)? == 1,
                ))
            },
        )
        .optional()?;
    // Removed meanwhile: nothing of it is worth keeping.
    let Some((org_id, slug, pinned)) = mcp else {
        return Ok(());
    };
    let mcp_row = observation.mcp_row;
    let mut rows: i64 = tx.query_row(
        "SELECT count(*) FROM mcp_tools WHERE mcp_id = ?1",
        [mcp_row],
        |r| r.get(0),
    )?;
    let first_use = pinned && rows == 0;
    let mut trusted = 0usize;
    let at = secs(now);
    for tool in &observation.changed {
        let existing: Option<(String, Option<String>, bool)> = tx
            .prepare_cached(
                "SELECT seen_hash, approved_hash, removed_at IS NOT NULL FROM mcp_tools WHERE mcp_id = ?1 AND name = ?2",
            )?
            .query_row(params![mcp_row, tool.name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        match existing {
            Some((seen, _, false)) if seen == tool.hash => {}
            Some((_, approved, _)) => {
                tx.prepare_cached(
                    "UPDATE mcp_tools SET seen_hash = ?3, seen_tool = ?4, changed_at = ?5, removed_at = NULL,
                         approved_hash = CASE WHEN ?6 THEN approved_hash ELSE ?3 END,
                         approved_tool = CASE WHEN ?6 THEN approved_tool ELSE ?4 END
                     WHERE mcp_id = ?1 AND name = ?2",
                )?
                .execute(params![mcp_row, tool.name, tool.hash, tool.canonical, at, pinned])?;
                if pinned && approved.as_deref() != Some(tool.hash.as_str()) {
                    let state = if approved.is_some() {
                        ToolState::Changed
                    } else {
                        ToolState::New
                    };
                    withheld.push((slug.clone(), tool.name.clone(), state));
                }
            }
            None => {
                if rows >= MAX_TOOLS_PER_MCP as i64 {
                    let evicted = tx.execute(
                        "DELETE FROM mcp_tools WHERE rowid = (SELECT rowid FROM mcp_tools
                         WHERE mcp_id = ?1 AND removed_at IS NOT NULL ORDER BY removed_at LIMIT 1)",
                        [mcp_row],
                    )?;
                    if evicted == 0 {
                        tracing::warn!(
                            mcp = %slug,
                            tool = %tool.name,
                            "MCP has {MAX_TOOLS_PER_MCP} recorded tools; this one is not recorded"
                        );
                        continue;
                    }
                    rows -= 1;
                }
                let approve = !pinned || first_use;
                tx.prepare_cached(
                    "INSERT INTO mcp_tools (mcp_id, name, seen_hash, seen_tool, approved_hash, approved_tool, first_seen_at, changed_at)
                     VALUES (?1, ?2, ?3, ?4, CASE WHEN ?5 THEN ?3 END, CASE WHEN ?5 THEN ?4 END, ?6, ?6)",
                )?
                .execute(params![mcp_row, tool.name, tool.hash, tool.canonical, approve, at])?;
                rows += 1;
                if first_use {
                    trusted += 1;
                } else if pinned {
                    withheld.push((slug.clone(), tool.name.clone(), ToolState::New));
                }
            }
        }
    }
    for name in &observation.removed {
        tx.prepare_cached(
            "UPDATE mcp_tools SET removed_at = ?3, changed_at = ?3
             WHERE mcp_id = ?1 AND name = ?2 AND removed_at IS NULL",
        )?
        .execute(params![mcp_row, name, at])?;
    }
    if trusted > 0 {
        let detail = format!("first use: {trusted} tools approved as listed");
        audit(
            tx,
            org_id,
            now,
            &gateway_actor(),
            "mcp.tools_approved",
            "mcp",
            &slug,
            Some(&detail),
        )?;
    }
    Ok(())
}
