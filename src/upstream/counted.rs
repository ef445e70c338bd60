//! A transport that counts, in the order they arrive, the upstream's
//! progress and log notifications: the ones that share a request's stream
//! with its answer. rmcp reads the transport in order but hands each
//! notification to a task of its own, so when an answer arrives the
//! notifications sent before it are counted here even if their tasks have
//! not run yet; the relay counts what it has passed on, and waits for the
//! two to meet before it lets the answer close the stream (`Link::settle`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rmcp::RoleClient;
use rmcp::model::{JsonRpcMessage, ServerNotification};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;

/// Progress and log notifications received so far on one connection.
pub type Arrivals = Arc<AtomicU64>;

pub struct Counted<T> {
    inner: T,
    arrivals: Option<Arrivals>,
}

impl<T> Counted<T> {
    pub fn new(inner: T, arrivals: Option<Arrivals>) -> Counted<T> {
        Counted { inner, arrivals }
    }
}

/// Whether `message` is a notification a request's stream carries.
pub fn shares_the_stream(message: &RxJsonRpcMessage<RoleClient>) -> bool {
    matches!(
        message,
        JsonRpcMessage::Notification(n) if matches!(
            n.notification,
            ServerNotification::ProgressNotification(_)
                | ServerNotification::LoggingMessageNotification(_)
        )
    )
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Counted<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let message = self.inner.receive().await?;
        if let Some(arrivals) = &self.arrivals
            && shares_the_stream(&message)
        {
            arrivals.fetch_add(1, Ordering::Release);
        }
        Some(message)
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Hands out the messages it was given, in order.
    struct Script(VecDeque<RxJsonRpcMessage<RoleClient>>);

    impl Transport<RoleClient> for Script {
        type Error = std::io::Error;
        fn send(
            &mut self,
            _item: TxJsonRpcMessage<RoleClient>,
        ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
            std::future::ready(Ok(()))
        }
        async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
            self.0.pop_front()
        }
        async fn close(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    fn message(json: serde_json::Value) -> RxJsonRpcMessage<RoleClient> {
        serde_json::from_value(json).unwrap()
    }

    #[tokio::test]
    async fn progress_and_log_notifications_are_counted_as_they_arrive_and_nothing_else() {
        let script = Script(VecDeque::from([
            message(
                serde_json::json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": 1, "progress": 1}}),
            ),
            message(
                serde_json::json!({"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": "hi"}}),
            ),
            message(
                serde_json::json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
            ),
            message(serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
        ]));
        let arrivals = Arrivals::default();
        let mut counted = Counted::new(script, Some(arrivals.clone()));
        let mut seen = Vec::new();
        while counted.receive().await.is_some() {
            seen.push(arrivals.load(Ordering::Acquire));
        }
        // Counted before the message is handed on: the answer (last) finds both.
        assert_eq!(seen, [1, 2, 2, 2]);
    }
}
