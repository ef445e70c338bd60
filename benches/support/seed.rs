//! Builds a console-sized database quickly: many keys and millions of usage
//! events, written straight into `api_keys`, `key_mcp_access`,
//! `audit_events`, `usage_events`, `usage_hourly` and `key_clients` in one
//! transaction with prepared statements. The roll-ups, per-client rows and
//! each key's `request_count` / `last_used_at` are derived from the events
//! exactly as `Store::record_usage` derives them, so the statistics the
//! console shows agree with the raw events. Bench tooling only.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use plexmcp::admin::{self, McpRequest};
use plexmcp::domain::{Actor, Plan};
use plexmcp::store::Store;
use rusqlite::{Connection, params};

/// What to build.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub keys: usize,
    /// Usage events in all; most belong to the newest ("hot") key.
    pub events: u64,
}

/// What was built.
#[derive(Debug)]
pub struct Seeded {
    /// Row id of the newest key, which the console selects first and which
    /// owns most of the events.
    pub hot_key_row: i64,
    pub hot_key_events: u64,
    pub elapsed: Duration,
}

const MCPS: [&str; 3] = ["everything", "github", "search"];
/// (mcp index, tool) pairs events are spread over.
const TOOLS: [(usize, &str); 6] = [
    (0, "echo"),
    (0, "add"),
    (1, "search_repositories"),
    (1, "get_issue"),
    (2, "query"),
    (0, "longRunningOperation"),
];
const AGENTS: [Option<&str>; 4] = [
    Some("claude-desktop/1.4"),
    Some("python-httpx/0.28"),
    Some("node"),
    None,
];
const NAMES: [&str; 8] = [
    "billing",
    "search",
    "ci",
    "staging",
    "analytics",
    "mobile",
    "support",
    "etl",
];
/// Every 10th key (but the hot one) gets this many events.
const BACKGROUND_EVENTS: u64 = 10;
/// Events span this many days back from `now` (some fall outside 30 days).
const EVENT_DAYS: i64 = 40;

/// The same mix of outcomes for any index: mostly `ok`, a few errors.
fn outcome(i: u64) -> (&'static str, u16) {
    match i % 50 {
        0 => ("upstream_error", 502),
        1 => ("unauthorized_mcp", 403),
        2 => ("upstream_timeout", 504),
        _ => ("ok", 200),
    }
}

/// A cheap, well-mixed hash of an index (splitmix64's finaliser).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// 8 base62 characters, distinct for distinct `n` below 62^8.
fn lookup_id(n: u64) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // Multiplying by a prime coprime to 62 permutes 0..62^8.
    let space = 62u64.pow(8);
    let mut v = (n.wrapping_mul(1_000_000_007) + 12_345) % space;
    let mut id = [b'0'; 8];
    for slot in id.iter_mut().rev() {
        *slot = ALPHABET[(v % 62) as usize];
        v /= 62;
    }
    String::from_utf8(id.to_vec()).expect("ASCII")
}

/// The roll-ups one key's events add up to, as `record_usage` keeps them.
#[derive(Default)]
struct KeyRollup {
    hours: HashMap<(i64, usize), (i64, i64, i64)>,
    clients: HashMap<usize, (i64, i64, i64)>,
    requests: i64,
    last_ms: i64,
}

struct Writer<'c> {
    event: rusqlite::Statement<'c>,
    hourly: rusqlite::Statement<'c>,
    client: rusqlite::Statement<'c>,
    key: rusqlite::Statement<'c>,
    ips: Vec<String>,
}

impl Writer<'_> {
    /// Writes `count` events for `key_row` evenly spread over
    /// `[from_ms, to_ms)`, then its roll-ups; `salt` varies the mix.
    fn events(
        &mut self,
        key_row: i64,
        count: u64,
        from_ms: i64,
        to_ms: i64,
        salt: u64,
    ) -> anyhow::Result<()> {
        let mut rollup = KeyRollup::default();
        let span = (to_ms - from_ms).max(1) as u64;
        for i in 0..count {
            let h = mix(i ^ salt);
            let at_ms = from_ms + (i as u128 * span as u128 / count as u128) as i64;
            let tool = (h % TOOLS.len() as u64) as usize;
            let (mcp, tool_name) = TOOLS[tool];
            let (code, status) = outcome(h >> 8);
            let latency = 300 + (h >> 16) % 20_000;
            let ip = ((h >> 32) % self.ips.len() as u64) as usize;
            let agent = AGENTS[((h >> 40) % AGENTS.len() as u64) as usize];
            self.event.execute(params![
                key_row,
                MCPS[mcp],
                tool_name,
                code,
                status,
                latency as i64,
                self.ips[ip],
                agent,
                at_ms
            ])?;
            let secs = at_ms.div_euclid(1000);
            let hour = secs - secs.rem_euclid(3600);
            let t = rollup.hours.entry((hour, tool)).or_default();
            t.0 += 1;
            t.1 += i64::from(status >= 400);
            t.2 += latency as i64;
            let c = rollup.clients.entry(ip).or_insert((secs, secs, 0));
            c.0 = c.0.min(secs);
            c.1 = c.1.max(secs);
            c.2 += 1;
            rollup.requests += 1;
            rollup.last_ms = rollup.last_ms.max(at_ms);
        }
        for ((hour, tool), (requests, errors, latency)) in &rollup.hours {
            let (mcp, tool_name) = TOOLS[*tool];
            self.hourly.execute(params![
                key_row, hour, MCPS[mcp], tool_name, requests, errors, latency
            ])?;
        }
        for (ip, (first, last, n)) in &rollup.clients {
            self.client
                .execute(params![key_row, self.ips[*ip], first, last, n])?;
        }
        if rollup.requests > 0 {
            self.key.execute(params![
                rollup.requests,
                rollup.last_ms.div_euclid(1000),
                key_row
            ])?;
        }
        Ok(())
    }
}

/// Creates the database at `path` (which must not exist yet).
pub fn build(path: &Path, spec: Spec, now: DateTime<Utc>) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    anyhow::ensure!(!path.exists(), "{} already exists", path.display());
    let actor = Actor {
        user: "seed".into(),
        addr: None,
    };
    // Schema, server secret, default org and MCPs the normal way.
    let org_id = {
        let mut store = Store::open(path)?;
        let org = store.org("default")?;
        store.set_plan(org.row_id, Plan::Enterprise, &actor, now)?;
        for slug in MCPS {
            let request = McpRequest {
                slug: slug.into(),
                stdio: Some(format!("{slug}-mcp --stdio")),
                ..McpRequest::default()
            };
            admin::add_mcp(&mut store, &org, &request, &actor, now)?;
        }
        org.row_id
    };

    let mut conn = Connection::open(path)?;
    // Bulk load: no journal, no fsync, a big page cache. Store::open puts
    // WAL back the next time the database is opened.
    conn.pragma_update_and_check(None, "journal_mode", "OFF", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    let mcp_rows: Vec<i64> = {
        let mut stmt = conn.prepare("SELECT id FROM mcps WHERE org_id = ?1 ORDER BY id")?;
        stmt.query_map([org_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let tx = conn.transaction()?;
    let now_s = now.timestamp();
    let now_ms = now.timestamp_millis();
    let day = 86_400i64;
    // Keys were created over two years, the newest (hot) one just before
    // its events begin; all keys share one argon2 hash (never verified here).
    let newest = now_s - (EVENT_DAYS + 1) * day;
    let oldest = newest - 730 * day;
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2VlZHNlZWRzZWVkc2VlZA$M8ZbqK0jHKxj0Nj9oE6d0T4wJ3NqA3mZ2m1kM8o9F1c";
    let mut background = 0u64;
    let mut hot = (0, 0);
    {
        let mut key = tx.prepare(
            "INSERT INTO api_keys (org_id, lookup_id, name, description, secret_hash, all_mcps,
                created_at, created_by, expires_at, revoked_at, revoked_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'seed', ?8, ?9, ?10)",
        )?;
        let mut access =
            tx.prepare("INSERT INTO key_mcp_access (key_id, mcp_id) VALUES (?1, ?2)")?;
        let mut audit = tx.prepare(
            "INSERT INTO audit_events (org_id, at, actor, action, target_kind, target_id, detail)
             VALUES (?1, ?2, 'seed', ?3, 'key', ?4, ?5)",
        )?;
        let mut writer = Writer {
            event: tx.prepare(
                "INSERT INTO usage_events (key_id, mcp_slug, tool, outcome, http_status, latency_us, client_ip, user_agent, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?,
            hourly: tx.prepare(
                "INSERT INTO usage_hourly (key_id, hour, mcp_slug, tool, requests, errors, latency_us_sum)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            client: tx.prepare(
                "INSERT INTO key_clients (key_id, client_ip, first_seen, last_seen, requests)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            key: tx.prepare(
                "UPDATE api_keys SET request_count = request_count + ?1,
                    last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE id = ?3",
            )?,
            ips: (0..24).map(|i| format!("10.0.{}.{}", i / 8, 10 + i % 8)).collect(),
        };
        let n = spec.keys.max(1) as i64;
        for i in 0..spec.keys as i64 {
            let h = mix(i as u64);
            let created = oldest + (newest - oldest) * i / (n - 1).max(1);
            let all = h.is_multiple_of(2);
            let expires = h.is_multiple_of(7).then(|| created + 90 * day);
            let revoked = (i % 10 == 3).then(|| created + 30 * day);
            let name = format!("{}-{:05}", NAMES[(h >> 8) as usize % NAMES.len()], i);
            let id = lookup_id(i as u64);
            let description = h
                .is_multiple_of(3)
                .then_some("seeded for the console benchmark");
            key.execute(params![
                org_id,
                id,
                name,
                description,
                hash,
                all,
                created,
                expires,
                revoked,
                revoked.map(|_| "seed")
            ])?;
            let row = tx.last_insert_rowid();
            let detail = if all {
                "access: all MCPs".to_string()
            } else {
                let first = (h >> 16) as usize % mcp_rows.len();
                let picked = [first, (first + 1) % mcp_rows.len()];
                for m in &picked[..1 + (h >> 20) as usize % 2] {
                    access.execute(params![row, mcp_rows[*m]])?;
                }
                "access: some MCPs".to_string()
            };
            audit.execute(params![org_id, created, "key.created", id, detail])?;
            if let Some(at) = revoked {
                audit.execute(params![org_id, at, "key.revoked", id, None::<String>])?;
            }
            if i == n - 1 {
                // The newest key, last: it gets whatever the others left.
                let events = spec.events.saturating_sub(background);
                writer.events(row, events, now_ms - EVENT_DAYS * day * 1000, now_ms, 7)?;
                hot = (row, events);
            } else if i % 10 == 0
                && revoked.is_none()
                && expires.is_none()
                && background + BACKGROUND_EVENTS <= spec.events / 2
            {
                // Some usage on other keys too, never more than half of it.
                let from = now_ms - 30 * day * 1000;
                writer.events(row, BACKGROUND_EVENTS, from, now_ms, i as u64)?;
                background += BACKGROUND_EVENTS;
            }
        }
    }
    tx.commit()?;
    // No ANALYZE: a real database has no statistics either.
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
        .context("restoring WAL")?;
    Ok(Seeded {
        hot_key_row: hot.0,
        hot_key_events: hot.1,
        elapsed: started.elapsed(),
    })
}
