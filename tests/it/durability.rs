//! Durable acknowledgements: the real binary, traced with strace, never answers a webhook 201,
//! or an owner's change, before the log holding it has been synced to disk.
//!
//! Needs `strace` (`.ci/run` installs it). Without it the test is skipped with a note, except
//! when `CI=true`, where a missing tool is a failure.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::app::{ADMIN_TOKEN, agent, github_payload};
use crate::support::child::assert_success;
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
    /// A command printed a line on its standard output, starting with these words.
    Printed(String),
    /// Something was written to the database or its log (traced only where a test asks).
    Wrote,
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
        } else if call.starts_with("pwrite64(") && of_db {
            found.push(Event::Wrote);
        } else if let Some(text) = call.strip_prefix("write(1<") {
            // Up to the first colon: what a line says, not the secret it may show.
            let text = text.split_once(", \"").map_or("", |(_, text)| text);
            let words = text.split(':').next().unwrap_or(text);
            found.push(Event::Printed(words.to_owned()));
        }
    }
    found
}

/// `strace -f -y` tracing `calls` into `trace`, the wrapper a test runs the binary through;
/// None (the test is skipped) when strace is missing outside CI.
fn strace(what: &str, trace: &Path, calls: &str) -> Option<Vec<OsString>> {
    let install = "apt-get install strace; .ci/run installs it";
    tool::require(what, "strace", &["-V"], install)?;
    let mut strace: Vec<OsString> = ["strace", "-f", "-y", "-qq", "-s", "40", "-e", "signal=none"]
        .map(OsString::from)
        .into();
    strace.extend([format!("--trace={calls}"), "-o".to_owned()].map(OsString::from));
    strace.push(trace.into());
    Some(strace)
}

/// The real binary under `strace -f -y`, tracing syncs and answers into `trace`.
struct Traced {
    server: Server,
    db: PathBuf,
    trace: PathBuf,
    pid_file: PathBuf,
}

impl Traced {
    /// None (the test is skipped) when strace is missing outside CI.
    fn start(dir: &Path, what: &str) -> Option<Traced> {
        let trace = dir.join("strace.txt");
        let calls = "fsync,fdatasync,write,writev,sendto,sendmsg";
        let mut strace = strace(what, &trace, calls)?;
        // strace prints resolved paths; the temporary folder may sit behind a symlink.
        let db: PathBuf = dir.canonicalize().unwrap().join("durable.db");
        let pid_file = dir.join("server.pid");
        // The shell writes its pid and becomes the server, so the test can stop it with SIGTERM
        // and strace ends with it, its output complete.
        strace.extend(["sh", "-c", "echo $$ > \"$0\" && exec \"$@\""].map(OsString::from));
        strace.push(pid_file.clone().into());
        let server = Server::start_with(&strace, &db, &dir.join("serve.log"), |command| {
            command
                .env("PUSH_TRACKER_SUMMARIZER", "builtin")
                .env("PUSH_TRACKER_ADMIN_TOKEN", ADMIN_TOKEN);
        });
        Some(Traced {
            server,
            db,
            trace,
            pid_file,
        })
    }

    /// Stops the server and returns what strace saw.
    fn stop(mut self) -> Vec<Event> {
        let pid = std::fs::read_to_string(&self.pid_file).unwrap();
        let killed = Command::new("kill")
            .args(["-TERM", pid.trim()])
            .status()
            .unwrap();
        assert!(killed.success(), "could not stop the server (pid {pid})");
        let status = self.server.wait_exit("the traced server to stop");
        assert!(
            status.success(),
            "the server did not stop cleanly: {status}"
        );
        events(&std::fs::read_to_string(&self.trace).unwrap(), &self.db)
    }
}

/// The answers with a status starting `status` that no sync came before since the answer
/// before them, as indexes among those answers. Requests are sequential, so whatever answer
/// came before (the health check's or the previous request's) was sent before this request's
/// change was committed: a sync in between is the only one that can hold it.
fn unsynced(events: &[Event], status: &str) -> (usize, Vec<usize>) {
    let answers: Vec<usize> = (0..events.len())
        .filter(|&i| matches!(&events[i], Event::Answered(s) if s.starts_with(status)))
        .collect();
    let unsynced = answers
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
    (answers.len(), unsynced)
}

#[test]
fn every_webhook_201_is_sent_only_after_the_log_holding_it_was_synced_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().canonicalize().unwrap().join("durable.db");
    let project = cli::run_json(&db, &["project", "create", "durable", "--json"]);
    let webhook_url = project["webhookUrl"].as_str().unwrap();
    let hook_path = &webhook_url[webhook_url.find("/webhooks/").unwrap()..];
    let secret = project["webhookSecret"].as_str().unwrap();
    let Some(traced) = Traced::start(dir.path(), "durability test") else {
        return;
    };
    let (http, base) = (agent(), traced.server.base.clone());

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

    let events = traced.stop();
    let (created, unsynced) = unsynced(&events, "HTTP/1.1 201");
    assert_eq!(
        created, PUSHES,
        "one traced 201 per push; events: {events:?}"
    );
    assert!(
        unsynced.is_empty(),
        "{} of {PUSHES} pushes were answered 201 with no sync of {} or its -wal since the \
         previous answer (pushes {unsynced:?})",
        unsynced.len(),
        db.display()
    );
}

#[test]
fn every_owner_change_is_answered_only_after_the_log_holding_it_was_synced_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let Some(traced) = Traced::start(dir.path(), "durability test") else {
        return;
    };
    let (http, base) = (agent(), traced.server.base.clone());
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let call = |method: &str, path: &str, body: Option<serde_json::Value>| {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{base}/api/admin{path}"))
            .header("Authorization", &admin)
            .header("Content-Type", "application/json");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut reply = http.run(request.body(body).unwrap()).unwrap();
        assert!(
            reply.status().is_success(),
            "{method} {path}: {}",
            reply.status()
        );
        reply
            .body_mut()
            .read_json::<serde_json::Value>()
            .unwrap_or_default()
    };
    // A login before the changes: losing one to a power cut only asks for another.
    let login = http
        .post(format!("{base}/api/admin/login"))
        .header("Content-Type", "application/json")
        .send(serde_json::json!({"token": ADMIN_TOKEN}).to_string())
        .unwrap();
    assert_eq!(login.status(), 204, "login");
    let session = login.headers()["set-cookie"].to_str().unwrap();
    let session = session.split(';').next().unwrap().to_owned();
    // Each change, answered 2xx.
    call(
        "POST",
        "/projects",
        Some(serde_json::json!({"name": "owned"})),
    );
    let key = call(
        "POST",
        "/projects/owned/keys",
        Some(serde_json::json!({"label": "ci"})),
    );
    let key_id = key["id"].to_string();
    let hook = call(
        "POST",
        "/projects/owned/notifications",
        Some(serde_json::json!({"kind": "webhook", "url": "http://127.0.0.1:9/hook"})),
    );
    let id = hook["id"].to_string();
    call(
        "POST",
        &format!("/projects/owned/notifications/{id}/pause"),
        None,
    );
    call(
        "POST",
        &format!("/projects/owned/notifications/{id}/resume"),
        None,
    );
    call(
        "DELETE",
        &format!("/projects/owned/notifications/{id}"),
        None,
    );
    call("DELETE", &format!("/projects/owned/keys/{key_id}"), None);
    call("POST", "/projects/owned/rotate-secret", None);
    call("DELETE", "/projects/owned", None);
    // A logout must stay one: a session cookie someone copied is dead from here on.
    let logout = http
        .post(format!("{base}/api/admin/logout"))
        .header("Cookie", &session)
        .header("X-Requested-With", "git-push-tracker")
        .send_empty()
        .unwrap();
    assert_eq!(logout.status(), 204, "logout");
    const CHANGES: usize = 10;

    let events = traced.stop();
    let (answered, unsynced) = unsynced(&events, "HTTP/1.1 2");
    // Before the changes, the health check's answers, which have nothing to sync.
    assert!(
        answered > CHANGES,
        "one 2xx per change after the health check's; events: {events:?}"
    );
    let first_change = answered - CHANGES;
    let unsynced: Vec<usize> = unsynced
        .into_iter()
        .filter(|&n| n >= first_change)
        .map(|n| n - first_change + 1)
        .collect();
    assert!(
        unsynced.is_empty(),
        "owner changes {unsynced:?} (in the order above, from 1) were answered with no sync of \
         the database or its log since the previous answer"
    );
}

#[test]
fn a_reset_admin_token_is_printed_only_after_the_log_holding_it_was_synced_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("strace.txt");
    let calls = "fsync,fdatasync,write,pwrite64";
    let Some(strace) = strace("durability test", &trace, calls) else {
        return;
    };
    let db: PathBuf = dir.path().canonicalize().unwrap().join("durable.db");
    // A database that exists and is at rest, as beside a server that made it.
    cli::run_json(&db, &["project", "create", "durable", "--json"]);
    let out = cli::command_through(&strace)
        .arg("--db")
        .arg(&db)
        .args(["admin", "reset-token"])
        .output()
        .unwrap();
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("New admin token: "));

    let events = events(&std::fs::read_to_string(&trace).unwrap(), &db);
    let printed = events
        .iter()
        .position(|e| matches!(e, Event::Printed(text) if text.starts_with("New admin token")))
        .unwrap_or_else(|| panic!("the token was printed; events: {events:?}"));
    // SQLite syncs a new log's header before its first frames: only a sync after the last
    // write before the token counts.
    let last_write = events[..printed]
        .iter()
        .rposition(|e| *e == Event::Wrote)
        .expect("the reset wrote to the database");
    assert!(
        events[last_write..printed].contains(&Event::Synced),
        "the new admin token was printed before the write holding it was synced to {} or its \
         -wal: a power cut could bring back the old token; events: {events:?}",
        db.display()
    );
}
