//! Running it for years: online backup, schema upgrades, retention, /metrics, --version.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::app::{TestApp, TestProject, github_payload, wait_for};
use crate::support::cli;
use crate::support::provider::Provider;
use chrono::Utc;
use git_push_tracker::clock::{Clock, ManualClock};
use git_push_tracker::db::backup::{BackupError, BackupProgress, backup, backup_with_progress};
use git_push_tracker::db::migrate::{LATEST_VERSION, migrate_to};
use git_push_tracker::db::{Db, DbError, Store};
use git_push_tracker::retention::run_retention_once;
use git_push_tracker::secret::Secret;
use git_push_tracker::summarize::{SummarizeError, Summarizer, SummaryInput};

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";

/// Sends a signed push and asserts it was stored.
fn store_push(app: &TestApp, project: &TestProject, delivery: &str, body: &[u8]) {
    let reply = app.github_push(project, delivery, body);
    assert_eq!(reply.status, 201, "{}", reply.body);
}

/// An app with one project, `project`, and the path `file` beside its database for a backup.
fn app_to_back_up(project: &str, file: &str) -> (TestApp, std::path::PathBuf) {
    let app = TestApp::spawn();
    app.create_project(project);
    let dest = app.dir.path().join(file);
    (app, dest)
}

fn count(conn: &rusqlite::Connection, sql: &str, param: &str) -> i64 {
    conn.query_row(sql, [param], |r| r.get(0)).unwrap()
}

#[test]
fn a_backup_taken_under_write_load_holds_every_push_acknowledged_before_it_began() {
    let app = TestApp::spawn();
    let project = app.create_project("busy");
    let acknowledged = Mutex::new(Vec::<String>::new());
    let stop = AtomicBool::new(false);
    let dest = app.dir.path().join("backup.db");

    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let body = github_payload("main", &["change things"], 1_767_261_600 + i as i64);
                let reply = app.github_push(&project, &format!("load-{i}"), &body);
                assert_eq!(reply.status, 201, "{}", reply.body);
                let ids = reply.body["pushes"].as_array().unwrap().clone();
                acknowledged
                    .lock()
                    .unwrap()
                    .extend(ids.iter().map(|v| v.as_str().unwrap().to_owned()));
            }
        });

        wait_for("pushes to flow", Duration::from_secs(30), &mut || {
            (acknowledged.lock().unwrap().len() >= 30).then_some(())
        });
        let before_backup = acknowledged.lock().unwrap().clone();
        backup(&app.db_path, &dest, false).expect("backup");
        let after_backup = acknowledged.lock().unwrap().len();
        // Writes must go on while and after the copy is taken, or this tested nothing.
        wait_for(
            "more pushes after the backup",
            Duration::from_secs(30),
            &mut || (acknowledged.lock().unwrap().len() > after_backup + 5).then_some(()),
        );
        stop.store(true, Ordering::SeqCst);

        let copy = rusqlite::Connection::open(&dest).unwrap();
        let check: String = copy
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        for id in &before_backup {
            assert_eq!(
                count(
                    &copy,
                    "SELECT count(*) FROM pushes WHERE public_id = ?1",
                    id
                ),
                1,
                "push {id} acknowledged before the backup is missing from it"
            );
        }
        let journal: String = copy
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            journal, "delete",
            "a backup should be one self-contained file"
        );
    });
    Db::open(&dest).expect("the backup opens as a database");
}

#[test]
fn a_backup_in_many_steps_copies_the_snapshot_it_began_with_even_while_pushes_arrive() {
    let app = TestApp::spawn();
    let project = app.create_project("stepwise");
    for i in 0..40 {
        let body = github_payload("main", &["before the backup"], 1_767_261_600 + i);
        store_push(&app, &project, &format!("pre-{i}"), &body);
    }
    let dest = app.dir.path().join("stepwise.db");
    let mut reports = Vec::<BackupProgress>::new();
    let mut written_during = 0;
    // One page per step, and a push stored between steps: a backup that took a new snapshot per
    // step would restart on every write and copy pushes that arrived after it began.
    backup_with_progress(&app.db_path, &dest, false, 1, &mut |p| {
        if written_during < 5 {
            written_during += 1;
            let body = github_payload("main", &["during the backup"], 1_767_300_000);
            let reply = app.github_push(&project, &format!("during-{}", reports.len()), &body);
            assert_eq!(reply.status, 201, "{}", reply.body);
        }
        reports.push(p);
    })
    .expect("backup");
    assert_eq!(
        written_during, 5,
        "pushes must arrive while the backup runs"
    );
    assert!(
        reports.len() > 10,
        "one page per step gives many reports: {}",
        reports.len()
    );
    let last = reports.last().unwrap();
    assert_eq!(
        last.copied, last.total,
        "the last report is the whole snapshot"
    );
    assert!(reports.windows(2).all(|w| w[0].copied <= w[1].copied));
    let copy = rusqlite::Connection::open(&dest).unwrap();
    let stored: i64 = copy
        .query_row("SELECT count(*) FROM pushes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        stored, 40,
        "exactly the pushes stored before the backup began"
    );
}

#[test]
fn a_backup_never_replaces_an_existing_file_unless_forced() {
    let (app, dest) = app_to_back_up("kept", "existing.db");
    std::fs::write(&dest, b"precious").unwrap();

    let refused = backup(&app.db_path, &dest, false);
    assert!(matches!(refused, Err(BackupError::DestinationExists(_))));
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious");

    backup(&app.db_path, &dest, true).expect("forced backup");
    let copy = rusqlite::Connection::open(&dest).unwrap();
    let kept = count(
        &copy,
        "SELECT count(*) FROM projects WHERE name = ?1",
        "kept",
    );
    assert_eq!(kept, 1);

    let missing = app.dir.path().join("no-such.db");
    let refused = backup(&missing, &app.dir.path().join("x.db"), false);
    assert!(matches!(refused, Err(BackupError::NoSource(_))));
    assert!(
        !missing.exists(),
        "backup must not create the source database"
    );
}

#[test]
fn the_backup_command_copies_the_database_given_with_db() {
    let (app, dest) = app_to_back_up("from-cli", "cli-backup.db");
    let dest_arg = dest.to_str().unwrap();
    let run = |extra: &[&str]| cli::run(&app.db_path, &[&["backup", dest_arg][..], extra].concat());
    let first = run(&[]);
    assert!(first.status.success(), "{first:?}");
    // Not a terminal here, so progress is plain lines, ending with the whole database copied.
    let progress = String::from_utf8_lossy(&first.stderr);
    let last = progress.lines().rfind(|l| l.starts_with("backup: ["));
    assert!(
        last.is_some_and(|l| l.contains("100% (") && !l.contains('\r')),
        "progress lines on stderr: {progress}"
    );
    let again = run(&[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(run(&["--force"]).status.success());
    let copy = rusqlite::Connection::open(&dest).unwrap();
    assert_eq!(
        count(
            &copy,
            "SELECT count(*) FROM projects WHERE name = ?1",
            "from-cli"
        ),
        1
    );
}

/// Writes a project, a push and a commit the way the first release did: plain SQL against the
/// version 1 schema.
fn build_v1_database(path: &std::path::Path) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    migrate_to(&mut conn, 1).unwrap();
    conn.execute_batch(
        r#"INSERT INTO projects (id, name, hook_id, webhook_secret, created_at)
             VALUES (1, 'legacy', 'abcdefabcdefabcdefabcdefabcdef12', 's3cret', 1700000000000);
         INSERT INTO pushes (id, public_id, project_id, provider, delivery_id, repository, git_ref,
             ref_type, branch, before_sha, after_sha, created, deleted, forced, pusher,
             commit_count, commits_truncated, compare_url, pushed_at, received_at, summary,
             summary_status, summary_source, attempts, next_attempt_at, last_error, summarized_at)
             VALUES (1, '6f1c1c0e-0000-4000-8000-000000000001', 1, 'github', 'old-1', 'acme/app',
             'refs/heads/main', 'branch', 'main', NULL, NULL, 0, 0, 0, 'ada', 2, 0, NULL,
             1700000000000, 1700000000000, '- Fix the flux capacitor', 'summarized', 'builtin',
             0, NULL, NULL, 1700000000000);
         INSERT INTO commits (push_id, position, sha, message, author, timestamp, url, added,
             removed, modified)
             VALUES (1, 1, 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'Say "why" in the docs',
             'Grace', 1700000000000, 'https://example.com/c/b', '["docs/why.md"]', '[]',
             '["README.md","src/lib.rs"]');
         INSERT INTO commits (push_id, position, sha, message, author, timestamp, url, added,
             removed, modified)
             VALUES (1, 0, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'Fix the flux capacitor',
             'Ada', NULL, NULL, '[]', '["old.c"]', '[]');"#,
    )
    .unwrap();
}

#[test]
fn a_database_from_the_first_release_migrates_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    build_v1_database(&path);

    let db = Db::open(&path).expect("an old database opens");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, LATEST_VERSION);
    drop(conn);

    let key = git_push_tracker::manage::Manager::new(db, String::new())
        .create_key("legacy", "after-upgrade", Utc::now())
        .unwrap();
    let app = TestApp::spawn_with(|c| c.db_path = path.clone());
    let page = app.get("/api/v1/pushes", Some(key.key.expose()));
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["pagination"]["total"], 1);
    let push = &page.body["pushes"][0];
    assert_eq!(push["id"], "6f1c1c0e-0000-4000-8000-000000000001");
    assert_eq!(push["summary"], "- Fix the flux capacitor");
    let detail = app.get(
        "/api/v1/pushes/6f1c1c0e-0000-4000-8000-000000000001",
        Some(key.key.expose()),
    );
    let commits: Vec<_> = detail.body["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["sha"].as_str().unwrap().chars().next().unwrap(),
                c["message"].as_str().unwrap().to_owned(),
                c["author"].as_str().unwrap().to_owned(),
                c["timestamp"].clone(),
                c["url"].clone(),
                c["added"].clone(),
                c["removed"].clone(),
                c["modified"].clone(),
            )
        })
        .collect();
    assert_eq!(
        commits,
        [
            (
                'a',
                "Fix the flux capacitor".to_owned(),
                "Ada".to_owned(),
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::json!([]),
                serde_json::json!(["old.c"]),
                serde_json::json!([]),
            ),
            (
                'b',
                "Say \"why\" in the docs".to_owned(),
                "Grace".to_owned(),
                serde_json::json!("2023-11-14T22:13:20.000Z"),
                serde_json::json!("https://example.com/c/b"),
                serde_json::json!(["docs/why.md"]),
                serde_json::json!([]),
                serde_json::json!(["README.md", "src/lib.rs"]),
            ),
        ],
        "both commits survive the upgrade, in their order, with every field"
    );
    assert_eq!(
        count(
            &rusqlite::Connection::open(&path).unwrap(),
            "SELECT count(*) FROM commits WHERE push_id = ?1",
            "1"
        ),
        2,
        "the commits view still answers the old queries"
    );
}

#[test]
fn a_version_3_database_gets_day_counters_that_match_its_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    build_v1_database(&path);
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    migrate_to(&mut conn, 3).unwrap();
    // 40 more pushes as version 3 stored them, 5 hours apart over two branches, two before 1970
    // (a day number below zero must be counted like the others).
    for i in 0..42i64 {
        let pushed_at = if i < 40 {
            1_700_000_000_000 + i * 5 * 3_600_000
        } else {
            -86_400_000 - i
        };
        conn.execute(
            "INSERT INTO pushes (public_id, project_id, provider, delivery_id, repository,
                 git_ref, ref_type, branch, created, deleted, forced, pusher, commit_count,
                 commits_truncated, pushed_at, received_at, summary, summary_status,
                 summary_source)
             VALUES (?1, 1, 'github', ?2, 'acme/app', 'refs/heads/x', 'branch', ?3, 0, 0, 0,
                 'ada', 0, 0, ?4, ?4, '- x', 'summarized', 'builtin')",
            rusqlite::params![
                format!("7e1c1c0e-0000-4000-8000-{i:012}"),
                format!("v3-{i}"),
                if i % 2 == 0 { "main" } else { "dev" },
                pushed_at
            ],
        )
        .unwrap();
    }
    drop(conn);

    let db = Db::open(&path).expect("a version 3 database opens");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let counters: Vec<(String, i64, i64)> = conn
        .prepare("SELECT branch, day, n FROM push_branch_days ORDER BY 1, 2")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut counted: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT branch, pushed_at FROM pushes")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap();
    for row in rows {
        let (branch, at) = row.unwrap();
        *counted
            .entry((branch, at.div_euclid(86_400_000)))
            .or_default() += 1;
    }
    let counted: Vec<(String, i64, i64)> =
        counted.into_iter().map(|((b, d), n)| (b, d, n)).collect();
    assert_eq!(counters, counted, "one counter per branch and UTC day");
    drop(stmt);
    drop(conn);

    let key = git_push_tracker::manage::Manager::new(db, String::new())
        .create_key("legacy", "after-upgrade", Utc::now())
        .unwrap();
    let app = TestApp::spawn_with(|c| c.db_path = path.clone());
    let total = |query: &str| {
        let page = app.get(&format!("/api/v1/pushes?{query}"), Some(key.key.expose()));
        assert_eq!(page.status, 200, "{}", page.body);
        page.body["pagination"]["total"].as_u64().unwrap()
    };
    assert_eq!(total(""), 43);
    // 2023-11-15T10:00:00Z is 12 h after the first push at 2023-11-14T22:13:20Z: from push 3 on.
    assert_eq!(total("since=2023-11-15T10:00:00Z"), 37);
    assert_eq!(total("since=2023-11-15T10:00:00Z&branch=main"), 18);
    assert_eq!(total("until=1970-01-01"), 2);
    assert_eq!(total("since=2023-11-15&until=2023-11-17T12:00:00Z"), 12);
}

#[test]
fn a_database_from_a_newer_release_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    build_v1_database(&path);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", LATEST_VERSION + 1)
        .unwrap();
    drop(conn);

    match Db::open(&path) {
        Err(DbError::NewerSchema { found, supported }) => {
            assert_eq!((found, supported), (LATEST_VERSION + 1, LATEST_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, LATEST_VERSION + 1);
}

#[test]
fn retention_deletes_exactly_the_pushes_received_before_the_cutoff_with_their_commits() {
    let clock = Arc::new(ManualClock::new(Utc::now() - chrono::Duration::days(40)));
    let app_clock: Arc<dyn Clock> = clock.clone();
    let app = TestApp::spawn_with(|c| c.clock = app_clock);
    let project = app.create_project("aging");
    for i in 0..3 {
        let body = github_payload("main", &["old one", "old two"], 1_700_000_000 + i);
        store_push(&app, &project, &format!("old-{i}"), &body);
    }
    clock.advance(chrono::Duration::days(40));
    for i in 0..2 {
        let body = github_payload("dev", &["new"], 1_700_000_000 + i);
        store_push(&app, &project, &format!("new-{i}"), &body);
    }
    assert_eq!(app.sql_count("SELECT count(*) FROM commits"), 3 * 2 + 2);

    let db = Db::open(&app.db_path).unwrap();
    let cutoff = clock.now() - chrono::Duration::days(30);
    // Small batches: two, then the one left, then nothing.
    assert_eq!(db.delete_received_before(cutoff, 2).unwrap(), 2);
    assert_eq!(run_retention_once(&db, cutoff, &|| true).unwrap(), 1);
    assert_eq!(run_retention_once(&db, cutoff, &|| true).unwrap(), 0);

    assert_eq!(app.sql_count("SELECT count(*) FROM pushes"), 2);
    assert_eq!(
        app.sql_count("SELECT count(*) FROM pushes WHERE branch = 'dev'"),
        2
    );
    assert_eq!(app.sql_count("SELECT count(*) FROM commits"), 2);
    let page = app.get("/api/v1/pushes", Some(&project.key));
    assert_eq!(page.body["pagination"]["total"], 2, "{}", page.body);
    let main = app.get("/api/v1/pushes?branch=main", Some(&project.key));
    assert_eq!(main.body["pagination"]["total"], 0, "{}", main.body);
}

#[test]
fn a_server_started_with_retention_days_prunes_old_pushes_in_the_background() {
    let old_clock: Arc<dyn Clock> =
        Arc::new(ManualClock::new(Utc::now() - chrono::Duration::days(10)));
    let first = TestApp::spawn_with(|c| c.clock = old_clock);
    let project = first.create_project("pruned");
    for i in 0..3 {
        let body = github_payload("main", &["old"], 1_700_000_000 + i);
        store_push(&first, &project, &format!("o-{i}"), &body);
    }
    // One server per database file: the pushes are ten days old when the next one starts.
    let path = first.db_path.clone();
    let _files = first.stop_keeping_files();
    let second = TestApp::spawn_on(&path, |c| c.retention_days = Some(7));
    second.wait_for("old pushes to be deleted", Duration::from_secs(30), || {
        (second.sql_count("SELECT count(*) FROM pushes") == 0).then_some(())
    });
    assert_eq!(second.sql_count("SELECT count(*) FROM commits"), 0);
}

/// Sample -> value of a scrape. Writing valid OpenMetrics is prometheus-client's job; this reads
/// the values and checks the scrape is whole (it ends with `# EOF`) and names no series twice.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "an incomplete scrape: {text}");
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("a sample and its value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series {series}"
        );
    }
    samples
}

fn scrape(app: &TestApp) -> BTreeMap<String, f64> {
    let reply = app.get("/metrics", Some(ADMIN_TOKEN));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{:?}",
        reply.header("content-type")
    );
    parse_metrics(reply.body.as_str().expect("text body"))
}

fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, series: &str) -> f64 {
    let get = |m: &BTreeMap<String, f64>| *m.get(series).unwrap_or_else(|| panic!("no {series}"));
    get(after) - get(before)
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_webhooks_as_they_arrive() {
    let app = TestApp::spawn_with(|c| c.admin_token = Some(Secret::new(ADMIN_TOKEN)));
    let project = app.create_project("watched");
    let before = scrape(&app);

    let body = github_payload("main", &["one"], 1_700_000_000);
    assert_eq!(app.github_push(&project, "m-1", &body).status, 201);
    assert_eq!(app.github_push(&project, "m-1", &body).status, 200);
    let forged = app.post(
        &project.webhook_url,
        &[
            ("Content-Type", "application/json"),
            (Provider::GitHub.event_header(), "push"),
            (Provider::GitHub.delivery_header(), "m-2"),
            (Provider::GitHub.signature_header(), "sha256=00"),
        ],
        &body,
    );
    assert_eq!(forged.status, 401);
    let unknown = app.post(
        &format!("{}/webhooks/nosuchhook", app.base_url),
        &[(Provider::GitLab.event_header(), "Push Hook")],
        b"{}",
    );
    assert_eq!(unknown.status, 404);

    let after = scrape(&app);
    let received = |outcome: &str, provider: &str| {
        delta(
            &before,
            &after,
            &format!(
                "git_push_tracker_webhooks_received_total{{provider=\"{provider}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(received("stored", "github"), 1.0);
    assert_eq!(received("duplicate", "github"), 1.0);
    assert_eq!(received("rejected", "github"), 1.0);
    assert_eq!(received("rejected", "gitlab"), 1.0);
    let rejected = |reason: &str| {
        delta(
            &before,
            &after,
            &format!("git_push_tracker_webhook_rejections_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(rejected("invalid_signature"), 1.0);
    assert_eq!(rejected("unknown_webhook"), 1.0);
    assert_eq!(after["git_push_tracker_pushes{status=\"summarized\"}"], 1.0);
    assert_eq!(after["git_push_tracker_summary_queue_depth"], 0.0);
    assert!(after["git_push_tracker_database_size_bytes"] > 0.0);
    assert!(after.contains_key("git_push_tracker_summary_latency_seconds_bucket{le=\"+Inf\"}"));
    assert!(after.contains_key("git_push_tracker_model_errors_total{kind=\"transient\"}"));
}

#[test]
fn metrics_need_the_admin_token_unless_made_public() {
    let guarded = TestApp::spawn_with(|c| c.admin_token = Some(Secret::new(ADMIN_TOKEN)));
    for token in [
        None,
        Some("wrong-token"),
        Some("admin-token-for-tests-012345678"),
    ] {
        let reply = guarded.get("/metrics", token);
        assert_eq!(reply.status, 401, "{token:?}");
        assert_eq!(reply.body["error"]["code"], "unauthorized");
        assert!(!reply.body.to_string().contains(ADMIN_TOKEN));
    }

    let no_token_configured = TestApp::spawn();
    assert_eq!(no_token_configured.get("/metrics", None).status, 401);

    let public = TestApp::spawn_with(|c| c.metrics_public = true);
    let reply = public.get("/metrics", None);
    assert_eq!(reply.status, 200);
    parse_metrics(reply.body.as_str().unwrap());
}

#[test]
fn version_prints_the_version_commit_and_target() {
    let out = cli::command().arg("--version").output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.starts_with(concat!("git-push-tracker ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(line.contains("commit "), "{line}");
    assert!(
        line.contains("linux") || line.contains("darwin") || line.contains("windows"),
        "{line}"
    );
}

/// A summarizer that answers from a script, one answer per call.
struct Scripted(Mutex<std::collections::VecDeque<Result<String, SummarizeError>>>);

impl Summarizer for Scripted {
    fn source(&self) -> &str {
        "scripted-model"
    }

    fn summarize(&self, _input: &SummaryInput<'_>) -> Result<String, SummarizeError> {
        self.0
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Ok("- fallback".into()))
    }
}

fn metric(app: &TestApp, series: &str) -> f64 {
    scrape(app).get(series).copied().unwrap_or(f64::NAN)
}

#[test]
fn metrics_count_model_errors_by_kind_and_time_each_summary() {
    let script = vec![
        Err(SummarizeError::Transient {
            reason: "503 from the model".into(),
            retry_after: Some(Duration::ZERO),
        }),
        Err(SummarizeError::Postpone {
            reason: "quota".into(),
            retry_after: Duration::ZERO,
        }),
        Ok("- did the thing".into()),
        Err(SummarizeError::Permanent {
            reason: "model retired".into(),
        }),
    ];
    let summarizer: Arc<dyn Summarizer> = Arc::new(Scripted(Mutex::new(script.into())));
    let app = TestApp::spawn_with(|c| {
        c.admin_token = Some(Secret::new(ADMIN_TOKEN));
        c.summarizer = summarizer;
    });
    let project = app.create_project("modelled");
    let body = github_payload("main", &["feat: one", "fix: two"], 1_700_000_000);
    assert_eq!(app.github_push(&project, "w-1", &body).status, 201);
    app.wait_for("the first summary", Duration::from_secs(30), || {
        (metric(&app, "git_push_tracker_summary_latency_seconds_count") == 1.0).then_some(())
    });
    let errors = |kind: &str| {
        metric(
            &app,
            &format!("git_push_tracker_model_errors_total{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(errors("transient"), 1.0);
    assert_eq!(errors("postponed"), 1.0);
    assert_eq!(errors("permanent"), 0.0);

    // Another push: the same body again would be a replay of the same ref change.
    let body = github_payload("main", &["feat: three"], 1_700_000_000);
    assert_eq!(app.github_push(&project, "w-2", &body).status, 201);
    app.wait_for("the permanent failure", Duration::from_secs(30), || {
        (errors("permanent") == 1.0).then_some(())
    });
    assert_eq!(
        metric(&app, "git_push_tracker_pushes{status=\"failed\"}"),
        1.0
    );
    assert_eq!(
        metric(&app, "git_push_tracker_pushes{status=\"summarized\"}"),
        1.0
    );
    assert_eq!(
        metric(&app, "git_push_tracker_summary_latency_seconds_count"),
        1.0
    );
}

#[test]
fn once_webhooks_stop_arriving_the_wal_is_copied_into_the_database_and_emptied() {
    let app = TestApp::spawn();
    let project = app.create_project("quiet-after");
    let message = "feat: a change worth a long description ".repeat(20);
    for n in 0..30 {
        let body = github_payload("main", &[&message, &message], 1_776_160_800 + n);
        let reply = app.github_push(&project, &format!("wal-{n}"), &body);
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let wal = app.db_path.with_extension("db-wal");
    app.wait_for("an empty WAL file", Duration::from_secs(10), || {
        (std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0).then_some(())
    });
    assert_eq!(
        app.sql_count("SELECT count(*) FROM pushes WHERE project_id = (SELECT id FROM projects WHERE name = 'quiet-after')"),
        30,
        "every push is in the database file itself"
    );
}
