//! The one writer of tool fingerprints. Requests never wait on SQLite:
//! what a listing showed that this process had not seen is queued, and a
//! thread commits whatever has queued up as one transaction. Such changes
//! are rare (an upstream changing its tools), so the queue is small; a
//! full queue drops the observation, which the next listing makes again.

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, ToolObservation};

/// Observations waiting beyond this are dropped (see the module).
const QUEUE_CAPACITY: usize = 256;

enum Message {
    Seen(ToolObservation),
    /// Everything sent before this is committed when it is answered.
    Flush(oneshot::Sender<()>),
}

/// Cheap handle the gateway hands observations to.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Message>,
}

impl Recorder {
    /// Starts the writer thread on `store`; it ends once every recorder is dropped.
    pub fn start(store: Store) -> std::io::Result<Recorder> {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("tool-pins-writer".into())
            .spawn(move || run(store, rx))?;
        Ok(Recorder { tx })
    }

    /// Queues an observation without waiting; `false` if the queue was full.
    pub fn record(&self, observation: ToolObservation) -> bool {
        self.tx.try_send(Message::Seen(observation)).is_ok()
    }

    /// Waits until everything recorded so far is committed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn run(mut store: Store, mut rx: mpsc::Receiver<Message>) {
    let mut batch = Vec::new();
    let mut waiters = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Seen(observation) => batch.push(observation),
                Message::Flush(done) => waiters.push(done),
            }
            next = rx.try_recv().ok();
        }
        commit(&mut store, &mut batch);
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
    }
    commit(&mut store, &mut batch);
}

fn commit(store: &mut Store, batch: &mut Vec<ToolObservation>) {
    if batch.is_empty() {
        return;
    }
    match store.record_tool_observations(batch, chrono::Utc::now()) {
        Ok(withheld) => {
            for (mcp, tool, state) in withheld {
                tracing::warn!(
                    mcp = %mcp,
                    tool = %tool,
                    "tool is {} on a pinned MCP: withheld from clients until approved (plexmcp mcps approve {mcp} {tool})",
                    state.as_str()
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "recording tool fingerprints failed"),
    }
    batch.clear();
}
