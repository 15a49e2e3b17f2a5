//! Notifications end to end: the admin API's contract, each kind's message as a fake receiver
//! over real HTTP sees it (shape, platform limits, escaping), filters, tags and deletions,
//! retries, pausing, isolation between receivers, Standard Webhooks signatures checked by the
//! reference library, the CLI, and at-least-once delivery across SIGKILLs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use git_push_tracker::notify::deliver::GiveWay;
use git_push_tracker::notify::schedule::Schedule;
use serde_json::{Value, json};

use crate::support::app::{
    ADMIN_TOKEN, Reply, TestApp, TestProject, github_payload, reply, wait_for,
};
use crate::support::cli;
use crate::support::fake_llm::{FakeLlm, Recorded, Scripted};
use crate::support::provider::{Provider, signed_headers};
use crate::support::server::Server;
use crate::support::tool;

const DEADLINE: Duration = Duration::from_secs(20);

/// A server whose retry schedule runs a thousand times faster (5 s becomes 5 ms) and whose
/// receivers time out after 2 s.
fn fast_app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.notify.schedule = Schedule { scale: 0.001 };
        c.notify.timeout = Duration::from_secs(2);
    })
}

fn receiver() -> FakeLlm {
    FakeLlm::start_with(|_| Scripted::json(200, "ok"))
}

/// A [`fast_app`] with the project `web`, and a [`receiver`] for its notifications.
fn web_with_receiver() -> (TestApp, TestProject, FakeLlm) {
    let app = fast_app();
    let project = app.create_project("web");
    (app, project, receiver())
}

fn admin(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> Reply {
    let url = format!("{}{path}", app.base_url);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let answer = match (method, body) {
        ("GET", _) => app.agent.get(&url).header("Authorization", &auth).call(),
        ("DELETE", _) => app.agent.delete(&url).header("Authorization", &auth).call(),
        (_, Some(body)) => app
            .agent
            .post(&url)
            .header("Authorization", &auth)
            .send_json(body),
        (_, None) => app
            .agent
            .post(&url)
            .header("Authorization", &auth)
            .send_empty(),
    };
    reply(answer.expect("admin request"))
}

/// Adds a notification and returns the create answer.
fn add(app: &TestApp, project: &str, body: Value) -> Value {
    let r = admin(
        app,
        "POST",
        &format!("/api/admin/projects/{project}/notifications"),
        Some(body),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

/// Adds `notification` to the project `web`, its `url` a path on `fake`; returns the create
/// answer.
fn add_at(app: &TestApp, fake: &FakeLlm, mut notification: Value) -> Value {
    let path = notification["url"].as_str().expect("a url path").to_owned();
    notification["url"] = json!(format!("{}{path}", fake.base_url()));
    add(app, "web", notification)
}

/// Adds a signed generic webhook to `fake` and returns the create answer.
fn add_webhook(app: &TestApp, project: &str, fake: &FakeLlm) -> Value {
    add(
        app,
        project,
        json!({"kind": "webhook", "url": format!("{}/in", fake.base_url())}),
    )
}

/// The items of the admin API's list at `path`, which must answer 200.
fn admin_list(app: &TestApp, path: &str) -> Vec<Value> {
    let r = admin(app, "GET", path, None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body.as_array().unwrap().clone()
}

fn list(app: &TestApp, project: &str) -> Vec<Value> {
    admin_list(app, &format!("/api/admin/projects/{project}/notifications"))
}

fn deliveries(app: &TestApp, project: &str, id: i64) -> Vec<Value> {
    admin_list(
        app,
        &format!("/api/admin/projects/{project}/notifications/{id}/deliveries"),
    )
}

/// Waits until a notification of `project` is paused, asserts that its reason names each of
/// `because`, and answers it.
fn wait_paused(app: &TestApp, project: &str, because: &[&str]) -> Value {
    let item = app.wait_for("the notification to be paused", DEADLINE, || {
        list(app, project)
            .into_iter()
            .find(|n| n["enabled"] == false)
    });
    let reason = item["disabledReason"].as_str().unwrap();
    assert!(because.iter().all(|b| reason.contains(b)), "{reason}");
    item
}

/// The CLI's `notify add web --kind KIND --url URL`, then the `more` arguments.
fn notify_add<'a>(kind: &'a str, url: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["notify", "add", "web", "--kind", kind, "--url", url];
    args.extend_from_slice(more);
    args
}

/// `field` of every attempt in a delivery log, oldest first (the log lists the newest first).
fn oldest_first(log: &[Value], field: &str) -> Vec<i64> {
    log.iter()
        .rev()
        .map(|a| a[field].as_i64().unwrap())
        .collect()
}

/// A GitHub push payload, changed by `edit` before it is signed and sent; returns the push id.
fn push_with(app: &TestApp, project: &TestProject, edit: impl FnOnce(&mut Value)) -> String {
    let mut payload: Value =
        serde_json::from_slice(&github_payload("main", &["Add login"], 1_767_000_000)).unwrap();
    edit(&mut payload);
    let body = serde_json::to_vec(&payload).unwrap();
    let delivery = uuid::Uuid::new_v4().to_string();
    let r = app.github_push(project, &delivery, &body);
    assert!(r.status < 300, "{} {}", r.status, r.body);
    r.body["pushes"][0].as_str().expect("push id").to_owned()
}

fn push(app: &TestApp, project: &TestProject) -> String {
    push_with(app, project, |_| {})
}

/// Waits until `fake` has received `n` requests, and returns them.
fn wait_requests(fake: &FakeLlm, n: usize) -> Vec<Recorded> {
    wait_for(
        &format!("{n} requests at the receiver"),
        DEADLINE,
        &mut || {
            let got = fake.requests();
            (got.len() >= n).then_some(got)
        },
    )
}

/// The one message a fresh receiver gets for a push changed by `edit`; `notification`'s `url`
/// is a path on that receiver. Every test of a kind's message format starts here.
fn first_message(notification: Value, edit: impl FnOnce(&mut Value)) -> Recorded {
    let (app, project, fake) = web_with_receiver();
    add_at(&app, &fake, notification);
    push_with(&app, &project, edit);
    wait_requests(&fake, 1).remove(0)
}

/// Commit messages that try every trick on every platform.
const HOSTILE: &str =
    "<!channel> @everyone @here <@123> **bold** [x](https://evil.example) <b>html</b> & done";

fn commits(n: usize, message: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({
                    "id": format!("{:040x}", i + 1),
                    "message": format!("{message} #{i}"),
                    "timestamp": "2026-01-01T10:00:00Z",
                    "url": format!("https://github.com/acme/app/commit/{:040x}", i + 1),
                    "author": {"name": "Ada", "email": "ada@example.com", "username": "ada"},
                    "added": [], "removed": [], "modified": [format!("src/f{i}.rs")]
                })
            })
            .collect(),
    )
}

#[test]
fn the_admin_api_creates_lists_pauses_resumes_and_removes_notifications_as_the_contract_says() {
    let app = fast_app();
    app.create_project("web");
    let slack_url = "https://hooks.slack.com/services/T000/B000/SECRETPART";
    let created = add(
        &app,
        "web",
        json!({"kind": "slack", "url": slack_url, "label": "team", "branches": ["*", "!dependabot/*"], "excludeAuthors": ["dependabot[bot]"]}),
    );
    assert_eq!(created["kind"], "slack");
    assert_eq!(
        created["url"], slack_url,
        "the create answer shows the URL in full"
    );
    assert_eq!(created["label"], "team");
    assert_eq!(created["branches"], json!(["*", "!dependabot/*"]));
    assert_eq!(created["excludeAuthors"], json!(["dependabot[bot]"]));
    assert_eq!(created["enabled"], true);
    assert!(created.get("secret").is_none(), "{created}");
    let id = created["id"].as_i64().unwrap();

    let listed = list(&app, "web");
    assert_eq!(listed.len(), 1);
    let item = &listed[0];
    assert_eq!(item["url"], "https://hooks.slack.com/services/***");
    assert!(!item.to_string().contains("SECRETPART"));
    assert_eq!(item["failuresInARow"], 0);
    assert!(item["lastDeliveryAt"].is_null() && item["disabledReason"].is_null());

    let hook = add(
        &app,
        "web",
        json!({"kind": "webhook", "url": "http://127.0.0.1:9/hook"}),
    );
    let secret = hook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(
        !list(&app, "web")
            .iter()
            .any(|n| n.to_string().contains(secret))
    );

    let path = format!("/api/admin/projects/web/notifications/{id}");
    let paused = admin(&app, "POST", &format!("{path}/pause"), None);
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(paused.body["enabled"], false);
    assert_eq!(paused.body["disabledReason"], "paused by the owner");
    let resumed = admin(&app, "POST", &format!("{path}/resume"), None);
    assert_eq!(resumed.body["enabled"], true);
    assert!(resumed.body["disabledReason"].is_null());

    assert_eq!(admin(&app, "DELETE", &path, None).status, 204);
    let again = admin(&app, "DELETE", &path, None);
    assert_eq!(again.status, 404);
    assert_eq!(again.body["error"]["code"], "notification_not_found");
    assert_eq!(list(&app, "web").len(), 1);
}

#[test]
fn a_bad_kind_url_pattern_author_or_token_is_a_400_naming_the_field_and_stores_nothing() {
    let app = fast_app();
    app.create_project("web");
    let cases = [
        (json!({"kind": "irc", "url": "https://x.example/a"}), "kind"),
        (json!({"kind": "slack", "url": "ftp://x.example/a"}), "url"),
        (json!({"kind": "slack", "url": "not a url"}), "url"),
        (json!({"kind": "ntfy", "url": "https://ntfy.sh/"}), "url"),
        (
            json!({"kind": "slack", "url": "https://x.example/a", "branches": ["ok", "bad pattern"]}),
            "branches",
        ),
        (
            json!({"kind": "slack", "url": "https://x.example/a", "branches": ["!"]}),
            "branches",
        ),
        (
            json!({"kind": "slack", "url": "https://x.example/a", "excludeAuthors": [""]}),
            "excludeAuthors",
        ),
        (
            json!({"kind": "slack", "url": "https://x.example/a", "token": "tk_x"}),
            "token",
        ),
    ];
    for (body, field) in cases {
        let r = admin(
            &app,
            "POST",
            "/api/admin/projects/web/notifications",
            Some(body.clone()),
        );
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "invalid_notification", "{body}");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("invalid {field}:")),
            "{body}: {message}"
        );
    }
    assert!(list(&app, "web").is_empty());
    let missing = admin(
        &app,
        "POST",
        "/api/admin/projects/nope/notifications",
        Some(json!({"kind": "slack", "url": "https://x.example/a"})),
    );
    assert_eq!(missing.status, 404);
}

#[test]
fn slack_gets_block_kit_with_a_text_fallback_where_hostile_text_is_escaped_and_never_pings() {
    let request = first_message(json!({"kind": "slack", "url": "/services/T/B/X"}), |p| {
        p["commits"] = commits(300, HOSTILE)
    });
    assert_eq!(request.target, "/services/T/B/X");
    let body = request.json();
    let text = body["text"].as_str().unwrap();
    assert!(text.chars().count() <= 3000, "{}", text.len());
    let blocks = body["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    for block in blocks {
        if let Some(t) = block["text"]["text"].as_str() {
            assert!(
                t.chars().count() <= 3000,
                "a section of {} characters",
                t.len()
            );
        }
    }
    let all = body.to_string();
    assert!(
        !all.contains("<!channel>") && !all.contains("<@123>"),
        "{all}"
    );
    assert!(text.contains("pushed 300 commits to main"), "{text}");
    for (shown, why) in [
        ("&lt;!channel&gt;", "the mention is shown"),
        (" more", "a 300-commit summary is cut with and N more"),
        ("Compare changes", "the compare link is there"),
    ] {
        assert!(all.contains(shown), "{why}: {all}");
    }
}

#[test]
fn discord_gets_an_embed_within_its_limits_with_wait_true_and_no_mentions_parsed() {
    let request = first_message(
        json!({"kind": "discord", "url": "/api/webhooks/1/tok"}),
        |p| p["commits"] = commits(300, HOSTILE),
    );
    assert_eq!(request.target, "/api/webhooks/1/tok?wait=true");
    let body = request.json();
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    let embed = &body["embeds"][0];
    let title = embed["title"].as_str().unwrap();
    let description = embed["description"].as_str().unwrap();
    let footer = embed["footer"]["text"].as_str().unwrap_or("");
    assert!(title.chars().count() <= 256);
    assert!(description.chars().count() <= 4096);
    assert!(title.chars().count() + description.chars().count() + footer.chars().count() <= 6000);
    assert!(description.contains(" more"), "{description}");
    assert!(!description.contains("@everyone"), "{description}");
    assert!(
        body.get("content")
            .is_none_or(|c| c.as_str().unwrap_or("").chars().count() <= 2000)
    );
}

#[test]
fn teams_gets_an_adaptive_card_1_4_envelope_under_28_kb() {
    let request = first_message(json!({"kind": "teams", "url": "/workflows/x"}), |p| {
        p["commits"] = commits(300, HOSTILE)
    });
    assert!(
        request.body.len() <= 28 * 1024,
        "{} bytes",
        request.body.len()
    );
    let body = request.json();
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    assert_eq!(attachment["content"]["version"], "1.4");
    assert!(attachment["content"]["body"].as_array().unwrap().len() >= 2);
}

#[test]
fn teams_text_blocks_show_hostile_markdown_as_text_and_never_mention() {
    let body = first_message(json!({"kind": "teams", "url": "/workflows/x"}), |p| {
        let mut list = commits(2, HOSTILE);
        list[1]["message"] = json!("1. _step_ one\n\nbody");
        p["commits"] = list;
        p["pusher"] = json!({"name": "**mallory**", "email": "m@example.com"});
    })
    .json();
    let blocks = body["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap();
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|b| b["type"] == "TextBlock")
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    let all = texts.join("\n");
    // Adaptive Card TextBlocks render Markdown: bold, italics, links and lists must come out
    // as the characters that were written.
    for raw in [
        "**bold**",
        "[x](https://evil.example)",
        "<b>",
        "@everyone",
        "@here",
        "_step_",
        "- 1. ",
        "**mallory**",
    ] {
        assert!(!all.contains(raw), "{raw:?} left as Markdown in {all}");
    }
    for shown in [
        "\\*\\*bold\\*\\*",
        "\\[x\\]\\(https://evil.example\\)",
        "\\<b\\>",
        "\\_step\\_",
        "1\\. ",
        "\\*\\*mallory\\*\\*",
    ] {
        assert!(all.contains(shown), "{shown:?} not in {all}");
    }
}

#[test]
fn mattermost_gets_markdown_text_where_mentions_are_inert() {
    let body = first_message(json!({"kind": "mattermost", "url": "/hooks/abc"}), |p| {
        p["commits"] = commits(3, HOSTILE)
    })
    .json();
    let text = body["text"].as_str().unwrap();
    assert!(body.get("blocks").is_none());
    assert!(text.starts_with("**"), "{text}");
    assert!(
        !text.contains("@everyone") && !text.contains("@here"),
        "{text}"
    );
    assert!(text.contains("\\*\\*bold\\*\\*"), "{text}");
}

#[test]
fn ntfy_gets_a_json_publish_at_the_server_root_with_its_topic_and_token() {
    let request = first_message(
        json!({"kind": "ntfy", "url": "/deploys", "token": "tk_secret123"}),
        |p| p["commits"] = commits(300, HOSTILE),
    );
    assert_eq!(request.target, "/");
    assert_eq!(request.header("authorization"), Some("Bearer tk_secret123"));
    let body = request.json();
    assert_eq!(body["topic"], "deploys");
    assert_eq!(body["markdown"], true);
    assert_eq!(
        body["click"],
        "https://github.com/acme/app/compare/1111111...2222222"
    );
    assert!(
        body["title"]
            .as_str()
            .unwrap()
            .contains("pushed 300 commits")
    );
    assert!(body["message"].as_str().unwrap().len() <= 4096);
}

#[test]
fn the_generic_webhook_body_carries_the_push_as_the_api_lists_it() {
    let (app, project, fake) = web_with_receiver();
    add_webhook(&app, "web", &fake);
    let id = push(&app, &project);
    let request = &wait_requests(&fake, 1)[0];
    let body = request.json();
    assert_eq!(body["type"], "push.summarized");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["data"]["project"], "web");
    let listed = app.get("/api/v1/pushes", Some(&project.key));
    let item = &listed.body["pushes"][0];
    assert_eq!(
        &body["data"]["push"], item,
        "the same fields as GET /api/v1/pushes"
    );
    assert_eq!(body["data"]["push"]["id"], id.as_str());
    assert!(request.header("webhook-id").unwrap().starts_with("msg_"));
    assert!(
        request
            .header("webhook-signature")
            .unwrap()
            .starts_with("v1,")
    );
}

#[test]
fn the_generic_webhook_signature_verifies_with_the_standard_webhooks_reference_library() {
    let test =
        "the_generic_webhook_signature_verifies_with_the_standard_webhooks_reference_library";
    let check = Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status();
    if !check.is_ok_and(|s| s.success()) {
        tool::skip(
            test,
            "PyPI standardwebhooks is not installed (.ci/python-deps.sh)",
        );
        return;
    }
    let (app, project, fake) = web_with_receiver();
    let created = add_webhook(&app, "web", &fake);
    let secret = created["secret"].as_str().unwrap().to_owned();
    push(&app, &project);
    let request = wait_requests(&fake, 1).remove(0);
    let verify = |secret: &str, body: &str| {
        let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
secret, body, wid, ts, sig = sys.argv[1:6]
Webhook(secret).verify(body, {"webhook-id": wid, "webhook-timestamp": ts, "webhook-signature": sig})
print("verified")
"#;
        Command::new("python3")
            .args([
                "-c",
                script,
                secret,
                body,
                request.header("webhook-id").unwrap(),
                request.header("webhook-timestamp").unwrap(),
                request.header("webhook-signature").unwrap(),
            ])
            .output()
            .unwrap()
    };
    let good = verify(&secret, &request.body);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let tampered = verify(&secret, &request.body.replace("web", "wep"));
    assert!(!tampered.status.success(), "a changed body must not verify");
}

#[test]
fn branch_and_author_filters_leave_out_bot_branches_and_bot_pushes() {
    let (app, project, fake) = web_with_receiver();
    add_at(
        &app,
        &fake,
        json!({"kind": "webhook", "url": "/in", "branches": ["*", "!dependabot/*"], "excludeAuthors": ["Dependabot[bot]"]}),
    );
    push_with(&app, &project, |p| {
        p["ref"] = json!("refs/heads/dependabot/npm/lodash")
    });
    push_with(&app, &project, |p| {
        p["pusher"]["name"] = json!("dependabot[bot]");
    });
    push_with(&app, &project, |p| {
        p["commits"][0]["author"]["username"] = json!("dependabot[bot]");
    });
    let wanted = push_with(&app, &project, |p| p["ref"] = json!("refs/heads/feature/x"));
    // One statement, so the check sees one state of the outbox: its rows are written just
    // after the pushes' answers, so a count taken apart from the pending check could pair the
    // three decided rows with a fourth that arrived in between.
    app.wait_for("every delivery to be decided", DEADLINE, || {
        (app.sql_count(
            "SELECT count(*) = 4 AND count(*) FILTER (WHERE state = 'pending') = 0
             FROM notify_outbox",
        ) == 1)
            .then_some(())
    });
    assert_eq!(
        app.sql_count("SELECT count(*) FROM notify_outbox WHERE state = 'skipped'"),
        3
    );
    let got = fake.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].json()["data"]["push"]["id"], wanted.as_str());
}

#[test]
fn a_tag_is_shown_as_a_tag_and_a_deletion_is_one_line() {
    let (app, project, fake) = web_with_receiver();
    add_at(
        &app,
        &fake,
        json!({"kind": "mattermost", "url": "/hooks/a", "branches": ["v*", "old"]}),
    );
    push_with(&app, &project, |p| p["ref"] = json!("refs/heads/main"));
    push_with(&app, &project, |p| {
        p["ref"] = json!("refs/tags/v1.2.0");
        p["created"] = json!(true);
    });
    push_with(&app, &project, |p| {
        p["ref"] = json!("refs/heads/old");
        p["deleted"] = json!(true);
        p["after"] = json!("0000000000000000000000000000000000000000");
        p["commits"] = json!([]);
    });
    let got = wait_requests(&fake, 2);
    let texts: Vec<String> = got
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("pushed tag v1.2.0")),
        "{texts:?}"
    );
    let deletion = texts
        .iter()
        .find(|t| t.contains("deleted branch old"))
        .expect("the deletion");
    assert_eq!(deletion.lines().count(), 1, "{deletion}");
    assert!(!texts.iter().any(|t| t.contains("to main")), "{texts:?}");
}

#[test]
fn a_429_with_retry_after_and_a_500_are_retried_with_the_same_webhook_id() {
    let app = fast_app();
    let project = app.create_project("web");
    let fake = FakeLlm::start(vec![
        Scripted::json(429, "slow down").with_header("Retry-After", "2"),
        Scripted::json(500, "oops"),
        Scripted::json(200, "ok"),
    ]);
    let created = add_webhook(&app, "web", &fake);
    let id = created["id"].as_i64().unwrap();
    let started = Instant::now();
    let push_id = push(&app, &project);
    let got = wait_requests(&fake, 3);
    let ids: HashSet<&str> = got
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one webhook-id for every retry: {ids:?}");
    // Retry-After: 2 s at the test's scale of 1/1000 is 2 ms, longer than 5 s scaled is not:
    // the schedule's 5 ms then applies; either way well inside the deadline.
    assert!(started.elapsed() < DEADLINE);
    let log = app.wait_for("three attempts logged", DEADLINE, || {
        let log = deliveries(&app, "web", id);
        (log.len() == 3).then_some(log)
    });
    assert_eq!(oldest_first(&log, "status"), [429, 500, 200]);
    assert_eq!(oldest_first(&log, "attempt"), [1, 2, 3]);
    assert!(log.iter().all(|a| a["pushId"] == push_id.as_str()));
    assert!(log[2]["error"].as_str().unwrap().contains("rate limited"));
    let item = &list(&app, "web")[0];
    assert_eq!(item["failuresInARow"], 0);
    assert!(item["lastDeliveryAt"].is_string());
}

#[test]
fn a_410_pauses_the_notification_with_the_reason_and_stops_retrying() {
    let app = fast_app();
    let project = app.create_project("web");
    let fake = FakeLlm::start_with(|_| Scripted::json(410, "channel_is_archived"));
    let created = add_at(
        &app,
        &fake,
        json!({"kind": "slack", "url": "/services/a/b/c"}),
    );
    let id = created["id"].as_i64().unwrap();
    push(&app, &project);
    wait_paused(&app, "web", &["410", "channel_is_archived"]);
    // A paused notification gets nothing: the next push is not even queued for it.
    push(&app, &project);
    app.wait_until_derived();
    assert_eq!(app.sql_count("SELECT count(*) FROM notify_outbox"), 1);
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(deliveries(&app, "web", id).len(), 1);
}

#[test]
fn a_receiver_that_hangs_does_not_delay_another_receiver_or_the_next_summary() {
    let app = fast_app();
    let project = app.create_project("web");
    let hanging =
        FakeLlm::start_with(|_| Scripted::json(200, "late").delayed(Duration::from_secs(8)));
    let quick = receiver();
    add_at(&app, &hanging, json!({"kind": "webhook", "url": "/slow"}));
    add_at(&app, &quick, json!({"kind": "webhook", "url": "/fast"}));
    let started = Instant::now();
    push(&app, &project);
    wait_requests(&hanging, 1);
    wait_requests(&quick, 1);
    let second = push(&app, &project);
    let got = wait_requests(&quick, 2);
    assert_eq!(got[1].json()["data"]["push"]["id"], second.as_str());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the quick receiver waited for the hanging one: {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.owner_push("web", &second)["summaryStatus"],
        "summarized"
    );
}

#[test]
fn a_message_gives_way_to_webhooks_being_received_but_never_for_longer_than_the_longest_wait() {
    // No webhook for an hour never happens here: every batch waits the longest wait, as under
    // webhooks that never pause.
    let longest = Duration::from_millis(500);
    let app = TestApp::spawn_with(|c| {
        c.notify.give_way = GiveWay {
            idle: Duration::from_secs(3600),
            longest,
        };
    });
    let project = app.create_project("web");
    let fake = receiver();
    add_webhook(&app, "web", &fake);
    let sent = Instant::now();
    let id = push(&app, &project);
    let got = wait_requests(&fake, 1);
    let waited = sent.elapsed();
    assert_eq!(got[0].json()["data"]["push"]["id"], id.as_str());
    assert!(
        waited >= longest,
        "the message did not give way to ingest: it arrived {waited:?} after its webhook was sent"
    );
}

#[test]
fn a_test_message_answers_the_receivers_status_or_502_and_is_logged() {
    let app = fast_app();
    app.create_project("web");
    let fake = FakeLlm::start(vec![
        Scripted::json(200, "ok"),
        Scripted::json(500, "broken"),
    ]);
    let created = add_at(
        &app,
        &fake,
        json!({"kind": "slack", "url": "/services/a/b/c"}),
    );
    let id = created["id"].as_i64().unwrap();
    let path = format!("/api/admin/projects/web/notifications/{id}/test");
    let ok = admin(&app, "POST", &path, None);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["status"], 200);
    assert!(
        fake.requests()[0].json()["text"]
            .as_str()
            .unwrap()
            .contains("Test message")
    );
    let bad = admin(&app, "POST", &path, None);
    assert_eq!(bad.status, 502, "{}", bad.body);
    assert_eq!(bad.body["error"]["code"], "receiver_failed");
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    let log = deliveries(&app, "web", id);
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|a| a["pushId"].is_null()));
    assert_eq!(log[0]["status"], 500);
    let missing = admin(
        &app,
        "POST",
        "/api/admin/projects/web/notifications/999/test",
        None,
    );
    assert_eq!(missing.status, 404);
}

#[test]
fn receiver_urls_and_tokens_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("n.db"), dir.path().join("server.log"));
    let server = Server::start(&db, &log, |c| {
        c.env("PUSH_TRACKER_SUMMARIZER", "builtin")
            .env("PUSH_TRACKER_NOTIFY_RETRY_SCALE", "0.001");
    });
    let fake = FakeLlm::start_with(|_| Scripted::json(500, "no"));
    let project = cli::run_json(&db, &["project", "create", "web", "--json"]);
    let url = format!("{}/topicSECRETPATH", fake.base_url());
    let more = ["--token", "tk_TOKENVALUE", "--json"];
    let added = cli::run_json(&db, &notify_add("ntfy", &url, &more));
    assert!(added["url"].as_str().unwrap().ends_with("/topicSECRETPATH"));
    let webhook_url = project["webhookUrl"].as_str().unwrap();
    let webhook_path = &webhook_url[webhook_url.find("/webhooks/").unwrap()..];
    assert!(send_push(
        &server.base,
        webhook_path,
        project["webhookSecret"].as_str().unwrap()
    ));
    // Every attempt fails (500) and is logged; the first two come within milliseconds.
    wait_for("two failed attempts in the log", DEADLINE, &mut || {
        (server.log().matches("notification not delivered").count() >= 2).then_some(())
    });
    let text = server.log();
    let host = fake.base_url().trim_start_matches("http://").to_owned();
    assert!(text.contains(&host), "the log names the host: {text}");
    assert!(
        !text.contains("SECRETPATH") && !text.contains("TOKENVALUE"),
        "{text}"
    );
}

#[test]
fn the_cli_adds_lists_pauses_resumes_tests_and_removes_with_the_admin_api_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let fake = receiver();
    cli::run_json(&db, &["project", "create", "web", "--json"]);
    let url = format!("{}/services/T/B/CLISECRET", fake.base_url());
    let added = cli::run_json(
        &db,
        &notify_add(
            "slack",
            &url,
            &[
                "--branch",
                "main",
                "--branch",
                "!wip/*",
                "--exclude-author",
                "renovate[bot]",
                "--label",
                "ops",
                "--json",
            ],
        ),
    );
    assert_eq!(added["url"], url.as_str());
    assert_eq!(added["branches"], json!(["main", "!wip/*"]));
    assert_eq!(added["excludeAuthors"], json!(["renovate[bot]"]));
    assert_eq!(added["label"], "ops");
    let id = added["id"].to_string();
    let listed = cli::run_json(&db, &["notify", "list", "web", "--json"]);
    assert!(
        listed[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/services/***")
    );
    let table = cli::run(&db, &["notify", "list", "web"]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table.contains("ops") && !table.contains("CLISECRET"),
        "{table}"
    );
    for cmd in ["pause", "resume", "test", "remove"] {
        let out = cli::run(&db, &["notify", cmd, "web", &id]);
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(fake.requests().len(), 1, "test sent one message");
    let bad = cli::run(&db, &notify_add("irc", &url, &[]));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid kind"));
    assert_eq!(
        cli::run_json(&db, &["notify", "list", "web", "--json"]),
        json!([])
    );
}

/// Sends one signed push to whatever server is at `base`; true when it was acknowledged.
fn send_push(base: &str, webhook_path: &str, secret: &str) -> bool {
    let body = github_payload("main", &["Work"], 1_767_000_000);
    let delivery = uuid::Uuid::new_v4().to_string();
    let headers = signed_headers(Provider::GitHub, secret, "push", &delivery, &body);
    let agent = crate::support::app::agent();
    let mut request = agent.post(format!("{base}{webhook_path}"));
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    request
        .send(&body[..])
        .is_ok_and(|r| r.status().is_success())
}

fn stored_push_ids(db: &Path) -> HashSet<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT public_id FROM pushes").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn after_repeated_sigkills_every_summarized_push_reached_every_receiver_with_stable_ids() {
    const KILLS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("n.db"), dir.path().join("server.log"));
    let receivers: Vec<FakeLlm> = (0..2)
        .map(|_| {
            FakeLlm::start_with(|_| Scripted::json(200, "ok").delayed(Duration::from_millis(5)))
        })
        .collect();
    let project = cli::run_json(&db, &["project", "create", "web", "--json"]);
    let secret = project["webhookSecret"].as_str().unwrap().to_owned();
    let webhook_url = project["webhookUrl"].as_str().unwrap().to_owned();
    let webhook_path = webhook_url[webhook_url.find("/webhooks/").unwrap()..].to_owned();
    for r in &receivers {
        let url = format!("{}/in", r.base_url());
        cli::run_json(&db, &notify_add("webhook", &url, &["--json"]));
    }
    for life in 0..=KILLS {
        let mut server = Server::start(&db, &log, |c| {
            c.env("PUSH_TRACKER_SUMMARIZER", "builtin")
                .env("PUSH_TRACKER_NOTIFY_RETRY_SCALE", "0.001");
        });
        for _ in 0..20 {
            send_push(&server.base, &webhook_path, &secret);
        }
        if life == KILLS {
            // The last life runs until every stored push has reached both receivers.
            let stored = stored_push_ids(&db);
            for r in &receivers {
                wait_for(
                    "every push at every receiver",
                    Duration::from_secs(60),
                    &mut || {
                        let seen: HashSet<String> = r
                            .requests()
                            .iter()
                            .map(|q| q.json()["data"]["push"]["id"].as_str().unwrap().to_owned())
                            .collect();
                        stored.is_subset(&seen).then_some(())
                    },
                );
            }
            server.stop();
        } else {
            // Killed while deliveries are due: some sent, some not, some perhaps twice.
            server.kill();
        }
    }
    let stored = stored_push_ids(&db);
    assert!(stored.len() >= 100, "{} pushes stored", stored.len());
    for r in &receivers {
        let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
        for q in r.requests() {
            let push = q.json()["data"]["push"]["id"].as_str().unwrap().to_owned();
            ids.entry(push)
                .or_default()
                .insert(q.header("webhook-id").unwrap().to_owned());
        }
        assert!(
            stored.iter().all(|p| ids.contains_key(p)),
            "a push never reached a receiver"
        );
        assert!(
            ids.values().all(|set| set.len() == 1),
            "a duplicate came with another webhook-id"
        );
    }
}

#[test]
fn with_deny_private_a_loopback_or_private_receiver_is_a_400_naming_url_and_stores_nothing() {
    let app = TestApp::spawn_with(|c| {
        c.notify.deny_private = true;
    });
    app.create_project("web");
    let fake = receiver();
    let port = fake.base_url().rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("{}/alerts", fake.base_url()),
        format!("http://localhost:{port}/alerts"),
        "http://10.0.0.7/hook".to_owned(),
        "http://[::1]/hook".to_owned(),
    ] {
        let r = admin(
            &app,
            "POST",
            "/api/admin/projects/web/notifications",
            Some(json!({"kind": "webhook", "url": url})),
        );
        assert_eq!(r.status, 400, "{url}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "invalid_notification");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("invalid url:") && message.contains("--notify-deny-private"),
            "{url}: {message}"
        );
    }
    assert!(list(&app, "web").is_empty());
    assert_eq!(app.sql_count("SELECT count(*) FROM notifications"), 0);
}

#[test]
fn with_deny_private_a_receiver_whose_name_resolves_to_loopback_at_send_time_is_never_contacted() {
    a_private_receiver_stored_before_the_flag_is_refused_at_send_time("localhost");
}

#[test]
fn with_deny_private_a_receiver_named_by_a_loopback_address_at_send_time_is_never_contacted() {
    a_private_receiver_stored_before_the_flag_is_refused_at_send_time("127.0.0.1");
}

fn a_private_receiver_stored_before_the_flag_is_refused_at_send_time(host: &str) {
    let app = TestApp::spawn_with(|c| {
        c.notify.deny_private = true;
        c.notify.schedule = Schedule { scale: 0.001 };
    });
    let project = app.create_project("web");
    let fake = receiver();
    let port = fake.base_url().rsplit(':').next().unwrap().to_owned();
    // Stored as if created before the flag was on (or before the name's DNS answer changed):
    // the send resolves the name again and checks what it gets.
    let request = git_push_tracker::manage::NotificationRequest {
        kind: "webhook".into(),
        url: format!("http://{host}:{port}/hook"),
        ..Default::default()
    };
    app.manager()
        .add_notification("web", &request, chrono::Utc::now())
        .unwrap();
    push(&app, &project);
    let item = wait_paused(&app, "web", &["--notify-deny-private", "127.0.0.1"]);
    let id = item["id"].as_i64().unwrap();
    let log = deliveries(&app, "web", id);
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0]["status"].is_null(), "{log:?}");
    assert!(
        fake.requests().is_empty(),
        "nothing reached the private address"
    );
}

#[test]
fn the_cli_notify_add_with_deny_private_refuses_a_loopback_receiver_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    cli::run_json(&db, &["project", "create", "web", "--json"]);
    let args = notify_add(
        "webhook",
        "http://127.0.0.1:9/hook",
        &["--notify-deny-private"],
    );
    let out = cli::run(&db, &args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid url") && stderr.contains("--notify-deny-private"),
        "{stderr}"
    );
    assert_eq!(
        cli::run_json(&db, &["notify", "list", "web", "--json"]),
        json!([])
    );
    // Without the flag the same receiver is allowed (LAN receivers are the default's point).
    let added = cli::run_json(&db, &[&args[..7], &["--json"]].concat());
    assert_eq!(added["url"], "http://127.0.0.1:9/hook");
}

fn model_app(model: &FakeLlm) -> TestApp {
    use git_push_tracker::summarize::{self, SummarizerKind, SummarizerSettings};
    let summarizer = summarize::build(&SummarizerSettings {
        kind: SummarizerKind::OpenAi,
        openai_base_url: Some(format!("{}/v1", model.base_url())),
        openai_model: Some("fake-model".to_owned()),
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        ..SummarizerSettings::default()
    })
    .expect("build the OpenAI summarizer");
    TestApp::spawn_with(move |c| {
        c.summarizer = summarizer;
        c.worker.max_attempts = 1;
        c.notify.schedule = Schedule { scale: 0.001 };
    })
}

fn model_answer(content: &str) -> Scripted {
    Scripted::json(
        200,
        json!({"id": "c1", "object": "chat.completion", "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
        .to_string(),
    )
}

#[test]
fn with_a_model_one_message_goes_when_its_summary_is_stored_and_a_resummary_sends_nothing_more() {
    let model = FakeLlm::start_with(|_| model_answer("- Reworked the login flow"));
    let app = model_app(&model);
    let project = app.create_project("web");
    let fake = receiver();
    add_webhook(&app, "web", &fake);
    let id = push_with(&app, &project, |p| p["commits"] = commits(3, "Work"));
    let got = wait_requests(&fake, 1);
    let sent = &got[0].json()["data"]["push"];
    assert_eq!(sent["summaryStatus"], "summarized");
    assert_eq!(sent["summarySource"], "fake-model");
    let summary = sent["summary"].as_str().unwrap();
    assert!(summary.contains("Reworked the login flow"), "{summary}");
    let r = admin(
        &app,
        "POST",
        &format!("/api/admin/pushes/{id}/resummarize"),
        None,
    );
    assert!(r.status < 300, "{} {}", r.status, r.body);
    app.wait_for("the second summary", DEADLINE, || {
        (model.requests().len() == 2 && app.owner_push("web", &id)["summaryStatus"] == "summarized")
            .then_some(())
    });
    assert_eq!(app.sql_count("SELECT count(*) FROM notify_outbox"), 1);
    assert_eq!(fake.requests().len(), 1, "one push, one message");
}

#[test]
fn when_the_model_fails_the_message_carries_the_builtin_summary_and_says_so() {
    let model = FakeLlm::start_with(|_| Scripted::json(500, r#"{"error":"down"}"#));
    let app = model_app(&model);
    let project = app.create_project("web");
    let fake = receiver();
    add_at(
        &app,
        &fake,
        json!({"kind": "slack", "url": "/services/a/b/c"}),
    );
    push_with(&app, &project, |p| p["commits"] = commits(3, "Work"));
    let body = wait_requests(&fake, 1)[0].json();
    let all = body.to_string();
    assert!(all.contains("The model's summary failed"), "{all}");
    assert!(
        all.contains("Work #0"),
        "the builtin summary is shown: {all}"
    );
}
