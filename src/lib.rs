//! plexmcp: a self-hosted MCP gateway whose API keys live in one SQLite
//! database, managed from a terminal console or the command line. The
//! modules are public so the black-box tests in `tests/` can reach them.

pub mod access_preview;
pub mod admin;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod keys;
pub mod logging;
pub mod redact;
pub mod rules;
pub mod server;
pub mod store;
pub mod tui;
pub mod upstream;
