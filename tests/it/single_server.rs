//! One server per database file, over the real binary: a second `serve` on a file a running
//! server holds refuses to start and says which file; the CLI keeps working beside the server;
//! once the server stops, or is killed, the next one starts.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::app::agent;
use crate::support::cli;
use crate::support::server::Server;

/// The built-in summarizer, so no model is asked for anything.
fn builtin(command: &mut Command) {
    command.env("PUSH_TRACKER_SUMMARIZER", "builtin");
}

/// `serve` on `db`, waiting until it is healthy; its log beside the database.
fn start(db: &Path) -> Server {
    Server::start(db, &db.with_extension("log"), builtin)
}

#[test]
fn a_second_server_on_a_file_in_use_refuses_to_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let first = start(&db);

    let mut second = Server::spawn(&db, &dir.path().join("second.log"), |command| {
        builtin(command);
        command.stderr(Stdio::piped());
    });
    let status = second.wait_exit("the second server to give up");
    assert!(!status.success(), "a second server must exit non-zero");
    let stderr = second.stderr();
    let last = stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: another git-push-tracker server is already serving")
            && last.contains(&db.display().to_string()),
        "the last line names the file: {stderr}"
    );
    assert!(
        !stderr.contains("serving: dashboard"),
        "the second server never serves: {stderr}"
    );

    // The first one is untouched, and the CLI works beside it as before.
    let health = agent()
        .get(format!("{}/healthz", first.base))
        .call()
        .unwrap();
    assert_eq!(health.status(), 200);
    let created = cli::run(&db, &["project", "create", "beside", "--json"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = cli::run(&db, &["key", "create", "beside", "--json"]);
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let backup = cli::run(
        &db,
        &["backup", dir.path().join("copy.db").to_str().unwrap()],
    );
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );

    first.stop();
    let third = start(&db);
    third.stop();
}

#[test]
fn a_server_starts_on_a_file_whose_previous_server_was_killed_with_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.db");
    let mut first = start(&db);
    first.kill();

    let next = start(&db);
    next.stop();
}
