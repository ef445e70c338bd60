//! Where things live and who is acting: the XDG paths, the default listen
//! address and the audit actor, read from the environment in one place;
//! and the settings an operator can give in a file, the environment or
//! flags, resolved in `settings`.

mod file;
mod settings;
pub mod template;
mod values;

use std::path::PathBuf;

pub use file::{ConfigError, FileConfig};
pub use settings::{
    ConfigFileUse, DEFAULT_RETENTION_DAYS, Flags, Settings, Source, Sourced, process_env,
};
pub use values::{AccessLog, Cidr, ListenAddr, LogFilter, LogFormat, RetentionDays};

use crate::domain::Actor;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8470";
pub const DEFAULT_ORG: &str = "default";
/// The log filter of `serve` and the console: rmcp narrates every session
/// at info; its warnings are what matter here.
pub const DEFAULT_SERVE_LOG: &str = "info,rmcp=warn";
/// The log filter of one-shot commands, whose output is their stdout.
pub const DEFAULT_COMMAND_LOG: &str = "warn,rmcp=error";

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "plexmcp")
}

/// `$XDG_DATA_HOME/plexmcp/plexmcp.db` (usually `~/.local/share/plexmcp/plexmcp.db`).
pub fn default_db_path() -> PathBuf {
    project_dirs()
        .map(|d| d.data_dir().join("plexmcp.db"))
        .unwrap_or_else(|| PathBuf::from("plexmcp.db"))
}

/// `$XDG_CONFIG_HOME/plexmcp/config.toml` (usually `~/.config/plexmcp/config.toml`).
pub fn default_config_path() -> PathBuf {
    project_dirs()
        .map(|d| d.config_dir().join("config.toml"))
        .unwrap_or_else(|| PathBuf::from("plexmcp.toml"))
}

/// `$XDG_STATE_HOME/plexmcp` for logs while the console owns the terminal.
pub fn log_dir() -> PathBuf {
    project_dirs()
        .map(|d| d.state_dir().unwrap_or(d.cache_dir()).to_path_buf())
        .unwrap_or_else(std::env::temp_dir)
}

/// The OS user, plus the SSH client's address when acting over SSH.
pub fn actor_from_env() -> Actor {
    let user = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| !u.trim().is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".to_string());
    // SSH_CONNECTION is "client_ip client_port server_ip server_port".
    let addr = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|c| c.split_whitespace().next().map(str::to_string));
    Actor { user, addr }
}

/// The login name of this process's uid, for environments without `$USER`
/// (cron, containers, systemd units).
fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}
