//! Usage events and their roll-ups. Events arrive in batches from the
//! server's single writer; each batch is one transaction that also keeps
//! the hourly roll-ups, per-client first/last seen, and each key's
//! `last_used_at` / `request_count` in step. An event names an MCP only if
//! it is a live MCP of the key's organization: clients choose the names
//! they send, and what is not a real MCP never reaches the disk.

use std::collections::HashMap;

use rusqlite::params;

use super::{Result, Store};

/// One `/mcp` request that got as far as a key lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    pub key_row: i64,
    pub mcp_slug: Option<String>,
    pub tool: Option<String>,
    /// The error code (`invalid_api_key`, `upstream_error`, …) or `ok`.
    pub outcome: &'static str,
    pub http_status: u16,
    pub latency_us: u64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Unix milliseconds.
    pub at_ms: i64,
}

impl UsageEvent {
    pub fn is_error(&self) -> bool {
        self.http_status >= 400
    }

    /// The key was accepted (whatever happened next); a refused key is
    /// recorded as `invalid_api_key`.
    pub fn was_accepted(&self) -> bool {
        self.outcome != "invalid_api_key"
    }
}

#[derive(Default)]
struct HourTotals {
    requests: i64,
    errors: i64,
    latency_us: i64,
}

#[derive(Default)]
struct KeyTotals {
    requests: i64,
    last_ms: i64,
    /// The latest request the key was accepted for (0: none in the batch).
    accepted_ms: i64,
}

impl Store {
    /// Writes a batch of events in one transaction. Aggregates in memory
    /// first so a batch of thousands costs a few hundred statements.
    pub fn record_usage(&mut self, events: &[UsageEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let tx = self.write_tx()?;
        let named = real_names(&tx, events)?;
        let mut hours: HashMap<(i64, i64, &str, &str), HourTotals> = HashMap::new();
        let mut keys: HashMap<i64, KeyTotals> = HashMap::new();
        let mut clients: HashMap<(i64, &str), (i64, i64, i64)> = HashMap::new();
        for (e, &(mcp, tool)) in events.iter().zip(&named) {
            let secs = e.at_ms.div_euclid(1000);
            let hour = secs - secs.rem_euclid(3600);
            let h = hours
                .entry((e.key_row, hour, mcp.unwrap_or(""), tool.unwrap_or("")))
                .or_default();
            h.requests += 1;
            h.errors += i64::from(e.is_error());
            h.latency_us += i64::try_from(e.latency_us).unwrap_or(i64::MAX);
            let k = keys.entry(e.key_row).or_default();
            k.requests += 1;
            k.last_ms = k.last_ms.max(e.at_ms);
            if e.was_accepted() {
                k.accepted_ms = k.accepted_ms.max(e.at_ms);
            }
            if let Some(ip) = e.client_ip.as_deref() {
                let c = clients.entry((e.key_row, ip)).or_insert((secs, secs, 0));
                c.0 = c.0.min(secs);
                c.1 = c.1.max(secs);
                c.2 += 1;
            }
        }

        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO usage_events (key_id, mcp_slug, tool, outcome, http_status, latency_us, client_ip, user_agent, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (e, (mcp, tool)) in events.iter().zip(&named) {
                insert.execute(params![
                    e.key_row,
                    mcp,
                    tool,
                    e.outcome,
                    e.http_status,
                    i64::try_from(e.latency_us).unwrap_or(i64::MAX),
                    e.client_ip,
                    e.user_agent,
                    e.at_ms
                ])?;
            }
            let mut hourly = tx.prepare_cached(
                "INSERT INTO usage_hourly (key_id, hour, mcp_slug, tool, requests, errors, latency_us_sum)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (key_id, hour, mcp_slug, tool) DO UPDATE SET
                    requests = requests + excluded.requests,
                    errors = errors + excluded.errors,
                    latency_us_sum = latency_us_sum + excluded.latency_us_sum",
            )?;
            for ((key, hour, mcp, tool), t) in &hours {
                hourly.execute(params![
                    key,
                    hour,
                    mcp,
                    tool,
                    t.requests,
                    t.errors,
                    t.latency_us
                ])?;
            }
            let mut client = tx.prepare_cached(
                "INSERT INTO key_clients (key_id, client_ip, first_seen, last_seen, requests)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (key_id, client_ip) DO UPDATE SET
                    first_seen = min(first_seen, excluded.first_seen),
                    last_seen = max(last_seen, excluded.last_seen),
                    requests = requests + excluded.requests",
            )?;
            for ((key, ip), (first, last, n)) in &clients {
                client.execute(params![key, ip, first, last, n])?;
            }
            // `last_accepted_at` (what an idle limit measures) moves only
            // with requests the key was accepted for.
            let mut key_update = tx.prepare_cached(
                "UPDATE api_keys SET request_count = request_count + ?1,
                    last_used_at = max(coalesce(last_used_at, 0), ?2),
                    last_accepted_at = CASE WHEN ?4 > 0
                        THEN max(coalesce(last_accepted_at, 0), ?4) ELSE last_accepted_at END
                 WHERE id = ?3",
            )?;
            for (key, t) in &keys {
                key_update.execute(params![
                    t.requests,
                    t.last_ms.div_euclid(1000),
                    key,
                    t.accepted_ms.div_euclid(1000)
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Changes whenever anything that can alter an authentication decision
    /// changes (keys, access, MCPs) — but not on usage writes.
    pub fn auth_generation(&self) -> Result<i64> {
        // Asked after every commit by any connection, so kept prepared.
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM auth_generation WHERE id = 1")?;
        Ok(stmt.query_row([], |r| r.get(0))?)
    }

    /// Makes every later call on this connection fail at once, rather than
    /// wait up to the busy timeout, when another connection holds a lock it
    /// needs: for a connection asked from async code, where waiting would
    /// hold up everything else.
    pub fn never_wait(&self) -> Result<()> {
        self.conn.busy_timeout(std::time::Duration::ZERO)?;
        Ok(())
    }

    /// Total usage events stored (all keys), for tests and diagnostics.
    pub fn usage_event_count(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM usage_events", [], |r| r.get(0))?)
    }
}

/// Each event's `(mcp, tool)` as it may be stored: the MCP only if it is a
/// live MCP of the key's organization, and then its tool; a tool without an
/// MCP (a JSON-RPC method) as it came. Looked up once per key and name.
fn real_names<'e>(
    tx: &rusqlite::Transaction<'_>,
    events: &'e [UsageEvent],
) -> Result<Vec<(Option<&'e str>, Option<&'e str>)>> {
    let mut live = tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM mcps JOIN api_keys ON api_keys.org_id = mcps.org_id
                        WHERE api_keys.id = ?1 AND mcps.slug = ?2 AND mcps.deleted_at IS NULL)",
    )?;
    let mut known: HashMap<(i64, &str), bool> = HashMap::new();
    let mut named = Vec::with_capacity(events.len());
    for e in events {
        let tool = e.tool.as_deref();
        let Some(mcp) = e.mcp_slug.as_deref() else {
            named.push((None, tool));
            continue;
        };
        let real = match known.get(&(e.key_row, mcp)) {
            Some(&real) => real,
            None => {
                let real: bool = live.query_row(params![e.key_row, mcp], |r| r.get(0))?;
                known.insert((e.key_row, mcp), real);
                real
            }
        };
        named.push(if real {
            (Some(mcp), tool)
        } else {
            (None, None)
        });
    }
    Ok(named)
}
