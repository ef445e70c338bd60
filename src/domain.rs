//! The nouns of plexmcp — organizations, MCPs, API keys, audit events — as
//! plain data shared by the store, the CLI, the server and the console.
//! Nothing here does I/O; rules about them live in `rules`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

mod succession;
pub use succession::{Handover, Succession};

/// Points in time are UTC with one-second resolution everywhere.
pub type Timestamp = DateTime<Utc>;

/// An organization's plan; it bounds how many keys may be active at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plan {
    Free,
    Pro,
    Team,
    Enterprise,
}

impl Plan {
    pub const ALL: [Plan; 4] = [Plan::Free, Plan::Pro, Plan::Team, Plan::Enterprise];

    /// Keys that may be active (neither revoked nor expired) at once; `None` is unlimited.
    pub fn key_limit(self) -> Option<u32> {
        match self {
            Plan::Free => Some(5),
            Plan::Pro => Some(20),
            Plan::Team => Some(50),
            Plan::Enterprise => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Team => "team",
            Plan::Enterprise => "enterprise",
        }
    }

    /// The next plan up, named in "limit reached" messages.
    pub fn next_up(self) -> Option<Plan> {
        match self {
            Plan::Free => Some(Plan::Pro),
            Plan::Pro => Some(Plan::Team),
            Plan::Team => Some(Plan::Enterprise),
            Plan::Enterprise => None,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Plan {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plan::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown plan '{s}' (expected free, pro, team or enterprise)"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub row_id: i64,
    pub slug: String,
    pub name: String,
    pub plan: Plan,
    pub created_at: Timestamp,
    /// The default rate limit of keys without one of their own.
    pub rate_limit: Option<RateLimit>,
}

/// How plexmcp reaches an upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum McpTransport {
    /// Spawn `command args…` and speak MCP over its stdin/stdout. The child
    /// does not inherit plexmcp's environment: it gets a short allowlist,
    /// the variables named in `inherit_env`, and `env`.
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        /// Names of plexmcp's own variables passed on as they are.
        inherit_env: Vec<String>,
    },
    /// A Streamable HTTP endpoint; `headers` go with every request
    /// (typically `Authorization`).
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
}

impl McpTransport {
    pub fn kind(&self) -> &'static str {
        match self {
            McpTransport::Stdio { .. } => "stdio",
            McpTransport::Http { .. } => "http",
        }
    }

    /// A one-line description for people and the audit trail: no env or
    /// header values, and the URL redacted, since all may hold credentials.
    pub fn target(&self) -> String {
        match self {
            McpTransport::Stdio { command, args, .. } => {
                let mut words = vec![
                    shlex::try_quote(command).map_or_else(|_| command.clone(), |q| q.into_owned()),
                ];
                words.extend(
                    args.iter().map(|a| {
                        shlex::try_quote(a).map_or_else(|_| a.clone(), |q| q.into_owned())
                    }),
                );
                words.join(" ")
            }
            McpTransport::Http { url, .. } => crate::redact::redacted_url(url),
        }
    }

    /// Names of env variables or headers, never their values.
    pub fn secret_names(&self) -> Vec<&str> {
        match self {
            McpTransport::Stdio { env, .. } => env.iter().map(|(k, _)| k.as_str()).collect(),
            McpTransport::Http { headers, .. } => headers.iter().map(|(k, _)| k.as_str()).collect(),
        }
    }

    /// Names of plexmcp's own variables a stdio MCP is given (`--inherit-env`).
    pub fn inherited_names(&self) -> Vec<&str> {
        match self {
            McpTransport::Stdio { inherit_env, .. } => {
                inherit_env.iter().map(String::as_str).collect()
            }
            McpTransport::Http { .. } => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mcp {
    pub row_id: i64,
    pub org_id: i64,
    pub slug: String,
    pub name: String,
    pub transport: McpTransport,
    pub timeout: Duration,
    pub created_at: Timestamp,
}

/// Which MCPs a key may call, and which tools of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpAccess {
    /// Every MCP of the org, all their tools, including MCPs added later.
    All,
    /// Only these MCPs (live ones; removed MCPs drop out), sorted by slug.
    Only(Vec<McpGrant>),
}

/// One MCP a key with specific access may use, and which of its tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpGrant {
    pub slug: String,
    pub tools: ToolAccess,
}

/// The tools of a granted MCP a key may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolAccess {
    /// Every tool, including ones the upstream adds later.
    All,
    /// Only these names: sorted and without duplicates (see
    /// [`ToolAccess::only`]), so checking one is a binary search of the
    /// cached key, with nothing allocated per request.
    Only(Vec<String>),
}

impl ToolAccess {
    /// A tool list in the order lookups need: sorted, duplicates dropped.
    pub fn only(mut tools: Vec<String>) -> ToolAccess {
        tools.sort_unstable();
        tools.dedup();
        ToolAccess::Only(tools)
    }

    pub fn allows(&self, tool: &str) -> bool {
        match self {
            ToolAccess::All => true,
            ToolAccess::Only(tools) => tools.binary_search_by(|t| t.as_str().cmp(tool)).is_ok(),
        }
    }
}

impl McpGrant {
    /// A grant of every tool of `slug`.
    pub fn all_tools(slug: impl Into<String>) -> McpGrant {
        McpGrant {
            slug: slug.into(),
            tools: ToolAccess::All,
        }
    }

    /// As the CLI takes it: `github` or `github:get_issue,search_issues`.
    pub fn describe(&self) -> String {
        match &self.tools {
            ToolAccess::All => self.slug.clone(),
            ToolAccess::Only(tools) => format!("{}:{}", self.slug, tools.join(",")),
        }
    }
}

impl McpAccess {
    /// Every tool of each of `slugs`, sorted by slug.
    pub fn only_mcps<S: Into<String>>(slugs: impl IntoIterator<Item = S>) -> McpAccess {
        McpAccess::only(slugs.into_iter().map(McpGrant::all_tools).collect())
    }

    /// Specific access, in the order lookups and displays expect.
    pub fn only(mut grants: Vec<McpGrant>) -> McpAccess {
        grants.sort_by(|a, b| a.slug.cmp(&b.slug));
        McpAccess::Only(grants)
    }

    pub fn allows(&self, slug: &str) -> bool {
        self.tools_of(slug).is_some()
    }

    /// Which tools of `slug` the key may call; `None` if not the MCP at all.
    pub fn tools_of(&self, slug: &str) -> Option<&ToolAccess> {
        match self {
            McpAccess::All => Some(&ToolAccess::All),
            McpAccess::Only(grants) => grants.iter().find(|g| g.slug == slug).map(|g| &g.tools),
        }
    }

    /// Whether the key may call `tool` of the MCP `slug`.
    pub fn allows_tool(&self, slug: &str, tool: &str) -> bool {
        self.tools_of(slug).is_some_and(|tools| tools.allows(tool))
    }

    /// The granted MCPs' slugs (none for `All`, which names no MCP).
    pub fn slugs(&self) -> impl Iterator<Item = &str> {
        let grants: &[McpGrant] = match self {
            McpAccess::All => &[],
            McpAccess::Only(grants) => grants,
        };
        grants.iter().map(|g| g.slug.as_str())
    }

    /// `all`, `none`, or the grants as the CLI takes them:
    /// `everything, github:get_issue,search_issues`.
    pub fn describe(&self) -> String {
        match self {
            McpAccess::All => "all".to_string(),
            McpAccess::Only(grants) if grants.is_empty() => "none".to_string(),
            McpAccess::Only(grants) => grants
                .iter()
                .map(McpGrant::describe)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
        }
    }

    /// Capitalised, for tables and the console.
    pub fn label(self) -> &'static str {
        match self {
            KeyStatus::Active => "Active",
            KeyStatus::Expired => "Expired",
            KeyStatus::Revoked => "Revoked",
        }
    }
}

/// An API key as stored: everything but its secret, which is never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub row_id: i64,
    pub org_id: i64,
    /// Public lookup id, the part of the key after `pmcp_` that identifies it.
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: Timestamp,
    pub created_by: String,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub revoked_by: Option<String>,
    /// The lookup id of the key this one replaced by rotation.
    pub rotated_from: Option<String>,
    pub last_used_at: Option<Timestamp>,
    pub request_count: i64,
    pub access: McpAccess,
    /// The key's own rate limit; `None` leaves it to the org's default.
    pub rate_limit: Option<RateLimit>,
    /// The org's default rate limit when the key was read, carried here so
    /// every request finds its effective limit without another lookup.
    pub org_rate_limit: Option<RateLimit>,
    /// What rotation left on this key if another replaced it.
    pub succession: Succession,
}

impl KeyRecord {
    /// Status is derived, never stored: expiry needs no job to flip a flag.
    pub fn status(&self, now: Timestamp) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) || self.idle_ended(now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    pub fn prefix(&self) -> String {
        format!("{}{}", crate::keys::KEY_PREFIX, self.id)
    }

    /// A replaced key given an idle limit that went unused that long: it
    /// ended then, and counts as expired from that moment.
    pub fn idle_ended(&self, now: Timestamp) -> bool {
        self.succession.idle_end().is_some_and(|at| at <= now)
    }

    /// The limit requests with this key are held to, and where it comes
    /// from: its own, else the org's default, else none.
    pub fn effective_rate_limit(&self) -> Option<(RateLimit, LimitSource)> {
        match (self.rate_limit, self.org_rate_limit) {
            (Some(own), _) => Some((own, LimitSource::Key)),
            (None, Some(org)) => Some((org, LimitSource::Org)),
            (None, None) => None,
        }
    }
}

/// The unit a rate limit counts requests over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RatePeriod {
    Second,
    Minute,
    Hour,
}

impl RatePeriod {
    pub fn seconds(self) -> u64 {
        match self {
            RatePeriod::Second => 1,
            RatePeriod::Minute => 60,
            RatePeriod::Hour => 3600,
        }
    }

    /// The period with this length in seconds (how the store keeps it).
    pub fn from_seconds(secs: i64) -> Option<RatePeriod> {
        match secs {
            1 => Some(RatePeriod::Second),
            60 => Some(RatePeriod::Minute),
            3600 => Some(RatePeriod::Hour),
            _ => None,
        }
    }

    /// As written after the slash: `s`, `min`, `h`.
    pub fn as_str(self) -> &'static str {
        match self {
            RatePeriod::Second => "s",
            RatePeriod::Minute => "min",
            RatePeriod::Hour => "h",
        }
    }
}

/// A token bucket: `requests` per `per` on average, at most `burst` at
/// once. Both counts are at least 1 (see `rules::rate_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub requests: u32,
    pub per: RatePeriod,
    pub burst: u32,
}

impl RateLimit {
    /// Time between two requests at the sustained rate.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.per.seconds()) / self.requests.max(1)
    }

    /// The rate alone, as the CLI takes it: `120/min`.
    pub fn rate(&self) -> String {
        format!("{}/{}", self.requests, self.per.as_str())
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}, burst {}",
            self.requests,
            self.per.as_str(),
            self.burst
        )
    }
}

/// Whose setting a key's effective rate limit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    Key,
    Org,
}

impl LimitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitSource::Key => "key",
            LimitSource::Org => "org",
        }
    }
}

/// Who made an administrative change: the OS user, and the SSH client's
/// address when the change came over SSH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: String,
    pub addr: Option<String>,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.addr {
            Some(addr) => write!(f, "{} (ssh from {addr})", self.user),
            None => f.write_str(&self.user),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Timestamp,
    pub actor: String,
    pub actor_addr: Option<String>,
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub detail: Option<String>,
}
