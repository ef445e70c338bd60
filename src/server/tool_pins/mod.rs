//! Tool pinning, the gateway's side: every tool list that passes through
//! (a session's `tools/list` on `/mcp/{id}` or `/mcp`, a stateless one,
//! one-shot JSON-RPC, the REST pool's own listing) is fingerprinted; what
//! this process had not seen yet goes to the writer (`writer`), never to
//! SQLite on the request path. On a pinned MCP a tool whose fingerprint is
//! not the approved one is taken out of the list, and a call to it is
//! refused, until the operator approves it.
//!
//! Decisions read a per-MCP snapshot of the store (pinned or not, each
//! tool's seen and approved fingerprints), cached until the auth
//! generation moves (pinning, unpinning, approving and any fingerprint
//! change of a pinned MCP bump it), so any process's change holds from
//! the next request on. Over the snapshot lies what this process saw
//! itself, which may be newer than the writer has committed.
//!
//! A pinned MCP with no recorded tools trusts its first listing (as SSH
//! trusts a host key on first use): the operator who pins a new MCP has
//! just chosen it, and withholding everything would only make them approve
//! blindly. Every later new or changed tool waits for approval.

mod fingerprint;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rmcp::model::Tool;
use serde_json::Value;

use crate::store::{McpPins, PinnedTool, SeenTool, Store, StoreError, ToolObservation};
pub use fingerprint::{fingerprint, of_entry, of_tool};
use writer::Recorder;

/// The MCP a list or call belongs to: its row (what pins are kept by) and id.
#[derive(Debug, Clone, Copy)]
pub struct McpRef<'a> {
    pub row: i64,
    pub slug: &'a str,
}

/// Why a call to a tool is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withheld {
    /// Listed with another fingerprint than the approved one.
    Changed { mcp: String, tool: String },
    /// Listed, never approved.
    New { mcp: String, tool: String },
    /// Neither listed nor approved: as if there were no such tool.
    Unknown,
    /// The store could not say (logged): refused rather than guessed.
    Unreadable,
}

impl Withheld {
    /// The message a client is told: it names the tool, which its
    /// operator needs to know to approve it.
    pub fn message(&self) -> Option<String> {
        match self {
            Withheld::Changed { mcp, tool } => Some(format!(
                "tool '{tool}' of MCP '{mcp}' changed and awaits approval"
            )),
            Withheld::New { mcp, tool } => Some(format!(
                "tool '{tool}' of MCP '{mcp}' is new and awaits approval"
            )),
            Withheld::Unknown | Withheld::Unreadable => None,
        }
    }
}

/// A snapshot of one MCP's pins, or the knowledge that it could not be read.
#[derive(Clone)]
enum Policy {
    Known(Arc<McpPins>),
    Unreadable,
}

struct Cache {
    /// The auth generation `policies` were read under.
    generation: i64,
    policies: HashMap<i64, Policy>,
    /// Each MCP's tools as this process saw them last (name to
    /// fingerprint): kept across generations, so the writer is only told
    /// about changes.
    seen: HashMap<i64, HashMap<String, String>>,
    /// The REST pool's tool list last fingerprinted, per MCP: the pool
    /// hands out the same list until it re-lists, so it is hashed once.
    pool_lists: HashMap<i64, Arc<Vec<Tool>>>,
}

/// The gateway's tool pins: the cache, a reader for it, and the writer.
pub struct ToolPins {
    cache: Mutex<Cache>,
    reader: Arc<tokio::sync::Mutex<Store>>,
    recorder: Recorder,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only caches live behind it; a panic elsewhere leaves them usable.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl ToolPins {
    /// Opens a reader and a writer connection next to `store`.
    pub fn start(store: &Store) -> Result<ToolPins, StoreError> {
        let recorder = Recorder::start(store.reopen()?).map_err(|e| StoreError::Io {
            path: store.path().display().to_string(),
            source: e,
        })?;
        Ok(ToolPins {
            cache: Mutex::new(Cache {
                generation: i64::MIN,
                policies: HashMap::new(),
                seen: HashMap::new(),
                pool_lists: HashMap::new(),
            }),
            reader: Arc::new(tokio::sync::Mutex::new(store.reopen()?)),
            recorder,
        })
    }

    /// Decisions as of auth generation `generation` (the verifier's, read
    /// by the request's authentication just before).
    pub fn at(self: &Arc<Self>, generation: i64) -> PinsAt {
        PinsAt {
            pins: self.clone(),
            generation,
        }
    }

    /// Waits until every observation so far is committed (at shutdown).
    pub async fn flush(&self) {
        self.recorder.flush().await;
    }
}

/// [`ToolPins`] for one request: what it decides by.
#[derive(Clone)]
pub struct PinsAt {
    pins: Arc<ToolPins>,
    generation: i64,
}

impl PinsAt {
    /// Takes out of `tools` (one MCP's listing; `complete` if it is the
    /// whole list, not one page) what a pinned MCP withholds, and records
    /// what changed.
    pub async fn withhold_tools(&self, mcp: McpRef<'_>, tools: &mut Vec<Tool>, complete: bool) {
        let seen: Vec<SeenTool> = tools.iter().map(of_tool).collect();
        let keep = self.judge(mcp, seen, complete).await;
        let mut verdicts = keep.into_iter();
        tools.retain(|_| verdicts.next().unwrap_or(false));
    }

    /// [`Self::withhold_tools`] for entries as JSON (the aggregate's).
    /// An entry without a name is withheld on a pinned MCP: it cannot be approved.
    pub async fn withhold_entries(&self, mcp: McpRef<'_>, entries: &mut Vec<Value>) {
        let seen: Vec<Option<SeenTool>> = entries.iter().map(of_entry).collect();
        let named: Vec<SeenTool> = seen.iter().flatten().cloned().collect();
        let keep = self.judge(mcp, named, true).await;
        let mut verdicts = keep.into_iter();
        let nameless_kept = !self.policy(mcp).await.is_pinned();
        let kept: Vec<bool> = seen
            .iter()
            .map(|s| match s {
                Some(_) => verdicts.next().unwrap_or(false),
                None => nameless_kept,
            })
            .collect();
        let mut kept = kept.into_iter();
        entries.retain(|_| kept.next().unwrap_or(false));
    }

    /// Which tools of the REST pool's list of an MCP a client may see,
    /// tool by tool. The list is fingerprinted and recorded only when it
    /// is not the one seen last (the pool re-lists when the upstream says
    /// its tools changed, or on a new connection), and judged only on a
    /// pinned MCP: an unpinned one costs a pointer comparison.
    pub async fn visible_in_pool_list(&self, mcp: McpRef<'_>, list: &Arc<Vec<Tool>>) -> Vec<bool> {
        let fresh = {
            let mut cache = lock(&self.pins.cache);
            match cache.pool_lists.get(&mcp.row) {
                Some(last) if Arc::ptr_eq(last, list) => false,
                _ => {
                    cache.pool_lists.insert(mcp.row, list.clone());
                    true
                }
            }
        };
        if !fresh && !self.policy(mcp).await.is_pinned() {
            return vec![true; list.len()];
        }
        let seen = list.iter().map(of_tool).collect();
        self.judge(mcp, seen, true).await
    }

    /// Whether `mcp` is pinned (or its pins cannot be read: treated as pinned).
    pub async fn is_pinned(&self, mcp: McpRef<'_>) -> bool {
        self.policy(mcp).await.is_pinned()
    }

    /// The check of a call that goes over the REST pool (REST calls and
    /// one-shot JSON-RPC): on a pinned MCP the pool lists the upstream's
    /// tools afresh (it otherwise re-lists only when told they changed,
    /// which an upstream changing a tool under the operator need not say),
    /// and that list is judged before the call goes out. A pool that
    /// cannot list leaves the call to fail as it would anyway.
    pub async fn pool_call_refusal(
        &self,
        upstreams: &crate::upstream::Upstreams,
        spec: &crate::upstream::UpstreamSpec,
        mcp: McpRef<'_>,
        tool: &str,
    ) -> Option<Withheld> {
        if self.is_pinned(mcp).await {
            upstreams.relist_next(spec);
        }
        let Ok(list) = upstreams.tools(spec).await else {
            return None;
        };
        self.visible_in_pool_list(mcp, &list).await;
        match self.refusal(mcp, tool).await {
            // Not in the pool's list either: the pool answers "unknown tool".
            Some(Withheld::Unknown) if !list.iter().any(|t| t.name == tool) => None,
            refusal => refusal,
        }
    }

    /// Whether a call to `tool` of `mcp` must be refused, and why.
    pub async fn refusal(&self, mcp: McpRef<'_>, tool: &str) -> Option<Withheld> {
        let pins = match self.policy(mcp).await {
            Policy::Known(pins) if !pins.pinned => return None,
            Policy::Known(pins) => pins,
            Policy::Unreadable => return Some(Withheld::Unreadable),
        };
        let recorded = pins.tools.get(tool);
        let current = {
            let cache = lock(&self.pins.cache);
            match cache.seen.get(&mcp.row) {
                // This process's own view once it has one: its upstream's.
                Some(seen) => seen.get(tool).cloned(),
                None => recorded.filter(|t| !t.removed).map(|t| t.seen.clone()),
            }
        };
        let approved = recorded.and_then(|t| t.approved.as_deref());
        let named = || (mcp.slug.to_owned(), tool.to_owned());
        match (current, approved) {
            (Some(current), Some(approved)) if current == approved => None,
            (Some(_), Some(_)) => {
                let (mcp, tool) = named();
                Some(Withheld::Changed { mcp, tool })
            }
            (Some(_), None) => {
                let (mcp, tool) = named();
                Some(Withheld::New { mcp, tool })
            }
            (None, _) => Some(Withheld::Unknown),
        }
    }

    /// Records what `seen` (one listing) changed and says, tool by tool,
    /// whether a client may see it.
    async fn judge(&self, mcp: McpRef<'_>, seen: Vec<SeenTool>, complete: bool) -> Vec<bool> {
        let policy = self.policy(mcp).await;
        let mut cache = lock(&self.pins.cache);
        let cache = &mut *cache;
        let first_seen = !cache.seen.contains_key(&mcp.row);
        let known = cache.seen.entry(mcp.row).or_insert_with(|| match &policy {
            Policy::Known(pins) => pins
                .tools
                .iter()
                .filter(|(_, t)| !t.removed)
                .map(|(name, t)| (name.clone(), t.seen.clone()))
                .collect(),
            Policy::Unreadable => HashMap::new(),
        });
        let changed: Vec<SeenTool> = seen
            .iter()
            .filter(|t| t.name.len() <= fingerprint::MAX_TOOL_NAME_BYTES)
            .filter(|t| known.get(&t.name) != Some(&t.hash))
            .cloned()
            .collect();
        let removed: Vec<String> = if complete {
            let listed: std::collections::HashSet<&str> =
                seen.iter().map(|t| t.name.as_str()).collect();
            known
                .keys()
                .filter(|name| !listed.contains(name.as_str()))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        if !changed.is_empty() || !removed.is_empty() {
            // Bounded like the store's rows: a hostile upstream's endless
            // new names are neither remembered nor recorded beyond it.
            let room = crate::store::MAX_TOOLS_PER_MCP.saturating_sub(known.len());
            let changed: Vec<SeenTool> = changed
                .into_iter()
                .filter(|t| known.contains_key(&t.name))
                .chain(
                    seen.iter()
                        .filter(|t| t.name.len() <= fingerprint::MAX_TOOL_NAME_BYTES)
                        .filter(|t| !known.contains_key(&t.name))
                        .take(room)
                        .cloned(),
                )
                .collect();
            let observation = ToolObservation {
                mcp_row: mcp.row,
                changed,
                removed,
            };
            if self.pins.recorder.record(observation.clone()) {
                for name in &observation.removed {
                    known.remove(name);
                }
                for tool in &observation.changed {
                    known.insert(tool.name.clone(), tool.hash.clone());
                }
            } else {
                tracing::warn!(
                    mcp = mcp.slug,
                    "tool fingerprint queue full; recorded on a later listing"
                );
            }
        }
        let pins = match policy {
            Policy::Known(pins) if !pins.pinned => return vec![true; seen.len()],
            Policy::Known(pins) => pins,
            Policy::Unreadable => return vec![false; seen.len()],
        };
        if pins.tools.is_empty() && first_seen {
            // Trust on first use (see the module); the writer records the
            // same approval, and until then this process decides by it.
            let trusted = McpPins {
                pinned: true,
                tools: seen
                    .iter()
                    .map(|t| {
                        let tool = PinnedTool {
                            seen: t.hash.clone(),
                            approved: Some(t.hash.clone()),
                            removed: false,
                        };
                        (t.name.clone(), tool)
                    })
                    .collect(),
            };
            if cache.generation == self.generation {
                cache
                    .policies
                    .insert(mcp.row, Policy::Known(Arc::new(trusted)));
            }
            return vec![true; seen.len()];
        }
        seen.iter().map(|t| approved_as_listed(&pins, t)).collect()
    }

    /// The MCP's pins under this request's generation: cached, or read.
    async fn policy(&self, mcp: McpRef<'_>) -> Policy {
        let stale = {
            let mut cache = lock(&self.pins.cache);
            // Only a newer generation replaces the cache: a request that
            // authenticated earlier must not drop fresher state.
            if self.generation > cache.generation {
                cache.generation = self.generation;
                cache.policies.clear();
            }
            if self.generation == cache.generation
                && let Some(policy) = cache.policies.get(&mcp.row)
            {
                return policy.clone();
            }
            self.generation < cache.generation
        };
        let policy = self.read(mcp).await;
        if stale {
            return policy;
        }
        let mut cache = lock(&self.pins.cache);
        if cache.generation == self.generation && matches!(policy, Policy::Known(_)) {
            cache.policies.insert(mcp.row, policy.clone());
        }
        policy
    }

    async fn read(&self, mcp: McpRef<'_>) -> Policy {
        let reader = self.pins.reader.clone().lock_owned().await;
        let row = mcp.row;
        let read = tokio::task::spawn_blocking(move || reader.mcp_pins(row)).await;
        match read {
            Ok(Ok(pins)) => Policy::Known(Arc::new(pins)),
            Ok(Err(e)) => {
                tracing::error!(mcp = mcp.slug, error = %e, "reading tool pins failed");
                Policy::Unreadable
            }
            Err(e) => {
                tracing::error!(mcp = mcp.slug, error = %e, "reading tool pins failed");
                Policy::Unreadable
            }
        }
    }
}

impl Policy {
    fn is_pinned(&self) -> bool {
        match self {
            Policy::Known(pins) => pins.pinned,
            Policy::Unreadable => true,
        }
    }
}

/// Whether clients are shown `tool` under the pins the store holds, as
/// the gateway decides on a listing: everything on an unpinned MCP; on a
/// pinned one only tools approved as they are listed now, or every tool
/// while none is recorded yet (trust on first use). For the access
/// preview, which must not record what it sees.
pub fn shown_by(pins: &McpPins, tool: &Tool) -> bool {
    if !pins.pinned || pins.tools.is_empty() {
        return true;
    }
    approved_as_listed(pins, &fingerprint::of_tool(tool))
}

/// Whether `seen` is approved with the fingerprint it is listed with now.
fn approved_as_listed(pins: &McpPins, seen: &SeenTool) -> bool {
    pins.tools
        .get(&seen.name)
        .and_then(|p| p.approved.as_deref())
        == Some(seen.hash.as_str())
}

/// The JSON-RPC error code of a withheld tool's refusal (server-defined range).
pub const TOOL_WITHHELD_CODE: i64 = -32005;

/// The REST answer to a call the pins refuse (REST and one-shot JSON-RPC
/// map it to their own shape): `Ok` lets the call go on.
pub async fn pool_call_allowed(
    state: &super::AppState,
    mcp: &crate::domain::Mcp,
    spec: &crate::upstream::UpstreamSpec,
    tool: &str,
) -> Result<(), super::ApiError> {
    let at = state.pins.at(state.verifier.generation());
    let mcp_ref = McpRef {
        row: mcp.row_id,
        slug: &mcp.slug,
    };
    match at
        .pool_call_refusal(&state.upstreams, spec, mcp_ref, tool)
        .await
    {
        None => Ok(()),
        Some(Withheld::Unknown) => Err(super::ApiError::UnknownTool {
            mcp: mcp.slug.clone(),
            tool: tool.to_owned(),
        }),
        Some(Withheld::Unreadable) => Err(super::ApiError::Internal),
        Some(withheld) => Err(super::ApiError::ToolWithheld(
            withheld.message().unwrap_or_default(),
        )),
    }
}

/// Makes the pool list `mcp`'s tools afresh for the next use if it is
/// pinned (see [`PinsAt::pool_call_refusal`]): a one-shot `tools/list`
/// then shows what the upstream lists now.
pub async fn relist_if_pinned(
    state: &super::AppState,
    mcp: &crate::domain::Mcp,
    spec: &crate::upstream::UpstreamSpec,
) {
    let mcp_ref = McpRef {
        row: mcp.row_id,
        slug: &mcp.slug,
    };
    if state
        .pins
        .at(state.verifier.generation())
        .is_pinned(mcp_ref)
        .await
    {
        state.upstreams.relist_next(spec);
    }
}

/// Which tools of `mcp`'s pool list a one-shot `tools/list` may show.
pub async fn visible_in(
    state: &super::AppState,
    mcp: &crate::domain::Mcp,
    list: &Arc<Vec<Tool>>,
) -> Vec<bool> {
    let mcp_ref = McpRef {
        row: mcp.row_id,
        slug: &mcp.slug,
    };
    state
        .pins
        .at(state.verifier.generation())
        .visible_in_pool_list(mcp_ref, list)
        .await
}
