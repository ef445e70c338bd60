//! `plexmcp config show` and `config init`: what is in effect and where it
//! came from, and a commented default file to start from.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

use super::{CliError, CliResult};
use crate::config::{self, ConfigFileUse, Flags, Settings};

pub fn show(settings: &Settings) -> CliResult {
    print!("{}", settings.show());
    Ok(())
}

/// Writes the template where the configuration is read from: `--config`,
/// `PLEXMCP_CONFIG` or the XDG location. Mode 0600 in a 0700 folder: the
/// file may come to name the database and proxies of a production host.
pub fn init(flags: &Flags, force: bool) -> CliResult {
    let path = ConfigFileUse::choose(flags, &config::process_env).path;
    if path.exists() && !force {
        return Err(CliError::Failed(format!(
            "{} exists; use --force to replace it",
            path.display()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let cannot =
        |e: std::io::Error| CliError::Failed(format!("cannot write {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(cannot)?;
    // A replaced file keeps its old mode unless told.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(cannot)?;
    file.write_all(config::template::DEFAULT_FILE.as_bytes())
        .map_err(cannot)?;
    file.sync_all().map_err(cannot)?;
    println!("wrote {}", path.display());
    Ok(())
}
