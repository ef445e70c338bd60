//! The configuration file: its shape (every key optional, unknown keys
//! refused) and its errors, which name the file, the line and the key so
//! an operator can go straight to the mistake.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::values::{AccessLog, Cidr, ListenAddr, LogFilter, LogFormat, RetentionDays};

/// What a configuration file may say; `None` means "not in the file".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub db: Option<PathBuf>,
    pub org: Option<String>,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub console: ConsoleSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub sessions: SessionsSection,
    #[serde(default)]
    pub usage: UsageSection,
    #[serde(default)]
    pub metrics: MetricsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<ListenAddr>,
    pub allowed_origins: Option<Vec<String>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub trusted_proxies: Option<Vec<Cidr>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    pub server: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    pub filter: Option<LogFilter>,
    pub format: Option<LogFormat>,
    pub access: Option<AccessLog>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsSection {
    pub idle_timeout_secs: Option<u64>,
    pub max_per_key: Option<u32>,
    pub max_total: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageSection {
    pub retention_days: Option<RetentionDays>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    pub listen: Option<ListenAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is there but says something wrong.
    #[error("{}:{line}: {}{message}", path.display(), key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: usize,
        key: Option<String>,
        message: String,
    },
    #[error("cannot read config file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A flag or a variable holds a bad value.
    #[error("{name} {message}")]
    BadOverride { name: String, message: String },
}

impl FileConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        FileConfig::parse(&text, path)
    }

    /// Parses `text`, reporting errors against `path`.
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line: text[..at].matches('\n').count() + 1,
                key: key_at(text, at),
                message: e.message().trim().to_string(),
            }
        })
    }
}

/// The dotted key (`log.format`) whose key or value is at byte `at`: the
/// nearest `key =` line at or above it, inside the nearest `[table]` above.
fn key_at(text: &str, at: usize) -> Option<String> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let above = text[..line_start].lines().rev();
    let here = text[line_start..].lines().next().unwrap_or("");
    let mut key = None;
    let mut table = None;
    for line in std::iter::once(here).chain(above) {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            let name = header.trim_start_matches('[');
            let name = name.split(']').next().unwrap_or("").trim();
            table = Some(name.to_string());
            break;
        }
        if key.is_none()
            && let Some((k, _)) = line.split_once('=')
            && !k.trim().is_empty()
            && !k.trim_start().starts_with(['#', '"', '\''])
            && !k.contains(['"', '\''])
        {
            key = Some(k.trim().to_string());
        }
    }
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), None) => Some(t),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        FileConfig::parse(text, Path::new("/etc/p.toml"))
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = error("org = \"a\"\n\n[log]\nfromat = \"json\"\n");
        assert!(
            e.starts_with("/etc/p.toml:4: log.fromat: unknown field `fromat`"),
            "{e}"
        );
    }

    #[test]
    fn bad_value_names_its_key() {
        let e = error("[server]\nlisten = \"localhost\"\n");
        assert!(e.starts_with("/etc/p.toml:2: server.listen: "), "{e}");
        assert!(e.contains("not an address"), "{e}");
        let e = error("[sessions]\nmax_total = -1\n");
        assert!(e.starts_with("/etc/p.toml:2: sessions.max_total: "), "{e}");
    }

    #[test]
    fn bad_list_item_names_the_list() {
        let e = error("[server]\ntrusted_proxies = [\n  \"10.0.0.0/8\",\n  \"nope\",\n]\n");
        // toml points at the whole array, which starts on the key's line.
        assert!(
            e.starts_with("/etc/p.toml:2: server.trusted_proxies: "),
            "{e}"
        );
        assert!(e.contains("'nope'"), "{e}");
    }

    #[test]
    fn unknown_table_is_named() {
        let e = error("[metric]\nlisten = \"127.0.0.1:1\"\n");
        assert!(e.starts_with("/etc/p.toml:1: metric"), "{e}");
    }

    #[test]
    fn syntax_error_names_the_line() {
        let e = error("org = \"a\"\nlisten 127\n");
        assert!(e.starts_with("/etc/p.toml:2: "), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
