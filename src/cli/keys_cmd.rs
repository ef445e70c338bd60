//! `plexmcp keys …`

use chrono::Utc;

use super::format::{self, clean, human};
use super::{CliError, CliResult, KeysCommand};
use crate::admin::{self, EditRequest, KeyRequest};
use crate::config;
use crate::domain::{Handover, KeyRecord, KeyStatus, McpAccess};
use crate::keys::ApiKey;
use crate::rules::{self, RateLimitSpec};
use crate::store::Store;

pub fn run(store: &mut Store, org_slug: &str, cmd: KeysCommand) -> CliResult {
    let org = store.org(org_slug)?;
    let actor = config::actor_from_env();
    let now = Utc::now();
    match cmd {
        KeysCommand::Create {
            name,
            description,
            expires,
            access,
            rate,
            json,
        } => {
            let rate_limit = rate.spec()?.and_then(RateLimitSpec::limit);
            let req = KeyRequest {
                name,
                description,
                expires,
                access: access.access()?.unwrap_or(McpAccess::All),
            };
            let (record, key) =
                admin::create_key_limited(store, &org, &req, rate_limit, &actor, now)?;
            print_new_key(&record, &key, json, None)
        }
        KeysCommand::List { expiring, json } => {
            let expiring_asked = expiring.is_some();
            let mut keys = store.list_keys(org.row_id)?;
            if let Some(window) = expiring {
                let window = rules::span(&window, "--expiring", rules::Field::Expiry)
                    .map_err(|e| CliError::Usage(e.message))?;
                keys.retain(|k| expires_within(k, now, window));
            }
            if json {
                let items: Vec<_> = keys
                    .iter()
                    .map(|k| format::key_json(k, now, None))
                    .collect();
                return Ok(format::print_json(&items)?);
            }
            if keys.is_empty() && expiring_asked {
                println!(
                    "No active key in organization '{}' expires within that time.",
                    org.slug
                );
                return Ok(());
            }
            if keys.is_empty() {
                println!(
                    "No API keys in organization '{}'. Create one with: plexmcp keys create --name NAME",
                    org.slug
                );
                return Ok(());
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .map(|k| {
                    vec![
                        k.prefix(),
                        clean(&k.name),
                        k.status(now).label().to_string(),
                        human(k.created_at),
                        format::last_used_cell(k),
                        format::expires_cell(k),
                        k.access.describe(),
                        k.request_count.to_string(),
                    ]
                })
                .collect();
            format::print_table(
                &[
                    "PREFIX",
                    "NAME",
                    "STATUS",
                    "CREATED",
                    "LAST USED",
                    "EXPIRES",
                    "MCP ACCESS",
                    "REQUESTS",
                ],
                &rows,
            );
            Ok(())
        }
        KeysCommand::Show { key, json } => {
            let record = admin::find_key(store, &org, &key)?;
            if json {
                return Ok(format::print_json(&format::key_json(&record, now, None))?);
            }
            print_details(store, &record, now)
        }
        KeysCommand::Access { key, mcp, json } => {
            let proposed = super::AccessArgs { mcp }.access()?;
            let record = admin::find_key(store, &org, &key)?;
            super::access_cmd::run(store, &org, &record, proposed.as_ref(), json)
        }
        KeysCommand::Revoke { key, yes } => {
            let record = admin::find_key(store, &org, &key)?;
            if record.revoked_at.is_some() {
                return Err(CliError::Failed(format!(
                    "key {} is already revoked",
                    record.prefix()
                )));
            }
            if !yes && !confirm_revoke(&record)? {
                return Err(CliError::Failed(
                    "revoke cancelled; the key still works".into(),
                ));
            }
            let revoked = admin::revoke_key(store, &record, &actor, now)?;
            println!(
                "Revoked key {} (\"{}\"). Requests with it now get 401 Invalid API Key.",
                revoked.prefix(),
                clean(&revoked.name)
            );
            Ok(())
        }
        KeysCommand::Rotate {
            key,
            revoke_old,
            grace,
            revoke_when_idle,
            json,
        } => {
            let span = |spec: Option<String>, what| {
                spec.map(|s| rules::span(&s, what, rules::Field::Grace))
                    .transpose()
                    .map_err(|e| CliError::Usage(e.message))
            };
            let handover = if revoke_old {
                Handover::RevokeNow
            } else {
                Handover::Keep {
                    grace: span(grace, "--grace")?,
                    idle: span(revoke_when_idle, "--revoke-when-idle")?,
                }
            };
            let old = admin::find_key(store, &org, &key)?;
            let rotated = admin::rotate_key(store, &org, &old, handover, &actor, now)?;
            print_new_key(
                &rotated.new,
                &rotated.key,
                json,
                Some((&rotated.old, handover)),
            )
        }
        KeysCommand::Edit {
            key,
            name,
            description,
            access,
            rate,
        } => {
            let req = EditRequest {
                name,
                description,
                access: access.access()?,
            };
            let rate_limit = rate.spec()?;
            if req == EditRequest::default() && rate_limit.is_none() {
                return Err(CliError::Usage(
                    "nothing to change: give --name, --description, --mcp or --rate-limit".into(),
                ));
            }
            let record = admin::find_key(store, &org, &key)?;
            let edited = admin::edit_key_limited(store, &record, &req, rate_limit, &actor, now)?;
            println!(
                "Updated key {}: name \"{}\", MCP access {}, rate limit {}.",
                edited.prefix(),
                clean(&edited.name),
                edited.access.describe(),
                format::rate_limit_text(&edited)
            );
            Ok(())
        }
    }
}

fn confirm_revoke(key: &KeyRecord) -> Result<bool, CliError> {
    super::prompt::confirm(
        &format!("revoke {}", key.prefix()),
        &format!(
            "Revoke key {} (\"{}\")? It stops working immediately and cannot be reactivated. [y/N] ",
            key.prefix(),
            clean(&key.name)
        ),
    )
}

fn print_new_key(
    record: &KeyRecord,
    key: &ApiKey,
    json: bool,
    rotated: Option<(&KeyRecord, Handover)>,
) -> CliResult {
    if json {
        return Ok(format::print_json(&format::key_json(
            record,
            record.created_at,
            Some(key.expose()),
        ))?);
    }
    match rotated {
        Some((old, _)) => println!(
            "Rotated {} (\"{}\"): the new key is {}.",
            old.prefix(),
            clean(&record.name),
            record.prefix()
        ),
        None => println!(
            "Created API key {} (\"{}\").",
            record.prefix(),
            clean(&record.name)
        ),
    }
    println!();
    println!("    {}", key.expose());
    println!();
    println!("This is the only time the key is shown: copy it now and store it securely.");
    println!(
        "Expires: {}   MCP access: {}   Rate limit: {}",
        format::expires_cell(record),
        record.access.describe(),
        format::rate_limit_text(record)
    );
    if let Some((old, handover)) = rotated {
        let summary = admin::handover_summary(old, handover, record.created_at);
        if handover == Handover::UNTIL_REVOKED && old.revoked_at.is_none() {
            println!(
                "{} Revoke it with: plexmcp keys revoke {}",
                summary.trim_end_matches('.'),
                old.prefix()
            );
        } else {
            println!("{summary}");
        }
    }
    Ok(())
}

fn print_details(store: &Store, key: &KeyRecord, now: chrono::DateTime<Utc>) -> CliResult {
    let mut lines = vec![
        ("Key", key.prefix()),
        ("Name", key.name.clone()),
        (
            "Description",
            key.description.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Status", key.status(now).label().to_string()),
        (
            "Created",
            format!("{} by {}", human(key.created_at), key.created_by),
        ),
        ("Expires", format::expires_in(key, now)),
        ("Last used", format::last_used_cell(key)),
        ("Requests", key.request_count.to_string()),
        ("MCP access", key.access.describe()),
        ("Rate limit", format::rate_limit_text(key)),
    ];
    if let Some(from) = &key.rotated_from {
        lines.push(("Replaces", format!("{}{from}", crate::keys::KEY_PREFIX)));
    }
    lines.extend(succession_lines(store, key, now)?);
    if let Some(at) = key.revoked_at {
        let by = key.revoked_by.as_deref().unwrap_or("unknown");
        lines.push(("Revoked", format!("{} by {by}", human(at))));
    }
    for (label, value) in lines {
        println!("{label:<13}{}", clean(&value));
    }
    let events = store.audit_for("key", &key.id, 20)?;
    if !events.is_empty() {
        println!();
        println!("Activity");
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                let who = match &e.actor_addr {
                    Some(addr) => format!("{} ({addr})", e.actor),
                    None => e.actor.clone(),
                };
                vec![
                    format!("  {}", human(e.at)),
                    e.action.clone(),
                    clean(&who),
                    clean(e.detail.as_deref().unwrap_or("")),
                ]
            })
            .collect();
        format::print_table(&["  TIME", "EVENT", "BY", "DETAIL"], &rows);
    }
    Ok(())
}

/// `keys list --expiring`: a key that still works and stops by time
/// within `window` of `now`.
fn expires_within(key: &KeyRecord, now: chrono::DateTime<Utc>, window: chrono::TimeDelta) -> bool {
    key.status(now) == KeyStatus::Active && key.expires_at.is_some_and(|at| at - now <= window)
}

/// A replaced key's side of the link, its idle limit, and the client
/// addresses that still used it in the last hour (the cutover's progress).
fn succession_lines(
    store: &Store,
    key: &KeyRecord,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<(&'static str, String)>, CliError> {
    let s = &key.succession;
    let Some(by) = &s.replaced_by else {
        return Ok(Vec::new());
    };
    let mut lines = vec![(
        "Replaced by",
        format!(
            "{}{by}{}",
            crate::keys::KEY_PREFIX,
            s.replaced_at
                .map(|at| format!(" on {}", human(at)))
                .unwrap_or_default()
        ),
    )];
    if let (Some(limit), Some(end)) = (s.idle_limit, s.idle_end()) {
        let state = if end <= now {
            format!("ended {}", human(end))
        } else {
            format!("ends in {} unless used", rules::time_left(now, end))
        };
        lines.push((
            "Idle limit",
            format!("{} unused ({state})", rules::span_words(limit)),
        ));
    }
    let (clients, total) = store.clients_since(key.row_id, now - chrono::TimeDelta::hours(1))?;
    let mut used_by: Vec<String> = clients
        .iter()
        .map(|c| format!("{} ({})", c.ip, format::ago(now, c.last_seen)))
        .collect();
    if total > clients.len() as u64 {
        used_by.push(format!("and {} more", total - clients.len() as u64));
    }
    lines.push((
        "Used by (1h)",
        if used_by.is_empty() {
            "no client in the last hour".to_owned()
        } else {
            used_by.join(", ")
        },
    ));
    Ok(lines)
}
