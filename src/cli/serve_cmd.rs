//! `plexmcp serve`: the API alone, for systemd units and containers.
//! SIGTERM and SIGINT stop it gracefully; SIGHUP re-reads the
//! configuration and applies what can change while running.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::CliError;
use crate::config::{self, Flags, Settings};
use crate::logging::{self, FilterHandle};
use crate::server;
use crate::server::usage_pruner::Retention;
use crate::store::Store;

pub fn run(
    store: Store,
    settings: &Settings,
    flags: &Flags,
    filter: Option<FilterHandle>,
) -> Result<(), CliError> {
    let addr = settings.listen.value;
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
        if settings.config_file.present {
            tracing::info!("configuration from {}", settings.config_file.path.display());
        }
        let mut gateway = server::Gateway::with_settings(
            store,
            settings.proxy_settings(),
            settings.usage_retention_days.value.days(),
        )?;
        let cancel = CancellationToken::new();
        let reloader = Reloader {
            flags: flags.clone(),
            current: settings.clone(),
            filter,
            retention: gateway.state().usage.retention().clone(),
        };
        // Registered before the "serving" line, so a SIGHUP sent as soon as
        // it appears reloads rather than killing the process.
        let signals = Signals::register();
        tokio::spawn(watch_signals(signals, cancel.clone(), reloader));
        tracing::info!("plexmcp serving POST /mcp on http://{}", listener.local_addr()?);
        if let Some(metrics) = settings.metrics_listen.value {
            let addr = metrics.0;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| CliError::Failed(format!("cannot listen on {addr} (metrics.listen): {e}")))?;
            tracing::info!("plexmcp serving GET /metrics on http://{}", listener.local_addr()?);
            gateway = gateway.with_metrics(listener);
        }
        gateway.serve(listener, cancel).await?;
        tracing::info!("stopped; usage events written");
        Ok(())
    })
}

/// The signals `serve` acts on; `None` where watching failed.
struct Signals {
    term: Option<Signal>,
    hangup: Option<Signal>,
}

impl Signals {
    fn register() -> Signals {
        let watch = |kind, name| {
            signal(kind)
                .map_err(|e| tracing::warn!(error = %e, "cannot watch {name}"))
                .ok()
        };
        Signals {
            term: watch(SignalKind::terminate(), "SIGTERM"),
            hangup: watch(SignalKind::hangup(), "SIGHUP"),
        }
    }
}

/// Waits for a signal that was registered; never returns for one that was not.
async fn next(signal: &mut Option<Signal>) {
    let received = match signal {
        Some(signal) => signal.recv().await.is_some(),
        None => false,
    };
    // `None` from `recv` means the runtime is going away: wait it out.
    if !received {
        std::future::pending::<()>().await;
    }
}

/// SIGTERM (systemd, containers) or SIGINT (Ctrl-C) start a graceful
/// stop; SIGHUP reloads the configuration.
async fn watch_signals(mut signals: Signals, cancel: CancellationToken, mut reloader: Reloader) {
    loop {
        tokio::select! {
            _ = next(&mut signals.term) => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = next(&mut signals.hangup) => reloader.reload(),
        }
    }
    tracing::info!("shutting down: finishing in-flight requests");
    cancel.cancel();
}

/// Re-resolves the settings with the same flags and applies the change.
struct Reloader {
    flags: Flags,
    current: Settings,
    filter: Option<FilterHandle>,
    /// The usage writer's retention, which changes without a restart.
    retention: Arc<Retention>,
}

impl Reloader {
    fn reload(&mut self) {
        let path = self.current.config_file.path.display().to_string();
        let new = match Settings::resolve(&self.flags) {
            Ok(new) => new,
            Err(e) => {
                tracing::error!("SIGHUP: configuration not reloaded, keeping the old one: {e}");
                return;
            }
        };
        let old = &self.current;
        let new_filter = new.log_filter_or(config::DEFAULT_SERVE_LOG);
        if new_filter != old.log_filter_or(config::DEFAULT_SERVE_LOG) {
            match self.filter.as_ref().map(|h| h.set(&new_filter)) {
                Some(Ok(())) => tracing::info!("SIGHUP: log.filter is now \"{new_filter}\""),
                Some(Err(e)) => tracing::error!("SIGHUP: cannot change log.filter: {e}"),
                None => tracing::warn!("SIGHUP: log.filter needs a restart"),
            }
        }
        let days = new.usage_retention_days.value.days();
        if days != old.usage_retention_days.value.days() {
            self.retention.set_days(days);
            tracing::info!("SIGHUP: usage.retention_days is now {days}");
        }
        if new.access_log.value != old.access_log.value {
            logging::set_access_log(new.access_log.value);
            tracing::info!("SIGHUP: log.access is now {}", new.access_log.value);
        }
        for (key, changed) in [
            ("db", new.db.value != old.db.value),
            ("org", new.org.value != old.org.value),
            ("server.listen", new.listen.value != old.listen.value),
            ("log.format", new.log_format.value != old.log_format.value),
            (
                "server.trusted_proxies",
                new.trusted_proxies.value != old.trusted_proxies.value,
            ),
            (
                "metrics.listen",
                new.metrics_listen.value != old.metrics_listen.value,
            ),
        ] {
            if changed {
                tracing::warn!("SIGHUP: {key} changed in {path}: needs a restart");
            }
        }
        tracing::info!("SIGHUP: configuration reloaded from {path}");
        self.current = new;
    }
}
