//! Closes the upstream connections of MCPs that are no longer configured.
//!
//! The pool names a connection after the MCP's slug and row id, so a removed
//! MCP (or one removed and added again, which gets a new row) would keep its
//! stdio child running, environment and all, until the server exits. This
//! task looks every [`INTERVAL`] whether MCPs may have changed — cheaply: an
//! in-memory `data_version`, then the auth generation only after some commit
//! — re-reads the live MCPs of every org when they may have, and has the
//! pool retain only those. It has its own store connection, does store work
//! on a blocking thread, and ends when the server's cancellation fires.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::mcp::upstream_name;
use crate::store::{Store, StoreError};
use crate::upstream::Upstreams;

/// How often the reaper looks for removed MCPs.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Starts the reaper; it runs until `cancel` fires.
pub fn spawn(store: Store, upstreams: Upstreams, cancel: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(run(Arc::new(Mutex::new(store)), upstreams, cancel))
}

/// The store's change counters when the live set was last known current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    data_version: i64,
    generation: i64,
}

async fn run(store: Arc<Mutex<Store>>, upstreams: Upstreams, cancel: CancellationToken) {
    let mut seen: Option<Seen> = None;
    let mut live: Option<HashSet<String>> = None;
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // Taken before the change check: if nothing changed, the live set
        // is current as of this moment.
        let as_of = Instant::now();
        let store = store.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let store = store.lock().unwrap_or_else(|p| p.into_inner());
            check(&store, seen)
        })
        .await;
        match checked {
            Ok(Ok((now, names))) => {
                seen = Some(now);
                if names.is_some() {
                    live = names;
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not read the live MCPs; removed ones keep running for now");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the live-MCP check failed");
                continue;
            }
        }
        if let Some(live) = &live {
            upstreams.retain(live, as_of).await;
        }
    }
}

/// The store's counters now, and the live upstream names if they may have
/// changed since `seen` (always on the first check).
fn check(store: &Store, seen: Option<Seen>) -> Result<(Seen, Option<HashSet<String>>), StoreError> {
    let data_version = store.data_version()?;
    if let Some(seen) = seen
        && seen.data_version == data_version
    {
        return Ok((seen, None));
    }
    let now = Seen {
        data_version,
        generation: store.auth_generation()?,
    };
    // Usage writes commit all the time but leave the generation alone.
    if seen.is_some_and(|seen| seen.generation == now.generation) {
        return Ok((now, None));
    }
    let names = store
        .live_mcp_ids()?
        .into_iter()
        .map(|(row_id, slug)| upstream_name(&slug, row_id))
        .collect();
    Ok((now, Some(names)))
}
