//! Logging for the whole process: one subscriber, to stderr (`serve`, the
//! commands) or to a file (while the console owns the terminal), as text
//! or JSON lines, behind a filter that a reload (SIGHUP) can replace; and
//! the switch the `/mcp` handler asks before writing its per-request line.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::{AccessLog, LogFormat};

/// 0: no access lines; 1: every request; N: one request in N.
static ACCESS_EVERY: AtomicU32 = AtomicU32::new(1);
static ACCESS_SEEN: AtomicU64 = AtomicU64::new(0);

/// Sets how many requests get an access line (takes effect at once).
pub fn set_access_log(setting: AccessLog) {
    let every = match setting {
        AccessLog::On => 1,
        AccessLog::Off => 0,
        AccessLog::Sample(n) => n,
    };
    ACCESS_EVERY.store(every, Ordering::Relaxed);
}

/// Whether the request being answered gets its access line: the first of
/// every N when sampling, so a quiet server still shows some traffic.
pub fn access_line_due() -> bool {
    match ACCESS_EVERY.load(Ordering::Relaxed) {
        0 => false,
        1 => true,
        n => ACCESS_SEEN
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(u64::from(n)),
    }
}

/// Replaces the log filter of a running process.
pub struct FilterHandle(reload::Handle<EnvFilter, Registry>);

impl FilterHandle {
    /// `directive` was checked when the settings were read.
    pub fn set(&self, directive: &str) -> Result<(), String> {
        self.0
            .reload(EnvFilter::new(directive))
            .map_err(|e| e.to_string())
    }
}

/// Installs the process's subscriber; `None` if one is already installed.
pub fn init<W>(filter: &str, format: LogFormat, writer: W, ansi: bool) -> Option<FilterHandle>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (filter_layer, handle) = reload::Layer::new(EnvFilter::new(filter));
    // A failed log write (stderr closed under a dead `| logger`) must drop
    // the line, never report it: reporting would panic inside a request.
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .log_internal_errors(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .with_ansi(false)
            .log_internal_errors(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(output)
        .try_init()
        .ok()?;
    Some(FilterHandle(handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process-wide switch, exercised in one test so no other test
    /// races it.
    #[test]
    fn access_switch() {
        set_access_log(AccessLog::Off);
        assert!((0..10).all(|_| !access_line_due()));
        set_access_log(AccessLog::Sample(4));
        let due = (0..40).filter(|_| access_line_due()).count();
        assert_eq!(due, 10);
        set_access_log(AccessLog::On);
        assert!((0..10).all(|_| access_line_due()));
    }
}
