//! Ends the MCP sessions of keys that were revoked or expired. A session
//! whose client keeps a `GET` stream open is never idle and may send no
//! request for hours, so checking the key only on requests would let it
//! keep receiving its upstream's notifications and requests. Every
//! [`INTERVAL`] each open session's key is looked up (from the verifier's
//! change-aware cache: a store read only after a commit) and the sessions
//! of keys that may no longer be used are closed, upstream and all.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::guard::close_session;
use crate::domain::KeyStatus;
use crate::server::AppState;

/// How often open sessions' keys are re-checked.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Starts the sweeper; it runs until `cancel` fires.
pub fn spawn(state: Arc<AppState>, cancel: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticks.tick() => sweep(&state).await,
            }
        }
    })
}

async fn sweep(state: &AppState) {
    let now = chrono::Utc::now();
    for (session, key_id) in state.proxy.book.keys() {
        let usable = match state.verifier.key_state(&key_id).await {
            Ok(Some(key)) => key.status(now) == KeyStatus::Active,
            Ok(None) => false,
            // The store did not answer: try again next round rather than
            // end sessions on our own failure.
            Err(e) => {
                tracing::warn!(error = %e, "checking MCP sessions' keys failed");
                return;
            }
        };
        if !usable {
            tracing::info!(key = %key_id, "MCP session closed: its key was revoked or expired");
            close_session(state, &session).await;
        }
    }
}
