//! Durable acknowledgements: the real binary, traced with strace, never answers a webhook 201
//! before the log holding that push has been synced to disk.
//!
//! Needs `strace` (`.ci/run` installs it). Without it the test is skipped with a note, except
//! when `CI=true`, where a missing tool is a failure.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::app::{agent, github_payload};
use crate::support::provider::github_signature;
use crate::support::server::Server;
use crate::support::{cli, tool};

/// Sequential deliveries to trace; each one is its own batch for the writer.
const PUSHES: usize = 10;

/// One event of interest in the trace, in the order strace saw them.
#[derive(Debug, PartialEq)]
enum Event {
    /// A sync of the database or its log finished successfully.
    Synced,
    /// The server started sending an HTTP response with this status line.
    Answered(String),
}

/// Reads strace's `-f -y` output (`PID syscall(args) = result`, with calls that another thread
/// interrupted split into `<unfinished ...>` and `<... resumed>` halves). A sync counts where it
/// returns, an answer where it starts: the order a 201 must not overtake its sync in.
fn events(trace: &str, db: &Path) -> Vec<Event> {
    let files = [
        format!("<{}>", db.display()),
        format!("<{}-wal>", db.display()),
    ];
    let mut syncing = std::collections::HashMap::new();
    let mut found = Vec::new();
    for line in trace.lines() {
        let Some((pid, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        let is_sync = call.starts_with("fsync(") || call.starts_with("fdatasync(");
        let of_db = files.iter().any(|f| call.contains(f.as_str()));
        if is_sync && call.ends_with("<unfinished ...>") {
            syncing.insert(pid.to_owned(), of_db);
        } else if is_sync {
            if of_db && call.ends_with("= 0") {
                found.push(Event::Synced);
            }
        } else if call.starts_with("<... fsync resumed>")
            || call.starts_with("<... fdatasync resumed>")
        {
            if syncing.remove(pid) == Some(true) && call.ends_with("= 0") {
                found.push(Event::Synced);
            }
        } else if let Some(at) = call.find("\"HTTP/1.1 ") {
            let status = &call[at + 1..];
            let status = status.split("\\r\\n").next().unwrap_or(status);
            found.push(Event::Answered(status.to_owned()));
        }
    }
    found
}

#[test]
fn every_webhook_201_is_sent_only_after_the_log_holding_it_was_synced_to_disk() {
    let install = "apt-get install strace; .ci/run installs it";
    if tool::require("durability test", "strace", &["-V"], install).is_none() {
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    // strace prints resolved paths; the temporary folder may sit behind a symlink.
    let db: PathBuf = dir.path().canonicalize().unwrap().join("durable.db");
    let project = cli::run_json(&db, &["project", "create", "durable", "--json"]);
    let webhook_url = project["webhookUrl"].as_str().unwrap();
    let hook_path = &webhook_url[webhook_url.find("/webhooks/").unwrap()..];
    let secret = project["webhookSecret"].as_str().unwrap();

    let trace = dir.path().join("strace.txt");
    let pid_file = dir.path().join("server.pid");
    // The shell writes its pid and becomes the server, so the test can stop it with SIGTERM
    // and strace ends with it, its output complete.
    let mut strace: Vec<OsString> = [
        "strace",
        "-f",
        "-y",
        "-qq",
        "-s",
        "40",
        "-e",
        "signal=none",
        "-e",
        "trace=fsync,fdatasync,write,writev,sendto,sendmsg",
        "-o",
    ]
    .map(OsString::from)
    .into();
    strace.push(trace.clone().into());
    strace.extend(["sh", "-c", "echo $$ > \"$0\" && exec \"$@\""].map(OsString::from));
    strace.push(pid_file.clone().into());
    let mut server = Server::start_with(&strace, &db, &dir.path().join("serve.log"), |command| {
        command.env("PUSH_TRACKER_SUMMARIZER", "builtin");
    });
    let (http, base) = (agent(), server.base.clone());

    for n in 0..PUSHES {
        let body = github_payload("main", &[&format!("feat: change {n}")], 1_760_000_000);
        let reply = http
            .post(format!("{base}{hook_path}"))
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", &format!("durable-{n}"))
            .header("X-Hub-Signature-256", &github_signature(secret, &body))
            .send(&body[..])
            .unwrap();
        assert_eq!(reply.status(), 201, "push {n} was not stored");
    }

    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success(), "could not stop the server (pid {pid})");
    let status = server.wait_exit("the traced server to stop");
    assert!(
        status.success(),
        "the server did not stop cleanly: {status}"
    );

    let events = events(&std::fs::read_to_string(&trace).unwrap(), &db);
    let created: Vec<usize> = (0..events.len())
        .filter(|&i| matches!(&events[i], Event::Answered(s) if s.starts_with("HTTP/1.1 201")))
        .collect();
    assert_eq!(
        created.len(),
        PUSHES,
        "one traced 201 per push; events: {events:?}"
    );
    // Requests are sequential, so whatever answer came before a 201 (the health check's or the
    // previous push's) was sent before that push was committed: a sync in between is the only
    // one that can hold it.
    let unsynced: Vec<usize> = created
        .iter()
        .enumerate()
        .filter(|&(_, &at)| {
            let since_last_answer = events[..at]
                .iter()
                .rev()
                .take_while(|e| !matches!(e, Event::Answered(_)));
            !since_last_answer.into_iter().any(|e| *e == Event::Synced)
        })
        .map(|(n, _)| n)
        .collect();
    assert!(
        unsynced.is_empty(),
        "{} of {PUSHES} pushes were answered 201 with no sync of {} or its -wal since the \
         previous answer (pushes {unsynced:?})",
        unsynced.len(),
        db.display()
    );
}
