//! The command line as a user runs it: JSON output shapes, exit codes, one-line errors, and
//! sharing the database file with a running server.

use crate::support::app::{TestApp, github_payload};
use crate::support::child::assert_success;
use crate::support::cli;
use crate::support::provider::{Provider, signed_headers};
use serde_json::Value;

/// A database path in a new temporary folder (kept while the folder lives); the file itself is
/// not there yet.
fn fresh_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    (dir, db)
}

/// The words of `line`, split at single spaces: a command line that needs no quoting.
fn words(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

#[test]
fn project_and_key_creation_print_one_json_object_each_with_the_documented_fields() {
    let (_dir, db) = fresh_db();
    let create = "project create my-app --json --public-url https://push.example.com/";
    let project = cli::run_json(&db, &words(create));
    let keys: Vec<&str> = project
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["name", "webhookSecret", "webhookUrl"]);
    assert_eq!(project["name"], "my-app");
    let url = project["webhookUrl"].as_str().unwrap();
    let hook = url
        .strip_prefix("https://push.example.com/webhooks/")
        .expect(url);
    assert!(hook.len() >= 32 && hook.chars().all(|c| c.is_ascii_alphanumeric()));

    let key = cli::run_json(
        &db,
        &["key", "create", "my-app", "--label", "slack-bot", "--json"],
    );
    assert_eq!(key["project"], "my-app");
    assert_eq!(key["label"], "slack-bot");
    let key = key["key"].as_str().unwrap();
    assert!(key.starts_with("gpt_") && key.len() >= 36);

    let list = cli::run_json(&db, &["key", "list", "my-app", "--json"]);
    assert_eq!(list[0]["label"], "slack-bot");
    assert!(
        !list.to_string().contains(key),
        "a listed key never shows the key itself"
    );
    let projects = cli::run_json(&db, &["project", "list", "--json"]);
    assert_eq!(projects[0]["name"], "my-app");
    assert_eq!(projects[0]["pushes"], 0);
}

#[test]
fn a_missing_project_is_a_one_line_error_with_exit_code_1() {
    let (_dir, db) = fresh_db();
    for args in [
        &["key", "create", "nope"][..],
        &["project", "delete", "nope"],
        &["project", "rotate-secret", "nope"],
        &["key", "list", "nope"],
    ] {
        let out = cli::run(&db, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
        assert!(errors[0].contains("no project named \"nope\""), "{stderr}");
    }
    let out = cli::run(&db, &["project", "create", "Bad Name"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid project name"));
}

#[test]
fn wrong_usage_gets_clap_help_and_exit_code_2() {
    let (_dir, db) = fresh_db();
    let out = cli::run(&db, &["project", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage:"));
}

#[test]
fn a_trusted_proxy_that_is_not_an_address_is_refused_before_the_server_starts() {
    let (_dir, db) = fresh_db();
    let serve = "serve --listen 127.0.0.1:0 --trusted-proxy 10.0.0.0/8,proxy.lan";
    let out = cli::run(&db, &words(serve));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"proxy.lan\" is not an IP address or a network like 10.0.0.0/8"),
        "{stderr}"
    );
    assert!(!db.exists(), "nothing was created");
}

#[test]
fn the_openapi_command_prints_the_committed_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli::run(&dir.path().join("cli.db"), &["openapi"]);
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: Value = serde_json::from_slice(
        &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(printed, committed);
}

#[test]
fn the_cli_shares_the_database_with_a_running_server_rotating_a_secret_and_revoking_a_key() {
    let app = TestApp::spawn();
    let project = app.create_project("shared");
    let body = github_payload("main", &["feat: x"], 1_776_160_800);
    assert_eq!(
        app.github_push(&project, "before-rotate", &body).status,
        201
    );

    let rotated = cli::run_json(
        &app.db_path,
        &["project", "rotate-secret", "shared", "--json"],
    );
    let new_secret = rotated["webhookSecret"].as_str().unwrap();
    assert_ne!(new_secret, project.secret);
    let old = app.github_push(&project, "old-secret", &body);
    assert_eq!(old.status, 401, "the old secret is refused at once");
    let ping = app.signed_delivery(&project, Provider::GitHub, "ping", "old-secret-ping", &body);
    assert_eq!(
        ping.status, 401,
        "a ping with the old secret is refused too"
    );
    // A new push (the same body again would be the same ref change, a replay).
    let next = github_payload("main", &["feat: y"], 1_776_160_800);
    let signed = signed_headers(Provider::GitHub, new_secret, "push", "new-secret", &next);
    let new = app.deliver(&project.webhook_url, &signed, &next);
    assert_eq!(new.status, 201);

    let prefix = &project.key[..12];
    let out = cli::run(&app.db_path, &["key", "revoke", "shared", prefix]);
    assert_success(&out);
    assert_eq!(app.get("/api/v1/pushes", Some(&project.key)).status, 401);

    let out = cli::run(&app.db_path, &["project", "delete", "shared"]);
    assert!(out.status.success());
    assert_eq!(app.github_push(&project, "after-delete", &body).status, 404);
}

#[test]
fn an_old_database_is_upgraded_with_a_log_line_saying_so_and_a_new_one_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    let mut conn = rusqlite::Connection::open(&old).unwrap();
    git_push_tracker::db::migrate::migrate_to(&mut conn, 1).unwrap();
    drop(conn);
    let upgraded = cli::run(&old, &["project", "list"]);
    assert!(upgraded.status.success());
    let log = String::from_utf8_lossy(&upgraded.stderr);
    assert!(
        log.contains("upgrading the database schema") && log.contains("from=1"),
        "{log}"
    );
    assert!(log.contains("database migrated"), "{log}");

    let fresh = cli::run(&dir.path().join("new.db"), &["project", "list"]);
    assert!(fresh.status.success());
    let log = String::from_utf8_lossy(&fresh.stderr);
    assert!(!log.contains("upgrading"), "{log}");
}

/// The text of a successful command's stdout.
fn stdout(out: &std::process::Output) -> String {
    assert_success(out);
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Each line's cells (separated by two or more spaces) with the character column each starts
/// and ends at.
fn cells(line: &str) -> Vec<(usize, usize, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && !(chars[i] == ' ' && chars.get(i + 1) == Some(&' ')) {
            i += 1;
        }
        out.push((start, i, chars[start..i].iter().collect()));
        while i < chars.len() && chars[i] == ' ' {
            i += 1;
        }
    }
    out
}

/// Asserts that every line of `table` has the header's number of cells, left-aligned columns
/// starting where their header starts and right-aligned ones ending where theirs ends.
fn assert_lined_up(table: &str, right_aligned: &[usize]) {
    let lines: Vec<&str> = table.lines().collect();
    let header = cells(lines[0]);
    for line in &lines[1..] {
        let row = cells(line);
        assert_eq!(row.len(), header.len(), "{table}");
        for (i, (cell, head)) in row.iter().zip(&header).enumerate() {
            if right_aligned.contains(&i) {
                assert_eq!(cell.1, head.1, "column {} ends apart:\n{table}", head.2);
            } else {
                assert_eq!(cell.0, head.0, "column {} starts apart:\n{table}", head.2);
            }
        }
    }
}

#[test]
fn project_list_and_key_list_columns_line_up_whatever_the_lengths_of_names_and_labels() {
    let (_dir, db) = fresh_db();
    let long = "a-project-name-well-past-the-twenty-four-columns-it-once-had";
    for name in ["a", long] {
        stdout(&cli::run(&db, &["project", "create", name]));
    }
    let projects = stdout(&cli::run(&db, &["project", "list"]));
    assert_eq!(projects.lines().count(), 3, "{projects}");
    assert_lined_up(&projects, &[1, 2, 3]);

    for label in ["", "x", "a label far longer than twenty characters"] {
        stdout(&cli::run(&db, &["key", "create", long, "--label", label]));
    }
    let keys = stdout(&cli::run(&db, &["key", "list", long]));
    assert_eq!(keys.lines().count(), 4, "{keys}");
    // An empty label leaves an empty cell: compare the rows with labels.
    let labelled: String = keys
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    assert_lined_up(&labelled, &[]);
}

#[test]
fn healthcheck_exits_0_when_the_server_answers_and_1_with_the_reason_when_it_does_not() {
    let app = TestApp::spawn();
    let port = app.base_url.rsplit(':').next().unwrap().to_owned();
    let healthcheck = |listen: Option<&str>| {
        let mut cmd = cli::command();
        cmd.arg("healthcheck");
        match listen {
            // As in the container image: the listen address comes from the environment.
            Some(listen) => cmd.env("PUSH_TRACKER_LISTEN", listen),
            None => &mut cmd,
        };
        cmd.output().unwrap()
    };
    let up = healthcheck(Some(&format!("0.0.0.0:{port}")));
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let said = String::from_utf8_lossy(&up.stdout);
    assert!(
        said.contains(&format!("http://127.0.0.1:{port}/healthz answered 200")),
        "{said}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = healthcheck(Some(&closed.to_string()));
    assert_eq!(down.status.code(), Some(1));
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(
        said.contains("unhealthy") && said.contains(&format!("http://{closed}/healthz")),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "one line: {said}");
}

#[test]
fn serve_refuses_a_configured_admin_token_shorter_than_32_characters_with_exit_code_2() {
    let (_dir, db) = fresh_db();
    // Killed when dropped: a server that accepted the token would run on.
    let mut child = crate::support::child::KillOnDrop(
        cli::command()
            .arg("--db")
            .arg(&db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("PUSH_TRACKER_ADMIN_TOKEN", "a".repeat(31))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = crate::support::app::wait_for(
        "serve to refuse the token",
        std::time::Duration::from_secs(15),
        &mut || child.0.try_wait().unwrap(),
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("PUSH_TRACKER_ADMIN_TOKEN is 31 characters long; it must have at least 32"),
        "{stderr}"
    );
    assert!(!stderr.contains(&"a".repeat(31)), "the token is not echoed");
    assert!(!db.exists(), "nothing was created");
}

/// `serve` from the real binary on `db` with `args`, until dropped; waits until it is healthy.
struct Served(std::process::Child);

impl Served {
    fn start(db: &std::path::Path, port: u16, args: &[&str]) -> Served {
        let log = std::fs::File::create(db.with_extension("log")).unwrap();
        let child = cli::command()
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("PUSH_TRACKER_SUMMARIZER", "builtin")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut served = Served(child);
        let (http, url) = (
            crate::support::app::agent(),
            format!("http://127.0.0.1:{port}/healthz"),
        );
        crate::support::app::wait_for(
            "the server to answer",
            std::time::Duration::from_secs(30),
            &mut || {
                if let Some(status) = served.0.try_wait().unwrap() {
                    panic!(
                        "serve exited ({status}): {}",
                        std::fs::read_to_string(db.with_extension("log")).unwrap()
                    );
                }
                http.get(&url)
                    .call()
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            },
        );
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn project_commands_show_the_webhook_url_of_the_server_running_on_the_database() {
    let (_dir, db) = fresh_db();
    let port = free_port();
    let server = Served::start(&db, port, &[]);
    let created = cli::run_json(&db, &["project", "create", "on-port", "--json"]);
    let url = created["webhookUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/webhooks/")),
        "{url}"
    );
    drop(server);

    let _server = Served::start(
        &db,
        free_port(),
        &["--public-url", "https://push.example.com"],
    );
    let created = cli::run_json(&db, &["project", "create", "proxied", "--json"]);
    let url = created["webhookUrl"].as_str().unwrap();
    assert!(
        url.starts_with("https://push.example.com/webhooks/"),
        "{url}"
    );
    let listed = cli::run_json(&db, &["project", "list", "--json"]);
    for project in listed.as_array().unwrap() {
        let url = project["webhookUrl"].as_str().unwrap();
        assert!(
            url.starts_with("https://push.example.com/webhooks/"),
            "{project}"
        );
    }
    let table = cli::run(&db, &["project", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(!text.contains("127.0.0.1"), "{text}");
    // The command line's own --public-url wins.
    let listed = cli::run_json(
        &db,
        &[
            "project",
            "list",
            "--json",
            "--public-url",
            "https://other.example/",
        ],
    );
    let url = listed[0]["webhookUrl"].as_str().unwrap();
    assert!(url.starts_with("https://other.example/webhooks/"), "{url}");
}
