//! Crash safety: the real binary is SIGKILLed ten times under webhook load and restarted on the
//! same database; every delivery that was answered 2xx must still be stored, with its commits.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::Duration;

use crate::support::app::{github_payload, wait_for};
use crate::support::cli;
use crate::support::provider::{Provider, signed_headers};
use crate::support::server::Server;
use rusqlite::{Connection, OpenFlags};

const KILLS: usize = 10;
const CLIENTS: usize = 3;
/// Acknowledged deliveries to see in each life of the server before killing it.
const ACKS_PER_LIFE: usize = 40;

/// Starts `serve` with the builtin summarizer, logging to `log`.
fn start_server(db: &Path, log: &Path) -> (Server, String) {
    let server = Server::start(db, log, |command| {
        command.env("PUSH_TRACKER_SUMMARIZER", "builtin");
    });
    let base = server.base.clone();
    (server, base)
}

fn open_read_only(db: &Path) -> Connection {
    Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open db read-only")
}

/// Asserts every acknowledged delivery is stored and no stored push lost its commits.
fn assert_durable(db: &Path, acked: &HashSet<String>, life: usize) {
    let conn = open_read_only(db);
    let mut stmt = conn.prepare("SELECT delivery_id FROM pushes").unwrap();
    let stored: HashSet<String> = stmt
        .query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap()
        .filter_map(|r| r.unwrap())
        .collect();
    let missing: Vec<&String> = acked.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "after kill {life}: {} acknowledged deliveries are not stored, e.g. {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    let orphaned: i64 = conn
        .query_row(
            "SELECT count(*) FROM pushes p WHERE commit_count > 0 AND NOT deleted \
             AND NOT EXISTS (SELECT 1 FROM commits c WHERE c.push_id = p.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        orphaned, 0,
        "after kill {life}: pushes without their commits"
    );
    // The payloads list every commit, so each push must hold exactly the commits it counts.
    let short: i64 = conn
        .query_row(
            "SELECT count(*) FROM pushes p WHERE NOT commits_truncated \
             AND commit_count <> (SELECT count(*) FROM commits c WHERE c.push_id = p.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        short, 0,
        "after kill {life}: pushes with some commits missing"
    );
}

/// Asserts the derived rows are true: every push but those still queued for them is counted
/// once in every counter, has one search entry and one "created" change. Read in one
/// transaction, so the server writing meanwhile cannot make it see half of a commit.
fn assert_derived_true(db: &Path, life: usize) {
    let mut conn = open_read_only(db);
    let tx = conn.transaction().unwrap();
    let count = |sql: &str| -> i64 { tx.query_row(sql, [], |r| r.get(0)).unwrap() };
    let derived =
        count("SELECT count(*) FROM pushes WHERE id NOT IN (SELECT push_id FROM push_index_queue)");
    for (what, sql) in [
        ("push_counts", "SELECT COALESCE(sum(n), 0) FROM push_counts"),
        ("push_days", "SELECT COALESCE(sum(n), 0) FROM push_days"),
        (
            "push_hours",
            "SELECT COALESCE(sum(n), 0) FROM push_branch_hours",
        ),
        ("search entries", "SELECT count(*) FROM push_fts_docsize"),
        (
            "created changes",
            "SELECT count(*) FROM push_changes WHERE kind = 'created'",
        ),
    ] {
        assert_eq!(count(sql), derived, "after kill {life}: {what}");
    }
}

/// One client: sends signed pushes with unique delivery ids to whatever server is up, and
/// records each delivery the server acknowledged with a 2xx.
fn client(
    n: usize,
    base: Arc<RwLock<String>>,
    hook_path: String,
    secret: String,
    acked: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
    unanswered: Arc<AtomicUsize>,
) {
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let delivery = format!("crash-{n}-{i}");
        let messages: Vec<String> = (0..1 + i % 4)
            .map(|c| format!("commit {c} of {delivery}"))
            .collect();
        let messages: Vec<&str> = messages.iter().map(String::as_str).collect();
        let body = github_payload(&format!("branch-{}", i % 5), &messages, 1_760_000_000);
        let url = format!("{}{hook_path}", base.read().unwrap());
        let mut request = http.post(&url);
        for (name, value) in signed_headers(Provider::GitHub, &secret, "push", &delivery, &body) {
            request = request.header(name, value);
        }
        let sent = request.send(&body[..]);
        match sent {
            Ok(resp) if resp.status().is_success() => {
                acked.lock().unwrap().insert(delivery);
            }
            Ok(resp) => panic!("delivery {delivery} was refused with {}", resp.status()),
            // The server is down or was killed mid-request: not acknowledged, so no promise.
            // Pause briefly so a dead server does not turn this loop into a busy spin.
            Err(_) => {
                unanswered.fetch_add(1, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn every_acknowledged_push_survives_ten_sigkills_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("crash.db");
    let log = dir.path().join("serve.log");

    let project = cli::run_json(&db, &["project", "create", "crash", "--json"]);
    let key = cli::run_json(&db, &["key", "create", "crash", "--json"]);
    assert!(key["key"].as_str().unwrap().starts_with("gpt_"));
    let webhook_url = project["webhookUrl"].as_str().unwrap();
    let hook_path = webhook_url[webhook_url.find("/webhooks/").unwrap()..].to_owned();
    let secret = project["webhookSecret"].as_str().unwrap().to_owned();

    let (mut child, first_base) = start_server(&db, &log);
    let base = Arc::new(RwLock::new(first_base));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let unanswered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (base, hook_path, secret, acked, stop, unanswered) = (
                base.clone(),
                hook_path.clone(),
                secret.clone(),
                acked.clone(),
                stop.clone(),
                unanswered.clone(),
            );
            thread::spawn(move || client(n, base, hook_path, secret, acked, stop, unanswered))
        })
        .collect();

    for life in 1..=KILLS {
        let target = acked.lock().unwrap().len() + ACKS_PER_LIFE;
        wait_for(
            "deliveries to be acknowledged",
            Duration::from_secs(60),
            &mut || (acked.lock().unwrap().len() >= target).then_some(()),
        );
        child.kill();

        let (next, next_base) = start_server(&db, &log);
        child = next;
        *base.write().unwrap() = next_base;
        // Taken after the kill: everything in it was acknowledged by the killed server.
        let snapshot = acked.lock().unwrap().clone();
        assert_durable(&db, &snapshot, life);
        assert_derived_true(&db, life);
    }

    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client thread panicked");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= KILLS * ACKS_PER_LIFE);
    assert_durable(&db, &acked, KILLS + 1);
    eprintln!(
        "crash: {KILLS} kills, {} deliveries acknowledged, {} requests unanswered (in flight at a kill or sent while down)",
        acked.len(),
        unanswered.load(Ordering::Relaxed)
    );
    child.kill();
}
