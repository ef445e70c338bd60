//! `plexmcp serve`: the API alone, for systemd units and containers.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::CliError;
use crate::server;
use crate::store::Store;

pub fn run(store: Store, listen: &str) -> Result<(), CliError> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        CliError::Usage(format!(
            "--listen '{listen}' is not an address like 127.0.0.1:8470"
        ))
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("plexmcp")
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::Failed(format!("cannot listen on {addr}: {e}")))?;
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "listening on {addr}, reachable from other hosts: API keys travel in plain HTTP; terminate TLS in front (see README, Security model)"
            );
        }
        let cancel = CancellationToken::new();
        tokio::spawn(stop_on_signal(cancel.clone()));
        tracing::info!("plexmcp serving POST /mcp on http://{}", listener.local_addr()?);
        server::serve(store, listener, cancel).await?;
        tracing::info!("stopped; usage events written");
        Ok(())
    })
}

/// SIGTERM (systemd, containers) or SIGINT (Ctrl-C) start a graceful stop.
async fn stop_on_signal(cancel: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
    cancel.cancel();
}
