//! `plexmcp org …`

use chrono::Utc;
use serde::Serialize;

use super::format::{self, human};
use super::{CliError, CliResult, OrgCommand};
use crate::admin;
use crate::config;
use crate::domain::RateLimit;
use crate::rules;
use crate::store::Store;

/// `retention_days`: the usage retention in effect, which `org show` reports
/// beside the oldest raw event still kept.
pub fn run(store: &mut Store, org_slug: &str, cmd: OrgCommand, retention_days: u32) -> CliResult {
    let actor = config::actor_from_env();
    let now = Utc::now();
    match cmd {
        OrgCommand::Show { json } => {
            let s = store.org_summary(org_slug, now)?;
            let storage = Storage::read(store, s.org.row_id, retention_days)?;
            if json {
                return Ok(format::print_json(&OrgShowJson {
                    org: format::org_json(&s),
                    database: &storage.database,
                    usage: &storage.usage,
                })?);
            }
            println!("Organization  {} ({})", s.org.slug, s.org.name);
            println!(
                "Plan          {}: {} of {} active API keys",
                s.org.plan,
                s.active_keys,
                format::limit_text(s.org.plan.key_limit())
            );
            println!(
                "Keys          {} in all, revoked and expired included",
                s.total_keys
            );
            println!("MCPs          {}", s.mcps);
            println!(
                "Rate limit    {} (keys without their own)",
                s.org
                    .rate_limit
                    .map_or_else(|| "none".to_owned(), |l| l.to_string())
            );
            println!("Created       {}", human(s.org.created_at));
            storage.print();
            Ok(())
        }
        OrgCommand::SetPlan { plan } => {
            let org = store.org(org_slug)?;
            let change = admin::set_plan(store, &org, plan, &actor, now)?;
            if change.old == change.new {
                println!(
                    "Organization '{}' is already on the {} plan.",
                    org.slug, plan
                );
            } else {
                println!(
                    "Organization '{}' moved from the {} plan to the {} plan ({} active keys allowed).",
                    org.slug,
                    change.old,
                    change.new,
                    format::limit_text(plan.key_limit())
                );
            }
            if let Some(warning) = change.over_limit_warning() {
                eprintln!("warning: {warning}");
            }
            Ok(())
        }
        OrgCommand::SetRateLimit { rate, burst } => {
            let org = store.org(org_slug)?;
            let spec = rules::rate_limit(&rate, burst.as_deref())
                .map_err(|e| CliError::Usage(e.message))?;
            let old = admin::set_org_rate_limit(store, &org, spec, &actor, now)?;
            let shown =
                |l: Option<RateLimit>| l.map_or_else(|| "none".to_owned(), |l| l.to_string());
            if old == spec.limit() {
                println!(
                    "Organization '{}' already has default rate limit {}.",
                    org.slug,
                    shown(old)
                );
            } else {
                println!(
                    "Organization '{}': default rate limit {} (was {}); keys with a limit of their own keep it.",
                    org.slug,
                    shown(spec.limit()),
                    shown(old)
                );
            }
            Ok(())
        }
        OrgCommand::Create { slug } => {
            let org = admin::create_org(store, &slug, &actor, now)?;
            println!(
                "Created organization '{}' on the {} plan. Use it with: plexmcp --org {} …",
                org.slug, org.plan, org.slug
            );
            Ok(())
        }
        OrgCommand::List { json } => {
            let orgs = store.list_orgs(now)?;
            if json {
                let items: Vec<_> = orgs.iter().map(format::org_json).collect();
                return Ok(format::print_json(&items)?);
            }
            let rows: Vec<Vec<String>> = orgs
                .iter()
                .map(|s| {
                    vec![
                        s.org.slug.clone(),
                        s.org.plan.to_string(),
                        format!(
                            "{}/{}",
                            s.active_keys,
                            format::limit_text(s.org.plan.key_limit())
                        ),
                        s.mcps.to_string(),
                        human(s.org.created_at),
                    ]
                })
                .collect();
            format::print_table(&["ORG", "PLAN", "ACTIVE KEYS", "MCPS", "CREATED"], &rows);
            Ok(())
        }
    }
}

/// `org show --json`: the organization's fields, then where its data lives.
#[derive(Serialize)]
struct OrgShowJson<'a> {
    #[serde(flatten)]
    org: format::OrgJson<'a>,
    database: &'a DatabaseJson,
    usage: &'a RawUsageJson,
}

#[derive(Serialize)]
struct DatabaseJson {
    path: String,
    size_bytes: u64,
    /// Space freed (by pruning, say) that later writes reuse first.
    free_bytes: u64,
}

#[derive(Serialize)]
struct RawUsageJson {
    /// RFC 3339; `null` when no raw event of this organization is kept.
    oldest_event: Option<String>,
    retention_days: u32,
}

/// The database's size and the organization's oldest raw usage event.
struct Storage {
    database: DatabaseJson,
    usage: RawUsageJson,
    oldest: Option<chrono::DateTime<Utc>>,
}

impl Storage {
    fn read(store: &Store, org_id: i64, retention_days: u32) -> Result<Storage, CliError> {
        let size = store.database_size()?;
        let oldest = store
            .oldest_usage_event(org_id)?
            .and_then(chrono::DateTime::from_timestamp_millis);
        Ok(Storage {
            database: DatabaseJson {
                path: store.path().display().to_string(),
                size_bytes: size.bytes,
                free_bytes: size.free_bytes,
            },
            usage: RawUsageJson {
                oldest_event: oldest.map(format::rfc3339),
                retention_days,
            },
            oldest,
        })
    }

    fn print(&self) {
        let db = &self.database;
        println!(
            "Database      {} ({}, {} free for reuse)",
            format::clean(&db.path),
            format::bytes_text(db.size_bytes),
            format::bytes_text(db.free_bytes)
        );
        let kept = format!(
            "kept {} days (usage.retention_days)",
            self.usage.retention_days
        );
        match self.oldest {
            Some(at) => println!("Raw usage     oldest event {}, {kept}", human(at)),
            None => println!("Raw usage     no events, {kept}"),
        }
    }
}
