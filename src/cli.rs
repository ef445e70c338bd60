//! The command line: `plexmcp` (console), `serve`, the scriptable
//! `keys`, `mcps`, `org`, `audit`, `usage` and `config` commands, and the operator's `backup`,
//! `restore`, `db check`, `completions` and `man`. Output contracts (JSON fields, exit
//! codes) are relied on by scripts, so they are defined here and tested
//! black-box in `tests/cli.rs`.

mod access_cmd;
mod audit_cmd;
mod backup_cmd;
mod completions_cmd;
mod config_cmd;
mod csv;
mod db_cmd;
mod format;
mod keys_cmd;
mod mcps_cmd;
mod org_cmd;
mod pins_cmd;
mod prompt;
mod serve_cmd;
mod usage_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config;
use crate::domain::{McpAccess, Plan};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "plexmcp",
    version,
    about = "Self-hosted MCP gateway with API keys, and a terminal console to manage them",
    propagate_version = true
)]
pub struct Cli {
    /// The configuration file (env PLEXMCP_CONFIG) [default: $XDG_CONFIG_HOME/plexmcp/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// The database file (env PLEXMCP_DB) [default: $XDG_DATA_HOME/plexmcp/plexmcp.db]
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// The organization to work in (env PLEXMCP_ORG) [default: default]
    #[arg(long, global = true, value_name = "SLUG")]
    pub org: Option<String>,

    /// Where the /mcp server listens, the console's or `serve`'s (env PLEXMCP_LISTEN) [default: 127.0.0.1:8470]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Console only: do not start the /mcp server alongside
    #[arg(long)]
    pub no_server: bool,

    /// Log filter such as `debug` or `info,plexmcp=trace` (env PLEXMCP_LOG)
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_filter: Option<String>,

    /// Log lines as `text` or `json` (env PLEXMCP_LOG_FORMAT) [default: text]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// The per-request "POST /mcp" log line: on, off or sample:N (env PLEXMCP_ACCESS_LOG) [default: on]
    #[arg(long, global = true, value_name = "on|off|sample:N")]
    pub access_log: Option<String>,

    /// Days raw usage events are kept before the usage writer of `serve` or the console prunes them; hourly statistics stay (env PLEXMCP_USAGE_RETENTION_DAYS) [default: 90]
    #[arg(long, global = true, value_name = "DAYS")]
    pub usage_retention_days: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the /mcp API only (no console), e.g. under systemd
    Serve {
        /// Address to listen on (env PLEXMCP_LISTEN) [default: 127.0.0.1:8470]
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Create, list, inspect, revoke, rotate and edit API keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Register and remove upstream MCP servers
    #[command(subcommand)]
    Mcps(McpsCommand),
    /// Show and manage organizations and their plans
    #[command(subcommand)]
    Org(OrgCommand),
    /// List, export and verify the audit trail of administrative changes
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Export the raw usage events (one per request) still within the retention
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Show the effective configuration, or write a commented default file
    #[command(subcommand)]
    Config(ConfigCommand),

    // Operations: backup, restore, db check, completions, man.
    #[command(flatten)]
    Ops(OpsCommand),
}

/// Operations on the database file and the installation (backup_cmd,
/// db_cmd, completions_cmd); none opens the store the usual way, so `run`
/// dispatches them before it does.
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Copy the database to PATH while plexmcp keeps running (mode 0600, verified)
    Backup {
        /// Where to write the copy
        path: PathBuf,
        /// Replace PATH if it exists
        #[arg(long)]
        force: bool,
    },
    /// Replace the database with a backup; refused while plexmcp has it open
    Restore {
        /// A file written by `plexmcp backup`
        path: PathBuf,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Check the database
    #[command(subcommand)]
    Db(DbCommand),
    /// Print a shell completion script: `plexmcp completions bash > /etc/bash_completion.d/plexmcp`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `plexmcp man | man -l -`
    Man {
        /// Write plexmcp.1 and a page per subcommand into DIR instead,
        /// e.g. /usr/local/share/man/man1
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Run SQLite's integrity and foreign-key checks; exit 1 on any problem
    Check,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting in effect and where it came from (flag, env, file, default)
    Show,
    /// Write the commented default configuration file (mode 0600)
    Init {
        /// Replace a file that is already there
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; the full key is printed once and never again
    Create {
        /// A descriptive name, e.g. "Production Server" (1-100 characters)
        #[arg(long)]
        name: String,
        /// Optional notes about where the key is used
        #[arg(long)]
        description: Option<String>,
        /// 30d, 90d, 1y, never, a date YYYY-MM-DD (end of day, UTC) or an RFC 3339 time
        #[arg(long, value_name = "SPEC", default_value = crate::rules::DEFAULT_EXPIRY)]
        expires: String,
        #[command(flatten)]
        access: AccessArgs,
        #[command(flatten)]
        rate: RateLimitArgs,
        /// Print a JSON object (with the full key in `key`)
        #[arg(long)]
        json: bool,
    },
    /// List every key of the organization, revoked ones included
    List {
        /// Only keys that still work and expire within this span (`7d`, `24h`)
        #[arg(long, value_name = "SPAN")]
        expiring: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one key's details and activity
    Show {
        /// The key's id or display prefix (pmcp_XXXXXXXX)
        key: String,
        #[arg(long)]
        json: bool,
    },
    /// Which tools of which MCPs a key can call now (asks the upstreams for their tool lists)
    Access {
        /// The key's id or display prefix
        key: String,
        /// Also show what it could call with this access, as `keys edit --mcp` would set it; nothing is saved
        #[arg(long = "mcp", value_name = "ID[:TOOLS]")]
        mcp: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key for good; it stops working at once and stays listed
    Revoke {
        /// The key's id or display prefix
        key: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Issue a replacement with the same name, description, access and expiry length
    Rotate {
        /// The key's id or display prefix
        key: String,
        /// Revoke the old key in the same step (otherwise it works until revoked)
        #[arg(long, conflicts_with_all = ["grace", "revoke_when_idle"])]
        revoke_old: bool,
        /// Keep the old key working this long (`24h`, `30m`, `7d`), then it expires
        #[arg(long, value_name = "SPAN")]
        grace: Option<String>,
        /// End the old key early once it has gone unused this long (`30m`)
        #[arg(long, value_name = "SPAN")]
        revoke_when_idle: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change a key's name, description or MCP access
    Edit {
        /// The key's id or display prefix
        key: String,
        #[arg(long)]
        name: Option<String>,
        /// New description ("" clears it)
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        access: AccessArgs,
        #[command(flatten)]
        rate: RateLimitArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// MCP access: `all` (including MCPs added later), an MCP id (all its tools) or ID:TOOL,TOOL (only those tools); repeat for several [create default: all]
    #[arg(long = "mcp", value_name = "ID[:TOOLS]")]
    pub mcp: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RateLimitArgs {
    /// Requests per second, minute or hour (`120/min`, `5/s`, `1000/h`), or `none` for the org's default
    #[arg(long = "rate-limit", value_name = "RATE")]
    pub rate_limit: Option<String>,
    /// Requests allowed at once [default: the rate's count]
    #[arg(long, value_name = "N")]
    pub burst: Option<String>,
}

impl RateLimitArgs {
    /// `None` when no `--rate-limit` was given; a usage error for a value
    /// that does not read, or a `--burst` alone.
    pub fn spec(&self) -> Result<Option<crate::rules::RateLimitSpec>, CliError> {
        match (&self.rate_limit, &self.burst) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(CliError::Usage(
                "--burst needs --rate-limit (e.g. --rate-limit 120/min --burst 20)".into(),
            )),
            (Some(rate), burst) => crate::rules::rate_limit(rate, burst.as_deref())
                .map(Some)
                .map_err(|e| CliError::Usage(e.message)),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum McpsCommand {
    /// Register an upstream MCP server
    Add {
        /// Its id in the organization, used in requests as `mcp_id` (e.g. github)
        id: String,
        /// Spawn this command and speak MCP over its stdin/stdout
        #[arg(
            long,
            value_name = "CMD ARGS",
            conflicts_with = "url",
            required_unless_present = "url"
        )]
        stdio: Option<String>,
        /// Speak Streamable HTTP MCP to this URL
        #[arg(long)]
        url: Option<String>,
        /// Display name [default: the id]
        #[arg(long)]
        name: Option<String>,
        /// Environment for a stdio MCP, K=V; repeatable
        #[arg(long, value_name = "K=V")]
        env: Vec<String>,
        /// Pass this variable of plexmcp's own environment to a stdio MCP
        /// (which otherwise gets only PATH, HOME, USER, LOGNAME, LANG, LC_ALL,
        /// LC_CTYPE, TZ, TMPDIR and its --env); repeatable
        #[arg(long, value_name = "NAME")]
        inherit_env: Vec<String>,
        /// Header sent to an HTTP MCP, K=V; repeatable
        #[arg(long, value_name = "K=V")]
        header: Vec<String>,
        /// Seconds a tool call may take before it answers 504 [default: 30]
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// Pin its tools: the first listing is trusted, and a tool that is
        /// later new or changed is withheld from clients until approved
        #[arg(long)]
        pinned: bool,
    },
    /// List the organization's MCPs (env and header values are never shown)
    List {
        #[arg(long)]
        json: bool,
    },
    /// One MCP: its settings, pinning and tools awaiting approval
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an MCP; keys lose access to it at once
    Remove { id: String },
    /// Pin an MCP's tools as it lists them now: a tool that is new or
    /// changed later is withheld from clients until approved
    Pin { id: String },
    /// Stop pinning an MCP: its tools are served as its upstream lists them
    Unpin { id: String },
    /// Approve a pinned MCP's new or changed tools: all of them, or TOOL
    Approve { id: String, tool: Option<String> },
    /// Every tool recorded for an MCP, with its state (approved, new or
    /// changed — withheld while pinned — or removed) and when it changed
    Tools {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The organization's latest audit events, newest first
    List {
        #[command(flatten)]
        filter: AuditFilter,
        /// Show at most N events
        #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Print a JSON array of event objects
        #[arg(long)]
        json: bool,
    },
    /// Write the organization's audit events to stdout, oldest first
    Export {
        /// ndjson (one JSON object a line) or csv (RFC 4180, with a header)
        #[arg(long, value_enum, default_value = "ndjson")]
        format: ExportFormat,
        #[command(flatten)]
        filter: AuditFilter,
    },
    /// Check the hash chain of the whole database; exit 1 at the first broken link
    Verify {
        /// A head hash printed by an earlier verify: also fail unless that
        /// event is still in the chain (detects a rewritten trail)
        #[arg(long, value_name = "HASH")]
        head: Option<String>,
        /// Print the result as a JSON object
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AuditFilter {
    /// Only events about this key (its id or display prefix)
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Only events since T: an age (30m, 24h, 7d), a date YYYY-MM-DD (UTC) or an RFC 3339 time
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Write the organization's raw usage events to stdout, oldest first
    /// (older ones are pruned after usage.retention_days; hourly statistics stay)
    Export {
        /// ndjson (one JSON object a line) or csv (RFC 4180, with a header)
        #[arg(long, value_enum, default_value = "ndjson")]
        format: ExportFormat,
        /// Only this key's requests (its id or display prefix)
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        /// Only requests since T: an age (30m, 24h, 7d), a date YYYY-MM-DD (UTC) or an RFC 3339 time
        #[arg(long, value_name = "T")]
        since: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Show the organization, its plan and key usage
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change the organization's plan
    SetPlan {
        #[arg(value_parser = parse_plan)]
        plan: Plan,
    },
    /// Set the default rate limit of keys without their own (`600/min`, `none`)
    SetRateLimit {
        /// Requests per second, minute or hour (`600/min`, `10/s`, `5000/h`), or `none`
        #[arg(value_name = "RATE")]
        rate: String,
        /// Requests allowed at once [default: the rate's count]
        #[arg(long, value_name = "N")]
        burst: Option<String>,
    },
    /// Create an organization (on the free plan)
    Create { slug: String },
    /// List organizations
    List {
        #[arg(long)]
        json: bool,
    },
}

fn parse_plan(s: &str) -> Result<Plan, String> {
    s.parse()
}

impl AccessArgs {
    /// `None` when no `--mcp` was given; a usage error for `all` mixed with ids.
    pub(crate) fn access(&self) -> Result<Option<McpAccess>, CliError> {
        if self.mcp.is_empty() {
            return Ok(None);
        }
        let all = self.mcp.iter().any(|m| m == "all");
        if all && self.mcp.len() > 1 {
            return Err(CliError::Usage(
                "--mcp all cannot be combined with specific MCP ids".into(),
            ));
        }
        if all {
            return Ok(Some(McpAccess::All));
        }
        let mut grants = Vec::with_capacity(self.mcp.len());
        for spec in &self.mcp {
            let grant = crate::rules::mcp_grant(spec).map_err(|e| CliError::Usage(e.message))?;
            // The same grant twice is harmless (scripts often repeat one);
            // two different grants for one MCP would leave us guessing.
            match grants
                .iter()
                .find(|g: &&crate::domain::McpGrant| g.slug == grant.slug)
            {
                Some(earlier) if *earlier == grant => continue,
                Some(_) => {
                    return Err(CliError::Usage(format!(
                        "--mcp {} is given twice with different tools; name each MCP once, with all its tools in one list",
                        grant.slug
                    )));
                }
                None => {}
            }
            grants.push(grant);
        }
        Ok(Some(McpAccess::only(grants)))
    }
}

/// A failure: `Usage` exits 2 like clap's own errors, `Failed` exits 1.
#[derive(Debug)]
pub enum CliError {
    Usage(String),
    Failed(String),
}

impl<E: std::error::Error> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError::Failed(e.to_string())
    }
}

pub type CliResult = Result<(), CliError>;

impl Cli {
    /// What the command line says about settings (see `config::Settings`).
    fn flags(&self) -> config::Flags {
        let serve_listen = match &self.command {
            Some(Command::Serve { listen }) => listen.clone(),
            _ => None,
        };
        config::Flags {
            config: self.config.clone(),
            db: self.db.clone(),
            org: self.org.clone(),
            listen: serve_listen.or_else(|| self.listen.clone()),
            no_server: self.no_server,
            log_filter: self.log_filter.clone(),
            log_format: self.log_format.clone(),
            access_log: self.access_log.clone(),
            usage_retention_days: self.usage_retention_days.clone(),
        }
    }
}

/// Runs a parsed command line and turns the outcome into an exit code.
pub fn run(cli: Cli) -> ExitCode {
    report_file_size_limit_as_error();
    let flags = cli.flags();
    // `config init` must work when the file it replaces is broken.
    if let Some(Command::Config(ConfigCommand::Init { force })) = cli.command {
        exit_quietly_on_closed_pipe();
        return exit_code(config_cmd::init(&flags, force));
    }
    let settings = match config::Settings::resolve(&flags) {
        Ok(settings) => settings,
        Err(e) => return exit_code(Err(CliError::Usage(e.to_string()))),
    };
    let Some(command) = cli.command else {
        return run_console(&settings);
    };
    let serving = matches!(command, Command::Serve { .. });
    let default_filter = if serving {
        config::DEFAULT_SERVE_LOG
    } else {
        config::DEFAULT_COMMAND_LOG
    };
    let filter_handle = crate::logging::init(
        &settings.log_filter_or(default_filter),
        settings.log_format.value,
        std::io::stderr,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    crate::logging::set_access_log(settings.access_log.value);
    if !serving {
        exit_quietly_on_closed_pipe();
    }
    if let Command::Config(ConfigCommand::Show) = command {
        return exit_code(config_cmd::show(&settings));
    }
    let outcome = match command {
        Command::Ops(op) => run_operation(&settings.db.value, op),
        command => run_on_store(&settings, &flags, filter_handle, command),
    };
    exit_code(outcome)
}

/// The commands that work on an opened (created, migrated) store.
fn run_on_store(
    settings: &config::Settings,
    flags: &config::Flags,
    filter_handle: Option<crate::logging::FilterHandle>,
    command: Command,
) -> CliResult {
    let org = settings.org.value.clone();
    Store::open(&settings.db.value)
        .map_err(CliError::from)
        .and_then(|mut store| {
            let outcome = match command {
                Command::Serve { .. } => {
                    return serve_cmd::run(store, settings, flags, filter_handle);
                }
                Command::Keys(cmd) => keys_cmd::run(&mut store, &org, cmd),
                Command::Mcps(cmd) => mcps_cmd::run(&mut store, &org, cmd),
                Command::Org(cmd) => org_cmd::run(
                    &mut store,
                    &org,
                    cmd,
                    settings.usage_retention_days.value.days(),
                ),
                Command::Audit(cmd) => audit_cmd::run(&mut store, &org, cmd),
                Command::Usage(cmd) => usage_cmd::run(&mut store, &org, cmd),
                // Not reached: `run` answers these before opening the store.
                Command::Config(_) => config_cmd::show(settings),
                Command::Ops(op) => run_operation(&settings.db.value, op),
            };
            outcome.map_err(|e| with_os_cause(e, &store))
        })
}

fn run_operation(db: &std::path::Path, op: OpsCommand) -> CliResult {
    match op {
        OpsCommand::Backup { path, force } => backup_cmd::backup(db, &path, force),
        OpsCommand::Restore { path, yes } => backup_cmd::restore(db, &path, yes),
        OpsCommand::Db(DbCommand::Check) => db_cmd::check(db),
        OpsCommand::Completions { shell } => completions_cmd::completions(shell),
        OpsCommand::Man { dir: None } => completions_cmd::man(),
        OpsCommand::Man { dir: Some(dir) } => completions_cmd::man_pages(&dir),
    }
}

fn exit_code(outcome: CliResult) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(msg)) => {
            eprintln!("error: {}", one_line(&msg));
            ExitCode::from(2)
        }
        Err(CliError::Failed(msg)) => {
            eprintln!("error: {}", one_line(&msg));
            ExitCode::FAILURE
        }
    }
}

/// SQLite says only "disk I/O error"; add why (a full disk, a file-size
/// limit), which the connection still knows.
fn with_os_cause(error: CliError, store: &Store) -> CliError {
    match error {
        CliError::Failed(msg) if msg.ends_with("disk I/O error") => match store.last_os_error() {
            Some(cause) => CliError::Failed(format!("{msg}: {cause}")),
            None => CliError::Failed(msg),
        },
        other => other,
    }
}

/// No subcommand: the console, with the server alongside unless `--no-server`.
fn run_console(settings: &config::Settings) -> ExitCode {
    let listen = settings
        .console_server
        .value
        .then_some(settings.listen.value);
    let log_path = init_file_logging(settings);
    let options = crate::tui::ConsoleOptions {
        db: settings.db.value.clone(),
        org: settings.org.value.clone(),
        listen,
        proxy: settings.proxy_settings(),
        metrics_listen: settings.metrics_listen.value.map(|addr| addr.0),
        usage_retention_days: settings.usage_retention_days.value.days(),
        expiring_within: settings.expiring_within.value.span(),
    };
    match crate::tui::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&causes_once(&e)));
            if let Some(path) = log_path {
                eprintln!("(log: {})", path.display());
            }
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each said once: our errors already put their
/// cause's text in their own message (`cannot open database …: Permission
/// denied`), so a cause already said is not repeated after it.
fn causes_once(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    text
}

/// While the console owns the terminal, logs go to
/// `$XDG_STATE_HOME/plexmcp/plexmcp.log` (mode 0600), never to the screen.
fn init_file_logging(settings: &config::Settings) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = config::log_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    let path = dir.join("plexmcp.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .ok()?;
    crate::logging::init(
        &settings.log_filter_or(config::DEFAULT_SERVE_LOG),
        settings.log_format.value,
        std::sync::Mutex::new(file),
        false,
    )?;
    crate::logging::set_access_log(settings.access_log.value);
    Some(path)
}

/// A one-shot command whose reader went away (`plexmcp keys list | head -1`)
/// ends quietly like other Unix tools, instead of panicking in `println!`
/// (Rust ignores SIGPIPE by default). Not for `serve`: a write to a dead
/// stdio MCP must stay an error there, not kill the gateway.
fn exit_quietly_on_closed_pipe() {
    // SAFETY: restores the default disposition of one signal before any
    // thread is started; no handler code is involved.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Under a file-size limit (`ulimit -f`, RLIMIT_FSIZE) a write past it
/// raises SIGXFSZ, whose default action kills the process mid-transaction
/// without a word. Ignored, the write fails with EFBIG instead: SQLite rolls
/// back and the command reports one error line, like a full disk. Children
/// (stdio MCPs) inherit the ignored disposition, so they too get EFBIG
/// rather than being killed.
fn report_file_size_limit_as_error() {
    // SAFETY: sets the disposition of one signal to "ignore" before any
    // thread is started; no handler code is involved.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Errors are one line on stderr, whatever a lower layer put in them, and
/// echoed input cannot drive the terminal.
fn one_line(msg: &str) -> String {
    let joined = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    format::clean(&joined)
}
