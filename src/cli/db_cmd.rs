//! `plexmcp db check`: SQLite's own checks, read-only, safe while
//! plexmcp runs.

use std::path::Path;

use super::format::clean;
use super::{CliError, CliResult};
use crate::store::Store;

pub fn check(db: &Path) -> CliResult {
    let report = Store::check(db)?;
    if report.problems.is_empty() {
        println!(
            "{}: ok (integrity check and foreign keys; schema version {})",
            db.display(),
            report.schema_version
        );
        return Ok(());
    }
    for problem in &report.problems {
        println!("{}", clean(problem));
    }
    Err(CliError::Failed(format!(
        "{} has {} problem(s); stop plexmcp and restore a backup with `plexmcp restore PATH`",
        db.display(),
        report.problems.len()
    )))
}
