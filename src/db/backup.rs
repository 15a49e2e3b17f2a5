//! Online backup: a consistent copy of a live database, taken with SQLite's backup API while the
//! server keeps writing.
//!
//! The whole copy is one backup step, so it reads one snapshot under a single read transaction;
//! in WAL mode that never blocks the writer, and a write during the copy cannot restart it (an
//! incremental backup restarts on every write and may never finish under load). The copy goes to
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

/// Copies the database at `source` to `destination`. Refuses to replace an existing file
/// unless `force`.
pub fn backup(source: &Path, destination: &Path, force: bool) -> Result<(), BackupError> {
    if !source.is_file() {
        return Err(BackupError::NoSource(source.to_owned()));
    }
    if destination.exists() && !force {
        return Err(BackupError::DestinationExists(destination.to_owned()));
    }
    let temp = temp_path(destination);
    let result = copy_to(source, &temp).and_then(|()| {
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

fn copy_to(source: &Path, temp: &Path) -> Result<(), BackupError> {
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
    {
        let backup = Backup::new(&src, &mut dst)?;
        let started = std::time::Instant::now();
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked
                    if started.elapsed() < BUSY_RETRY_FOR =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    return Err(BackupError::Locked);
                }
            }
        }
    }
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
