//! `plexmcp usage export`: the organization's raw usage events (one per
//! request that reached a key lookup, kept `usage.retention_days`) streamed
//! to stdout as NDJSON or CSV, oldest first, one row in memory at a time.

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use super::{CliError, CliResult, ExportFormat, UsageCommand, csv};
use crate::admin;
use crate::keys::KEY_PREFIX;
use crate::store::{Store, UsageQuery, UsageRecord};

/// Columns of the CSV export, in order; the NDJSON objects have the same fields.
const CSV_HEADER: [&str; 11] = [
    "id",
    "at",
    "key",
    "key_name",
    "mcp",
    "tool",
    "outcome",
    "http_status",
    "latency_us",
    "client_ip",
    "user_agent",
];

pub fn run(store: &mut Store, org_slug: &str, cmd: UsageCommand) -> CliResult {
    match cmd {
        UsageCommand::Export { format, key, since } => {
            let org = store.org(org_slug)?;
            let since_ms = match since {
                Some(spec) => Some(
                    crate::rules::since(&spec, Utc::now())
                        .map_err(|e| CliError::Usage(e.to_string()))?
                        .timestamp_millis(),
                ),
                None => None,
            };
            let key_row = match key {
                Some(ident) => Some(admin::find_key(store, &org, &ident)?.row_id),
                None => None,
            };
            let query = UsageQuery {
                org_id: org.row_id,
                key_row,
                since_ms,
            };
            export(store, &query, format)
        }
    }
}

/// A closed pipe ends the process quietly (see `cli::run`).
fn export(store: &Store, query: &UsageQuery, format: ExportFormat) -> CliResult {
    let mut out = csv::Exporter::stdout(format, &CSV_HEADER)?;
    store.usage_each(query, |record| -> Result<(), CliError> {
        let row = UsageJson::of(record);
        out.row(&row, || row.cells())?;
        Ok(())
    })?;
    out.finish()?;
    Ok(())
}

/// One event for NDJSON and CSV: the stored values, the time as RFC 3339
/// with milliseconds, the key by its display prefix as everywhere else.
#[derive(Debug, Serialize)]
struct UsageJson<'a> {
    id: i64,
    at: String,
    key: String,
    key_name: &'a str,
    /// `null` when the request named no live MCP of the organization.
    mcp: Option<&'a str>,
    /// The tool, or for JSON-RPC without a tool the method.
    tool: Option<&'a str>,
    outcome: &'a str,
    http_status: u16,
    latency_us: u64,
    client_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
}

impl<'a> UsageJson<'a> {
    fn of(record: &'a UsageRecord) -> UsageJson<'a> {
        let r = &record.request;
        let at = chrono::DateTime::from_timestamp_millis(r.at_ms).map_or_else(
            || r.at_ms.to_string(),
            |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
        );
        UsageJson {
            id: record.id,
            at,
            key: format!("{KEY_PREFIX}{}", record.key),
            key_name: &record.key_name,
            mcp: r.mcp.as_deref(),
            tool: r.tool.as_deref(),
            outcome: &r.outcome,
            http_status: r.http_status,
            latency_us: r.latency_us,
            client_ip: r.client_ip.as_deref(),
            user_agent: r.user_agent.as_deref(),
        }
    }

    /// The CSV cells, in `CSV_HEADER` order.
    fn cells(&self) -> [Option<String>; 11] {
        let s = |v: &str| Some(v.to_owned());
        [
            Some(self.id.to_string()),
            s(&self.at),
            s(&self.key),
            s(self.key_name),
            self.mcp.map(str::to_owned),
            self.tool.map(str::to_owned),
            s(self.outcome),
            Some(self.http_status.to_string()),
            Some(self.latency_us.to_string()),
            self.client_ip.map(str::to_owned),
            self.user_agent.map(str::to_owned),
        ]
    }
}
