//! Ends the MCP sessions that are idle (no request and no open stream for
//! the idle time, as `session_manager` counts them) or can no longer be
//! served: their upstream
//! connection ended (a new session gets a new one), or their key may no
//! longer use them (revoked, expired, its access no longer includes the
//! MCP, or the MCP was removed). A session
//! whose client keeps a `GET` stream open is never idle and may send no
//! request for hours, so checking the key only on requests would let it
//! keep receiving its upstream's notifications and requests. Every
//! [`INTERVAL`] each open session's key is looked up and asked the one
//! authorization question again (both from the verifier's change-aware
//! cache: a store read only after a commit); sessions that fail it are
//! closed, upstream and all.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::guard::close_session;
use super::sessions::Binding;
use crate::domain::KeyStatus;
use crate::server::AppState;
use crate::server::authorize::{Denied, authorize_mcp};

/// How often open sessions' keys are re-checked (more often when sessions
/// may be idle for less than a few of these).
pub const INTERVAL: Duration = Duration::from_secs(2);

/// How often the per-key rate limit table drops keys that no longer need
/// an entry (revoked, expired, gone, or without a limit now).
pub const RATE_LIMIT_PRUNE: Duration = Duration::from_secs(10);

/// Starts the sweeper; it runs until `cancel` fires.
pub fn spawn(state: Arc<AppState>, cancel: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let every = INTERVAL
            .min(state.proxy.settings.session_idle / 4)
            .max(Duration::from_millis(50));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticks.tick() => sweep(&state).await,
            }
            if pruned.elapsed() >= RATE_LIMIT_PRUNE {
                prune_rate_limits(&state).await;
                pruned = tokio::time::Instant::now();
            }
        }
    })
}

async fn sweep(state: &AppState) {
    let now = chrono::Utc::now();
    let bridge = &state.proxy.bridge;
    bridge.sweep();
    for (listen, binding) in bridge.listening() {
        match still_allowed(state, &binding, now).await {
            Some(true) => {}
            Some(false) => {
                tracing::info!(key = %binding.key_id, "subscription stream closed: its key may no longer use its MCPs");
                bridge.end_listen(listen);
            }
            None => return,
        }
    }
    for session in state
        .proxy
        .sessions
        .book
        .idle(state.proxy.settings.session_idle)
    {
        tracing::info!("MCP session closed: idle");
        close_session(state, &session).await;
    }
    for (session, binding, upstream_lost) in state.proxy.sessions.book.all() {
        if upstream_lost {
            // Closed, the client is told (404) to start a new session.
            tracing::info!(key = %binding.key_id, "MCP session closed: its upstream connection ended");
            close_session(state, &session).await;
            continue;
        }
        let Some(allowed) = still_allowed(state, &binding, now).await else {
            return;
        };
        if !allowed {
            tracing::info!(
                key = %binding.key_id,
                "MCP session closed: its key may no longer use its MCPs"
            );
            close_session(state, &session).await;
        }
    }
}

/// Drops the rate limit entries of keys that can no longer make a request
/// counted against a limit, so the table stays as small as the live keys.
/// Lookups come from the verifier's cache (a store read only after a
/// commit); on a store failure nothing is dropped.
async fn prune_rate_limits(state: &AppState) {
    let now = chrono::Utc::now();
    let mut gone = Vec::new();
    for (row, lookup_id) in state.rate_limits.tracked() {
        match state.verifier.key_state(&lookup_id).await {
            Ok(Some(key))
                if key.row_id == row
                    && key.status(now) == KeyStatus::Active
                    && key.effective_rate_limit().is_some() => {}
            Ok(_) => gone.push(row),
            Err(e) => {
                tracing::warn!(error = %e, "checking rate-limited keys failed");
                return;
            }
        }
    }
    state.rate_limits.forget(&gone);
}

/// Whether `binding`'s key may still use everything it was bound to;
/// `None` when the store did not answer (try again next round rather than
/// end anything on our own failure).
async fn still_allowed(
    state: &AppState,
    binding: &Binding,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<bool> {
    let key = match state.verifier.key_state(&binding.key_id).await {
        Ok(key) => key.filter(|key| key.status(now) == KeyStatus::Active),
        Err(e) => {
            tracing::warn!(error = %e, "checking MCP sessions' keys failed");
            return None;
        }
    };
    let Some(key) = key else {
        return Some(false);
    };
    for (row, slug) in binding.scope.members() {
        match authorize_mcp(state, &key, slug).await {
            Ok(mcp) if mcp.row_id == row => {}
            Ok(_) | Err(Denied::Unauthorized) => return Some(false),
            Err(Denied::Internal) => return None,
        }
    }
    Some(true)
}
