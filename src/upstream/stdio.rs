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
//!
//! The child does not inherit the gateway's environment, which may hold an
//! exported `PLEXMCP_API_KEY` or other secrets that a tool such as `get-env`
//! would hand to any caller allowed to use that MCP. It gets [`ALLOWED_ENV`],
//! the names its MCP lists in `inherit_env`, and its own `env`.

use std::ffi::OsString;

use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, Command};

use super::UpstreamError;
use super::child::ChildTransport;

/// Longest stderr line forwarded as-is; longer lines are cut (the rest of the
/// line is still read and discarded so the child never blocks on the pipe).
const MAX_STDERR_LINE: usize = 4096;

/// Variables of the gateway's environment every stdio MCP gets: enough to find
/// programs, a home and a temp directory, a locale and a time zone (README,
/// "Security model", lists the same).
pub const ALLOWED_ENV: [&str; 9] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// The gateway's own settings; never passed on, whatever `inherit_env` says.
const OWN_PREFIX: &str = "PLEXMCP_";

/// The child's whole environment: the allowlisted and `inherit` variables
/// that `parent` has, then `env`, which wins over both.
fn child_env(
    parent: impl Iterator<Item = (OsString, OsString)>,
    inherit: &[String],
    env: &[(String, String)],
) -> Vec<(OsString, OsString)> {
    let wanted = |name: &OsString| {
        name.to_str().is_some_and(|name| {
            !name.starts_with(OWN_PREFIX)
                && (ALLOWED_ENV.contains(&name) || inherit.iter().any(|i| i == name))
        })
    };
    let mut out: Vec<(OsString, OsString)> = parent
        .filter(|(name, _)| wanted(name))
        .filter(|(name, _)| !env.iter().any(|(k, _)| name == k.as_str()))
        .collect();
    out.extend(env.iter().map(|(k, v)| (k.into(), v.into())));
    out
}

/// Spawns `command args…` with stdin/stdout piped for MCP and stderr piped to
/// `tracing`. Returns the transport and the child's pid (for diagnostics).
pub(super) fn spawn(
    name: &str,
    command: &str,
    args: &[String],
    env: &[(String, String)],
    inherit_env: &[String],
) -> Result<(ChildTransport, Option<u32>), UpstreamError> {
    let mut cmd = Command::new(command);
    cmd.args(args)
        .env_clear()
        .envs(child_env(std::env::vars_os(), inherit_env, env))
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

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::child_env;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn only_the_allowlist_inherited_names_and_own_env_reach_the_child() {
        let parent = vars(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/home/op"),
            ("PLEXMCP_API_KEY", "pmcp_secret"),
            ("PLEXMCP_DB", "/srv/plexmcp.db"),
            ("SECRET_X", "x"),
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("LANG", "C.UTF-8"),
        ]);
        let inherit = [
            "HTTPS_PROXY".to_string(),
            "PLEXMCP_DB".to_string(),
            "UNSET".into(),
        ];
        let env = [
            ("TOKEN".to_string(), "t".to_string()),
            ("LANG".to_string(), "de_DE.UTF-8".to_string()),
        ];
        let mut got = child_env(parent.into_iter(), &inherit, &env);
        got.sort();
        assert_eq!(
            got,
            vars(&[
                ("HOME", "/home/op"),
                ("HTTPS_PROXY", "http://proxy:3128"),
                ("LANG", "de_DE.UTF-8"),
                ("PATH", "/usr/bin"),
                ("TOKEN", "t"),
            ])
        );
    }
}
