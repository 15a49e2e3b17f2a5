//! A real server on 127.0.0.1:0 with a fresh database, and a small blocking client for it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use git_push_tracker::app::{self, AppConfig};
use git_push_tracker::db::Db;
use git_push_tracker::manage::{CreatedProject, Manager};
use git_push_tracker::summarize::Summarizer;
use serde_json::Value;
use tempfile::TempDir;

use super::provider::{Provider, signed_headers};

/// The admin token every test app starts with.
pub const ADMIN_TOKEN: &str = "gpa_TestAdminToken0123456789abcdefghijklmn";

/// A server whose every search is refused at once, as one is behind slow searches holding
/// every turn at the search gate.
pub fn without_search_turns(config: &mut AppConfig) {
    config.limits.searches_at_once = 0;
    config.limits.search_wait = std::time::Duration::ZERO;
}

/// A running app; stops cleanly when dropped.
pub struct TestApp {
    pub base_url: String,
    pub db_path: PathBuf,
    pub dir: TempDir,
    pub agent: ureq::Agent,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), app::AppError>>>,
}

/// A project created for a test, with one API key.
pub struct TestProject {
    pub name: String,
    pub webhook_url: String,
    pub secret: String,
    pub key: String,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// The value of the first of `headers` called `name`, in any case.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A response's headers as `(name, value)` pairs; a value that is not text reads as empty.
pub fn header_pairs(resp: &ureq::http::Response<ureq::Body>) -> Vec<(String, String)> {
    resp.headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect()
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub fn reply(mut resp: ureq::http::Response<ureq::Body>) -> Reply {
    let status = resp.status().as_u16();
    let headers = header_pairs(&resp);
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        body,
        headers,
    }
}

impl TestApp {
    /// Serves with the builtin summarizer.
    pub fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {})
    }

    /// Serves with `summarizer` as its model.
    pub fn spawn_summarized_by(summarizer: Arc<dyn Summarizer>) -> TestApp {
        TestApp::spawn_with(move |config| config.summarizer = summarizer)
    }

    pub fn spawn_with(configure: impl FnOnce(&mut AppConfig)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_path = dir.path().join("test.db");
        TestApp::spawn_in(dir, db_path, configure)
    }

    /// Serves an existing database file (a restart); the file's folder is not cleaned up.
    pub fn spawn_on(db_path: &std::path::Path, configure: impl FnOnce(&mut AppConfig)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        TestApp::spawn_in(dir, db_path.to_owned(), configure)
    }

    fn spawn_in(dir: TempDir, db_path: PathBuf, configure: impl FnOnce(&mut AppConfig)) -> TestApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let summarizer: Arc<dyn Summarizer> =
            Arc::new(git_push_tracker::summarize::BuiltinSummarizer);
        let mut config = AppConfig::new(&db_path, summarizer);
        config.public_url = Some(base_url.parse().expect("the test server's URL"));
        config.admin_token = Some(git_push_tracker::secret::Secret::new(ADMIN_TOKEN));
        configure(&mut config);
        // Open once here so tests can create projects before the first request.
        Db::open(&db_path).expect("open db");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(app::run(config, listener, async {
                let _ = rx.await;
            }))
        });
        TestApp {
            base_url,
            db_path,
            dir,
            agent: agent(),
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn manager(&self) -> Manager {
        Manager::new(Db::open(&self.db_path).unwrap(), self.base_url.clone())
    }

    pub fn create_project(&self, name: &str) -> TestProject {
        let manager = self.manager();
        let CreatedProject {
            webhook_url,
            webhook_secret,
            ..
        } = manager.create_project(name, Utc::now()).unwrap();
        let key = manager.create_key(name, "test", Utc::now()).unwrap();
        TestProject {
            name: name.to_owned(),
            webhook_url,
            secret: webhook_secret.expose().to_owned(),
            key: key.key.expose().to_owned(),
        }
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> Reply {
        let mut req = self.agent.get(format!("{}{path}", self.base_url));
        if let Some(key) = key {
            req = req.header("Authorization", format!("Bearer {key}"));
        }
        reply(req.call().expect("GET"))
    }

    /// GETs `path` with `key`, asserts a 200, and answers the body.
    pub fn get_json(&self, path: &str, key: &str) -> Value {
        let reply = self.get(path, Some(key));
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        reply.body
    }

    pub fn post(&self, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut req = self.agent.post(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        reply(req.send(body).expect("POST"))
    }

    /// [`TestApp::post`] with owned headers, such as [`signed_headers`] gives.
    pub fn deliver(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        self.post(url, &headers, body)
    }

    /// Sends `event` to the project's webhook as `provider` does, signed with the project's secret.
    pub fn signed_delivery(
        &self,
        project: &TestProject,
        provider: Provider,
        event: &str,
        delivery: &str,
        body: &[u8],
    ) -> Reply {
        let headers = signed_headers(provider, &project.secret, event, delivery, body);
        self.deliver(&project.webhook_url, &headers, body)
    }

    /// Sends a GitHub push signed with the project's secret.
    pub fn github_push(&self, project: &TestProject, delivery: &str, body: &[u8]) -> Reply {
        self.signed_delivery(project, Provider::GitHub, "push", delivery, body)
    }

    /// The owner's view of one push, an entry of the admin API's feed: the public fields plus
    /// `attempts` and `lastError`, which project keys never see.
    pub fn owner_push(&self, project: &str, id: &str) -> Value {
        let mut offset = 0;
        loop {
            let reply = self.get(
                &format!("/api/admin/projects/{project}/pushes?limit=100&offset={offset}"),
                Some(ADMIN_TOKEN),
            );
            assert_eq!(reply.status, 200, "{}", reply.body);
            let page = reply.body["pushes"].as_array().unwrap();
            if let Some(push) = page.iter().find(|p| p["id"] == id) {
                return push.clone();
            }
            assert!(!page.is_empty(), "no push {id} in {project}");
            offset += page.len();
        }
    }

    /// A read-only look at the database file, for asserting what was stored.
    pub fn sql_count(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// How many pushes and commits the file holds: what a refused delivery must leave alone.
    pub fn stored_rows(&self) -> (i64, i64) {
        (
            self.sql_count("SELECT count(*) FROM pushes"),
            self.sql_count("SELECT count(*) FROM commits"),
        )
    }

    /// Waits until every stored push has its derived rows (counters, search entry, change-log
    /// and outbox rows), which the server writes just after answering: for a test that reads
    /// them from the file rather than through the API (whose reads wait for them).
    pub fn wait_until_derived(&self) {
        self.wait_for(
            "the derived rows of every push",
            Duration::from_secs(10),
            || (self.sql_count("SELECT count(*) FROM push_index_queue") == 0).then_some(()),
        );
    }

    /// Polls `check` until it returns Some or the deadline passes.
    pub fn wait_for<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        wait_for(what, deadline, &mut check)
    }

    /// Stops the server and waits for it; returns its result.
    pub fn stop(mut self) -> Result<(), app::AppError> {
        self.shutdown.take().map(|tx| tx.send(()));
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("server thread panicked")
    }

    /// Stops the server but keeps its database folder alive for a restart.
    pub fn stop_keeping_files(mut self) -> TempDir {
        let keep = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        self.stop().expect("clean stop");
        keep
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Polls `check` until it gives a value; panics with `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, check: &mut dyn FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh `after` sha for every payload: two pushes with the same ref, `before` and `after`
/// are one ref change, which the server stores once (a replay), so payloads meant as distinct
/// pushes must move the ref somewhere new.
pub fn next_after_sha() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("2222{:036x}", n)
}

/// A GitHub push payload to `branch` with `commits` commits, pushed at `pushed_at` (Unix seconds);
/// each call moves the ref to a new `after` (see [`next_after_sha`]).
pub fn github_payload(branch: &str, commits: &[&str], pushed_at: i64) -> Vec<u8> {
    let commits: Vec<Value> = commits
        .iter()
        .enumerate()
        .map(|(i, message)| {
            serde_json::json!({
                "id": format!("{:040x}", i + 1),
                "message": message,
                "timestamp": "2026-01-01T10:00:00Z",
                "url": format!("https://github.com/acme/app/commit/{:040x}", i + 1),
                "author": {"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"},
                "added": ["src/new.rs"], "removed": [], "modified": ["README.md"]
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "1111111111111111111111111111111111111111",
        "after": next_after_sha(),
        "created": false, "deleted": false, "forced": false,
        "compare": "https://github.com/acme/app/compare/1111111...2222222",
        "commits": commits,
        "head_commit": null,
        "pusher": {"name": "ada", "email": "ada@example.com"},
        "sender": {"login": "ada"},
        "repository": {"full_name": "acme/app", "name": "app", "pushed_at": pushed_at}
    }))
    .unwrap()
}

/// An MCP request in the stateless 2026-07-28 form: no handshake, the version and client in
/// `_meta`, the method (and the tool's `name`) in headers; the MCP and isolation tests share it.
pub fn mcp_request(
    app: &TestApp,
    key: &str,
    method: &str,
    name: Option<&str>,
    params: Value,
) -> Reply {
    let mut params = params;
    params["_meta"] = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let mut req = app
        .agent
        .post(format!("{}/mcp", app.base_url))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {key}"))
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", method);
    if let Some(name) = name {
        req = req.header("Mcp-Name", name);
    }
    reply(req.send(body.to_string().as_bytes()).expect("POST /mcp"))
}

/// The ids of a page's pushes, in order: how the list tests compare pages.
pub fn push_ids(page: &Value) -> Vec<String> {
    page["pushes"]
        .as_array()
        .unwrap_or_else(|| panic!("no pushes in {page}"))
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `(pushes, commits)` per key, as the test counts them itself from each push's `(key, commits)`:
/// what [`groups`] should read from the server's answer.
pub fn tally(
    pushes: impl IntoIterator<Item = (String, u64)>,
) -> std::collections::BTreeMap<String, (u64, u64)> {
    let mut out = std::collections::BTreeMap::new();
    for (key, commits) in pushes {
        let entry = out.entry(key).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += commits;
    }
    out
}

/// Asserts a digest's `authors`, `branches` and `repositories` against the test's own count of
/// the pushes it should cover, each given as `([pusher, branch, repository], commits)`.
pub fn assert_digest_groups<'a>(
    digest: &Value,
    pushes: impl IntoIterator<Item = ([&'a str; 3], u64)>,
    context: &str,
) {
    let pushes: Vec<([&str; 3], u64)> = pushes.into_iter().collect();
    let lists = [
        ("authors", "author"),
        ("branches", "branch"),
        ("repositories", "repository"),
    ];
    for (i, (list, name)) in lists.into_iter().enumerate() {
        let expected = tally(
            pushes
                .iter()
                .map(|(keys, commits)| (keys[i].to_owned(), *commits)),
        );
        assert_eq!(groups(&digest[list], name), expected, "{context}: {list}");
    }
}

/// `(name, pushes, commits)` per item of a digest's or an activity's list, as the HTTP and the
/// MCP answers both give them.
pub fn groups(items: &Value, name: &str) -> std::collections::BTreeMap<String, (u64, u64)> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g[name].as_str().unwrap().to_owned(),
                (
                    g["pushes"].as_u64().unwrap(),
                    g["commits"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// The bytes of a fixture under tests/fixtures.
pub fn fixture(path: &str) -> Vec<u8> {
    let full = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    std::fs::read(format!("{full}{path}")).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}
