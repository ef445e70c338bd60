//! Usage statistics for one key, as the console's detail pane shows them.
//! Counts come from the hourly roll-ups and the per-client table, so the
//! cost depends on a key's hours of activity, not on its raw event count;
//! only the "recent requests" list reads raw events, through an index.

use rusqlite::params;

use super::{Result, Store, ts};
use crate::domain::Timestamp;

pub const DAYS: usize = 30;
pub const HOURS: usize = 24;

/// Requests (and errors) for one MCP tool over the last 30 days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCount {
    pub mcp: String,
    pub tool: String,
    pub requests: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    pub ip: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub requests: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentRequest {
    pub at_ms: i64,
    pub mcp: Option<String>,
    pub tool: Option<String>,
    pub outcome: String,
    pub http_status: u16,
    pub latency_us: u64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The columns `RecentRequest::from_row` reads, in its order.
const REQUEST_COLUMNS: &str =
    "at_ms, mcp_slug, tool, outcome, http_status, latency_us, client_ip, user_agent";

impl RecentRequest {
    /// Reads `REQUEST_COLUMNS` starting at column `first`.
    pub(super) fn from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Self> {
        Ok(RecentRequest {
            at_ms: r.get(first)?,
            mcp: r.get(first + 1)?,
            tool: r.get(first + 2)?,
            outcome: r.get(first + 3)?,
            http_status: r.get(first + 4)?,
            latency_us: count(r.get(first + 5)?),
            client_ip: r.get(first + 6)?,
            user_agent: r.get(first + 7)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyUsage {
    pub total: u64,
    pub last_24h: u64,
    pub last_7d: u64,
    pub last_30d: u64,
    pub errors_30d: u64,
    /// Mean over the last 30 days; `None` without requests.
    pub avg_latency_us: Option<u64>,
    /// Requests per UTC day, oldest first; the last entry is today.
    pub per_day: Vec<u64>,
    /// Of those, the errors (status 400 or more), day by day.
    pub errors_per_day: Vec<u64>,
    /// Requests per hour, oldest first; the last entry is the current hour.
    pub per_hour: Vec<u64>,
    /// Busiest first.
    pub by_tool: Vec<ToolCount>,
    /// Most recently seen first.
    pub clients: Vec<ClientIp>,
    /// Newest first.
    pub recent: Vec<RecentRequest>,
}

impl KeyUsage {
    pub fn error_rate(&self) -> Option<f64> {
        (self.last_30d > 0).then(|| self.errors_30d as f64 / self.last_30d as f64)
    }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Store {
    /// Statistics for the key with row id `key_row` as of `now`.
    pub fn key_usage(&self, key_row: i64, now: Timestamp, recent: u32) -> Result<KeyUsage> {
        let now_s = now.timestamp();
        let this_hour = now_s - now_s.rem_euclid(3600);
        let today = now_s - now_s.rem_euclid(86_400);
        let first_day = today - (DAYS as i64 - 1) * 86_400;
        let first_hour = this_hour - (HOURS as i64 - 1) * 3600;
        let mut usage = KeyUsage {
            per_day: vec![0; DAYS],
            errors_per_day: vec![0; DAYS],
            per_hour: vec![0; HOURS],
            ..KeyUsage::default()
        };

        usage.total = count(self.conn.query_row(
            "SELECT request_count FROM api_keys WHERE id = ?1",
            [key_row],
            |r| r.get(0),
        )?);

        // One pass over the key's hourly rows of the last 30 days.
        let mut latency_sum: i64 = 0;
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT hour, sum(requests), sum(errors), sum(latency_us_sum) FROM usage_hourly
                 WHERE key_id = ?1 AND hour >= ?2 GROUP BY hour",
            )?;
            let mut rows = stmt.query(params![key_row, first_day.min(first_hour)])?;
            while let Some(row) = rows.next()? {
                let hour: i64 = row.get(0)?;
                let requests = count(row.get(1)?);
                let errors = count(row.get(2)?);
                latency_sum += row.get::<_, i64>(3)?;
                usage.last_30d += requests;
                usage.errors_30d += errors;
                if hour >= this_hour - 23 * 3600 {
                    usage.last_24h += requests;
                }
                if hour >= today - 6 * 86_400 {
                    usage.last_7d += requests;
                }
                let day = usize::try_from((hour - first_day).div_euclid(86_400)).ok();
                if let Some(slot) = day.and_then(|d| usage.per_day.get_mut(d)) {
                    *slot += requests;
                }
                if let Some(slot) = day.and_then(|d| usage.errors_per_day.get_mut(d)) {
                    *slot += errors;
                }
                let h = usize::try_from((hour - first_hour).div_euclid(3600)).ok();
                if let Some(slot) = h.and_then(|h| usage.per_hour.get_mut(h)) {
                    *slot += requests;
                }
            }
        }
        usage.avg_latency_us = (usage.last_30d > 0).then(|| count(latency_sum) / usage.last_30d);

        let mut stmt = self.conn.prepare_cached(
            "SELECT mcp_slug, tool, sum(requests) AS n, sum(errors) FROM usage_hourly
             WHERE key_id = ?1 AND hour >= ?2 GROUP BY mcp_slug, tool ORDER BY n DESC LIMIT 10",
        )?;
        usage.by_tool = stmt
            .query_map(params![key_row, first_day], |r| {
                Ok(ToolCount {
                    mcp: r.get(0)?,
                    tool: r.get(1)?,
                    requests: count(r.get(2)?),
                    errors: count(r.get(3)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;

        let mut stmt = self.conn.prepare_cached(
            "SELECT client_ip, first_seen, last_seen, requests FROM key_clients
             WHERE key_id = ?1 ORDER BY last_seen DESC LIMIT 10",
        )?;
        usage.clients = stmt
            .query_map([key_row], |r| {
                Ok(ClientIp {
                    ip: r.get(0)?,
                    first_seen: ts(r.get(1)?),
                    last_seen: ts(r.get(2)?),
                    requests: count(r.get(3)?),
                })
            })?
            .collect::<rusqlite::Result<_>>()?;

        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {REQUEST_COLUMNS} FROM usage_events
             WHERE key_id = ?1 ORDER BY at_ms DESC LIMIT ?2"
        ))?;
        usage.recent = stmt
            .query_map(params![key_row, recent], |r| RecentRequest::from_row(r, 0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(usage)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::{Actor, McpAccess};
    use crate::store::{NewKey, UsageEvent};

    #[test]
    fn usage_rolls_up_by_hour_day_tool_and_client() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 30, 0).unwrap();
        let actor = Actor {
            user: "t".into(),
            addr: None,
        };
        let key = store
            .create_key(
                &NewKey {
                    org_id: 1,
                    lookup_id: "AAAAAAAA",
                    name: "k",
                    description: None,
                    secret_hash: "x",
                    access: &McpAccess::All,
                    expires_at: None,
                    rate_limit: None,
                },
                &actor,
                now,
            )
            .unwrap();
        // Usage names only MCPs that exist.
        store
            .add_mcp(
                1,
                &crate::store::NewMcp {
                    slug: "everything".into(),
                    name: "everything".into(),
                    transport: crate::domain::McpTransport::Stdio {
                        command: "true".into(),
                        args: Vec::new(),
                        env: Vec::new(),
                        inherit_env: Vec::new(),
                    },
                    timeout: std::time::Duration::from_secs(1),
                    pinned: false,
                },
                &actor,
                now,
            )
            .unwrap();
        let event = |at: Timestamp, status: u16, ip: &str| UsageEvent {
            key_row: key.row_id,
            mcp_slug: Some("everything".into()),
            tool: Some(if status == 200 { "echo" } else { "nope" }.into()),
            outcome: if status == 200 { "ok" } else { "unknown_tool" },
            http_status: status,
            latency_us: 1000,
            client_ip: Some(ip.into()),
            user_agent: Some(format!("probe/{status}")),
            at_ms: at.timestamp_millis(),
        };
        let hour_ago = now - chrono::TimeDelta::hours(1);
        let ten_days_ago = now - chrono::TimeDelta::days(10);
        let long_ago = now - chrono::TimeDelta::days(40);
        store
            .record_usage(&[
                event(now, 200, "10.0.0.1"),
                event(now, 404, "10.0.0.1"),
                event(hour_ago, 200, "10.0.0.2"),
                event(ten_days_ago, 200, "10.0.0.2"),
                event(long_ago, 200, "10.0.0.3"),
            ])
            .unwrap();
        let u = store.key_usage(key.row_id, now, 3).unwrap();
        assert_eq!(u.total, 5);
        assert_eq!((u.last_24h, u.last_7d, u.last_30d), (3, 3, 4));
        assert_eq!(u.errors_30d, 1);
        assert_eq!(u.avg_latency_us, Some(1000));
        assert_eq!(u.per_hour[HOURS - 1], 2);
        assert_eq!(u.per_hour[HOURS - 2], 1);
        assert_eq!(u.per_day[DAYS - 1], 3);
        assert_eq!(u.per_day[DAYS - 11], 1);
        assert_eq!(u.errors_per_day[DAYS - 1], 1, "the 404, on its day");
        assert_eq!(u.errors_per_day.iter().sum::<u64>(), 1);
        assert_eq!(u.by_tool[0].tool, "echo");
        assert_eq!(u.by_tool[0].requests, 3);
        assert_eq!(u.clients.len(), 3);
        assert_eq!(u.clients[0].ip, "10.0.0.1");
        assert_eq!(u.recent.len(), 3);
        // The user agent each request sent comes back with it.
        for r in &u.recent {
            assert_eq!(r.user_agent, Some(format!("probe/{}", r.http_status)));
        }
        let reloaded = store.key_by_lookup(1, "AAAAAAAA").unwrap().unwrap();
        assert_eq!(reloaded.request_count, 5);
        assert_eq!(reloaded.last_used_at, Some(now));
    }
}
