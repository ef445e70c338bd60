//! The one test-support module every integration test uses (`mod support;`).
//! Each part is a submodule named for what it provides, and everything is
//! re-exported here, so tests write `support::Env`, `support::Server`.
//!
//! - [`cli`]: a test's own database and the real binary run against it.
//! - [`process`]: child guards that kill process groups, free ports.
//! - [`server`]: `plexmcp serve` as a child, and its `/mcp` answers.
//! - [`upstream`]: MCP servers behind the gateway (reference and broken).
//! - [`forged`]: keys that look right but are not.
//! - [`mcp_session`]: an rmcp client session through the gateway.
//! - [`install`]: what the tests need beyond Rust, installed on first use.
//! - [`tmux`]: the real console in a private tmux server.
//!
//! Every child process is killed when its guard drops, so a failing test
//! leaves nothing running.

#![allow(dead_code)] // each test binary uses a different subset
#![allow(unused_imports)] // likewise for the re-exports

pub mod cli;
pub mod forged;
pub mod install;
pub mod mcp_session;
pub mod process;
pub mod server;
pub mod tmux;
pub mod upstream;

pub use cli::*;
pub use forged::*;
pub use install::{require_node, require_python3, require_sqlite3, require_tmux};
pub use process::*;
pub use server::*;
pub use upstream::*;
