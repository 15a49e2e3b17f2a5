//! Online backup: a consistent copy of a live database, taken with SQLite's backup API while the
//! server keeps writing.
//!
//! The copy is made in steps of [`PAGES_PER_STEP`] pages, so it can report its progress, all
//! under one read transaction held on the source: every step reads the same snapshot, in WAL mode
//! that never blocks the writer, and a write during the copy cannot restart it (an incremental
//! backup that opens a fresh read transaction per step restarts on every write and may never
//! finish under load). The copy goes to
//! a temporary file next to the destination, is switched to rollback-journal mode so it is one
//! self-contained file, synced, and only then renamed into place (and the folder synced): a crash
//! leaves either no backup or a complete one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// Why a backup was not written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no database at {0}; pass the live database with --db or PUSH_TRACKER_DB")]
    NoSource(PathBuf),
    #[error("{0} already exists; pass --force to replace it")]
    DestinationExists(PathBuf),
    #[error("the database stayed locked for 30 seconds; try again")]
    Locked,
    #[error("could not copy the database")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not write the backup file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How long a busy or locked source is retried before giving up.
const BUSY_RETRY_FOR: Duration = Duration::from_secs(30);

/// Pages copied per step (4 MiB of 4 KiB pages): small enough for a progress report every few
/// milliseconds, large enough that the steps cost nothing next to the copying.
pub const PAGES_PER_STEP: i32 = 1024;

/// How far a backup has got, reported after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupProgress {
    /// Bytes copied so far.
    pub copied: u64,
    /// Bytes in the snapshot being copied.
    pub total: u64,
}

/// Copies the database at `source` to `destination`. Refuses to replace an existing file
/// unless `force`.
pub fn backup(source: &Path, destination: &Path, force: bool) -> Result<(), BackupError> {
    backup_with_progress(source, destination, force, PAGES_PER_STEP, &mut |_| {})
}

/// [`backup`], calling `progress` after every step of `pages_per_step` pages.
pub fn backup_with_progress(
    source: &Path,
    destination: &Path,
    force: bool,
    pages_per_step: i32,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<(), BackupError> {
    if !source.is_file() {
        return Err(BackupError::NoSource(source.to_owned()));
    }
    if destination.exists() && !force {
        return Err(BackupError::DestinationExists(destination.to_owned()));
    }
    let temp = temp_path(destination);
    let result = copy_to(source, &temp, pages_per_step, progress).and_then(|()| {
        let io = |source| BackupError::Io {
            path: destination.to_owned(),
            source,
        };
        std::fs::rename(&temp, destination).map_err(io)?;
        // The rename is an entry in the folder: synced too, so a backup that was reported done
        // is still there under its name after a power cut.
        let folder = match destination.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(folder)
            .and_then(|f| f.sync_all())
            .map_err(io)
    });
    if result.is_err() {
        for leftover in [temp.clone(), suffixed(&temp, "-journal")] {
            let _ = std::fs::remove_file(leftover);
        }
    }
    result
}

fn copy_to(
    source: &Path,
    temp: &Path,
    pages_per_step: i32,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<(), BackupError> {
    // No CREATE flag: a mistyped --db must not leave an empty database behind.
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(Duration::from_secs(5))?;
    let _ = std::fs::remove_file(temp);
    // Created here, private and exclusively, so the copy of every secret is never readable by
    // others, not even for a moment; SQLite then writes into this empty file.
    super::private::create_new(temp).map_err(|source| BackupError::Io {
        path: temp.to_owned(),
        source,
    })?;
    let mut dst = Connection::open(temp)?;
    // The snapshot every step reads: the backup API keeps a read transaction it did not open.
    src.execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")?;
    let page_size: i64 = src.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let page_size = u64::try_from(page_size).unwrap_or(4096);
    {
        let backup = Backup::new(&src, &mut dst)?;
        let mut waiting_since = None;
        loop {
            let step = backup.step(pages_per_step)?;
            let p = backup.progress();
            let total = u64::try_from(p.pagecount).unwrap_or(0);
            let left = u64::try_from(p.remaining).unwrap_or(0);
            progress(BackupProgress {
                copied: (total - left.min(total)) * page_size,
                total: total * page_size,
            });
            match step {
                StepResult::Done => break,
                StepResult::More => waiting_since = None,
                StepResult::Busy | StepResult::Locked => {
                    let since = *waiting_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= BUSY_RETRY_FOR {
                        return Err(BackupError::Locked);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => return Err(BackupError::Locked),
            }
        }
    }
    src.execute_batch("COMMIT")?;
    // The source's WAL flag is copied with its header; a backup is easier to move as one file.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    dst.close().map_err(|(_, e)| e)?;
    let file = std::fs::File::open(temp).map_err(|source| BackupError::Io {
        path: temp.to_owned(),
        source,
    })?;
    file.sync_all().map_err(|source| BackupError::Io {
        path: temp.to_owned(),
        source,
    })?;
    Ok(())
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Next to the destination, so the final rename stays on one file system.
fn temp_path(destination: &Path) -> PathBuf {
    suffixed(destination, &format!(".tmp-{}", std::process::id()))
}
