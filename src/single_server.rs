//! One server per database file: an OS lock on a sidecar file, held for the server's lifetime.
//!
//! Two `serve` processes on one file would each re-queue the other's in-progress summaries at
//! start (so one push can go to the model twice), and both would run retention and
//! checkpoints. The CLI takes no lock: its commands are short transactions that SQLite already
//! serializes, and they are meant to run beside a server.
//!
//! The lock is `flock` on `<db>.lock`, not on the database itself: SQLite takes POSIX record
//! locks on the database, and on file systems that emulate `flock` with those (NFS) the two
//! would collide. The kernel drops the lock when the process ends, however it ends (SIGKILL
//! too), so a restart after a crash never finds a stale lock. The file is left in place: deleting
//! it on exit would let a server that opened it just before lock a file nobody else can find.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Why the server may not use the database file.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another git-push-tracker server is already serving {db} (it holds {lock}); stop it first, or pass another --db"
    )]
    Held { db: PathBuf, lock: PathBuf },
    #[error("could not lock {lock} to claim {db} for this server")]
    Io {
        db: PathBuf,
        lock: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The claim on a database file; released when dropped or when the process ends.
#[derive(Debug)]
pub struct ServerLock {
    _file: File,
}

/// The sidecar lock file of the database at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    // Resolved, so two names of one database (a symlink, another relative path) share one
    // lock; a database not created yet is named by its resolved folder.
    let resolved = std::fs::canonicalize(db).ok().or_else(|| {
        let parent = db.parent().filter(|p| !p.as_os_str().is_empty())?;
        Some(std::fs::canonicalize(parent).ok()?.join(db.file_name()?))
    });
    let mut name = resolved.unwrap_or_else(|| db.to_owned()).into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Claims the database at `db` for this process, without waiting: a second server fails at once.
pub fn claim(db: &Path) -> Result<ServerLock, LockError> {
    let lock = lock_path(db);
    let io = |source| LockError::Io {
        db: db.to_owned(),
        lock: lock.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(ServerLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(LockError::Held {
            db: db.to_owned(),
            lock,
        }),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_fails_while_the_first_is_held_and_succeeds_after_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let first = claim(&db).unwrap();
        let err = claim(&db).unwrap_err();
        assert!(matches!(err, LockError::Held { .. }), "{err}");
        assert!(err.to_string().contains(&db.display().to_string()));
        drop(first);
        claim(&db).expect("the lock is free again");
    }
}
