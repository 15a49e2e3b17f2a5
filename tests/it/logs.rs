//! No secret reaches the log: a whole session against the real binary, logging at trace level,
//! then its log is searched for every secret, key, signature and session id it used.

use crate::support::app::{agent, github_payload, reply};
use crate::support::cli;
use crate::support::provider::{Provider, signed_headers};
use crate::support::server::Server;

const ADMIN_TOKEN: &str = "gpa_LogTestAdminToken0123456789abcdefghijk";

#[test]
fn a_trace_level_log_of_a_whole_session_holds_no_secret_key_signature_or_session_id() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("logs.db"), dir.path().join("serve.log"));
    let server = Server::start_tracing(&db, &log, ADMIN_TOKEN);
    let project = cli::run_json(&db, &["project", "create", "app", "--json"]);
    let webhook_secret = project["webhookSecret"].as_str().unwrap().to_owned();
    let webhook_url = project["webhookUrl"].as_str().unwrap().to_owned();
    let hook_id = webhook_url.rsplit('/').next().unwrap().to_owned();
    let key = cli::run_json(&db, &["key", "create", "app", "--json"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = agent();
    let hook = format!("{}/webhooks/{hook_id}", server.base);
    let mut used = vec![
        ADMIN_TOKEN.to_owned(),
        webhook_secret.clone(),
        key.clone(),
        hook_id,
    ];

    // Signed deliveries from two hosts, and one signed with a wrong secret.
    let body = github_payload("main", &["feat: logged"], 1_767_261_600);
    for (provider, event, secret, delivery) in [
        (Provider::GitHub, "push", webhook_secret.as_str(), "log-1"),
        (
            Provider::GitLab,
            "Push Hook",
            webhook_secret.as_str(),
            "log-2",
        ),
        (Provider::GitHub, "push", "not-the-secret-at-all", "log-3"),
    ] {
        let gitlab_body;
        let body = if provider == Provider::GitLab {
            gitlab_body = crate::support::app::fixture("gitlab/push.gitlab-docs.json");
            &gitlab_body
        } else {
            &body
        };
        let headers = signed_headers(provider, secret, event, delivery, body);
        let mut request = http.post(&hook);
        for (name, value) in &headers {
            request = request.header(name, value);
            if name.to_ascii_lowercase().contains("signature") || name.contains("Token") {
                used.push(value.clone());
            }
        }
        let status = reply(request.send(body).unwrap()).status;
        assert!(matches!(status, 201 | 401), "{provider:?}: {status}");
    }

    // The key on the API, in the header and (wrongly) in the query string.
    let pushes = format!("{}/api/v1/pushes", server.base);
    let listed = http
        .get(&pushes)
        .header("Authorization", &format!("Bearer {key}"))
        .call()
        .unwrap();
    assert_eq!(listed.status(), 200);
    let _ = http.get(&format!("{pushes}?token={key}")).call().unwrap();

    // A dashboard login, its session at work, a wrong admin token on /metrics, a logout.
    let login = http
        .post(&format!("{}/api/admin/login", server.base))
        .header("Content-Type", "application/json")
        .send(format!("{{\"token\":\"{ADMIN_TOKEN}\"}}"))
        .unwrap();
    assert_eq!(login.status(), 204);
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    used.push(cookie.split_once('=').unwrap().1.to_owned());
    let projects = http
        .get(&format!("{}/api/admin/projects", server.base))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    assert_eq!(projects.status(), 200);
    let wrong = "gpa_WrongAdminToken0123456789abcdefghijklmno";
    used.push(wrong.to_owned());
    let metrics = http
        .get(&format!("{}/metrics", server.base))
        .header("Authorization", &format!("Bearer {wrong}"))
        .call()
        .unwrap();
    assert_eq!(metrics.status(), 401);
    let _ = http
        .post(&format!("{}/api/admin/logout", server.base))
        .header("Cookie", &cookie)
        .header("X-Requested-With", "git-push-tracker")
        .send_empty()
        .unwrap();
    server.stop();

    let log = std::fs::read_to_string(&log).unwrap();
    // The log did record the session at trace level: requests with their route templates.
    for expected in [
        "webhook accepted",
        "/webhooks/:hook_id",
        "/api/v1/pushes",
        "status=401",
    ] {
        assert!(
            log.contains(expected),
            "the log has no {expected:?}:\n{log}"
        );
    }
    for secret in &used {
        assert!(
            !log.contains(secret.as_str()),
            "the log holds a secret ({}...):\n{log}",
            &secret[..secret.len().min(8)]
        );
    }
}
