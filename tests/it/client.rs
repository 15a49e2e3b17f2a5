//! A typed client from the contract: `openapi-typescript` turns `openapi/openapi.json` into
//! TypeScript types, and `tsc --strict` checks every answer recorded from a live server against
//! the type of its operation and status, so an undeclared status, a missing or extra field, or
//! a `null` the document does not allow fails the test.
//!
//! Every operation of the document must be called here: a new route adds its calls to
//! `record_every_operation` (the test names what is missing).
//!
//! Needs Node with `tests/client`'s packages (`npm ci --prefix tests/client`, as `.ci/run`
//! does). Without them the test is skipped with a note, except when `CI=true`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::app::{ADMIN_TOKEN, Reply, TestApp, github_payload, reply};
use crate::support::provider::{Provider, signed_headers};
use crate::support::tool;

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client")
}

/// One answer: which operation gave it, with which status and body.
struct Recorded {
    operation: &'static str,
    status: u16,
    body: Value,
}

struct Recorder<'a> {
    app: &'a TestApp,
    answers: Vec<Recorded>,
}

impl Recorder<'_> {
    /// Sends `method path` with `bearer` and a JSON `body`, records the answer under
    /// `operation`, and returns it.
    fn call(
        &mut self,
        operation: &'static str,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let url = format!("{}{path}", self.app.base_url);
        let request = ureq::http::Request::builder().method(method).uri(&url);
        let request = match bearer {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        };
        let answer = match body {
            Some(body) => {
                let request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .unwrap();
                self.app.agent.run(request)
            }
            None => self.app.agent.run(request.body(()).unwrap()),
        };
        let answer = reply(answer.expect("the server answers"));
        self.keep(operation, answer)
    }

    fn keep(&mut self, operation: &'static str, answer: Reply) -> Value {
        let body = answer.body.clone();
        self.answers.push(Recorded {
            operation,
            status: answer.status,
            body: answer.body,
        });
        body
    }

    fn deliver(&mut self, url: &str, headers: &[(String, String)], body: &[u8]) -> Value {
        let answer = self.app.deliver(url, headers, body);
        self.keep("receiveWebhook", answer)
    }
}

/// Operations whose answers are not JSON documents a typed client reads whole: the event
/// streams never end and the feed is Atom XML (tests/it/live.rs reads all three with real
/// clients: a line reader and feedparser).
const NOT_JSON: &[&str] = &["streamPushes", "adminStream", "pushesFeed"];

/// Calls every operation of the document, with its success and its usual refusals.
fn record_every_operation(app: &TestApp) -> Vec<Recorded> {
    let mut r = Recorder {
        app,
        answers: Vec::new(),
    };
    let admin = Some(ADMIN_TOKEN);
    r.call("adminInfo", "GET", "/api/admin/info", admin, None);
    r.call("adminInfo", "GET", "/api/admin/info", None, None);
    let login = json!({"token": ADMIN_TOKEN});
    r.call("adminLogin", "POST", "/api/admin/login", None, Some(login));
    let wrong = json!({"token": "gpa_wrong"});
    r.call("adminLogin", "POST", "/api/admin/login", None, Some(wrong));
    let extra = json!({"token": ADMIN_TOKEN, "tokn": 1});
    r.call("adminLogin", "POST", "/api/admin/login", None, Some(extra));
    r.call("adminLogout", "POST", "/api/admin/logout", None, None);
    let project = r.call(
        "adminCreateProject",
        "POST",
        "/api/admin/projects",
        admin,
        Some(json!({"name": "client"})),
    );
    let new = json!({"name": "client"});
    r.call(
        "adminCreateProject",
        "POST",
        "/api/admin/projects",
        admin,
        Some(new),
    );
    let bad = json!({"name": "Not A Slug"});
    r.call(
        "adminCreateProject",
        "POST",
        "/api/admin/projects",
        admin,
        Some(bad),
    );
    r.call(
        "adminListProjects",
        "GET",
        "/api/admin/projects",
        admin,
        None,
    );
    let secret = r.call(
        "adminRotateSecret",
        "POST",
        "/api/admin/projects/client/rotate-secret",
        admin,
        None,
    );
    let nowhere = "/api/admin/projects/nowhere/rotate-secret";
    r.call("adminRotateSecret", "POST", nowhere, admin, None);
    let keys = "/api/admin/projects/client/keys";
    let key = r.call(
        "adminCreateKey",
        "POST",
        keys,
        admin,
        Some(json!({"label": "ts"})),
    );
    r.call(
        "adminCreateKey",
        "POST",
        keys,
        admin,
        Some(json!({"label": null})),
    );
    r.call("adminListKeys", "GET", keys, admin, None);

    let hook = project["webhookUrl"].as_str().expect("a webhook URL");
    let webhook_secret = secret["webhookSecret"].as_str().expect("a new secret");
    let body = github_payload("main", &["feat: typed clients"], 1_760_000_000);
    let headers = signed_headers(Provider::GitHub, webhook_secret, "push", "c-1", &body);
    let stored = r.deliver(hook, &headers, &body);
    r.deliver(hook, &headers, &body);
    r.deliver(hook, &headers[..1], &body);
    let unknown = format!("{}/webhooks/nohook", app.base_url);
    r.deliver(&unknown, &headers, &body);
    let push = stored["pushes"][0].as_str().expect("a stored push");

    let reader = key["key"].as_str();
    r.call("listPushes", "GET", "/api/v1/pushes", reader, None);
    r.call("listPushes", "GET", "/api/v1/pushes?since=", reader, None);
    r.call(
        "listPushes",
        "GET",
        "/api/v1/pushes?since=2024-02-30",
        reader,
        None,
    );
    r.call("listPushes", "GET", "/api/v1/pushes", None, None);
    let path = format!("/api/v1/pushes/{push}");
    r.call("getPush", "GET", &path, reader, None);
    let missing = "/api/v1/pushes/00000000-0000-0000-0000-000000000000";
    r.call("getPush", "GET", missing, reader, None);
    let feed = "/api/admin/projects/client/pushes";
    r.call("adminListPushes", "GET", feed, admin, None);
    let path = format!("{feed}?cursor=AAAA");
    r.call("adminListPushes", "GET", &path, admin, None);
    let again = format!("/api/admin/pushes/{push}/resummarize");
    r.call("adminResummarize", "POST", &again, admin, None);
    let missing = "/api/admin/pushes/00000000-0000-0000-0000-000000000000/resummarize";
    r.call("adminResummarize", "POST", missing, admin, None);
    // Asking the history, with the key and as the owner.
    let range = "since=2024-01-01&until=2024-12-31";
    let path = format!("/api/v1/digest?{range}");
    r.call("digest", "GET", &path, reader, None);
    r.call("digest", "GET", "/api/v1/digest", reader, None);
    let activity = format!("/api/v1/activity?{range}&groupBy=author");
    r.call("activity", "GET", &activity, reader, None);
    let owner = "/api/admin/projects/client";
    for (operation, path) in [
        ("adminSearchPushes", format!("{owner}/history?q=typed")),
        ("adminGetPush", format!("{owner}/pushes/{push}")),
        ("adminDigest", format!("{owner}/digest?{range}")),
        ("adminActivity", format!("{owner}/activity?{range}")),
    ] {
        r.call(operation, "GET", &path, admin, None);
    }
    // Notifications: the receiver is this test server's health route, which answers 200.
    let notifications = format!("{owner}/notifications");
    let receiver = format!("{}/healthz", app.base_url);
    let created = r.call(
        "adminCreateNotification",
        "POST",
        &notifications,
        admin,
        Some(json!({"kind": "webhook", "url": receiver, "label": "ts"})),
    );
    let bad = json!({"kind": "pager", "url": receiver});
    r.call(
        "adminCreateNotification",
        "POST",
        &notifications,
        admin,
        Some(bad),
    );
    r.call("adminListNotifications", "GET", &notifications, admin, None);
    let one = format!("{notifications}/{}", created["id"]);
    for (operation, action) in [
        ("adminTestNotification", "test"),
        ("adminPauseNotification", "pause"),
        ("adminResumeNotification", "resume"),
    ] {
        r.call(operation, "POST", &format!("{one}/{action}"), admin, None);
    }
    let deliveries = format!("{one}/deliveries");
    r.call(
        "adminNotificationDeliveries",
        "GET",
        &deliveries,
        admin,
        None,
    );
    r.call("adminDeleteNotification", "DELETE", &one, admin, None);
    r.call("adminDeleteNotification", "DELETE", &one, admin, None);
    let revoke = format!("{keys}/{}", key["id"]);
    r.call("adminRevokeKey", "DELETE", &revoke, admin, None);
    let path = format!("{keys}/999");
    r.call("adminRevokeKey", "DELETE", &path, admin, None);
    let gone = "/api/admin/projects/client";
    r.call("adminDeleteProject", "DELETE", gone, admin, None);
    r.call("adminDeleteProject", "DELETE", gone, admin, None);
    r.answers
}

/// The `operationId` of every operation the OpenAPI `document` declares.
fn operation_ids(document: &Value) -> BTreeSet<&str> {
    let path_items = document["paths"].as_object().expect("the document's paths");
    let operations = path_items
        .values()
        .flat_map(|item| item.as_object().expect("a path item").values());
    operations
        .filter_map(|op| op["operationId"].as_str())
        .collect()
}

/// The TypeScript that assigns each recorded body to its operation's declared answer type.
fn typed_answers(answers: &[Recorded]) -> String {
    let mut ts = String::from(
        "import type { operations } from \"./api\";\n\n\
         type Responses<O extends keyof operations> = operations[O][\"responses\"];\n\
         type Body<O extends keyof operations, S extends keyof Responses<O>> =\n  \
         Responses<O>[S] extends { content: infer C } ? C[keyof C] : never;\n\n",
    );
    for (n, a) in answers.iter().enumerate() {
        let (op, status) = (a.operation, a.status);
        ts.push_str(&format!(
            "export const status{n}: keyof Responses<\"{op}\"> = {status};\n"
        ));
        if status != 204 {
            ts.push_str(&format!(
                "export const answer{n}: Body<\"{op}\", {status}> = {};\n",
                serde_json::to_string_pretty(&a.body).unwrap()
            ));
        }
    }
    ts
}

fn run(program: &Path, args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_typescript_client_generated_from_the_document_type_checks_every_recorded_answer() {
    let bin = client_dir().join("node_modules/.bin");
    let install = "npm ci --prefix tests/client, as .ci/run does";
    if tool::require("typed client test", "node", &["--version"], install).is_none() {
        return;
    }
    if !bin.join("tsc").exists() || !bin.join("openapi-typescript").exists() {
        tool::skip(
            "typed client test",
            &format!("tests/client has no node_modules ({install})"),
        );
        return;
    }
    let app = TestApp::spawn();
    let answers = record_every_operation(&app);
    let document: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let declared = operation_ids(&document);
    let called: BTreeSet<&str> = answers.iter().map(|a| a.operation).collect();
    let uncalled: Vec<_> = declared
        .difference(&called)
        .filter(|op| !NOT_JSON.contains(op))
        .collect();
    assert!(
        uncalled.is_empty(),
        "add calls of {uncalled:?} to record_every_operation"
    );

    let work = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let api = work.path().join("api.d.ts");
    let (ok, out) = run(
        &bin.join("openapi-typescript"),
        &[spec.to_str().unwrap(), "-o", api.to_str().unwrap()],
        work.path(),
    );
    assert!(ok, "openapi-typescript failed:\n{out}");
    std::fs::write(work.path().join("answers.ts"), typed_answers(&answers)).unwrap();
    let (ok, out) = run(
        &bin.join("tsc"),
        &[
            "--strict",
            "--noEmit",
            "--exactOptionalPropertyTypes",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "answers.ts",
        ],
        work.path(),
    );
    assert!(
        ok,
        "recorded answers do not fit the generated types:\n{out}\n{}",
        typed_answers(&answers)
    );
}
