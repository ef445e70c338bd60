//! Organizations and their plans.

use rusqlite::{OptionalExtension, Row, params};

use super::handover::still_active;
use super::rate_limits::limit_from;
use super::{Result, Store, StoreError, audit, is_unique_violation, secs, ts};
use crate::domain::{Actor, Org, Plan, Timestamp};

/// An organization with the counts `org show` and `org list` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSummary {
    pub org: Org,
    pub active_keys: u32,
    pub total_keys: u32,
    pub mcps: u32,
}

/// Keys that count against the plan at `?2`: neither revoked nor expired.
fn active_keys_sql() -> String {
    format!(
        "SELECT count(*) FROM api_keys k WHERE k.org_id = ?1 AND {}",
        still_active("k", "?2")
    )
}

fn org_from_row(row: &Row<'_>) -> rusqlite::Result<Org> {
    let plan: String = row.get("plan")?;
    Ok(Org {
        row_id: row.get("id")?,
        slug: row.get("slug")?,
        name: row.get("name")?,
        // The CHECK constraint keeps this to known plans.
        plan: plan.parse().unwrap_or(Plan::Free),
        created_at: ts(row.get("created_at")?),
        rate_limit: limit_from(
            row.get("rate_requests")?,
            row.get("rate_period_secs")?,
            row.get("rate_burst")?,
        ),
    })
}

impl Store {
    pub fn org_by_slug(&self, slug: &str) -> Result<Option<Org>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, slug, name, plan, created_at, rate_requests, rate_period_secs, rate_burst
                 FROM orgs WHERE slug = ?1",
                [slug],
                org_from_row,
            )
            .optional()?)
    }

    /// The org, or a one-line error naming what to do.
    pub fn org(&self, slug: &str) -> Result<Org> {
        self.org_by_slug(slug)?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "no organization '{slug}' (see `plexmcp org list`, or create it with `plexmcp org create {slug}`)"
            ))
        })
    }

    pub fn list_orgs(&self, now: Timestamp) -> Result<Vec<OrgSummary>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT o.id, o.slug, o.name, o.plan, o.created_at,
                o.rate_requests, o.rate_period_secs, o.rate_burst,
                (SELECT count(*) FROM api_keys k WHERE k.org_id = o.id
                    AND {}) AS active_keys,
                (SELECT count(*) FROM api_keys k WHERE k.org_id = o.id) AS total_keys,
                (SELECT count(*) FROM mcps m WHERE m.org_id = o.id AND m.deleted_at IS NULL) AS mcps
             FROM orgs o ORDER BY o.slug",
            still_active("k", "?1")
        ))?;
        let rows = stmt.query_map([secs(now)], |row| {
            Ok(OrgSummary {
                org: org_from_row(row)?,
                active_keys: row.get("active_keys")?,
                total_keys: row.get("total_keys")?,
                mcps: row.get("mcps")?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn org_summary(&self, slug: &str, now: Timestamp) -> Result<OrgSummary> {
        let org = self.org(slug)?;
        self.list_orgs(now)?
            .into_iter()
            .find(|s| s.org.row_id == org.row_id)
            .ok_or_else(|| StoreError::NotFound(format!("no organization '{slug}'")))
    }

    /// Keys that count against the plan: neither revoked nor expired.
    pub fn active_key_count(&self, org_id: i64, now: Timestamp) -> Result<u32> {
        Ok(self
            .conn
            .query_row(&active_keys_sql(), params![org_id, secs(now)], |r| r.get(0))?)
    }

    /// A new org starts on the free plan.
    pub fn create_org(&mut self, slug: &str, actor: &Actor, now: Timestamp) -> Result<Org> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO orgs (slug, name, plan, created_at) VALUES (?1, ?1, 'free', ?2)",
            params![slug, secs(now)],
        )
        .map_err(|e| {
            if is_unique_violation(&e, "orgs.slug") {
                StoreError::Conflict(format!("organization '{slug}' already exists"))
            } else {
                e.into()
            }
        })?;
        let org_id = tx.last_insert_rowid();
        audit(&tx, org_id, now, actor, "org.created", "org", slug, None)?;
        tx.commit()?;
        self.org(slug)
    }

    /// Changes the plan; returns the plan it had before and the active keys
    /// counted in the same transaction, so a warning about keys over the
    /// new limit describes the moment of the change, not a later one.
    pub fn set_plan(
        &mut self,
        org_id: i64,
        plan: Plan,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<(Plan, u32)> {
        let tx = self.write_tx()?;
        let (slug, old): (String, String) =
            tx.query_row("SELECT slug, plan FROM orgs WHERE id = ?1", [org_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let old: Plan = old.parse().unwrap_or(Plan::Free);
        let active: u32 =
            tx.query_row(&active_keys_sql(), params![org_id, secs(now)], |r| r.get(0))?;
        if old != plan {
            tx.execute(
                "UPDATE orgs SET plan = ?1 WHERE id = ?2",
                params![plan.as_str(), org_id],
            )?;
            let keys = if active == 1 { "key" } else { "keys" };
            let detail = format!("{old} -> {plan} ({active} active {keys})");
            audit(
                &tx,
                org_id,
                now,
                actor,
                "org.plan_changed",
                "org",
                &slug,
                Some(&detail),
            )?;
        }
        tx.commit()?;
        Ok((old, active))
    }
}
