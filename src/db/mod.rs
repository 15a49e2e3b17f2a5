//! Storage: the [`Store`] façade every other module goes through, and its SQLite engine ([`Db`]):
//! the connection pool, per-connection settings and every SQL statement the app runs.
//!
//! Contact points: handlers, the CLI, the worker and retention call [`Store`]; webhook pushes
//! arrive through the batching [`writer`]; [`migrate`] runs at open; [`backup`] copies a live
//! file. WAL lets the API read while the ingest writer commits, and the writer keeps the WAL
//! file bounded with periodic checkpoints. No module outside this one names `rusqlite`.

mod admin;
pub mod backup;
mod changes;
mod derive;
mod expiry;
mod gate;
mod history;
mod keys;
pub mod migrate;
mod notifications;
mod private;
mod projects;
mod pushes;
mod settings;
mod stats;
mod store;
mod summary_queue;
mod values;
pub mod writer;

pub use changes::{Change, ChangeCursor, ChangeKind};
pub use derive::CaughtUp;
pub use history::{DigestPush, GroupCount, Grouping, RangeCounts};
pub use notifications::{DeliveryOutcome, DeliveryRecord, DueDelivery};
pub use pushes::{
    CursorError, Inserted, PageCursor, PageStart, PreparedPush, PushFilter, PushOrder, PushPage,
    SearchTerm,
};
pub use store::{HookTarget, ProjectScope, Store};
pub use summary_queue::ClaimedPush;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::domain::ProjectName;

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
    Sqlite(#[source] rusqlite::Error),
    #[error("a stored row holds a value this binary does not know")]
    CorruptValue(#[source] values::UnknownStoredValue),
    #[error("could not get a database connection")]
    Pool(#[from] r2d2::Error),
    /// Every turn at the search gate stayed taken for as long as a search may wait.
    #[error("too many searches are running; retry shortly")]
    Busy,
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
    #[error("the database log could not be synced to disk")]
    NotSynced,
    #[error("a push's stored commits could not be read")]
    CorruptCommits(#[source] serde_json::Error),
}

impl DbError {
    /// The database had no room for the work in time (every search turn, or every pooled
    /// connection, stayed taken): worth a retry, unlike the other errors.
    pub fn is_busy(&self) -> bool {
        matches!(self, DbError::Busy | DbError::Pool(_))
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::FromSqlConversionFailure(column, ty, cause) => {
                match cause.downcast::<values::UnknownStoredValue>() {
                    Ok(unknown) => DbError::CorruptValue(*unknown),
                    Err(cause) => DbError::Sqlite(rusqlite::Error::FromSqlConversionFailure(
                        column, ty, cause,
                    )),
                }
            }
            e => DbError::Sqlite(e),
        }
    }
}

/// The shared handle to the database file.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    path: PathBuf,
    /// Woken after every commit that may have added to the change log (see [`Store::change_signal`]).
    changed: std::sync::Arc<tokio::sync::Notify>,
    /// How far the derived rows are behind this process's writer.
    derived: std::sync::Arc<derive::Progress>,
    /// Searches (extended filters) at once, so they cannot take every pooled connection.
    searches: std::sync::Arc<gate::SearchGate>,
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
        // Pushes a crash left without their derived rows (or another process's, just stored).
        let caught_up = derive::catch_up(&mut conn)?;
        if caught_up.pushes > 0 {
            tracing::info!(
                pushes = caught_up.pushes,
                "wrote the derived rows of queued pushes"
            );
        }
        drop(conn);
        let manager = SqliteConnectionManager::file(path).with_init(configure);
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Db {
            pool,
            path: path.to_owned(),
            changed: std::sync::Arc::new(tokio::sync::Notify::new()),
            derived: std::sync::Arc::default(),
            searches: std::sync::Arc::new(gate::SearchGate::new(
                crate::limits::DEFAULT_SEARCHES_AT_ONCE,
                Duration::from_secs(crate::limits::DEFAULT_SEARCH_WAIT_SECS),
            )),
        })
    }

    /// The same database with another limit on searches at once, each waiting up to `wait`.
    pub fn with_searches_at_once(mut self, permits: usize, wait: Duration) -> Db {
        self.searches = std::sync::Arc::new(gate::SearchGate::new(permits, wait));
        self
    }

    /// Waits until the pushes this process's writer has committed have their derived rows, so
    /// that a read sees in the counters, the search index and the change log every push that
    /// was answered for before it.
    fn settled(&self) {
        self.derived.settle();
    }

    /// A read of pushes once the derived rows are settled; a search (an extended filter) first
    /// waits for its turn at the search gate.
    fn filtered_read<T>(
        &self,
        filter: &PushFilter,
        read: impl FnOnce(&Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.settled();
        let _turn = filter
            .is_extended()
            .then(|| self.searches.enter())
            .transpose()?;
        read(&*self.conn()?)
    }

    /// A pooled connection; blocking, so async callers go through `spawn_blocking`.
    fn conn(&self) -> Result<PooledConn, DbError> {
        Ok(self.pool.get()?)
    }

    /// A dedicated connection outside the pool, for long-lived threads (writer, backup).
    fn dedicated_connection(&self) -> Result<Connection, DbError> {
        open_connection(&self.path)
    }

    /// Syncs the log to disk, so an owner's change answered after it survives a power cut.
    fn sync_log(&self) -> Result<(), DbError> {
        sync_log(&self.wal_path(), &self.path).map_err(|e| {
            tracing::error!(error = %e, "syncing the database log to disk failed");
            DbError::NotSynced
        })
    }

    /// An owner's change (a project, a secret, a key, a notification, the admin token, a
    /// logout), on a pooled connection and synced before it is answered: a key, secret or token
    /// is shown once, and a revoked key or ended session must stay so, so none of them may be
    /// undone by a power cut after the answer.
    fn owner_change<T>(
        &self,
        change: impl FnOnce(&mut Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let done = change(&mut *self.conn()?)?;
        self.sync_log()?;
        Ok(done)
    }

    /// The write-ahead log next to the database file.
    pub fn wal_path(&self) -> PathBuf {
        suffixed(&self.path, "-wal")
    }

    /// Stores already prepared pushes of one project in one transaction, outside the ingest
    /// writer: a bulk import (the benchmark seeds its million-push database this way).
    pub fn import_pushes(
        &self,
        project: &ProjectName,
        pushes: &[PreparedPush],
    ) -> Result<usize, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let project = projects::find(&tx, project)?;
        let mut stored = 0;
        for push in pushes {
            if matches!(pushes::insert(&tx, project.id, push)?, Inserted::New(_)) {
                stored += 1;
            }
        }
        derive::catch_up_in(&tx)?;
        tx.commit()?;
        self.changed.notify_one();
        Ok(stored)
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
    // A list request picks one of a few dozen statements by its filters (branch, since, until,
    // cursor); rusqlite's default cache of 16 would re-prepare them in turn.
    conn.set_prepared_statement_cache_capacity(64);
    // With STAT4 statistics (after an ANALYZE), SQLite re-plans a cached statement every time a
    // parameter that feeds an index lookup is bound, so each API read re-parsed its SQL: a fifth
    // of the CPU of a page request. Every statement here has one right plan whatever the values.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // NORMAL: in WAL mode a commit is written to the log but not synced; it reaches the disk at
    // the next sync of the log (the log syncer's, after the ingest writer's next batch, or a
    // checkpoint's), and a power cut before that undoes it, never half of it. What these
    // connections write is either answered to nobody (the summary worker's outcomes: a lost one
    // leaves the push pending or in progress, and it is summarized again; retention's deletes:
    // redone at its next run), or an owner's change, which `Db::owner_change` syncs before it
    // is answered. A webhook's writes go through the ingest writer, whose batches are answered
    // once the log syncer has synced them (`writer::LogSyncer`).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -8192;",
    )?;
    Ok(())
}

/// `fdatasync` of the log, through a descriptor of its own (a sync writes the file's pages,
/// whoever wrote them). No log means every frame is in the database file already: sync that.
fn sync_log(wal: &Path, database: &Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(log) => log.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::File::open(database)?.sync_data()
        }
        Err(e) => Err(e),
    }
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
