//! How the CLI prints things: aligned tables for people, JSON for scripts.

use std::io::{self, Write};

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use unicode_width::UnicodeWidthStr;

use crate::domain::{KeyRecord, LimitSource, Mcp, McpAccess, RateLimit, Timestamp, ToolAccess};
use crate::rules;
use crate::store::{OrgSummary, PinSummary};

/// RFC 3339 in UTC with whole seconds, as every JSON time field uses.
pub fn rfc3339(at: Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A short human time, always UTC so tables from different hosts agree.
pub fn human(at: Timestamp) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Escapes control, separator and invisible or direction-changing
/// characters (as `\u{202E}`), so stored text can neither drive the
/// terminal nor look like other text.
pub fn clean(s: &str) -> String {
    rules::visible(s).into_owned()
}

/// Prints rows under headers, each column as wide as its widest cell.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.width());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(w - cell.width() + 2));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// The JSON key object scripts rely on; exactly these fields.
#[derive(Debug, Serialize)]
pub struct KeyJson<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub status: &'static str,
    pub mcp_access: serde_json::Value,
    /// Which tools of each granted MCP (`"all"`, or per MCP id).
    pub tool_access: serde_json::Value,
    pub request_count: i64,
    /// The key's own limit; `null` leaves it to the org's default.
    pub rate_limit: Option<RateLimitJson>,
    /// The limit its requests are held to now, with `from` saying whose it is.
    pub effective_rate_limit: Option<RateLimitJson>,
    /// The key this one replaced by rotation (its prefix), or null.
    pub replaces: Option<String>,
    /// The key that replaced this one (its prefix), or null.
    pub replaced_by: Option<String>,
    /// A replaced key's idle limit in seconds (`--revoke-when-idle`), or null.
    pub revoke_when_idle_secs: Option<i64>,
    /// Only when the key was just made (create, rotate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
}

pub fn access_json(access: &McpAccess) -> serde_json::Value {
    match access {
        McpAccess::All => serde_json::Value::from("all"),
        McpAccess::Only(grants) => grants.iter().map(|g| g.slug.as_str()).collect(),
    }
}

/// Which tools of each MCP: `"all"` for a key with access to every MCP,
/// else an object from each granted MCP's id to `"all"` or its tool list.
pub fn tool_access_json(access: &McpAccess) -> serde_json::Value {
    match access {
        McpAccess::All => serde_json::Value::from("all"),
        McpAccess::Only(grants) => grants
            .iter()
            .map(|g| (g.slug.clone(), tools_json(&g.tools)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// `"all"` or the list of names.
pub fn tools_json(tools: &ToolAccess) -> serde_json::Value {
    match tools {
        ToolAccess::All => serde_json::Value::from("all"),
        ToolAccess::Only(names) => serde_json::Value::from(names.clone()),
    }
}

pub fn key_json<'a>(key: &'a KeyRecord, now: Timestamp, full: Option<&'a str>) -> KeyJson<'a> {
    KeyJson {
        id: &key.id,
        name: &key.name,
        description: key.description.as_deref(),
        prefix: key.prefix(),
        created_at: rfc3339(key.created_at),
        last_used_at: key.last_used_at.map(rfc3339),
        expires_at: key.expires_at.map(rfc3339),
        status: key.status(now).as_str(),
        mcp_access: access_json(&key.access),
        tool_access: tool_access_json(&key.access),
        request_count: key.request_count,
        rate_limit: key.rate_limit.map(|l| rate_limit_json(l, None)),
        effective_rate_limit: key
            .effective_rate_limit()
            .map(|(l, from)| rate_limit_json(l, Some(from))),
        replaces: key.rotated_from.as_ref().map(|id| prefixed(id)),
        replaced_by: key.succession.replaced_by.as_ref().map(|id| prefixed(id)),
        revoke_when_idle_secs: key.succession.idle_limit.map(|l| l.num_seconds()),
        key: full,
    }
}

/// A rate limit in JSON: `{"requests": 120, "per": "min", "burst": 20}`.
#[derive(Debug, Serialize)]
pub struct RateLimitJson {
    pub requests: u32,
    /// `s`, `min` or `h`.
    pub per: &'static str,
    pub burst: u32,
    /// `key` or `org`, on an effective limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'static str>,
}

pub fn rate_limit_json(limit: RateLimit, from: Option<LimitSource>) -> RateLimitJson {
    RateLimitJson {
        requests: limit.requests,
        per: limit.per.as_str(),
        burst: limit.burst,
        from: from.map(LimitSource::as_str),
    }
}

/// A key's effective limit for people: `120/min, burst 20 (org default)`.
pub fn rate_limit_text(key: &KeyRecord) -> String {
    match key.effective_rate_limit() {
        None => "none".to_owned(),
        Some((limit, LimitSource::Key)) => limit.to_string(),
        Some((limit, LimitSource::Org)) => format!("{limit} (org default)"),
    }
}

/// Pretty JSON in which every character `rules::visible` would escape is
/// a `\uXXXX` escape: the same strings to any JSON parser, but nothing a
/// terminal showing the output would act on or hide.
pub fn print_json(value: &impl Serialize) -> Result<(), serde_json::Error> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, TerminalSafe(PrettyFormatter::new()));
    value.serialize(&mut ser)?;
    println!("{}", String::from_utf8_lossy(&out));
    Ok(())
}

/// One line of JSON (for NDJSON), escaped like `print_json`.
pub fn write_json_line(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, TerminalSafe(CompactFormatter));
    value.serialize(&mut ser).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// A serde_json formatter plus `\uXXXX` escapes for unsafe characters.
struct TerminalSafe<F>(F);

impl<F: Formatter> Formatter for TerminalSafe<F> {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some((at, c)) = rest
            .char_indices()
            .find(|&(_, c)| rules::is_unsafe_to_show(c))
        {
            writer.write_all(&rest.as_bytes()[..at])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

pub fn expires_cell(key: &KeyRecord) -> String {
    key.expires_at.map_or_else(|| "Never".to_string(), human)
}

/// The expiry with the time left in words (`… (in 3 h)`), for `keys show`.
pub fn expires_in(key: &KeyRecord, now: Timestamp) -> String {
    // A replaced key that went unused past its idle limit ended then, though
    // its date has not come: say so rather than "in 20 h".
    if key.idle_ended(now) && key.revoked_at.is_none() {
        let ended = key.succession.idle_end().map_or_else(String::new, human);
        return format!("{ended} (ended early: unused)");
    }
    match key.expires_at {
        None => "Never".to_string(),
        Some(at) if at > now => format!("{} (in {})", human(at), rules::time_left(now, at)),
        Some(at) => format!("{} (expired)", human(at)),
    }
}

/// A compact age: `just now`, `5 min ago`, `3 h ago`, `2 days ago`.
pub fn ago(now: Timestamp, at: Timestamp) -> String {
    match rules::span_words(now - at).as_str() {
        "now" | "less than a minute" => "just now".to_owned(),
        words => format!("{words} ago"),
    }
}

fn prefixed(id: &str) -> String {
    format!("{}{id}", crate::keys::KEY_PREFIX)
}

pub fn last_used_cell(key: &KeyRecord) -> String {
    key.last_used_at.map_or_else(|| "never".to_string(), human)
}

#[derive(Debug, Serialize)]
pub struct McpJson<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub transport: &'static str,
    pub command: Option<&'a str>,
    pub args: Option<&'a [String]>,
    /// Redacted: userinfo and query values may be credentials.
    pub url: Option<String>,
    /// Names only: values may be credentials.
    pub env: Vec<&'a str>,
    /// Names of plexmcp's variables a stdio MCP inherits.
    pub inherit_env: Vec<&'a str>,
    pub headers: Vec<&'a str>,
    pub timeout_secs: u64,
    pub created_at: String,
    /// New or changed tools are withheld until approved.
    pub pinned: bool,
    /// Tools its upstream lists now, as far as the gateway has seen.
    pub tools: usize,
    /// New or changed tools kept from clients (0 unless pinned).
    pub withheld: usize,
    /// When any of its tools last appeared, changed or went.
    pub tools_changed_at: Option<String>,
}

pub fn mcp_json(mcp: &Mcp, pins: PinSummary) -> McpJson<'_> {
    use crate::domain::McpTransport::*;
    let (command, args, url, env, headers) = match &mcp.transport {
        Stdio {
            command, args, env, ..
        } => (
            Some(command.as_str()),
            Some(args.as_slice()),
            None,
            env.iter().map(|(k, _)| k.as_str()).collect(),
            Vec::new(),
        ),
        Http { url, headers } => (
            None,
            None,
            Some(crate::redact::redacted_url(url)),
            Vec::new(),
            headers.iter().map(|(k, _)| k.as_str()).collect(),
        ),
    };
    McpJson {
        id: &mcp.slug,
        name: &mcp.name,
        transport: mcp.transport.kind(),
        command,
        args,
        url,
        env,
        inherit_env: mcp.transport.inherited_names(),
        headers,
        timeout_secs: mcp.timeout.as_secs(),
        created_at: rfc3339(mcp.created_at),
        pinned: pins.pinned,
        tools: pins.tools,
        withheld: withheld(pins),
        tools_changed_at: pins.last_changed.map(rfc3339),
    }
}

/// How many tools an MCP keeps from clients now: its pending ones, if pinned.
pub fn withheld(pins: PinSummary) -> usize {
    if pins.pinned { pins.pending } else { 0 }
}

#[derive(Debug, Serialize)]
pub struct OrgJson<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub plan: &'static str,
    pub active_keys: u32,
    /// `null` on the unlimited enterprise plan.
    pub key_limit: Option<u32>,
    pub total_keys: u32,
    pub mcps: u32,
    /// The default for keys without a limit of their own; `null`: none.
    pub rate_limit: Option<RateLimitJson>,
    pub created_at: String,
}

pub fn org_json(s: &OrgSummary) -> OrgJson<'_> {
    OrgJson {
        slug: &s.org.slug,
        name: &s.org.name,
        plan: s.org.plan.as_str(),
        active_keys: s.active_keys,
        key_limit: s.org.plan.key_limit(),
        total_keys: s.total_keys,
        mcps: s.mcps,
        rate_limit: s.org.rate_limit.map(|l| rate_limit_json(l, None)),
        created_at: rfc3339(s.org.created_at),
    }
}

/// A size for people: bytes, KiB, MiB or GiB with one decimal above bytes.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

pub fn limit_text(limit: Option<u32>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |l| l.to_string())
}
