//! The admin API and the dashboard over real HTTP: who may call it, CSRF, login limits, headers.

use crate::support::app::{ADMIN_TOKEN, Reply, TestApp, TestProject, github_payload, reply};
use crate::support::child::assert_success;
use crate::support::cli;
use git_push_tracker::client_ip::{TrustedProxies, parse_net};
use serde_json::{Value, json};

/// How a request proves who sends it.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// A session cookie, sent the way the dashboard sends it.
    Session(&'a str),
}

fn call(app: &TestApp, method: &str, path: &str, auth: Auth, body: Option<Value>) -> Reply {
    call_with(app, method, path, auth, body, &[])
}

fn call_with(
    app: &TestApp,
    method: &str,
    path: &str,
    auth: Auth,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", app.base_url));
    match auth {
        Auth::None => {}
        Auth::Bearer(token) => req = req.header("Authorization", format!("Bearer {token}")),
        Auth::Session(id) => {
            req = req
                .header("Cookie", format!("gpt_session={id}"))
                .header("X-Requested-With", "git-push-tracker")
                .header("Origin", app.base_url.as_str());
        }
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = match body {
        Some(body) => app.agent.run(
            req.header("Content-Type", "application/json")
                .body(serde_json::to_vec(&body).unwrap())
                .unwrap(),
        ),
        None => app.agent.run(req.body(()).unwrap()),
    };
    reply(resp.expect("request"))
}

/// One caller of the app: every request it sends carries the same credential.
#[derive(Clone, Copy)]
struct Caller<'a> {
    app: &'a TestApp,
    auth: Auth<'a>,
}

impl<'a> Caller<'a> {
    fn new(app: &'a TestApp, auth: Auth<'a>) -> Caller<'a> {
        Caller { app, auth }
    }

    /// `GET path`.
    fn get(self, path: &str) -> Reply {
        call(self.app, "GET", path, self.auth, None)
    }

    /// `POST path`, with a JSON body where one is given.
    fn post(self, path: &str, body: Option<Value>) -> Reply {
        call(self.app, "POST", path, self.auth, body)
    }

    /// `DELETE path`.
    fn delete(self, path: &str) -> Reply {
        call(self.app, "DELETE", path, self.auth, None)
    }
}

/// The dashboard's login form sent with `token`, by a caller with no credential yet.
fn login(app: &TestApp, token: &str) -> Reply {
    Caller::new(app, Auth::None).post("/api/admin/login", Some(json!({"token": token})))
}

/// Asserts that `r` is an error answer with this status and error code.
fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{}", r.body);
}

/// Creates the project `name` and stores one push of one commit to `main`; answers the project
/// and the push's id.
fn project_with_one_push(
    app: &TestApp,
    name: &str,
    message: &str,
    pushed_at: i64,
) -> (TestProject, String) {
    let project = app.create_project(name);
    let pushed = app.github_push(
        &project,
        "d-1",
        &github_payload("main", &[message], pushed_at),
    );
    assert_eq!(pushed.status, 201, "{}", pushed.body);
    let id = pushed.body["pushes"][0].as_str().unwrap().to_owned();
    (project, id)
}

/// Logs in with the admin token and returns the session id from the cookie.
fn log_in(app: &TestApp) -> String {
    let r = login(app, ADMIN_TOKEN);
    assert_eq!(r.status, 204, "{}", r.body);
    let cookie = r.header("set-cookie").expect("a session cookie");
    let value = cookie
        .strip_prefix("gpt_session=")
        .and_then(|rest| rest.split(';').next())
        .expect("gpt_session cookie");
    value.to_owned()
}

/// Every admin route, with a body where it takes one.
fn admin_routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/api/admin/info", None),
        ("GET", "/api/admin/projects", None),
        ("POST", "/api/admin/projects", Some(json!({"name": "new"}))),
        ("DELETE", "/api/admin/projects/alpha", None),
        ("POST", "/api/admin/projects/alpha/rotate-secret", None),
        ("GET", "/api/admin/projects/alpha/keys", None),
        (
            "POST",
            "/api/admin/projects/alpha/keys",
            Some(json!({"label": "x"})),
        ),
        ("DELETE", "/api/admin/projects/alpha/keys/1", None),
        ("GET", "/api/admin/projects/alpha/pushes", None),
        ("POST", "/api/admin/pushes/some-id/resummarize", None),
    ]
}

/// An app that takes `X-Forwarded-For` from its own loopback address, as behind a proxy.
fn spawn_behind_a_trusted_proxy() -> TestApp {
    TestApp::spawn_with(|c| {
        c.trusted_proxies = TrustedProxies::new(vec![parse_net("127.0.0.1").unwrap()]);
    })
}

#[test]
fn every_admin_route_refuses_no_credentials_a_project_key_and_a_wrong_token() {
    // Each refused call comes from its own client, so the limit on wrong admin tokens (tested
    // below) does not turn the later ones into 429s.
    let app = spawn_behind_a_trusted_proxy();
    let project = app.create_project("alpha");
    let mut client = 0;
    for (method, path, body) in admin_routes() {
        for auth in [
            Auth::None,
            Auth::Bearer(&project.key),
            Auth::Bearer("gpa_not-the-token"),
            Auth::Session("no-such-session"),
        ] {
            client += 1;
            let forwarded = format!("198.51.100.{client}");
            let headers = [("X-Forwarded-For", forwarded.as_str())];
            let r = call_with(&app, method, path, auth, body.clone(), &headers);
            assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
            assert_eq!(r.body["error"]["code"], "unauthorized", "{method} {path}");
        }
    }
    // Nothing was changed by the refused calls.
    assert_eq!(app.sql_count("SELECT count(*) FROM projects"), 1);
    assert_eq!(
        app.sql_count("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"),
        1
    );
}

/// Walks every admin route as the owner, with whichever credential is given.
fn owner_walks_every_route(app: &TestApp, auth: Auth) {
    let (project, _) = project_with_one_push(app, "alpha", "Fix the login form", 1_700_000_000);
    let owner = Caller::new(app, auth);

    let info = owner.get("/api/admin/info");
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.body["publicUrl"], app.base_url.as_str());

    let list = owner.get("/api/admin/projects");
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body[0]["name"], "alpha");
    assert_eq!(list.body[0]["webhookUrl"], project.webhook_url.as_str());
    assert_eq!(list.body[0]["pushes"], 1);
    assert_eq!(list.body[0]["pending"], 0);
    assert_eq!(list.body[0]["failed"], 0);

    let created = owner.post("/api/admin/projects", Some(json!({"name": "beta"})));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["name"], "beta");
    assert!(
        created.body["webhookUrl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/webhooks/", app.base_url))
    );
    assert_eq!(created.body["webhookSecret"].as_str().unwrap().len(), 40);

    let again = owner.post("/api/admin/projects", Some(json!({"name": "beta"})));
    assert_error(&again, 409, "project_exists");
    let invalid = owner.post("/api/admin/projects", Some(json!({"name": "Not Valid"})));
    assert_error(&invalid, 400, "invalid_name");

    let rotated = owner.post("/api/admin/projects/beta/rotate-secret", None);
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_ne!(rotated.body["webhookSecret"], created.body["webhookSecret"]);

    let key = owner.post(
        "/api/admin/projects/beta/keys",
        Some(json!({"label": "slack-bot"})),
    );
    assert_eq!(key.status, 201, "{}", key.body);
    let key_value = key.body["key"].as_str().unwrap().to_owned();
    assert!(key_value.starts_with(key.body["prefix"].as_str().unwrap()));
    assert_eq!(key.body["label"], "slack-bot");
    assert_eq!(app.get("/api/v1/pushes", Some(&key_value)).status, 200);

    let keys = owner.get("/api/admin/projects/beta/keys");
    assert_eq!(keys.status, 200, "{}", keys.body);
    assert_eq!(keys.body[0]["label"], "slack-bot");
    assert_eq!(keys.body[0]["revoked"], false);
    assert!(keys.body[0].get("key").is_none());

    let prefix = key.body["prefix"].as_str().unwrap();
    let revoked = owner.delete(&format!("/api/admin/projects/beta/keys/{prefix}"));
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.body["revoked"], true);
    assert_eq!(app.get("/api/v1/pushes", Some(&key_value)).status, 401);

    let pushes = owner.get("/api/admin/projects/alpha/pushes");
    assert_eq!(pushes.status, 200, "{}", pushes.body);
    let push = &pushes.body["pushes"][0];
    assert_eq!(push["branch"], "main");
    assert_eq!(push["summaryStatus"], "summarized");
    assert!(push.get("lastError").is_some() || push["attempts"].is_number());
    let id = push["id"].as_str().unwrap();

    let queued = owner.post(&format!("/api/admin/pushes/{id}/resummarize"), None);
    assert_eq!(queued.status, 200, "{}", queued.body);
    let unknown = owner.post(
        "/api/admin/pushes/00000000-0000-0000-0000-000000000000/resummarize",
        None,
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let malformed = owner.post("/api/admin/pushes/nope/resummarize", None);
    assert_eq!(malformed.status, 400, "not a push id: {}", malformed.body);

    let deleted = owner.delete("/api/admin/projects/beta");
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_error(
        &owner.delete("/api/admin/projects/beta"),
        404,
        "project_not_found",
    );
    let missing = owner.get("/api/admin/projects/nope/keys");
    assert_eq!(missing.status, 404, "{}", missing.body);
}

#[test]
fn every_admin_route_works_with_the_admin_token() {
    let app = TestApp::spawn();
    owner_walks_every_route(&app, Auth::Bearer(ADMIN_TOKEN));
}

#[test]
fn every_admin_route_works_with_the_session_cookie() {
    let app = TestApp::spawn();
    let session = log_in(&app);
    owner_walks_every_route(&app, Auth::Session(&session));
}

#[test]
fn login_sets_a_strict_http_only_cookie_and_logout_ends_the_session() {
    let app = TestApp::spawn();
    let r = login(&app, ADMIN_TOKEN);
    assert_eq!(r.status, 204, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    // The test server's public URL is plain http.
    assert!(!cookie.contains("Secure"), "{cookie}");

    let session = log_in(&app);
    let dashboard = Caller::new(&app, Auth::Session(&session));
    assert_eq!(dashboard.get("/api/admin/projects").status, 200);
    let out = dashboard.post("/api/admin/logout", None);
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(dashboard.get("/api/admin/projects").status, 401);
}

#[test]
fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    let app =
        TestApp::spawn_with(|c| c.public_url = Some("https://push.example.com".parse().unwrap()));
    let r = login(&app, ADMIN_TOKEN);
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").unwrap().contains("Secure"));
}

#[test]
fn a_cookie_write_from_a_foreign_origin_or_without_the_dashboard_header_is_refused() {
    let app = TestApp::spawn();
    let session = log_in(&app);
    let cookie = format!("gpt_session={session}");
    let body = Some(json!({"name": "csrf"}));
    let projects = "/api/admin/projects";

    let foreign = call_with(
        &app,
        "POST",
        projects,
        Auth::None,
        body.clone(),
        &[
            ("Cookie", &cookie),
            ("X-Requested-With", "git-push-tracker"),
            ("Origin", "https://evil.example"),
        ],
    );
    assert_error(&foreign, 403, "forbidden");

    let no_header = [("Cookie", cookie.as_str())];
    let no_header = call_with(&app, "POST", projects, Auth::None, body.clone(), &no_header);
    assert_eq!(no_header.status, 403, "{}", no_header.body);

    let cross_site = call_with(
        &app,
        "DELETE",
        "/api/admin/projects/csrf",
        Auth::None,
        None,
        &[
            ("Cookie", &cookie),
            ("X-Requested-With", "git-push-tracker"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    );
    assert_eq!(cross_site.status, 403, "{}", cross_site.body);
    assert_eq!(app.sql_count("SELECT count(*) FROM projects"), 0);

    // Reads with the cookie need no header; scripts with the token need no Origin check.
    let read = [("Cookie", cookie.as_str())];
    let read = call_with(&app, "GET", projects, Auth::None, None, &read);
    assert_eq!(read.status, 200);
    let elsewhere = [("Origin", "https://elsewhere.example")];
    let script = call_with(
        &app,
        "POST",
        projects,
        Auth::Bearer(ADMIN_TOKEN),
        body,
        &elsewhere,
    );
    assert_eq!(script.status, 201, "{}", script.body);
}

/// Asserts that `r` is the answer of the login limit, with a `Retry-After` within its window.
fn assert_too_many_attempts(r: &Reply) {
    assert_error(r, 429, "too_many_attempts");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[test]
fn failed_logins_are_rate_limited_per_client() {
    let app = TestApp::spawn();
    for _ in 0..5 {
        let r = login(&app, "gpa_guess");
        assert_eq!(r.status, 401, "{}", r.body);
    }
    assert_too_many_attempts(&login(&app, "gpa_guess"));
    // Even the right token waits: the limit is not an oracle.
    assert_eq!(login(&app, ADMIN_TOKEN).status, 429);
}

/// A wrong login sent with `X-Forwarded-For: client`; answers its status.
fn wrong_login_from(app: &TestApp, client: &str) -> u16 {
    let wrong = Some(json!({"token": "gpa_guess"}));
    let headers = [("X-Forwarded-For", client)];
    let r = call_with(app, "POST", "/api/admin/login", Auth::None, wrong, &headers);
    r.status
}

/// Five wrong logins with `X-Forwarded-For: client`, then answers the sixth one's status.
fn sixth_login_status(app: &TestApp, guesser: &str, then_from: &str) -> u16 {
    for _ in 0..5 {
        assert_eq!(wrong_login_from(app, guesser), 401);
    }
    wrong_login_from(app, then_from)
}

#[test]
fn behind_a_trusted_proxy_failed_logins_are_counted_per_forwarded_client() {
    let app = spawn_behind_a_trusted_proxy();
    // Another visitor behind the same proxy is not locked out by the guesser...
    assert_eq!(sixth_login_status(&app, "203.0.113.9", "198.51.100.7"), 401);
    // ...the guesser is, even when it prepends a forged address of its own.
    assert_eq!(wrong_login_from(&app, "198.51.100.7, 203.0.113.9"), 429);
}

#[test]
fn without_a_trusted_proxy_a_forwarded_address_cannot_dodge_the_login_limit() {
    let app = TestApp::spawn();
    assert_eq!(sixth_login_status(&app, "203.0.113.9", "198.51.100.7"), 429);
}

#[test]
fn the_admin_token_is_not_a_project_key_on_the_public_api() {
    let app = TestApp::spawn();
    app.create_project("alpha");
    let r = app.get("/api/v1/pushes", Some(ADMIN_TOKEN));
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn a_server_without_a_configured_token_generates_one_and_stores_only_its_hash() {
    let app = TestApp::spawn_with(|c| c.admin_token = None);
    app.wait_for("the server", std::time::Duration::from_secs(10), || {
        (app.get("/healthz", None).status == 200).then_some(())
    });
    assert_eq!(app.sql_count("SELECT count(*) FROM admin_credential"), 1);
    assert_eq!(
        app.sql_count("SELECT length(token_hash) FROM admin_credential"),
        32
    );
    // The harness token was not configured, so it does not log in.
    let r = Caller::new(&app, Auth::Bearer(ADMIN_TOKEN)).get("/api/admin/projects");
    assert_eq!(r.status, 401);
}

#[test]
fn the_dashboard_is_served_with_a_strict_content_security_policy() {
    let app = TestApp::spawn();
    for path in ["/", "/assets/app.js", "/assets/app.css"] {
        let r = app.get(path, None);
        assert_eq!(r.status, 200, "{path}");
        let csp = r.header("content-security-policy").unwrap();
        for directive in [
            "script-src 'self'",
            "frame-ancestors 'none'",
            "default-src 'self'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let page = app.get("/", None);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.body.as_str().unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    assert!(html.contains("API Documentation"));

    let docs = app.get("/docs/", None);
    assert_eq!(docs.status, 200);
    assert_eq!(
        docs.header("content-security-policy"),
        Some("frame-ancestors 'none'")
    );
}

#[test]
fn asset_paths_that_climb_out_or_do_not_exist_are_json_404s() {
    let app = TestApp::spawn();
    for path in [
        "/assets/%2e%2e/Cargo.toml",
        "/assets/..%2fCargo.toml",
        "/assets/nope.js",
        "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    ] {
        let r = app.get(path, None);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body["error"]["code"], "not_found", "{path}");
    }
}

#[test]
fn admin_reset_token_prints_a_new_token_that_replaces_the_old_one_and_ends_sessions() {
    let app = TestApp::spawn();
    let session = log_in(&app);
    let out = cli::run(&app.db_path, &["admin", "reset-token"]);
    assert_success(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("New admin token: "))
        .expect("the new token")
        .to_owned();
    assert!(token.starts_with("gpa_"), "{stdout}");

    for (auth, status) in [
        (Auth::Bearer(&token), 200),
        (Auth::Bearer(ADMIN_TOKEN), 401),
        (Auth::Session(&session), 401),
    ] {
        assert_eq!(
            Caller::new(&app, auth).get("/api/admin/projects").status,
            status
        );
    }
}

#[test]
fn wrong_admin_bearer_tokens_on_the_admin_api_and_metrics_are_limited_like_logins() {
    let app = TestApp::spawn();
    let guesser = Caller::new(&app, Auth::Bearer("gpa_guess"));
    for i in 0..5 {
        let path = if i % 2 == 0 {
            "/api/admin/projects"
        } else {
            "/metrics"
        };
        let r = guesser.get(path);
        assert_eq!(r.status, 401, "guess {i} on {path}: {}", r.body);
    }
    for path in ["/api/admin/projects", "/metrics", "/api/admin/info"] {
        assert_too_many_attempts(&guesser.get(path));
    }
    // Until the window passes, the guesser's address is not even asked about the right token;
    // the limit counts logins and bearer tokens together.
    let owner = Caller::new(&app, Auth::Bearer(ADMIN_TOKEN));
    assert_eq!(owner.get("/api/admin/projects").status, 429);
    assert_eq!(login(&app, ADMIN_TOKEN).status, 429);
}

#[test]
fn the_right_admin_bearer_token_is_never_counted_against_its_sender() {
    let app = TestApp::spawn();
    let owner = Caller::new(&app, Auth::Bearer(ADMIN_TOKEN));
    for _ in 0..20 {
        assert_eq!(owner.get("/api/admin/projects").status, 200);
    }
    assert_eq!(owner.get("/metrics").status, 200);
}

#[test]
fn a_burst_of_sixty_concurrent_wrong_logins_gets_no_more_than_five_evaluated() {
    let app = TestApp::spawn();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..60)
            .map(|i| {
                let app = &app;
                s.spawn(move || login(app, &format!("gpa_wrong{i}")).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((evaluated, refused), (5, 55), "{statuses:?}");
}

#[test]
fn ipv6_clients_behind_a_trusted_proxy_are_limited_per_64() {
    let app = spawn_behind_a_trusted_proxy();
    let guess = |client: &str| {
        call_with(
            &app,
            "GET",
            "/api/admin/projects",
            Auth::Bearer("gpa_guess"),
            None,
            &[("X-Forwarded-For", client)],
        )
        .status
    };
    for i in 1..=5 {
        assert_eq!(guess(&format!("2001:db8:1:2::{i:x}")), 401);
    }
    assert_eq!(guess("2001:db8:1:2:ffff::1"), 429, "the same /64");
    assert_eq!(
        guess("2001:db8:1:3::1"),
        401,
        "the next /64 is another client"
    );
}

#[test]
fn logout_with_the_cookie_from_a_sibling_site_is_refused_and_the_session_lives_on() {
    let app = TestApp::spawn();
    let session = log_in(&app);
    let cookie = format!("gpt_session={session}");
    for headers in [
        vec![("Cookie", cookie.as_str())],
        vec![
            ("Cookie", cookie.as_str()),
            ("X-Requested-With", "git-push-tracker"),
            ("Origin", "http://evil.example"),
        ],
        vec![
            ("Cookie", cookie.as_str()),
            ("X-Requested-With", "git-push-tracker"),
            ("Sec-Fetch-Site", "same-site"),
        ],
    ] {
        let r = call_with(
            &app,
            "POST",
            "/api/admin/logout",
            Auth::None,
            None,
            &headers,
        );
        assert_eq!(r.status, 403, "{headers:?}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "forbidden");
        assert!(
            r.header("set-cookie").is_none(),
            "the cookie is not cleared"
        );
    }
    let dashboard = Caller::new(&app, Auth::Session(&session));
    let still = dashboard.get("/api/admin/info");
    assert_eq!(still.status, 200, "the session was not ended");
    // The dashboard's own logout works.
    let out = dashboard.post("/api/admin/logout", None);
    assert_eq!(out.status, 204, "{}", out.body);
}

#[test]
fn answers_that_carry_a_secret_a_key_or_a_session_are_never_cached() {
    let app = TestApp::spawn();
    let owner = Caller::new(&app, Auth::Bearer(ADMIN_TOKEN));
    let answers = [
        owner.post("/api/admin/projects", Some(json!({"name": "cached"}))),
        owner.post("/api/admin/projects/cached/rotate-secret", None),
        owner.post(
            "/api/admin/projects/cached/keys",
            Some(json!({"label": "k"})),
        ),
        login(&app, ADMIN_TOKEN),
        owner.get("/api/admin/projects"),
    ];
    for (i, r) in answers.iter().enumerate() {
        assert!(r.status < 300, "answer {i}: {} {}", r.status, r.body);
        assert_eq!(r.header("cache-control"), Some("no-store"), "answer {i}");
    }
}

#[test]
fn a_project_key_reads_a_push_without_its_last_error_and_the_owner_with_it() {
    let app = TestApp::spawn();
    let (project, id) = project_with_one_push(&app, "errs", "fix: x", 1_776_160_800);
    let public = app.get(&format!("/api/v1/pushes/{id}"), Some(&project.key));
    assert_eq!(public.status, 200, "{}", public.body);
    assert!(public.body.get("lastError").is_none(), "{}", public.body);
    assert!(public.body.get("attempts").is_some());
    let owner = app.owner_push("errs", &id);
    assert!(owner.get("lastError").is_some(), "{owner}");
}

#[test]
fn metrics_take_the_bearer_scheme_in_any_case_like_the_admin_api() {
    let app = TestApp::spawn();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let header = format!("{scheme} {ADMIN_TOKEN}");
        for path in ["/metrics", "/api/admin/info"] {
            let headers = [("Authorization", header.as_str())];
            let r = call_with(&app, "GET", path, Auth::None, None, &headers);
            assert_eq!(r.status, 200, "{scheme}: {}", r.body);
        }
    }
}

/// The whole answer to `GET path` sent with this `Host` header, over a raw connection (HTTP
/// clients set Host from the URL).
fn raw_get(app: &TestApp, host: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = app.base_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn status_with_host(app: &TestApp, host: &str, path: &str) -> u16 {
    let answer = raw_get(app, host, path);
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{answer}"))
}

#[test]
fn a_request_for_another_host_name_is_refused_so_dns_rebinding_reaches_nothing() {
    let app =
        TestApp::spawn_with(|c| c.public_url = Some("https://push.example.com".parse().unwrap()));
    let port = app.base_url.rsplit(':').next().unwrap().to_owned();
    for host in ["evil.example", &format!("rebind.evil.example:{port}")] {
        for path in ["/healthz", "/docs", "/api/admin/info", "/"] {
            assert_eq!(status_with_host(&app, host, path), 421, "{host} {path}");
        }
    }
    for host in [
        "push.example.com".to_owned(),
        "PUSH.EXAMPLE.COM:443".to_owned(),
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(status_with_host(&app, &host, "/healthz"), 200, "{host}");
    }
    let answer = raw_get(&app, "evil.example", "/healthz");
    assert!(answer.contains("\"code\":\"unknown_host\""), "{answer}");
}

#[test]
fn without_a_public_url_a_loopback_server_answers_only_to_loopback_names() {
    let app = TestApp::spawn_with(|c| c.public_url = None);
    let port = app.base_url.rsplit(':').next().unwrap().to_owned();
    assert_eq!(
        status_with_host(&app, &format!("127.0.0.1:{port}"), "/healthz"),
        200
    );
    assert_eq!(
        status_with_host(&app, &format!("localhost:{port}"), "/healthz"),
        200
    );
    assert_eq!(
        status_with_host(&app, &format!("attacker.example:{port}"), "/healthz"),
        421
    );
}
