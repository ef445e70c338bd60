//! Accepting and serving connections with the limits a small production
//! gateway needs: a cap on open connections, a deadline for request
//! headers (slow-loris, and idle connections), TCP_NODELAY (streamed
//! responses otherwise wait ~40 ms for delayed ACKs), and a graceful stop
//! that lets in-flight requests finish. HTTP/1.1 only (see `serve`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Limits on what clients may hold open.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// A request's headers must arrive within this.
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `cancel` fires, then stops
/// accepting and waits for open requests to complete.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cancel: CancellationToken,
    limits: Limits,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only, served by hyper's own HTTP/1 connection: hyper-util's
    // auto (HTTP/1 + HTTP/2) connection first waits for the 24-byte h2
    // preface with no deadline, so a client that connects and sends nothing
    // would hold its slot for ever and idle clients could fill
    // `max_connections`; and h2 has neither a header deadline nor an idle
    // limit. Here the header deadline starts as soon as the connection is
    // accepted, and again after each response on a kept-alive connection.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);

    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = cancel.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request)
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
