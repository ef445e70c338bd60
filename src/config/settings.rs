//! The effective settings: each one taken from a flag, else an environment
//! variable, else the configuration file, else its default, remembering
//! which, so `config show` can say where a value came from.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::file::{ConfigError, FileConfig};
use super::values::{AccessLog, Cidr, ListenAddr, LogFilter, LogFormat, RetentionDays};
use super::{
    DEFAULT_COMMAND_LOG, DEFAULT_LISTEN, DEFAULT_ORG, DEFAULT_SERVE_LOG, default_config_path,
    default_db_path,
};

/// The command line's say, as typed (checked during `resolve`).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub db: Option<PathBuf>,
    pub org: Option<String>,
    pub listen: Option<String>,
    pub no_server: bool,
    pub log_filter: Option<String>,
    pub log_format: Option<String>,
    pub access_log: Option<String>,
    pub usage_retention_days: Option<String>,
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
    File,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(name) => write!(f, "flag {name}"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::File => f.write_str("file"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Source,
}

/// Which configuration file was read, if any.
#[derive(Debug, Clone)]
pub struct ConfigFileUse {
    pub path: PathBuf,
    pub source: Source,
    /// False when the default location holds no file.
    pub present: bool,
}

impl ConfigFileUse {
    /// `--config`, else `PLEXMCP_CONFIG`, else the XDG location (which may
    /// hold no file; the other two must).
    pub fn choose(flags: &Flags, env: &impl Fn(&str) -> Option<String>) -> ConfigFileUse {
        match (&flags.config, env(CONFIG_ENV)) {
            (Some(path), _) => ConfigFileUse {
                path: path.clone(),
                source: Source::Flag("--config"),
                present: true,
            },
            (None, Some(path)) => ConfigFileUse {
                path: PathBuf::from(path),
                source: Source::Env(CONFIG_ENV),
                present: true,
            },
            (None, None) => {
                let path = default_config_path();
                let present = path.exists();
                ConfigFileUse {
                    path,
                    source: Source::Default,
                    present,
                }
            }
        }
    }
}

/// The process environment as `resolve_with` takes it: empty means unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Everything plexmcp can be told, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_file: ConfigFileUse,
    pub db: Sourced<PathBuf>,
    pub org: Sourced<String>,
    pub listen: Sourced<SocketAddr>,
    pub console_server: Sourced<bool>,
    /// `None`: the command's own default (see `log_filter_or`).
    pub log_filter: Sourced<Option<LogFilter>>,
    pub log_format: Sourced<LogFormat>,
    pub access_log: Sourced<AccessLog>,
    pub allowed_origins: Sourced<Vec<String>>,
    pub allowed_hosts: Sourced<Vec<String>>,
    pub trusted_proxies: Sourced<Vec<Cidr>>,
    pub session_idle_timeout_secs: Sourced<u64>,
    pub sessions_max_per_key: Sourced<u32>,
    pub sessions_max_total: Sourced<u32>,
    pub usage_retention_days: Sourced<RetentionDays>,
    pub metrics_listen: Sourced<Option<ListenAddr>>,
}

pub const DEFAULT_SESSION_IDLE_SECS: u64 = 1800;
pub const DEFAULT_SESSIONS_PER_KEY: u32 = 16;
pub const DEFAULT_SESSIONS_TOTAL: u32 = 256;
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// The variable naming the configuration file.
pub const CONFIG_ENV: &str = "PLEXMCP_CONFIG";

impl Settings {
    /// The gateway's HTTP settings: session limits, the `Host` and `Origin`
    /// values the MCP endpoint accepts, and the trusted reverse proxies.
    /// Loopback names and the listen address are always accepted as hosts;
    /// configured names are added to them.
    pub fn proxy_settings(&self) -> crate::server::mcp_proxy::ProxySettings {
        let mut proxy = crate::server::mcp_proxy::ProxySettings {
            session_idle: std::time::Duration::from_secs(self.session_idle_timeout_secs.value),
            max_sessions_per_key: self.sessions_max_per_key.value as usize,
            max_sessions: self.sessions_max_total.value as usize,
            ..Default::default()
        };
        let ip = self.listen.value.ip();
        if !ip.is_unspecified() {
            proxy.allowed_hosts.push(ip.to_string());
        }
        for host in &self.allowed_hosts.value {
            if !proxy.allowed_hosts.contains(host) {
                proxy.allowed_hosts.push(host.clone());
            }
        }
        proxy.allowed_origins = self.allowed_origins.value.clone();
        proxy.trusted_proxies =
            crate::server::client_addr::TrustedProxies::new(&self.trusted_proxies.value);
        proxy
    }
    /// Resolves from the process environment.
    pub fn resolve(flags: &Flags) -> Result<Settings, ConfigError> {
        Settings::resolve_with(flags, process_env)
    }

    /// Resolves with `env` standing for the environment (empty means unset).
    pub fn resolve_with(
        flags: &Flags,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let config_file = ConfigFileUse::choose(flags, &env);
        let file = if config_file.present {
            FileConfig::load(&config_file.path)?
        } else {
            FileConfig::default()
        };
        let pick = Picker { env: &env };

        let listen = pick.one(
            flags.listen.as_deref().map(|v| ("--listen", v)),
            "PLEXMCP_LISTEN",
            file.server.listen,
            DEFAULT_LISTEN
                .parse::<ListenAddr>()
                .expect("default address"),
            str::parse,
        )?;
        let console_server = if flags.no_server {
            Sourced {
                value: false,
                source: Source::Flag("--no-server"),
            }
        } else {
            from_file(file.console.server, true)
        };
        let log_filter = pick.one(
            flags.log_filter.as_deref().map(|v| ("--log-filter", v)),
            "PLEXMCP_LOG",
            file.log.filter.map(Some),
            None,
            |s| s.parse().map(Some),
        )?;
        Ok(Settings {
            db: pick.one(
                flags
                    .db
                    .as_ref()
                    .map(|p| ("--db", p.to_string_lossy().into_owned())),
                "PLEXMCP_DB",
                file.db,
                default_db_path(),
                |s| Ok(PathBuf::from(s)),
            )?,
            org: pick.one(
                flags.org.as_deref().map(|v| ("--org", v)),
                "PLEXMCP_ORG",
                file.org,
                DEFAULT_ORG.to_string(),
                |s| Ok(s.to_string()),
            )?,
            listen: Sourced {
                value: listen.value.0,
                source: listen.source,
            },
            console_server,
            log_filter,
            log_format: pick.one(
                flags.log_format.as_deref().map(|v| ("--log-format", v)),
                "PLEXMCP_LOG_FORMAT",
                file.log.format,
                LogFormat::default(),
                str::parse,
            )?,
            access_log: pick.one(
                flags.access_log.as_deref().map(|v| ("--access-log", v)),
                "PLEXMCP_ACCESS_LOG",
                file.log.access,
                AccessLog::default(),
                str::parse,
            )?,
            allowed_origins: from_file(file.server.allowed_origins, Vec::new()),
            allowed_hosts: from_file(file.server.allowed_hosts, Vec::new()),
            trusted_proxies: from_file(file.server.trusted_proxies, Vec::new()),
            session_idle_timeout_secs: from_file(
                file.sessions.idle_timeout_secs,
                DEFAULT_SESSION_IDLE_SECS,
            ),
            sessions_max_per_key: from_file(file.sessions.max_per_key, DEFAULT_SESSIONS_PER_KEY),
            sessions_max_total: from_file(file.sessions.max_total, DEFAULT_SESSIONS_TOTAL),
            usage_retention_days: pick.one(
                flags
                    .usage_retention_days
                    .as_deref()
                    .map(|v| ("--usage-retention-days", v)),
                "PLEXMCP_USAGE_RETENTION_DAYS",
                file.usage.retention_days,
                RetentionDays::try_from(i64::from(DEFAULT_RETENTION_DAYS))
                    .expect("default retention"),
                str::parse,
            )?,
            metrics_listen: match file.metrics.listen {
                Some(addr) => Sourced {
                    value: Some(addr),
                    source: Source::File,
                },
                None => Sourced {
                    value: None,
                    source: Source::Default,
                },
            },
            config_file,
        })
    }

    /// The log filter in effect, `default` when none was given.
    pub fn log_filter_or(&self, default: &str) -> String {
        match &self.log_filter.value {
            Some(filter) => filter.as_str().to_string(),
            None => default.to_string(),
        }
    }

    /// `config show`: one `key = value  # source` line per setting.
    pub fn show(&self) -> String {
        let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
        let list = |items: &[&str]| {
            let items: Vec<String> = items.iter().map(|s| quoted(s)).collect();
            format!("[{}]", items.join(", "))
        };
        let mut rows: Vec<(String, String, String)> = Vec::new();
        let mut row = |key: &str, value: String, source: Source, note: &str| {
            rows.push((key.to_string(), value, format!("{source}{note}")));
        };
        row(
            "db",
            quoted(&self.db.value.to_string_lossy()),
            self.db.source,
            "",
        );
        row("org", quoted(&self.org.value), self.org.source, "");
        row(
            "server.listen",
            quoted(&self.listen.value.to_string()),
            self.listen.source,
            "",
        );
        row(
            "server.allowed_origins",
            list(
                &self
                    .allowed_origins
                    .value
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            ),
            self.allowed_origins.source,
            "",
        );
        row(
            "server.allowed_hosts",
            list(
                &self
                    .allowed_hosts
                    .value
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            ),
            self.allowed_hosts.source,
            "",
        );
        row(
            "server.trusted_proxies",
            list(
                &self
                    .trusted_proxies
                    .value
                    .iter()
                    .map(Cidr::as_str)
                    .collect::<Vec<_>>(),
            ),
            self.trusted_proxies.source,
            "",
        );
        row(
            "console.server",
            self.console_server.value.to_string(),
            self.console_server.source,
            "",
        );
        match &self.log_filter.value {
            Some(filter) => row(
                "log.filter",
                quoted(filter.as_str()),
                self.log_filter.source,
                "",
            ),
            None => row(
                "# log.filter",
                quoted(DEFAULT_SERVE_LOG),
                self.log_filter.source,
                &format!(" (serve and console; other commands: \"{DEFAULT_COMMAND_LOG}\")"),
            ),
        }
        row(
            "log.format",
            quoted(&self.log_format.value.to_string()),
            self.log_format.source,
            "",
        );
        row(
            "log.access",
            quoted(&self.access_log.value.to_string()),
            self.access_log.source,
            "",
        );
        row(
            "sessions.idle_timeout_secs",
            self.session_idle_timeout_secs.value.to_string(),
            self.session_idle_timeout_secs.source,
            "",
        );
        row(
            "sessions.max_per_key",
            self.sessions_max_per_key.value.to_string(),
            self.sessions_max_per_key.source,
            "",
        );
        row(
            "sessions.max_total",
            self.sessions_max_total.value.to_string(),
            self.sessions_max_total.source,
            "",
        );
        row(
            "usage.retention_days",
            self.usage_retention_days.value.to_string(),
            self.usage_retention_days.source,
            "",
        );
        match &self.metrics_listen.value {
            Some(addr) => row(
                "metrics.listen",
                quoted(&addr.to_string()),
                self.metrics_listen.source,
                "",
            ),
            None => row(
                "# metrics.listen",
                "(off)".to_string(),
                self.metrics_listen.source,
                "",
            ),
        }

        let file = &self.config_file;
        let mut out = format!(
            "# config file: {} ({}{})\n",
            file.path.display(),
            file.source,
            if file.present { "" } else { ", not present" }
        );
        let width = rows
            .iter()
            .map(|(k, v, _)| k.len() + v.len() + 3)
            .max()
            .unwrap_or(0);
        for (key, value, source) in rows {
            let setting = format!("{key} = {value}");
            out.push_str(&format!("{setting:width$}  # {source}\n"));
        }
        out
    }
}

/// Applies flag > env > file > default to one setting.
struct Picker<'a, E: Fn(&str) -> Option<String>> {
    env: &'a E,
}

impl<E: Fn(&str) -> Option<String>> Picker<'_, E> {
    fn one<T, V: AsRef<str>>(
        &self,
        flag: Option<(&'static str, V)>,
        var: &'static str,
        file: Option<T>,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Sourced<T>, ConfigError> {
        let bad = |name: &'static str| {
            move |message| ConfigError::BadOverride {
                name: name.to_string(),
                message,
            }
        };
        if let Some((name, text)) = flag {
            return parse(text.as_ref())
                .map_err(bad(name))
                .map(|value| Sourced {
                    value,
                    source: Source::Flag(name),
                });
        }
        if let Some(text) = (self.env)(var) {
            return parse(&text).map_err(bad(var)).map(|value| Sourced {
                value,
                source: Source::Env(var),
            });
        }
        Ok(from_file(file, default))
    }
}

fn from_file<T>(file: Option<T>, default: T) -> Sourced<T> {
    match file {
        Some(value) => Sourced {
            value,
            source: Source::File,
        },
        None => Sourced {
            value: default,
            source: Source::Default,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::mcp_proxy;

    #[test]
    fn session_defaults_are_the_mcp_endpoints_own() {
        assert_eq!(
            std::time::Duration::from_secs(DEFAULT_SESSION_IDLE_SECS),
            mcp_proxy::DEFAULT_SESSION_IDLE
        );
        assert_eq!(
            DEFAULT_SESSIONS_PER_KEY as usize,
            mcp_proxy::DEFAULT_MAX_SESSIONS_PER_KEY
        );
        assert_eq!(
            DEFAULT_SESSIONS_TOTAL as usize,
            mcp_proxy::DEFAULT_MAX_SESSIONS
        );
    }

    #[test]
    fn trusted_proxies_from_the_file_reach_the_gateway_and_show_as_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(path),
            ..Flags::default()
        };
        let settings = Settings::resolve_with(&flags, |_| None).unwrap();
        let trusted = settings.proxy_settings().trusted_proxies;
        assert!(trusted.contains("10.200.0.1".parse().unwrap()));
        assert!(trusted.contains("::1".parse().unwrap()));
        assert!(!trusted.contains("192.0.2.1".parse().unwrap()));
        let show = settings.show();
        let row = show
            .lines()
            .find(|l| l.contains("server.trusted_proxies"))
            .unwrap();
        assert!(row.contains("[\"10.0.0.0/8\", \"::1\"]"), "{row}");
        assert!(!row.contains("not used yet"), "{row}");
    }
}
