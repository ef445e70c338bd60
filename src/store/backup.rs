//! Copies of the database: an online backup taken while plexmcp serves, a
//! restore that replaces the database only while no process has it open,
//! and the integrity check. SQLite reads and writes the database file
//! itself throughout: a plain descriptor of it closing would drop every
//! SQLite lock this process holds on it (see `Store::open`).
//!
//! Backups use SQLite's online backup API with all pages in one step: one
//! read transaction, so the copy is a consistent snapshot, and in WAL mode
//! it never blocks the server's writers. Unlike `VACUUM INTO` it copies
//! pages as they are instead of rebuilding every table and index, so the
//! read transaction stays short under load; a restore reuses the same call
//! to write a backup into the locked database as one transaction.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{BUSY_TIMEOUT, StoreError, StoredTime, check_ids, opt_ts};
use crate::domain::{Actor, Timestamp};

/// `integrity_check` stops after this many problems, so a badly damaged
/// file cannot flood the terminal.
const MAX_PROBLEMS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists; pass --force to replace it")]
    Exists(String),
    #[error("{0} is a directory; give the path of the backup file")]
    IsDirectory(String),
    #[error("{0} is the database itself (or its -wal/-shm file); choose another path")]
    IsTheDatabase(String),
    #[error("{0}: no such folder; create it first")]
    NoFolder(String),
    #[error("no database at {0}; nothing to {1}")]
    Missing(String, &'static str),
    #[error("no backup at {0}; nothing was changed")]
    NoBackup(String),
    #[error("{0} is not a plexmcp backup (it is empty); nothing was changed")]
    Empty(String),
    #[error(
        "the database {0} is in use by another process (a running `plexmcp serve` or console?); stop it first — nothing was changed"
    )]
    InUse(String),
    #[error("{path} is damaged ({count} problem(s), first: {first}); nothing was changed")]
    Damaged {
        path: String,
        count: usize,
        first: String,
    },
    #[error("{0} stayed busy for {1:?}; try again")]
    Busy(String, Duration),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Store(StoreError::Sqlite(e))
    }
}

type Result<T, E = BackupError> = std::result::Result<T, E>;

/// What a database holds, to say what a backup or a restore contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSummary {
    pub orgs: i64,
    pub keys: i64,
    pub revoked_keys: i64,
    pub mcps: i64,
    /// The newest audit event: the last administrative change.
    pub last_change: Option<Timestamp>,
}

/// A finished backup.
#[derive(Debug)]
pub struct BackupReport {
    pub bytes: u64,
    pub summary: DbSummary,
}

/// The outcome of `db check`: every problem found (empty when healthy).
#[derive(Debug)]
pub struct CheckReport {
    pub schema_version: u32,
    pub problems: Vec<String>,
}

impl super::Store {
    /// Copies the open database to `target` (mode 0600) while other
    /// processes keep using it, verifies the copy, and only then puts it in
    /// place: an existing `target` is replaced only when `replace` is set.
    pub fn backup_to(&self, target: &Path, replace: bool) -> Result<BackupReport> {
        let shown = target.display().to_string();
        refuse_target(target, &self.path, replace, &shown)?;
        let partial = Scratch::create(target, "partial")?;
        let mut copy = open_rw(&partial.path)?;
        copy_all(&self.conn, &mut copy, &shown)?;
        // One self-contained file: no -wal beside it to forget when copying it away.
        copy.pragma_update_and_check(None, "journal_mode", "DELETE", |_| Ok(()))?;
        let problems = problems(&copy)?;
        if let Some(first) = problems.first() {
            return Err(BackupError::Damaged {
                path: self.path.display().to_string(),
                count: problems.len(),
                first: first.clone(),
            });
        }
        check_ids(&copy, &shown)?;
        let summary = summarize(&copy)?;
        drop(copy);
        let bytes = std::fs::metadata(&partial.path)
            .map_err(|e| io_error(&partial.path, e))?
            .len();
        partial.put_in_place(target, replace, &shown)?;
        Ok(BackupReport { bytes, summary })
    }

    /// Reads the database at `path` without changing it: SQLite's
    /// integrity check and the foreign-key check.
    pub fn check(path: &Path) -> Result<CheckReport> {
        let shown = path.display().to_string();
        if !path.exists() {
            return Err(BackupError::Missing(shown, "check"));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: shown.clone(),
            source,
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        check_ids(&conn, &shown)?;
        let version = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?;
        Ok(CheckReport {
            schema_version: u32::try_from(version).unwrap_or(0),
            problems: problems(&conn)?,
        })
    }

    /// Takes the database at `db` for a restore from `backup`: locks it
    /// against every other process (refusing when one has it open), and
    /// stages a checked, migrated copy of the backup. Nothing changes
    /// until `PendingRestore::commit`.
    pub fn prepare_restore(db: &Path, backup: &Path) -> Result<PendingRestore> {
        let db_shown = db.display().to_string();
        let backup_shown = backup.display().to_string();
        let backup_meta = std::fs::metadata(backup).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BackupError::NoBackup(backup_shown.clone()),
            _ => io_error(backup, e),
        })?;
        if backup_meta.is_dir() {
            return Err(BackupError::IsDirectory(backup_shown));
        }
        if same_file_as_db(&backup_meta, db) {
            return Err(BackupError::IsTheDatabase(backup_shown));
        }
        if !db.exists() {
            // A fresh machine: create the database (0600 in a 0700 folder) to restore into.
            drop(super::Store::open(db)?);
        }
        let (live, current) = lock_exclusively(db, &db_shown)?;

        let staged = Scratch::create(db, "restore")?;
        let source = Connection::open_with_flags(
            backup,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: backup_shown.clone(),
            source,
        })?;
        source.busy_timeout(BUSY_TIMEOUT)?;
        check_ids(&source, &backup_shown)?;
        let objects: i64 =
            source.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if objects == 0 {
            return Err(BackupError::Empty(backup_shown));
        }
        let mut copy = open_rw(&staged.path)?;
        copy_all(&source, &mut copy, &backup_shown)?;
        drop(source);
        let problems = problems(&copy)?;
        if let Some(first) = problems.first() {
            return Err(BackupError::Damaged {
                path: backup_shown,
                count: problems.len(),
                first: first.clone(),
            });
        }
        drop(copy);
        // The store's own open: an older schema is brought up to date here,
        // on the copy, never on the database still in place.
        let incoming_store = super::Store::open(&staged.path)?;
        let incoming = summarize(&incoming_store.conn)?;
        Ok(PendingRestore {
            live,
            incoming_store,
            _staged: staged,
            db_shown,
            backup_shown,
            current,
            incoming,
        })
    }
}

/// A restore ready to replace the database, which stays locked against
/// every other process until this is committed or dropped.
pub struct PendingRestore {
    live: Connection,
    incoming_store: super::Store,
    /// Declared after the store, so its connection closes before the files go.
    _staged: Scratch,
    db_shown: String,
    backup_shown: String,
    pub current: DbSummary,
    pub incoming: DbSummary,
}

impl PendingRestore {
    /// Writes the restore's audit event into the staged copy, then copies
    /// it over the database in one transaction.
    pub fn commit(mut self, actor: &Actor, now: Timestamp) -> Result<DbSummary> {
        {
            let tx = self.incoming_store.write_tx()?;
            // A database-wide event: it belongs to no organization.
            let detail = format!("from {}", self.backup_shown);
            super::audit_chain::append(
                &tx,
                &super::audit_chain::NewEvent {
                    org_id: None,
                    at: now,
                    actor,
                    action: "database.restored",
                    target_kind: "database",
                    target_id: &self.db_shown,
                    detail: Some(&detail),
                },
            )?;
            tx.commit().map_err(StoreError::from)?;
        }
        copy_all(&self.incoming_store.conn, &mut self.live, &self.db_shown)?;
        // Fold the restored pages into the main file before the lock goes.
        self.live
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let restored = summarize(&self.live)?;
        Ok(restored)
    }
}

impl std::fmt::Debug for PendingRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRestore")
            .field("db", &self.db_shown)
            .field("backup", &self.backup_shown)
            .finish()
    }
}

/// A connection holding the database's exclusive lock until it closes.
/// In WAL mode every open connection of another process keeps a shared
/// lock on the file, so a `serve`, a console or a CLI command that has the
/// database open makes this fail at once (busy timeout 0).
fn lock_exclusively(db: &Path, shown: &str) -> Result<(Connection, DbSummary)> {
    let conn = open_rw(db)?;
    conn.busy_timeout(Duration::ZERO)?;
    conn.pragma_update_and_check(None, "locking_mode", "EXCLUSIVE", |_| Ok(()))?;
    match conn.execute_batch("BEGIN EXCLUSIVE") {
        Ok(()) => {}
        Err(rusqlite::Error::SqliteFailure(f, _))
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            return Err(BackupError::InUse(shown.to_owned()));
        }
        Err(e) => return Err(e.into()),
    }
    // The database being replaced must be ours too, and not from a newer plexmcp.
    check_ids(&conn, shown)?;
    let summary = summarize(&conn)?;
    // Exclusive locking mode keeps the lock after the transaction ends.
    conn.execute_batch("COMMIT")?;
    Ok((conn, summary))
}

fn open_rw(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    Ok(conn)
}

/// Every page of `from` into `to`, in one step: one read transaction on
/// `from`, so the copy is a snapshot even while others write.
fn copy_all(from: &Connection, to: &mut Connection, shown: &str) -> Result<()> {
    let backup = Backup::new(from, to)?;
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            // Busy, Locked (the enum is non-exhaustive): wait and try again.
            _ => {
                if Instant::now() >= deadline {
                    return Err(BackupError::Busy(shown.to_owned(), BUSY_TIMEOUT));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// SQLite's integrity check and the foreign-key check, as one line each.
fn problems(conn: &Connection) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let integrity = conn
        .prepare(&format!("PRAGMA integrity_check({MAX_PROBLEMS})"))
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
    match integrity {
        // A row may hold several lines, headed by which schema they are about.
        Ok(rows) => found.extend(
            rows.iter()
                .flat_map(|r| r.lines())
                .filter(|l| *l != "ok" && !l.starts_with("*** in database"))
                .map(str::to_owned),
        ),
        // Damage bad enough that the check itself stops is a finding too.
        Err(e @ rusqlite::Error::SqliteFailure(..)) if is_corruption(&e) => {
            found.push(format!("{e} (the check could not go on)"));
            return Ok(found);
        }
        Err(e) => return Err(e.into()),
    }
    let foreign_keys = conn
        .prepare("PRAGMA foreign_key_check")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| {
                let table: String = r.get(0)?;
                let row: Option<i64> = r.get(1)?;
                let parent: String = r.get(2)?;
                Ok(match row {
                    Some(row) => format!("{table} row {row} refers to a missing {parent} row"),
                    None => format!("a {table} row refers to a missing {parent} row"),
                })
            })?
            .take(MAX_PROBLEMS)
            .collect::<rusqlite::Result<Vec<_>>>()
        });
    match foreign_keys {
        Ok(rows) => found.extend(rows),
        Err(e) if is_corruption(&e) => found.push(e.to_string()),
        Err(e) => return Err(e.into()),
    }
    Ok(found)
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
}

fn summarize(conn: &Connection) -> Result<DbSummary> {
    let summary = conn.query_row(
        "SELECT (SELECT count(*) FROM orgs),
                (SELECT count(*) FROM api_keys),
                (SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL),
                (SELECT count(*) FROM mcps WHERE deleted_at IS NULL),
                (SELECT max(at) FROM audit_events)",
        [],
        |r| {
            Ok(DbSummary {
                orgs: r.get(0)?,
                keys: r.get(1)?,
                revoked_keys: r.get(2)?,
                mcps: r.get(3)?,
                last_change: opt_ts(r.get::<_, Option<StoredTime>>(4)?),
            })
        },
    )?;
    Ok(summary)
}

/// Refuses a backup target that exists (unless replacing), is a folder,
/// or is the database itself.
fn refuse_target(target: &Path, db: &Path, replace: bool, shown: &str) -> Result<()> {
    match std::fs::metadata(target) {
        Ok(meta) if meta.is_dir() => return Err(BackupError::IsDirectory(shown.to_owned())),
        Ok(meta) if same_file_as_db(&meta, db) => {
            return Err(BackupError::IsTheDatabase(shown.to_owned()));
        }
        _ => {}
    }
    // Said of the folder, not of the hidden copy that could not be made in it.
    let folder = folder_of(target);
    if !folder.is_dir() {
        return Err(BackupError::NoFolder(folder.display().to_string()));
    }
    // symlink_metadata: a dangling link exists too.
    if !replace && std::fs::symlink_metadata(target).is_ok() {
        return Err(BackupError::Exists(shown.to_owned()));
    }
    Ok(())
}

/// True when `meta` is the database or one of SQLite's files beside it.
/// Compared by inode through `stat`, which opens no descriptor.
fn same_file_as_db(meta: &std::fs::Metadata, db: &Path) -> bool {
    let mut names = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        names.push(PathBuf::from(name));
    }
    names.iter().any(|name| {
        std::fs::metadata(name).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
    })
}

/// The folder a file is (to be) in; `.` for a bare name.
fn folder_of(path: &Path) -> &Path {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    }
}

fn io_error(path: &Path, source: io::Error) -> BackupError {
    BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A hidden file (mode 0600) beside `near`, removed with SQLite's
/// companions when dropped unless it was put in place.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create(near: &Path, purpose: &str) -> Result<Scratch> {
        let dir = folder_of(near);
        let name = near
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plexmcp.db".into());
        let path = dir.join(format!(".{name}.{purpose}-{}", std::process::id()));
        // A leftover of a killed run with this pid holds nothing worth keeping.
        remove_with_companions(&path);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        Ok(Scratch { path })
    }

    /// Moves the verified copy to `target`: atomically replacing it when
    /// allowed, else linking it there, which fails if `target` appeared
    /// in the meantime.
    fn put_in_place(self, target: &Path, replace: bool, shown: &str) -> Result<()> {
        if replace {
            std::fs::rename(&self.path, target).map_err(|e| io_error(target, e))?;
        } else {
            match std::fs::hard_link(&self.path, target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(BackupError::Exists(shown.to_owned()));
                }
                // Filesystems without hard links: the check above is all we have.
                Err(_) if std::fs::symlink_metadata(target).is_err() => {
                    std::fs::rename(&self.path, target).map_err(|e| io_error(target, e))?;
                }
                Err(e) => return Err(io_error(target, e)),
            }
        }
        sync_folder(target);
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_with_companions(&self.path);
    }
}

fn remove_with_companions(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// Makes the new name durable; best effort, as the copy itself is synced.
fn sync_folder(target: &Path) {
    if let Ok(folder) = std::fs::File::open(folder_of(target)) {
        let _ = folder.sync_all();
    }
}
