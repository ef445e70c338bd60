//! `plexmcp audit list|export|verify`: the organization's audit events for
//! people (a table), scripts (JSON) and archives (NDJSON or CSV streamed to
//! stdout), and a check of the database's hash chain.

use chrono::Utc;
use serde::Serialize;

use super::csv;
use super::format::{self, clean, human};
use super::{AuditCommand, CliError, CliResult, ExportFormat};
use crate::admin;
use crate::domain::Org;
use crate::store::{AuditQuery, AuditRecord, ChainReport, Store};

/// Columns of the CSV export, in order; the NDJSON objects have the same fields.
const CSV_HEADER: [&str; 11] = [
    "id",
    "at",
    "org",
    "actor",
    "actor_addr",
    "action",
    "target_kind",
    "target_id",
    "detail",
    "prev_hash",
    "hash",
];

pub fn run(store: &mut Store, org_slug: &str, cmd: AuditCommand) -> CliResult {
    match cmd {
        AuditCommand::List {
            filter,
            limit,
            json,
        } => {
            let org = store.org(org_slug)?;
            let query = query(store, &org, &filter.key, &filter.since)?;
            // One more than asked, to know whether older events were left out.
            let mut events = store.audit_latest(&query, limit.saturating_add(1))?;
            let more = events.len() > limit as usize;
            events.truncate(limit as usize);
            if json {
                let items: Vec<_> = events.iter().map(AuditJson::of).collect();
                return Ok(format::print_json(&items)?);
            }
            print_list(&org, &events);
            if more {
                eprintln!(
                    "(the latest {limit} events; --limit N for more, or `plexmcp audit export` for all)"
                );
            }
            Ok(())
        }
        AuditCommand::Export { format, filter } => {
            let org = store.org(org_slug)?;
            let query = query(store, &org, &filter.key, &filter.since)?;
            export(store, &query, format)
        }
        AuditCommand::Verify { head, json } => {
            let expected = head.as_deref().map(parse_head).transpose()?;
            let report = store.verify_audit_chain(expected.as_deref())?;
            if json {
                format::print_json(&VerifyJson::of(&report, expected.as_deref()))?;
            }
            verdict(&report, expected.as_deref(), !json)
        }
    }
}

/// The store query for `--key` and `--since`, resolving the key within the org.
fn query(
    store: &Store,
    org: &Org,
    key: &Option<String>,
    since: &Option<String>,
) -> Result<AuditQuery, CliError> {
    let key = match key {
        Some(ident) => Some(admin::find_key(store, org, ident)?.id),
        None => None,
    };
    let since = match since {
        Some(spec) => Some(
            crate::rules::since(spec, Utc::now()).map_err(|e| CliError::Usage(e.to_string()))?,
        ),
        None => None,
    };
    Ok(AuditQuery {
        org_id: org.row_id,
        key,
        since,
    })
}

fn print_list(org: &Org, events: &[AuditRecord]) {
    if events.is_empty() {
        println!("No audit events in organization '{}'.", org.slug);
        return;
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|r| {
            let e = &r.event;
            vec![
                r.id.to_string(),
                human(e.at),
                clean(&e.actor),
                clean(e.actor_addr.as_deref().unwrap_or("-")),
                clean(&e.action),
                clean(&target(r)),
                clean(e.detail.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    format::print_table(
        &["ID", "TIME", "BY", "FROM", "EVENT", "TARGET", "DETAIL"],
        &rows,
    );
}

/// A key is shown by its display prefix, as everywhere else.
fn target(r: &AuditRecord) -> String {
    match r.event.target_kind.as_str() {
        "key" => format!("{}{}", crate::keys::KEY_PREFIX, r.event.target_id),
        kind => format!("{kind} {}", r.event.target_id),
    }
}

/// Streams the matching events to stdout, oldest first, one row in memory
/// at a time. A closed pipe ends the process quietly (see `cli::run`).
fn export(store: &Store, query: &AuditQuery, format: ExportFormat) -> CliResult {
    let mut out = csv::Exporter::stdout(format, &CSV_HEADER)?;
    store.audit_each(query, |record| -> Result<(), CliError> {
        let row = AuditJson::of(record);
        out.row(&row, || row.cells())?;
        Ok(())
    })?;
    out.finish()?;
    Ok(())
}

/// One event for JSON, NDJSON and CSV: the stored values, times as RFC 3339.
#[derive(Debug, Serialize)]
struct AuditJson<'a> {
    id: i64,
    at: String,
    /// `null` for database-wide events.
    org: Option<&'a str>,
    actor: &'a str,
    actor_addr: Option<&'a str>,
    action: &'a str,
    target_kind: &'a str,
    target_id: &'a str,
    detail: Option<&'a str>,
    prev_hash: Option<&'a str>,
    hash: Option<&'a str>,
}

impl<'a> AuditJson<'a> {
    fn of(r: &'a AuditRecord) -> AuditJson<'a> {
        AuditJson {
            id: r.id,
            at: format::rfc3339(r.event.at),
            org: r.org.as_deref(),
            actor: &r.event.actor,
            actor_addr: r.event.actor_addr.as_deref(),
            action: &r.event.action,
            target_kind: &r.event.target_kind,
            target_id: &r.event.target_id,
            detail: r.event.detail.as_deref(),
            prev_hash: r.prev_hash.as_deref(),
            hash: r.hash.as_deref(),
        }
    }

    /// The CSV cells, in `CSV_HEADER` order.
    fn cells(&self) -> [Option<String>; 11] {
        let s = |v: &str| Some(v.to_owned());
        [
            Some(self.id.to_string()),
            s(&self.at),
            self.org.map(str::to_owned),
            s(self.actor),
            self.actor_addr.map(str::to_owned),
            s(self.action),
            s(self.target_kind),
            s(self.target_id),
            self.detail.map(str::to_owned),
            self.prev_hash.map(str::to_owned),
            self.hash.map(str::to_owned),
        ]
    }
}

/// A head hash as `verify` prints it: 64 hex digits.
fn parse_head(raw: &str) -> Result<String, CliError> {
    let head = raw.trim().to_ascii_lowercase();
    if head.len() == 64 && head.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(head)
    } else {
        Err(CliError::Usage(format!(
            "--head '{}' is not a head hash: give the 64 hex digits `plexmcp audit verify` printed",
            clean(raw)
        )))
    }
}

#[derive(Debug, Serialize)]
struct VerifyJson<'a> {
    ok: bool,
    /// Events verified before the first problem (all of them when `ok`).
    events: u64,
    head_id: Option<i64>,
    head: Option<&'a str>,
    /// The first broken link: `{"id": …, "problem": …}`.
    broken: Option<BrokenJson>,
    /// With `--head`: the id of the event that has it, or null.
    expected_head_id: Option<i64>,
}

#[derive(Debug, Serialize)]
struct BrokenJson {
    id: i64,
    problem: String,
}

impl<'a> VerifyJson<'a> {
    fn of(report: &'a ChainReport, expected: Option<&str>) -> VerifyJson<'a> {
        VerifyJson {
            ok: report.broken.is_none()
                && (expected.is_none() || report.expected_head_at.is_some()),
            events: report.events,
            head_id: report.head.as_ref().map(|(id, _)| *id),
            head: report.head.as_ref().map(|(_, h)| h.as_str()),
            broken: report.broken.as_ref().map(|b| BrokenJson {
                id: b.row_id,
                problem: b.to_string(),
            }),
            expected_head_id: report.expected_head_at,
        }
    }
}

/// The outcome as an exit status, with the text for people when `say`.
fn verdict(report: &ChainReport, expected: Option<&str>, say: bool) -> CliResult {
    if let Some(broken) = &report.broken {
        let before = match report.events {
            1 => "1 event".to_owned(),
            n => format!("{n} events"),
        };
        return Err(CliError::Failed(format!(
            "audit trail broken: {broken} ({before} before it verified)"
        )));
    }
    if let Some(expected) = expected
        && report.expected_head_at.is_none()
    {
        return Err(CliError::Failed(format!(
            "audit trail rewritten: the recorded head {expected} is not in it (the trail was rewritten or cut back since; restoring an older backup also does this)"
        )));
    }
    if !say {
        return Ok(());
    }
    match &report.head {
        None => println!("OK: the audit trail is empty."),
        Some((id, hash)) => {
            println!(
                "OK: {} audit events, the hash chain is intact.",
                report.events
            );
            println!("Head: {hash} (event {id})");
            if let (Some(expected), Some(at)) = (expected, report.expected_head_at) {
                println!(
                    "The recorded head {expected} is event {at}: nothing up to it has changed."
                );
            }
        }
    }
    Ok(())
}
