//! Starting stdio upstreams as child processes.
//!
//! stdin/stdout carry MCP, so the child's stderr is the only free-form output
//! it has. The gateway usually runs a full-screen terminal console, so stderr
//! must never be inherited (it would scribble over the console); it is piped
//! and each line is re-emitted through `tracing` with the upstream's name.
//!
//! The child is spawned with `kill_on_drop`, in addition to the transport's
//! own clean-up (`child.rs`), so no path (failed handshake, dropped
//! connection, runtime shutdown) leaves an orphaned process behind.

use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, Command};

use super::UpstreamError;
use super::child::ChildTransport;

/// Longest stderr line forwarded as-is; longer lines are cut (the rest of the
/// line is still read and discarded so the child never blocks on the pipe).
const MAX_STDERR_LINE: usize = 4096;

/// Spawns `command args…` with stdin/stdout piped for MCP and stderr piped to
/// `tracing`. Returns the transport and the child's pid (for diagnostics).
pub(super) fn spawn(
    name: &str,
    command: &str,
    args: &[String],
    env: &[(String, String)],
) -> Result<(ChildTransport, Option<u32>), UpstreamError> {
    let mut cmd = Command::new(command);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(true);
    let (process, stderr) = ChildTransport::spawn(cmd).map_err(|e| {
        UpstreamError::Failed(super::one_line(&format!(
            "could not start '{command}': {e}"
        )))
    })?;
    let pid = process.id();
    tracing::debug!(target: "plexmcp::upstream", upstream = name, pid, "started {command}");
    if let Some(stderr) = stderr {
        tokio::spawn(forward_stderr(name.to_owned(), stderr));
    }
    Ok((process, pid))
}

/// Copies the child's stderr into `tracing`, one event per line, until EOF.
async fn forward_stderr(name: String, mut stderr: ChildStderr) {
    let mut chunk = [0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    // Set while skipping the remainder of an over-long line.
    let mut truncated = false;
    loop {
        let n = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &chunk[..n] {
            if byte == b'\n' {
                if !truncated {
                    emit(&name, &line);
                }
                line.clear();
                truncated = false;
            } else if !truncated {
                line.push(byte);
                if line.len() >= MAX_STDERR_LINE {
                    line.extend_from_slice(" …".as_bytes());
                    emit(&name, &line);
                    line.clear();
                    truncated = true;
                }
            }
        }
    }
    if !truncated {
        emit(&name, &line);
    }
}

fn emit(name: &str, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if !text.is_empty() {
        tracing::info!(target: "plexmcp::upstream", upstream = name, "stderr: {text}");
    }
}
