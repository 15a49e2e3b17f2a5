//! The SQLite store: connection pool, per-connection settings, and every SQL statement the app runs.
//!
//! One file holds everything. WAL lets the API read while the ingest writer commits; the
//! writer thread ([`writer`]) batches webhook inserts into few transactions and keeps the WAL
//! file bounded with periodic checkpoints.

pub mod admin;
pub mod backup;
pub mod jobs;
pub mod keys;
pub mod migrate;
mod private;
pub mod projects;
pub mod pushes;
pub mod retention;
pub mod stats;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;
pub type PooledConn = r2d2::PooledConnection<SqliteConnectionManager>;

/// How long a connection waits for another writer (the CLI, the worker) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Storage failures. `NotFound` and `Conflict` are expected outcomes; the rest are unexpected.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    #[error(
        "the database was written by a newer git-push-tracker (schema version {found}, this binary knows up to {supported}); upgrade the binary or restore a backup"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not get a database connection")]
    Pool(#[from] r2d2::Error),
    #[error("could not open the database at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("the webhook secret changed since the delivery was verified")]
    StaleSecret,
    #[error("a push's stored commits could not be read")]
    CorruptCommits(#[source] serde_json::Error),
}

/// The shared handle to the database file.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    path: PathBuf,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        private::warn_if_readable_by_others(path);
        // Best effort: when the file cannot be created, SQLite cannot either and says why.
        let _ = private::create_if_missing(path);
        let mut conn = open_connection(path)?;
        migrate::migrate(&mut conn)?;
        drop(conn);
        let manager = SqliteConnectionManager::file(path).with_init(configure);
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Db {
            pool,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A pooled connection; blocking, so async callers go through `spawn_blocking`.
    pub fn conn(&self) -> Result<PooledConn, DbError> {
        Ok(self.pool.get()?)
    }

    /// A dedicated connection outside the pool, for long-lived threads (writer, backup).
    pub fn dedicated_connection(&self) -> Result<Connection, DbError> {
        open_connection(&self.path)
    }

    /// The write-ahead log next to the database file.
    pub fn wal_path(&self) -> PathBuf {
        suffixed(&self.path, "-wal")
    }

    /// Answers whether the database can be read; used by `/healthz`.
    pub fn check(&self) -> Result<(), DbError> {
        let conn = self.conn()?;
        conn.query_row("SELECT count(*) FROM projects", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }
}

/// `path` with `suffix` appended to its file name, as SQLite names the files beside it.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn open_connection(path: &Path) -> Result<Connection, DbError> {
    let open = || -> Result<Connection, rusqlite::Error> {
        let mut conn = Connection::open(path)?;
        configure(&mut conn)?;
        Ok(conn)
    };
    open().map_err(|source| DbError::Open {
        path: path.to_owned(),
        source,
    })
}

/// Settings every connection needs; `journal_mode` is stored in the file, the rest per connection.
fn configure(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // With STAT4 statistics (after an ANALYZE), SQLite re-plans a cached statement every time a
    // parameter that feeds an index lookup is bound, so each API read re-parsed its SQL: a fifth
    // of the CPU of a page request. Every statement here has one right plan whatever the values.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -8192;",
    )?;
    Ok(())
}

/// Timestamps are stored as Unix milliseconds.
pub(crate) fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
