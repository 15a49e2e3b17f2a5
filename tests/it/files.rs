//! Files that hold every webhook secret in clear: the database, its `-wal` and `-shm` files and
//! every backup are created 0600 whatever the umask, and an existing database that others can
//! read is reported at start with the fix.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use crate::support::child::assert_success;
use crate::support::cli;
use crate::support::server::Server;

/// A shell that first sets the usual umask 022, under which a plain file is created
/// `-rw-r--r--`, then runs the binary.
const UMASK_022: [&str; 4] = ["sh", "-c", "umask 022 && exec \"$@\"", "sh"];

/// `git-push-tracker --db DB ARGS...` under [`UMASK_022`]; it must succeed.
fn run_under_umask_022(db: &Path, args: &[&str]) -> Output {
    let out = cli::command_through(&UMASK_022)
        .arg("--db")
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    assert_success(&out);
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[test]
fn the_database_its_wal_and_shm_and_every_backup_are_0600_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("secrets.db");
    // A running server holds the database open in WAL mode, so its -wal and -shm files exist.
    let _server = Server::start_with(&UMASK_022, &db, &dir.path().join("serve.log"), |command| {
        command.args(["--summarizer", "builtin"]);
    });
    let files = [db.clone(), beside(&db, "-wal"), beside(&db, "-shm")];
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }

    let backup = dir.path().join("backup.db");
    run_under_umask_022(&db, &["backup", backup.to_str().unwrap()]);
    assert_eq!(mode(&backup), 0o600, "a new backup");

    // Replacing a world-readable file leaves a private one, not the old file's mode.
    let replaced = dir.path().join("replaced.db");
    std::fs::write(&replaced, b"old").unwrap();
    std::fs::set_permissions(&replaced, std::fs::Permissions::from_mode(0o644)).unwrap();
    run_under_umask_022(&db, &["backup", replaced.to_str().unwrap(), "--force"]);
    assert_eq!(mode(&replaced), 0o600, "a backup written over a 0644 file");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_database_that_others_can_read_is_reported_with_the_chmod_that_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let quiet = run_under_umask_022(&db, &["project", "list"]);
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("chmod"),
        "a private database is not reported"
    );

    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_under_umask_022(&db, &["project", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod 600 {}", db.display())),
        "{stderr}"
    );
    assert!(stderr.contains("0644"), "{stderr}");
}
