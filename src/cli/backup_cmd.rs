//! `plexmcp backup PATH` and `plexmcp restore PATH`.

use std::path::Path;

use chrono::Utc;

use super::format::{clean, human};
use super::{CliError, CliResult};
use crate::config;
use crate::store::{BackupError, DbSummary, Store};

pub fn backup(db: &Path, target: &Path, force: bool) -> CliResult {
    // Opening would create an empty database, and back that up.
    if !db.exists() {
        return Err(BackupError::Missing(db.display().to_string(), "back up").into());
    }
    let store = Store::open(db)?;
    let report = store.backup_to(target, force)?;
    println!(
        "Backed up {} to {}: {} bytes, {}; integrity check ok.",
        clean(&db.display().to_string()),
        clean(&target.display().to_string()),
        report.bytes,
        describe(&report.summary)
    );
    Ok(())
}

pub fn restore(db: &Path, backup: &Path, yes: bool) -> CliResult {
    let pending = Store::prepare_restore(db, backup)?;
    let db_shown = clean(&db.display().to_string());
    let backup_shown = clean(&backup.display().to_string());
    if !yes {
        let question = format!(
            "Replace the database {db_shown} ({}) with the backup {backup_shown} ({})? Changes made since the backup are lost. [y/N] ",
            describe(&pending.current),
            describe(&pending.incoming)
        );
        if !super::prompt::confirm("restore", &question)? {
            return Err(CliError::Failed(
                "restore cancelled; the database is unchanged".into(),
            ));
        }
    }
    let restored = pending.commit(&config::actor_from_env(), Utc::now())?;
    println!(
        "Restored {db_shown} from {backup_shown}: {}. Keys work as they did when the backup was taken.",
        describe(&restored)
    );
    Ok(())
}

/// "2 organizations, 5 keys (1 revoked), 2 MCPs, last change 2026-12-01 10:00 UTC".
fn describe(s: &DbSummary) -> String {
    let plural = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut text = format!(
        "{}, {} ({} revoked), {}",
        plural(s.orgs, "organization", "organizations"),
        plural(s.keys, "key", "keys"),
        s.revoked_keys,
        plural(s.mcps, "MCP", "MCPs"),
    );
    if let Some(at) = s.last_change {
        text.push_str(&format!(", last change {}", human(at)));
    }
    text
}
