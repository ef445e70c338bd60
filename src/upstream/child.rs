//! The MCP transport over a child process's stdin and stdout.
//!
//! rmcp's own child-process transport frames messages as lines and drops any
//! line longer than 16 MiB without telling anyone, so a call whose reply was
//! too long waited out its whole timeout. This one uses the same framing
//! (rmcp's `AsyncRwTransport`, same limit) but watches the line lengths on
//! the way in: the first over-long line ends the session and fires a signal
//! the connection waits on, so the pending call fails at once.
//!
//! Shutting down follows the MCP stdio rules: close the child's stdin, give
//! it a moment to exit, then SIGTERM, then SIGKILL.

use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::{AsyncRwTransport, DEFAULT_MAX_LINE_LENGTH};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

/// Longest message (one line, newline included) an upstream may send.
pub(super) const MAX_LINE: usize = DEFAULT_MAX_LINE_LENGTH;

/// How long a child may take to exit after its stdin closes.
const STDIN_GRACE: Duration = Duration::from_secs(2);
/// How long a child may take to exit after SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(1);

pub(super) struct ChildTransport {
    child: Child,
    lines: AsyncRwTransport<RoleClient, LineLimit<ChildStdout>, ChildStdin>,
    overflow: CancellationToken,
}

impl ChildTransport {
    /// Spawns `command` with stdin, stdout and stderr piped. The caller
    /// sets up everything else about the command (arguments, environment).
    pub(super) fn spawn(mut command: Command) -> io::Result<(Self, Option<ChildStderr>)> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other(
                "the child's stdin or stdout was not piped",
            ));
        };
        let stderr = child.stderr.take();
        let overflow = CancellationToken::new();
        let reader = LineLimit {
            inner: stdout,
            line: 0,
            overflow: overflow.clone(),
        };
        let lines = AsyncRwTransport::new_client(reader, stdin).with_max_line_length(MAX_LINE);
        Ok((
            Self {
                child,
                lines,
                overflow,
            },
            stderr,
        ))
    }

    pub(super) fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Fires when the child sends a line longer than [`MAX_LINE`].
    pub(super) fn overflow(&self) -> CancellationToken {
        self.overflow.clone()
    }

    async fn shut_down(&mut self) -> io::Result<()> {
        self.lines.close().await?;
        // A child that flooded us is not worth waiting for.
        if !self.overflow.is_cancelled() {
            if tokio::time::timeout(STDIN_GRACE, self.child.wait())
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
                // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                if tokio::time::timeout(TERM_GRACE, self.child.wait())
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        self.child.kill().await
    }
}

impl Transport<RoleClient> for ChildTransport {
    type Error = io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.lines.send(item)
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.lines.receive()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.shut_down()
    }
}

/// Passes a child's stdout through, failing the read (which ends the
/// session) as soon as a line reaches [`MAX_LINE`] bytes.
struct LineLimit<R> {
    inner: R,
    /// Bytes of the current, unfinished line seen so far.
    line: usize,
    overflow: CancellationToken,
}

impl<R> LineLimit<R> {
    /// Accounts for `fresh` bytes; false once a line is too long.
    fn accept(&mut self, fresh: &[u8]) -> bool {
        let mut segments = fresh.split(|b| *b == b'\n').peekable();
        while let Some(segment) = segments.next() {
            let length = self.line.saturating_add(segment.len());
            if segments.peek().is_some() {
                // A finished line: it and its newline must fit.
                if length >= MAX_LINE {
                    return false;
                }
                self.line = 0;
            } else {
                // Unfinished: its newline is still to come.
                self.line = length;
                if length >= MAX_LINE {
                    return false;
                }
            }
        }
        true
    }
}

fn too_long() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("upstream sent a message longer than {} MiB", MAX_LINE >> 20),
    )
}

impl<R: AsyncRead + Unpin> AsyncRead for LineLimit<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.overflow.is_cancelled() {
            return Poll::Ready(Err(too_long()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if this.accept(&buf.filled()[before..]) {
            return Poll::Ready(Ok(()));
        }
        buf.set_filled(before);
        this.overflow.cancel();
        Poll::Ready(Err(too_long()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> LineLimit<()> {
        LineLimit {
            inner: (),
            line: 0,
            overflow: CancellationToken::new(),
        }
    }

    #[test]
    fn lines_up_to_the_limit_pass_and_longer_ones_do_not() {
        let mut l = limit();
        let almost = vec![b'x'; MAX_LINE - 1];
        assert!(l.accept(&almost));
        assert!(
            l.accept(b"\nshort\n"),
            "a line of MAX_LINE with its newline fits"
        );
        assert!(l.accept(&almost[..10]));
        assert_eq!(l.line, 10);

        let mut l = limit();
        assert!(l.accept(&almost));
        assert!(
            !l.accept(b"x"),
            "one byte more can no longer fit its newline"
        );

        let mut l = limit();
        let mut two = vec![b'y'; 100];
        two.push(b'\n');
        two.extend(std::iter::repeat_n(b'z', MAX_LINE));
        two.push(b'\n');
        assert!(!l.accept(&two), "an over-long line inside one chunk");
    }
}
