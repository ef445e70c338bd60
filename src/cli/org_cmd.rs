//! `plexmcp org …`

use chrono::Utc;

use super::format::{self, human};
use super::{CliError, CliResult, OrgCommand};
use crate::admin;
use crate::config;
use crate::domain::RateLimit;
use crate::rules;
use crate::store::Store;

pub fn run(store: &mut Store, org_slug: &str, cmd: OrgCommand) -> CliResult {
    let actor = config::actor_from_env();
    let now = Utc::now();
    match cmd {
        OrgCommand::Show { json } => {
            let s = store.org_summary(org_slug, now)?;
            if json {
                return Ok(format::print_json(&format::org_json(&s))?);
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
