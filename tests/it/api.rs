//! End to end over real HTTP: webhooks from every provider in, the public API out.

use crate::support::app::{TestApp, TestProject, fixture, github_payload};
use crate::support::pages::assert_list_refuses;
use crate::support::provider::{Provider, github_signature, signed_headers};
use serde_json::Value;

fn pushes(app: &TestApp, project: &TestProject, query: &str) -> Value {
    app.get_json(&format!("/api/v1/pushes{query}"), &project.key)
}

#[test]
fn a_signed_github_push_is_stored_and_read_back_through_the_api() {
    let app = TestApp::spawn();
    let project = app.create_project("my-app");
    let body = fixture("github/push.woodpecker-HookPush.json");
    let reply = app.github_push(&project, "d-1", &body);
    assert_eq!(reply.status, 201, "{}", reply.body);

    let page = pushes(&app, &project, "");
    assert_eq!(page["project"], "my-app");
    assert_eq!(
        page["pagination"],
        serde_json::json!({"limit": 20, "offset": 0, "total": 1, "nextCursor": null})
    );
    let push = &page["pushes"][0];
    assert_eq!(push["branch"], "main");
    assert_eq!(push["commitCount"], 1);
    assert_eq!(push["provider"], "github");
    assert!(
        push["summary"].as_str().unwrap().starts_with("- "),
        "{push}"
    );
    assert!(push["pushedAt"].as_str().unwrap().ends_with('Z'));
    for field in ["id", "author", "summaryStatus", "summarySource"] {
        assert!(push.get(field).is_some(), "missing {field}");
    }

    let id = push["id"].as_str().unwrap();
    let detail = app.get(&format!("/api/v1/pushes/{id}"), Some(&project.key));
    assert_eq!(detail.status, 200);
    assert_eq!(detail.body["commits"].as_array().unwrap().len(), 1);
    assert_eq!(detail.body["branch"], "main");
}

#[test]
fn gitlab_gitea_forgejo_and_bitbucket_deliveries_are_verified_and_stored() {
    let app = TestApp::spawn();
    let project = app.create_project("multi");

    let gitlab = fixture("gitlab/push.gitlab-docs.json");
    let reply = app.signed_delivery(&project, Provider::GitLab, "Push Hook", "gl-1", &gitlab);
    assert_eq!(reply.status, 201, "gitlab: {}", reply.body);

    let gitea = fixture("gitea/push.woodpecker-gitea-HookPushMulti.json");
    let reply = app.signed_delivery(&project, Provider::Gitea, "push", "gt-1", &gitea);
    assert_eq!(reply.status, 201, "gitea: {}", reply.body);

    let forgejo = fixture("gitea/push.go-scm-push.json");
    let reply = app.signed_delivery(&project, Provider::Forgejo, "push", "fj-1", &forgejo);
    assert_eq!(reply.status, 201, "forgejo: {}", reply.body);

    let bitbucket = fixture("bitbucket/repo-push.woodpecker-HookPush.json");
    let reply = app.signed_delivery(
        &project,
        Provider::Bitbucket,
        "repo:push",
        "bb-1",
        &bitbucket,
    );
    assert_eq!(reply.status, 201, "bitbucket: {}", reply.body);

    let page = pushes(&app, &project, "");
    assert_eq!(page["pagination"]["total"], 4);
    let mut providers: Vec<&str> = page["pushes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["provider"].as_str().unwrap())
        .collect();
    providers.sort();
    assert_eq!(providers, ["bitbucket", "forgejo", "gitea", "gitlab"]);
    let gitlab_push = page["pushes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "gitlab")
        .unwrap();
    assert_eq!(
        gitlab_push["commitCount"], 4,
        "GitLab's total_commits_count, not the listed 2"
    );
    assert_eq!(gitlab_push["commitsTruncated"], true);
}

#[test]
fn a_redelivered_webhook_is_a_no_op_that_still_answers_2xx() {
    let app = TestApp::spawn();
    let project = app.create_project("redeliver");
    let body = github_payload("main", &["feat: one"], 1_700_000_000);
    assert_eq!(app.github_push(&project, "same-id", &body).status, 201);
    let again = app.github_push(&project, "same-id", &body);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["duplicates"], 1);
    assert_eq!(app.stored_rows(), (1, 1));
}

#[test]
fn a_github_ping_answers_200_and_other_events_are_ignored_with_202() {
    let app = TestApp::spawn();
    let project = app.create_project("events");
    let ping = fixture("github/ping.payload.json");
    let deliver =
        |event: &str| app.signed_delivery(&project, Provider::GitHub, event, "p-1", &ping);
    assert_eq!(deliver("ping").status, 200);
    let issues = deliver("issues");
    assert_eq!(issues.status, 202);
    assert!(issues.body["message"].as_str().unwrap().contains("ignored"));
    assert_eq!(app.stored_rows(), (0, 0));
}

#[test]
fn form_encoded_github_deliveries_are_accepted() {
    let app = TestApp::spawn();
    let project = app.create_project("form");
    let json = github_payload("main", &["fix: form"], 1_700_000_000);
    let body =
        serde_urlencoded::to_string([("payload", String::from_utf8(json).unwrap())]).unwrap();
    let mut headers = signed_headers(
        Provider::GitHub,
        &project.secret,
        "push",
        "form-1",
        body.as_bytes(),
    );
    for (name, value) in &mut headers {
        if name == "Content-Type" {
            *value = "application/x-www-form-urlencoded".into();
        }
    }
    let reply = app.deliver(&project.webhook_url, &headers, body.as_bytes());
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[test]
fn tag_pushes_branch_creation_deletion_and_forced_pushes_are_stored_as_what_they_are() {
    let app = TestApp::spawn();
    let project = app.create_project("kinds");
    for (i, file) in [
        "github/push.woodpecker-HookTag.json",
        "github/push.go-scm-push_branch_delete.json",
        "github/push.woodpecker-HookPushForced.json",
        "github/push.with-new-branch.json",
    ]
    .iter()
    .enumerate()
    {
        let reply = app.github_push(&project, &format!("k-{i}"), &fixture(file));
        assert_eq!(reply.status, 201, "{file}: {}", reply.body);
    }
    let page = pushes(&app, &project, "");
    let all = page["pushes"].as_array().unwrap();
    let find = |pred: &dyn Fn(&Value) -> bool| all.iter().find(|p| pred(p)).cloned().unwrap();
    let tag = find(&|p| p["refType"] == "tag");
    assert_eq!(tag["branch"], "the-tag-v1");
    assert_eq!(tag["created"], true);
    let deleted = find(&|p| p["deleted"] == true);
    assert_eq!(deleted["commitCount"], 0);
    assert!(deleted["summary"].as_str().unwrap().starts_with("- "));
    let forced = find(&|p| p["forced"] == true);
    assert_eq!(forced["refType"], "branch");
    let created = find(&|p| p["created"] == true && p["refType"] == "branch");
    assert_eq!(created["branch"], "master");
}

#[test]
fn filters_and_pagination_edges_behave_as_documented() {
    let app = TestApp::spawn();
    let project = app.create_project("paging");
    // 103 pushes to main, one a day apart, and 2 to a feature branch.
    let day = 86_400;
    let start = 1_704_067_200; // 2024-01-01T00:00:00Z
    for i in 0..103 {
        let body = github_payload("main", &[&format!("feat: change {i}")], start + i * day);
        assert_eq!(
            app.github_push(&project, &format!("m-{i}"), &body).status,
            201
        );
    }
    for i in 0..2 {
        let body = github_payload("feature/x", &["fix: thing"], start + i * day);
        assert_eq!(
            app.github_push(&project, &format!("f-{i}"), &body).status,
            201
        );
    }

    let page = pushes(&app, &project, "");
    assert_eq!(page["pagination"]["total"], 105);
    assert_eq!(page["pushes"].as_array().unwrap().len(), 20);
    let first = &page["pushes"][0];
    assert_eq!(
        first["pushedAt"], "2024-04-12T00:00:00.000Z",
        "newest first"
    );

    for (limit, expect_len, expect_limit) in
        [(0, 0, 0), (1, 1, 1), (100, 100, 100), (101, 100, 100)]
    {
        let page = pushes(&app, &project, &format!("?limit={limit}"));
        assert_eq!(
            page["pushes"].as_array().unwrap().len(),
            expect_len,
            "limit={limit}"
        );
        assert_eq!(page["pagination"]["limit"], expect_limit);
        assert_eq!(page["pagination"]["total"], 105);
    }
    let past_end = pushes(&app, &project, "?offset=1000");
    assert_eq!(past_end["pushes"].as_array().unwrap().len(), 0);
    assert_eq!(past_end["pagination"]["total"], 105);
    let last = pushes(&app, &project, "?offset=104&limit=5");
    assert_eq!(last["pushes"].as_array().unwrap().len(), 1);

    let feature = pushes(&app, &project, "?branch=feature/x");
    assert_eq!(feature["pagination"]["total"], 2);
    assert!(
        feature["pushes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["branch"] == "feature/x")
    );
    assert_eq!(
        pushes(&app, &project, "?branch=nope")["pagination"]["total"],
        0
    );

    // 2024-04-01 is day 91: days 91..=102 of main remain.
    let since_date = pushes(&app, &project, "?since=2024-04-01");
    assert_eq!(since_date["pagination"]["total"], 12);
    let since_time = pushes(&app, &project, "?since=2024-04-01T00:00:01Z&branch=main");
    assert_eq!(since_time["pagination"]["total"], 11);

    for bad in [
        "since=yesterday",
        "since=2024-13-01",
        "limit=-1",
        "offset=-5",
        "limit=abc",
    ] {
        let (param, _) = bad.split_once('=').unwrap();
        assert_list_refuses(&app, &project.key, bad, param);
    }
}

#[test]
fn no_request_with_key_a_returns_anything_of_project_b() {
    let app = TestApp::spawn();
    let a = app.create_project("project-a");
    let b = app.create_project("project-b");
    app.github_push(
        &a,
        "a-1",
        &github_payload("main", &["feat: secret a"], 1_700_000_000),
    );
    app.github_push(
        &b,
        "b-1",
        &github_payload("main", &["feat: secret b"], 1_700_000_000),
    );
    let b_id = pushes(&app, &b, "")["pushes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let page_a = pushes(&app, &a, "?limit=100");
    assert_eq!(page_a["project"], "project-a");
    assert_eq!(page_a["pagination"]["total"], 1);
    assert!(!page_a.to_string().contains("secret b"));
    let cross = app.get(&format!("/api/v1/pushes/{b_id}"), Some(&a.key));
    assert_eq!(cross.status, 404);
    assert!(!cross.body.to_string().contains("secret b"));
}

#[test]
fn missing_unknown_and_revoked_keys_get_a_json_401() {
    let app = TestApp::spawn();
    let project = app.create_project("keys");
    for key in [None, Some("gpt_unknown"), Some("")] {
        let reply = app.get("/api/v1/pushes", key);
        assert_eq!(reply.status, 401, "{key:?}");
        assert!(reply.body["error"]["code"].is_string(), "{}", reply.body);
    }
    let manager = app.manager();
    let prefix = manager.list_keys("keys").unwrap()[0].prefix.clone();
    manager
        .revoke_key("keys", &prefix, chrono::Utc::now())
        .unwrap();
    let reply = app.get("/api/v1/pushes", Some(&project.key));
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["error"]["code"], "unauthorized");
}

#[test]
fn each_bad_delivery_gets_its_status_and_json_error_and_stores_nothing() {
    let (app, project) = app_taking_64_kib("bad-input");
    let good = github_payload("main", &["feat: x"], 1_700_000_000);
    let big = vec![b'x'; 70 * 1024];
    let broken = b"{not json".to_vec();
    let no_ref = br#"{"repository":{"full_name":"a/b"}}"#.to_vec();
    let [sig, big_sig, broken_sig, no_ref_sig] =
        [&good, &big, &broken, &no_ref].map(|body| github_signature(&project.secret, body));
    let (hook, unknown_hook) = (
        project.webhook_url.as_str(),
        &format!("{}/webhooks/doesnotexist", app.base_url),
    );
    let (event, signature) = (
        Provider::GitHub.event_header(),
        Provider::GitHub.signature_header(),
    );
    // The headers of a push event signed with `sig`, and those the cases take away or add.
    let signed = |sig| vec![(event, "push"), (signature, sig)];
    let unsigned = vec![(event, "push")];
    let no_event = vec![(signature, sig.as_str())];
    let text_plain = [signed(&sig), vec![("Content-Type", "text/plain")]].concat();

    /// name, URL, headers, body, expected status
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16);
    let cases: Vec<Case> = vec![
        ("unknown hook", unknown_hook, signed(&sig), &good, 404),
        ("missing signature", hook, unsigned, &good, 401),
        ("wrong signature", hook, signed("sha256=00"), &good, 401),
        ("too large", hook, signed(&big_sig), &big, 413),
        ("malformed json", hook, signed(&broken_sig), &broken, 400),
        ("missing ref", hook, signed(&no_ref_sig), &no_ref, 400),
        ("unsupported content type", hook, text_plain, &good, 415),
        ("unknown provider", hook, no_event, &good, 400),
    ];
    for (name, url, headers, body, status) in cases {
        let mut headers = headers;
        if !headers.iter().any(|(h, _)| *h == "Content-Type") {
            headers.push(("Content-Type", "application/json"));
        }
        let reply = app.post(url, &headers, body);
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        let code = reply.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: {}", reply.body));
        assert!(!code.is_empty());
        assert!(
            reply.body["error"]["message"].as_str().unwrap().len() > 10,
            "{name}"
        );
        assert_eq!(app.stored_rows(), (0, 0), "{name} stored something");
    }
    // And the server still serves.
    assert_eq!(app.github_push(&project, "ok", &good).status, 201);
}

#[test]
fn healthz_docs_and_the_spec_are_served() {
    let app = TestApp::spawn();
    assert_eq!(app.get("/healthz", None).body["status"], "ok");
    assert_eq!(app.get("/docs/", None).status, 200);
    let spec = app.get("/openapi.json", None);
    assert_eq!(spec.status, 200);
    assert!(spec.body["paths"]["/api/v1/pushes"].is_object());
    let missing = app.get("/no/such/route", None);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "not_found");
}

#[test]
fn the_committed_openapi_document_matches_what_the_binary_serves() {
    let served: Value = serde_json::from_str(git_push_tracker::http::openapi_document()).unwrap();
    let committed: Value = serde_json::from_slice(
        &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    assert!(
        served == committed,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn the_server_stops_cleanly_when_asked() {
    let app = TestApp::spawn();
    let project = app.create_project("stop");
    app.github_push(
        &project,
        "s-1",
        &github_payload("main", &["x"], 1_700_000_000),
    );
    app.stop().expect("clean stop");
}

/// Sends a GitHub push with `Transfer-Encoding: chunked` (no Content-Length), one write per
/// chunk of `chunk` bytes; answers the status and the JSON body.
fn chunked_github_push(
    app: &TestApp,
    project: &TestProject,
    delivery: &str,
    body: &[u8],
    chunk: usize,
) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = app.base_url.trim_start_matches("http://");
    let path = &project.webhook_url[project.webhook_url.find("/webhooks/").unwrap()..];
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in signed_headers(Provider::GitHub, &project.secret, "push", delivery, body) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    // The server may answer 413 and close before the rest is written; the answer still comes.
    let _ = stream.write_all(head.as_bytes());
    for piece in body.chunks(chunk) {
        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
        framed.extend_from_slice(piece);
        framed.extend_from_slice(b"\r\n");
        if stream.write_all(&framed).is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text
        .find('{')
        .and_then(|at| serde_json::from_str(text[at..].trim_end_matches(|c| c != '}')).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// An app that takes bodies of up to 64 KiB, with one project, `name`.
fn app_taking_64_kib(name: &str) -> (TestApp, TestProject) {
    let app = TestApp::spawn_with(|c| c.body_limit = 64 * 1024);
    let project = app.create_project(name);
    (app, project)
}

/// A GitHub push of `count` commits, the nth with the message `message(n)`: the messages and
/// the payload.
fn push_with_messages(count: usize, message: impl Fn(usize) -> String) -> (Vec<String>, Vec<u8>) {
    let messages: Vec<String> = (0..count).map(message).collect();
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    let body = github_payload("main", &refs, 1_700_000_000);
    (messages, body)
}

#[test]
fn a_delivery_sent_in_many_chunks_is_verified_and_stored_byte_for_byte() {
    let (app, project) = app_taking_64_kib("chunks");
    // Longer than one read of the server's buffer, so the body arrives in several pieces.
    let (messages, body) = push_with_messages(60, |i| {
        format!("feat: change number {i} — ünïcode split across chunk edges")
    });
    assert!(body.len() > 16 * 1024, "{} bytes", body.len());

    let (status, reply) = chunked_github_push(&app, &project, "chunked-1", &body, 1000);
    assert_eq!(status, 201, "{reply}");
    let id = reply["pushes"][0].as_str().unwrap();
    let push = app.get(&format!("/api/v1/pushes/{id}"), Some(&project.key));
    let stored: Vec<&str> = push.body["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["message"].as_str().unwrap())
        .collect();
    assert_eq!(stored, messages);
}

#[test]
fn a_chunked_delivery_over_the_body_limit_is_refused_and_nothing_is_stored() {
    let (app, project) = app_taking_64_kib("chunks");
    let (_, body) = push_with_messages(400, |i| format!("feat: change {i:0>200}"));
    assert!(body.len() > 64 * 1024);

    let (status, reply) = chunked_github_push(&app, &project, "chunked-2", &body, 4096);
    assert_eq!(status, 413, "{reply}");
    assert_eq!(reply["error"]["code"], "payload_too_large");
    assert_eq!(app.stored_rows(), (0, 0));
    // The server still serves.
    let small = github_payload("main", &["fix: small"], 1_700_000_000);
    assert_eq!(app.github_push(&project, "after", &small).status, 201);
}

/// Reads one response from `stream`: its head, lower-cased, and its body (by Content-Length).
fn read_response(stream: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use std::io::Read;
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some((head, body))
}

#[test]
fn an_answer_sent_before_the_request_body_arrived_tells_the_client_the_connection_closes() {
    use std::io::Write;
    let app = TestApp::spawn();
    let addr = app.base_url.trim_start_matches("http://");
    for (request, status) in [
        // Refused for its missing credentials before the body is read.
        ("POST /api/admin/projects", "401"),
        // A route that takes no body at all, called with one anyway (ureq 3 sends an empty chunked
        // body with every bodiless POST).
        ("POST /api/admin/logout", "204"),
        ("PUT /api/v1/pushes", "405"),
        ("POST /webhooks/no-such-hook", "404"),
    ] {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let head = format!(
            "{request} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             X-Requested-With: git-push-tracker\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        // The body follows only once the answer is in, as it may over a slow link.
        let (answer, _) = read_response(&mut stream).expect("an answer");
        assert!(
            answer.starts_with(&format!("http/1.1 {status}")),
            "{request}: {answer}"
        );
        let _ = stream.write_all(b"b\r\n{\"name\":1}\r\n0\r\n\r\n");
        if answer.contains("\r\nconnection: close\r\n") {
            continue;
        }
        // Kept open: then it must serve the next request.
        let _ =
            stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes());
        let next = read_response(&mut stream);
        assert!(
            next.as_ref()
                .is_some_and(|(h, _)| h.starts_with("http/1.1 200")),
            "{request}: the connection was kept open after {answer:?} but closed before the next request"
        );
    }
}
