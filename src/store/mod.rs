//! The only module that speaks SQL. It opens (or creates) the one SQLite
//! file plexmcp keeps, refuses files that are not ours or are newer than
//! this build, migrates, and offers typed operations; every parameter is
//! bound, and every change writes its audit event in the same transaction.

mod audit;
mod audit_chain;
mod backup;
mod handover;
mod keys;
mod mcps;
mod orgs;
mod rate_limits;
mod stats;
mod tool_grants;
mod tool_pins;
mod usage;
mod usage_retention;

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use chrono::DateTime;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use rusqlite_migration::{M, Migrations};

use crate::domain::{Actor, Plan, Timestamp};
use crate::keys::ServerSecret;

pub use audit::{AuditQuery, AuditRecord};
pub use audit_chain::{BrokenLink, ChainReport, LinkProblem};
pub use backup::{BackupError, BackupReport, CheckReport, DbSummary, PendingRestore};
pub use handover::{RECENT_CLIENTS, RecentClient, span_text};
pub use keys::{KeyEdit, NewKey};
pub use mcps::NewMcp;
pub use orgs::OrgSummary;
pub use stats::{ClientIp, KeyUsage, RecentRequest, ToolCount};
pub use tool_pins::{
    MAX_TOOLS_PER_MCP, McpPins, NewlyWithheld, PinSummary, PinnedTool, SeenTool, ToolObservation,
    ToolRecord, ToolState,
};
pub use usage::UsageEvent;
pub use usage_retention::{DbSize, UsageQuery, UsageRecord};

/// "PMCP": written into the SQLite header so foreign files are recognised.
pub const APPLICATION_ID: u32 = 0x504D_4350;
/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(include_str!("../../assets/migrations/0001_initial.sql")),
        M::up(include_str!(
            "../../assets/migrations/0002_stdio_inherit_env.sql"
        )),
        M::up_with_hook(
            include_str!("../../assets/migrations/0003_audit_chain.sql"),
            |tx: &Transaction<'_>| Ok(audit_chain::chain_existing(tx)?),
        ),
        M::up(include_str!("../../assets/migrations/0004_rate_limits.sql")).down(include_str!(
            "../../assets/migrations/0004_rate_limits.down.sql"
        )),
        M::up(include_str!("../../assets/migrations/0005_tool_access.sql")).down(include_str!(
            "../../assets/migrations/0005_tool_access.down.sql"
        )),
        M::up(include_str!("../../assets/migrations/0006_tool_pins.sql")).down(include_str!(
            "../../assets/migrations/0006_tool_pins.down.sql"
        )),
        M::up(include_str!(
            "../../assets/migrations/0007_rotation_handover.sql"
        ))
        .down(include_str!(
            "../../assets/migrations/0007_rotation_handover.down.sql"
        )),
    ])
});

/// Schema versions this build knows how to read.
pub fn schema_version() -> u32 {
    // One migration per version; the count is tiny and fixed at compile time.
    u32::try_from(MIGRATIONS_COUNT).unwrap_or(u32::MAX)
}
const MIGRATIONS_COUNT: usize = 7;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path} is not a plexmcp database ({why}); nothing was changed")]
    Foreign { path: String, why: &'static str },
    #[error(
        "{path} was written by a newer plexmcp (schema version {found}, this build reads up to {known}); upgrade plexmcp — nothing was changed"
    )]
    TooNew {
        path: String,
        found: u32,
        known: u32,
    },
    #[error("database {path} {why}")]
    Unwritable { path: String, why: String },
    #[error("cannot open database {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("upgrading the database schema failed: {0}")]
    Migration(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("unknown MCP '{slug}' in organization '{org}' (see `plexmcp mcps list`)")]
    UnknownMcp { slug: String, org: String },
    #[error("plan limit reached")]
    LimitReached {
        plan: Plan,
        limit: u32,
        /// Active keys now: more than `limit` after a move to a smaller plan.
        active: u32,
        org: String,
    },
    #[error("key {0} is revoked; revoked keys cannot be changed")]
    Revoked(String),
    #[error("lookup id already in use")]
    IdCollision,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One connection to the database. Not `Sync`: each thread or task that
/// needs the store opens its own (`Store::open` is cheap once created).
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the database at `path`, creating it (mode 0600, folder 0700) if
    /// absent. A file that is not a plexmcp database, or one from a newer
    /// schema, is refused before anything is written to it.
    pub fn open(path: &Path) -> Result<Store> {
        let shown = path.display().to_string();
        let io_err = |source| StoreError::Io {
            path: shown.clone(),
            source,
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(StoreError::Foreign {
                    path: shown,
                    why: "it is a directory",
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_folder(path).map_err(io_err)?,
            Err(e) => return Err(io_err(e)),
        }
        // Serialises checks and first-time migration between processes
        // (and threads) opening the file at once. The lock is taken on the
        // folder, never on the database file: closing any descriptor of the
        // database would drop every SQLite lock this process holds on it,
        // and the next outside client to close would then delete the WAL
        // under our open connections (sqlite.org/howtocorrupt.html §2.2).
        let folder_lock = lock_folder(path).map_err(io_err)?;
        if !path.exists() {
            create_file(path).map_err(io_err)?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
                path: shown.clone(),
                source,
            })?;
        if let Err(e) = check_ids(&conn, &shown).and_then(|()| prepare(&mut conn)) {
            return Err(explain_write_failure(&shown, &conn, e));
        }
        drop(folder_lock);
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        if let Err(e) = store.ensure_server_secret() {
            return Err(explain_write_failure(&shown, &store.conn, e));
        }
        Ok(store)
    }

    /// Another connection to the same file, for another thread.
    pub fn reopen(&self) -> Result<Store> {
        Store::open(&self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Relaxes fsync for the usage writer: losing the last batch on power
    /// loss is acceptable there, and it is many times faster.
    pub fn relax_durability(&self) -> Result<()> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(())
    }

    /// Changes whenever another connection commits; a cheap "has anything changed?".
    /// Prepared once per connection: the verifier asks on every request.
    pub fn data_version(&self) -> Result<i64> {
        let mut stmt = self.conn.prepare_cached("PRAGMA data_version")?;
        Ok(stmt.query_row([], |r| r.get(0))?)
    }

    /// The per-database secret that keys the integrity tag of every API key.
    pub fn server_secret(&self) -> Result<ServerSecret> {
        let bytes: Vec<u8> = self.conn.query_row(
            "SELECT value FROM meta WHERE name = 'server_secret'",
            [],
            |r| r.get(0),
        )?;
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Migration("server secret has the wrong length".into()))?;
        Ok(ServerSecret::from_bytes(array))
    }

    /// Why SQLite's last "disk I/O error" on this connection happened
    /// (e.g. "No space left on device"), for error messages.
    pub fn last_os_error(&self) -> Option<io::Error> {
        last_os_error(&self.conn)
    }

    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    fn ensure_server_secret(&self) -> Result<()> {
        let secret = ServerSecret::generate();
        self.conn.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('server_secret', ?1)",
            [secret.as_bytes().as_slice()],
        )?;
        Ok(())
    }

    /// A write transaction that takes the lock up front, so two processes
    /// never deadlock upgrading read locks (busy_timeout then applies).
    fn write_tx(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

/// Configures a new connection and brings the schema up to date.
fn prepare(conn: &mut Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update_and_check(None, "journal_mode", "wal", |_| Ok(()))?;
    // FULL: a change the CLI or console reports as done survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    MIGRATIONS.to_latest(conn).map_err(|e| match e {
        // Not a schema problem: explained like any other failed write.
        rusqlite_migration::Error::RusqliteError { err, .. } if write_failure(&err).is_some() => {
            StoreError::Sqlite(err)
        }
        // Its Display repeats the whole migration SQL.
        rusqlite_migration::Error::RusqliteError { err, .. } => {
            StoreError::Migration(err.to_string())
        }
        other => StoreError::Migration(other.to_string()),
    })?;
    Ok(())
}

/// The SQLite error codes that mean "this file cannot be written here".
fn write_failure(e: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
            ) =>
        {
            Some(f.code)
        }
        _ => None,
    }
}

/// SQLite's "attempt to write a readonly database" or "disk I/O error"
/// name neither the file nor the cause; while opening, say both.
fn explain_write_failure(shown: &str, conn: &Connection, error: StoreError) -> StoreError {
    let code = match &error {
        StoreError::Sqlite(e) => write_failure(e),
        _ => None,
    };
    let why = match code {
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => {
            "is not writable by this user: the file, or its folder (where SQLite keeps its -wal and -shm files), is read-only".to_owned()
        }
        Some(rusqlite::ErrorCode::DiskFull) => "cannot be written: the disk is full".to_owned(),
        Some(_) => match last_os_error(conn) {
            Some(e) => format!("cannot be written: {e}"),
            None => "cannot be written: disk I/O error".to_owned(),
        },
        None => return error,
    };
    StoreError::Unwritable {
        path: shown.to_owned(),
        why,
    }
}

/// The operating system's error behind the last failed I/O of `conn`.
fn last_os_error(conn: &Connection) -> Option<io::Error> {
    // SAFETY: only reads a field of the connection, on the thread that owns it.
    let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
    (errno != 0).then(|| io::Error::from_raw_os_error(errno))
}

fn create_folder(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => DirBuilder::new().recursive(true).mode(0o700).create(dir),
        None => Ok(()),
    }
}

/// An exclusive `flock` on the folder holding `path`, released when the
/// returned descriptor is dropped. A folder is another inode, so closing
/// this descriptor leaves SQLite's locks on the database alone.
fn lock_folder(path: &Path) -> io::Result<std::fs::File> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    };
    let folder = std::fs::File::open(dir)?;
    folder.lock()?;
    Ok(folder)
}

/// Creates the database file, mode 0600. Only called under the folder lock
/// and only when the file does not exist, so no SQLite connection of this
/// process can have it open while this descriptor closes.
fn create_file(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        // Another process created it first; it will be checked and migrated as usual.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Refuses files that are not plexmcp databases, or are from a newer
/// schema, before anything is written to them. Asked through the new
/// connection (so the WAL is included), which only reads here; a plain
/// descriptor reading the header would drop this process's SQLite locks
/// on the file when it closed.
fn check_ids(conn: &Connection, shown: &str) -> Result<()> {
    let foreign = |why| StoreError::Foreign {
        path: shown.to_owned(),
        why,
    };
    let ids = conn
        .pragma_query_value(None, "application_id", |r| r.get::<_, i64>(0))
        .and_then(|id| {
            let version = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?;
            Ok((id, version))
        });
    let (app_id, version) = match ids {
        Ok(ids) => ids,
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::NotADatabase =>
        {
            return Err(foreign("not an SQLite file"));
        }
        Err(e) => return Err(StoreError::Sqlite(e)),
    };
    if app_id == 0 && version == 0 {
        // New (empty), or a first migration that never committed: nothing
        // in it yet, so it is ours to set up. Anything else without our id
        // belongs to another application.
        let objects: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if objects == 0 {
            return Ok(());
        }
    }
    if app_id != i64::from(APPLICATION_ID) {
        return Err(foreign("an SQLite database of another application"));
    }
    let version = u32::try_from(version).unwrap_or(u32::MAX);
    if version > schema_version() {
        return Err(StoreError::TooNew {
            path: shown.to_owned(),
            found: version,
            known: schema_version(),
        });
    }
    Ok(())
}

/// Seconds since the epoch, the store's unit of time.
fn secs(at: Timestamp) -> i64 {
    at.timestamp()
}

/// A stored time, read through SQLite's type conversion so that a value
/// outside chrono's range (written by an outside tool) is a conversion
/// error naming its column, never silently 1970.
struct StoredTime(Timestamp);

#[derive(Debug, thiserror::Error)]
#[error("timestamp {0} (seconds since 1970) is out of range")]
struct TimeOutOfRange(i64);

impl rusqlite::types::FromSql for StoredTime {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let secs = i64::column_result(value)?;
        DateTime::from_timestamp(secs, 0)
            .map(StoredTime)
            .ok_or_else(|| rusqlite::types::FromSqlError::Other(Box::new(TimeOutOfRange(secs))))
    }
}

fn ts(stored: StoredTime) -> Timestamp {
    stored.0
}

fn opt_ts(stored: Option<StoredTime>) -> Option<Timestamp> {
    stored.map(ts)
}

/// Appends one audit event to the chain inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
fn audit(
    tx: &Transaction<'_>,
    org_id: i64,
    at: Timestamp,
    actor: &Actor,
    action: &str,
    target_kind: &str,
    target_id: &str,
    detail: Option<&str>,
) -> Result<()> {
    audit_chain::append(
        tx,
        &audit_chain::NewEvent {
            org_id: Some(org_id),
            at,
            actor,
            action,
            target_kind,
            target_id,
            detail,
        },
    )
}

fn is_unique_violation(e: &rusqlite::Error, needle: &str) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, Some(msg))
        if f.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().unwrap();
    }

    /// The count this build claims to read is the version a new database
    /// gets, and one per migration file: a migration added without raising
    /// it would make every new database look "written by a newer plexmcp".
    #[test]
    fn the_schema_version_is_the_number_of_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plexmcp.db");
        drop(Store::open(&path).unwrap());
        let version: u32 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, schema_version());
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/migrations"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".sql") && !name.ends_with(".down.sql"))
            .count();
        assert_eq!(files, schema_version() as usize);
    }
}
