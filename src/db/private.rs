//! Database files only their owner can read. The database holds every project's webhook secret
//! in clear, so a copy another local user can read lets them forge pushes; under the usual umask
//! 022 a file SQLite creates would be `-rw-r--r--`.
//!
//! SQLite gives the `-wal`, `-shm` and `-journal` files it creates the main file's permissions
//! (its unix VFS copies them, whatever the umask), so creating the main file 0600 before SQLite
//! opens it is enough for all of them.

use std::fs::File;
use std::io;
use std::path::Path;

/// The mode of every database and backup file.
#[cfg(unix)]
const PRIVATE_MODE: u32 = 0o600;

/// Creates `path` empty and private when it does not exist yet, so SQLite opens a 0600 file
/// instead of creating a world-readable one. An existing file is left as it is.
pub(crate) fn create_if_missing(path: &Path) -> io::Result<()> {
    match create_new(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates `path` private, refusing to open a file that is already there (`O_EXCL`): a file
/// someone else placed there beforehand, or a link to one, is never written through.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(PRIVATE_MODE);
        let file = options.open(path)?;
        // The umask can only take bits away from 0600, but an odd one (0277) could leave the
        // owner unable to write: set the mode exactly.
        file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_MODE))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        options.open(path)
    }
}

/// Logs a warning for each of the database's files (`path`, its `-wal` and `-shm`) that other
/// users of the machine can read, saying how to fix it. Files made by an earlier version, or
/// copied in by hand, keep whatever mode they had.
pub(crate) fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    for file in [
        path.to_owned(),
        super::suffixed(path, "-wal"),
        super::suffixed(path, "-shm"),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %file.display(),
                mode = format!("{mode:04o}"),
                "the database file can be read by other users of this machine, and it holds every project's webhook secret: run `chmod 600 {}` (and the same for its -wal and -shm files and every backup)",
                file.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_file_is_created_0600_and_an_existing_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        create_if_missing(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::write(&path, b"kept").unwrap();
        create_if_missing(&path).unwrap();
        assert_eq!(
            (mode(&path), std::fs::read(&path).unwrap()),
            (0o640, b"kept".to_vec())
        );
    }

    #[test]
    fn create_new_refuses_a_file_that_is_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tmp");
        std::fs::write(&path, b"planted").unwrap();
        let err = create_new(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }
}
