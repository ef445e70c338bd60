//! Carries out the app's effects against the store, off the UI thread, and
//! reports back as actions. The console never waits on SQLite or argon2
//! while drawing: each effect runs on a blocking thread and its result
//! arrives through the event loop's channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::mpsc::UnboundedSender;
use zeroize::Zeroizing;

use super::action::{Action, CopyReport, DETAIL_RECENT, Detail, Operation, OrgChoice, Snapshot};
use super::app::{AUDIT_LOADED, Effect};
use crate::admin::{self, AdminError};
use crate::config;
use crate::domain::{Actor, Handover};
use crate::server::rate_limits::{KeyRateLimits, RateSnapshot};
use crate::server::tool_lists::live_tool_lists;
use crate::store::{AuditQuery, Store, StoreError};
use crate::upstream::Upstreams;

/// One row past what the details list, to know whether there are older ones.
const RECENT_PROBE: u32 = DETAIL_RECENT as u32 + 1;

/// The store, shared by effect threads, plus what the last load saw.
pub struct Executor {
    inner: Arc<Mutex<Inner>>,
    actions: UnboundedSender<Action>,
    actor: Actor,
    /// A routine (tick) refresh is queued or running.
    refreshing: Arc<AtomicBool>,
    /// The upstream health last sent to the app: sent again only on change.
    health_sent: Mutex<Vec<crate::upstream::UpstreamHealth>>,
    /// Where tool lists are asked: the console's server's pool, so the
    /// upstreams it already runs answer (a pool of its own without one).
    upstreams: Upstreams,
}

struct Inner {
    store: Store,
    /// `data_version` at the last load; unchanged means nothing to reload.
    seen_version: Option<i64>,
    /// The in-process server's rate limit counts, when the console serves.
    rate_limits: Option<Arc<KeyRateLimits>>,
    /// The selected key's counts at the last load: they change with time
    /// alone (the last minute moves on), so they are a reason to reload.
    seen_rate: Option<RateSnapshot>,
}

impl Executor {
    pub fn new(store: Store, actions: UnboundedSender<Action>) -> Executor {
        Executor {
            inner: Arc::new(Mutex::new(Inner {
                store,
                seen_version: None,
                rate_limits: None,
                seen_rate: None,
            })),
            actions,
            actor: config::actor_from_env(),
            refreshing: Arc::new(AtomicBool::new(false)),
            health_sent: Mutex::new(Vec::new()),
            upstreams: Upstreams::new(),
        }
    }

    /// Asks tool lists of these upstreams (the console's server's pool).
    pub fn with_upstreams(mut self, upstreams: Upstreams) -> Executor {
        self.upstreams = upstreams;
        self
    }

    /// The pool tool lists are asked through (stopped at exit when it is
    /// the console's own).
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// Reads the org's MCPs on a blocking thread, then asks their upstreams
    /// for their tool lists without holding the store.
    fn load_tools(&self, org: String, slugs: Vec<String>) {
        let inner = self.inner.clone();
        let actions = self.actions.clone();
        let upstreams = self.upstreams.clone();
        tokio::spawn(async move {
            let read = {
                let org = org.clone();
                tokio::task::spawn_blocking(move || {
                    let inner = inner.lock().unwrap_or_else(|p| p.into_inner());
                    let org = inner.store.org(&org)?;
                    inner
                        .store
                        .list_mcps(org.row_id)?
                        .into_iter()
                        .filter(|m| slugs.contains(&m.slug))
                        .map(|m| inner.store.mcp_pins(m.row_id).map(|pins| (m, pins)))
                        .collect::<Result<Vec<_>, _>>()
                })
                .await
            };
            let mcps = match read {
                Ok(Ok(mcps)) => mcps,
                Ok(Err(e)) => {
                    let _ = actions.send(failed(Operation::Load, e.into()));
                    return;
                }
                Err(_) => return,
            };
            let lists = live_tool_lists(&upstreams, &mcps).await;
            let _ = actions.send(Action::ToolsLoaded { org, lists });
        });
    }

    /// Shows the counts of the server this console runs in the detail pane.
    pub fn with_rate_limits(self, limits: Arc<KeyRateLimits>) -> Executor {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rate_limits = Some(limits);
        self
    }

    /// Tells the app how the pool's upstreams are doing when that changed
    /// (read from memory: cheap enough for every tick).
    fn send_health(&self) {
        let health = self.upstreams.health();
        let mut sent = self.health_sent.lock().unwrap_or_else(|p| p.into_inner());
        if *sent != health {
            *sent = health.clone();
            let _ = self.actions.send(Action::UpstreamHealth(health));
        }
    }

    /// Puts `text` on the system clipboard in the background (OSC 52 was
    /// `osc52`), then reports both as `Action::Copied`; the text is dropped
    /// (and zeroed) there.
    pub fn finish_copy(&self, text: Zeroizing<String>, osc52: bool) {
        let actions = self.actions.clone();
        tokio::task::spawn_blocking(move || {
            let system = super::clipboard::system_clipboard(&text);
            drop(text);
            let _ = actions.send(Action::Copied(CopyReport { osc52, system }));
        });
    }

    /// Starts `effect` in the background. (Copy and Quit are the caller's.)
    pub fn spawn(&self, effect: Effect) {
        if let Effect::LoadTools { org, slugs } = effect {
            return self.load_tools(org, slugs);
        }
        // Ticks ask for a refresh every second; on a big database under load
        // one may take longer, so routine refreshes never queue up behind it.
        let routine = matches!(effect, Effect::Refresh { force: false, .. });
        if matches!(effect, Effect::Refresh { .. }) {
            self.send_health();
        }
        if routine && self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let refreshing = self.refreshing.clone();
        let inner = self.inner.clone();
        let actions = self.actions.clone();
        let actor = self.actor.clone();
        tokio::task::spawn_blocking(move || {
            let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
            let results = run(&mut inner, &actor, effect);
            if routine {
                refreshing.store(false, Ordering::Release);
            }
            for action in results {
                if actions.send(action).is_err() {
                    break;
                }
            }
        });
    }
}

fn run(inner: &mut Inner, actor: &Actor, effect: Effect) -> Vec<Action> {
    let now = Utc::now();
    let store = &mut inner.store;
    let mut out = Vec::new();
    let org_slug = match &effect {
        Effect::Refresh { org, .. }
        | Effect::CreateKey { org, .. }
        | Effect::EditKey { org, .. }
        | Effect::RotateKey { org, .. }
        | Effect::RevokeKey { org, .. }
        | Effect::AddMcp { org, .. }
        | Effect::RemoveMcp { org, .. }
        | Effect::SetPinned { org, .. }
        | Effect::ApproveTool { org, .. } => org.clone(),
        Effect::LoadWithheld { org, slug } => return vec![withheld(store, org, slug)],
        Effect::LoadDetail { key_row } => {
            return detail(store, *key_row, inner.rate_limits.as_deref())
                .map_or_else(|e| vec![failed(Operation::Load, e)], |d| vec![d]);
        }
        Effect::LoadAudit { org } => return vec![audit(store, org)],
        Effect::Copy(_) | Effect::Quit | Effect::LoadTools { .. } => return out,
    };
    let org = match store.org(&org_slug) {
        Ok(org) => org,
        Err(e) => return vec![failed(Operation::Load, e.into())],
    };
    let changed = match effect {
        Effect::Refresh { key_row, force, .. } => {
            let version = store.data_version().ok();
            let rate = key_row.and_then(|row| rate_of(inner.rate_limits.as_deref(), row));
            let unchanged = !force && version.is_some() && version == inner.seen_version;
            if unchanged && rate == inner.seen_rate {
                return out;
            }
            inner.seen_version = version;
            inner.seen_rate = rate;
            if unchanged {
                // Only the rate moved on: the store is as it was.
                if let Some(key_row) = key_row {
                    out.push(Action::RateMoved { key_row, rate });
                }
                return out;
            }
            out.push(load(store, &org_slug));
            if let Some(row) = key_row {
                let limits = inner.rate_limits.as_deref();
                out.push(detail(store, row, limits).unwrap_or_else(|e| failed(Operation::Load, e)));
            }
            return out;
        }
        Effect::CreateKey {
            request,
            rate_limit,
            ..
        } => match admin::create_key_limited(store, &org, &request, rate_limit, actor, now) {
            Ok((record, key)) => Action::KeyIssued {
                record: Box::new(record),
                key,
                replaced: None,
            },
            Err(e) => failed(Operation::CreateKey, e),
        },
        Effect::RotateKey { id, handover, .. } => {
            let rotated = admin::find_key(store, &org, &id)
                .and_then(|old| admin::rotate_key(store, &org, &old, handover, actor, now));
            match rotated {
                Ok(rotated) => {
                    let mut summary = admin::handover_summary(&rotated.old, handover, now);
                    if handover == Handover::UNTIL_REVOKED && rotated.old.revoked_at.is_none() {
                        summary = format!("{} (r).", summary.trim_end_matches('.'));
                    }
                    Action::KeyIssued {
                        record: Box::new(rotated.new),
                        key: rotated.key,
                        replaced: Some(summary),
                    }
                }
                Err(e) => failed(Operation::RotateKey, e),
            }
        }
        Effect::RevokeKey { id, .. } => {
            match admin::find_key(store, &org, &id)
                .and_then(|k| admin::revoke_key(store, &k, actor, now))
            {
                Ok(k) => Action::Done(
                    Operation::RevokeKey,
                    format!(
                        "Revoked {} (\"{}\"): it no longer works",
                        k.prefix(),
                        k.name
                    ),
                ),
                Err(e) => failed(Operation::RevokeKey, e),
            }
        }
        Effect::EditKey {
            id,
            request,
            rate_limit,
            ..
        } => {
            match admin::find_key(store, &org, &id)
                .and_then(|k| admin::edit_key_limited(store, &k, &request, rate_limit, actor, now))
            {
                Ok(k) => Action::Done(
                    Operation::EditKey,
                    format!("Updated {} (\"{}\")", k.prefix(), k.name),
                ),
                Err(e) => failed(Operation::EditKey, e),
            }
        }
        Effect::AddMcp { request, .. } => match admin::add_mcp(store, &org, &request, actor, now) {
            Ok(mcp) => Action::Done(Operation::AddMcp, format!("Added MCP '{}'", mcp.slug)),
            Err(e) => failed(Operation::AddMcp, e),
        },
        Effect::RemoveMcp { slug, .. } => match admin::remove_mcp(store, &org, &slug, actor, now) {
            Ok(()) => Action::Done(
                Operation::RemoveMcp,
                format!("Removed MCP '{slug}': keys can no longer call it"),
            ),
            Err(e) => failed(Operation::RemoveMcp, e),
        },
        Effect::SetPinned { slug, pinned, .. } => {
            match admin::set_mcp_pinned(store, &org, &slug, pinned, actor, now) {
                Ok(changed) => Action::Done(Operation::PinMcp, pin_message(&slug, pinned, changed)),
                Err(e) => failed(Operation::PinMcp, e),
            }
        }
        Effect::ApproveTool { slug, tool, .. } => {
            match admin::approve_tools(store, &org, &slug, Some(&tool), actor, now) {
                Ok(_) => Action::Done(
                    Operation::ApproveTool,
                    format!("Approved tool '{tool}' of MCP '{slug}': clients see it again"),
                ),
                Err(e) => failed(Operation::ApproveTool, e),
            }
        }
        Effect::LoadDetail { .. }
        | Effect::LoadAudit { .. }
        | Effect::LoadWithheld { .. }
        | Effect::LoadTools { .. }
        | Effect::Copy(_)
        | Effect::Quit => {
            return out;
        }
    };
    out.push(changed);
    inner.seen_version = store.data_version().ok();
    out.push(load(store, &org_slug));
    out
}

fn pin_message(slug: &str, pinned: bool, changed: bool) -> String {
    match (pinned, changed) {
        (true, true) => {
            format!("Pinned MCP '{slug}': new or changed tools are withheld until approved (t)")
        }
        (false, true) => format!("Unpinned MCP '{slug}': its tools are served as listed"),
        (true, false) => format!("MCP '{slug}' is already pinned"),
        (false, false) => format!("MCP '{slug}' is not pinned"),
    }
}

/// An MCP's recorded tools, for the approval view.
fn withheld(store: &Store, org_slug: &str, slug: &str) -> Action {
    let tools = store
        .org(org_slug)
        .and_then(|org| store.mcp_tools(org.row_id, slug));
    match tools {
        Ok(tools) => Action::WithheldLoaded {
            org: org_slug.to_owned(),
            slug: slug.to_owned(),
            tools,
        },
        Err(e) => failed(Operation::Load, e.into()),
    }
}

fn failed(op: Operation, error: AdminError) -> Action {
    Action::Failed(op, error)
}

/// Everything the list view shows for one org.
fn load(store: &Store, org_slug: &str) -> Action {
    let now = Utc::now();
    let snapshot = (|| -> Result<Snapshot, StoreError> {
        let org = store.org(org_slug)?;
        Ok(Snapshot {
            org_slug: org.slug.clone(),
            plan: org.plan,
            active_keys: store.active_key_count(org.row_id, now)?,
            orgs: store
                .list_orgs(now)?
                .into_iter()
                .map(OrgChoice::from)
                .collect(),
            keys: store.list_keys(org.row_id)?,
            mcps: store.list_mcps(org.row_id)?,
            pins: store.mcp_pin_summaries(org.row_id)?,
        })
    })();
    match snapshot {
        Ok(s) => Action::Loaded(Box::new(s)),
        Err(e) => failed(Operation::Load, e.into()),
    }
}

/// The audit view's events: the org's latest, newest first.
fn audit(store: &Store, org_slug: &str) -> Action {
    let events = store.org(org_slug).and_then(|org| {
        let query = AuditQuery {
            org_id: org.row_id,
            ..AuditQuery::default()
        };
        store.audit_latest(&query, AUDIT_LOADED)
    });
    match events {
        Ok(events) => Action::AuditLoaded {
            org: org_slug.to_owned(),
            events,
        },
        Err(e) => failed(Operation::Load, e.into()),
    }
}

fn detail(
    store: &Store,
    key_row: i64,
    limits: Option<&KeyRateLimits>,
) -> Result<Action, AdminError> {
    let mut usage = store.key_usage(key_row, Utc::now(), RECENT_PROBE)?;
    let lookup = store.lookup_id_of(key_row)?;
    let mut audit = store.audit_for("key", &lookup, RECENT_PROBE)?;
    let more_requests = usage.recent.len() > DETAIL_RECENT;
    let more_events = audit.len() > DETAIL_RECENT;
    usage.recent.truncate(DETAIL_RECENT);
    audit.truncate(DETAIL_RECENT);
    Ok(Action::DetailLoaded(Box::new(Detail {
        key_row,
        usage,
        audit,
        more_requests,
        more_events,
        rate: rate_of(limits, key_row),
    })))
}

/// The key's counts in this console's server (`None` when it serves none).
fn rate_of(limits: Option<&KeyRateLimits>, key_row: i64) -> Option<RateSnapshot> {
    limits.map(|l| {
        l.snapshot(key_row, std::time::Instant::now())
            .unwrap_or_default()
    })
}
