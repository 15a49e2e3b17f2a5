//! Hostile input: a generated corpus of bad requests (forged signatures, broken and huge bodies,
//! absurd query parameters, path traversal, oversized headers) is refused with JSON 4xx errors and
//! stores nothing; SQL and HTML inside valid signed payloads are stored and served verbatim.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::app::{TestApp, TestProject, github_payload};
use crate::support::provider::{Provider, github_signature, hmac_hex, signed_headers};
use serde_json::{Value, json};

/// One response read off a raw connection.
struct RawReply {
    status: u16,
    body: Vec<u8>,
}

impl RawReply {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A request built byte by byte, so it can carry anything a client could put on the wire.
struct RawRequest {
    method: &'static str,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl RawRequest {
    fn new(method: &'static str, target: impl Into<String>) -> Self {
        RawRequest {
            method,
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Replaces the Content-Type header (rather than adding a second one).
    fn content_type(mut self, value: &str) -> Self {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        self.header("Content-Type", value)
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request on a fresh connection and reads the whole answer. The body is written
    /// from another thread: the server may answer (413) and close before reading all of it.
    fn send(&self, addr: &str) -> RawReply {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.target,
            self.body.len()
        )
        .into_bytes();
        for (name, value) in &self.headers {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");

        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let body = self.body.clone();
        let sender = std::thread::spawn(move || {
            // Errors are expected when the server refuses early and closes the connection.
            let _ = writer.write_all(&head);
            let _ = writer.write_all(&body);
            let _ = writer.flush();
        });
        let mut raw = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A reset after the answer arrived (unread body discarded by the server).
                Err(_) if !raw.is_empty() => break,
                Err(e) => panic!("{} {}: no answer: {e}", self.method, self.target),
            }
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let _ = sender.join();
        parse_reply(&raw).unwrap_or_else(|| {
            panic!(
                "{} {}: unparsable answer {:?}",
                self.method,
                self.target,
                String::from_utf8_lossy(&raw[..raw.len().min(300)])
            )
        })
    }
}

fn parse_reply(raw: &[u8]) -> Option<RawReply> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let rest = &raw[split + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(RawReply { status, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// What a corpus entry must be answered with.
#[derive(Clone, Copy)]
enum Expect {
    /// This exact 4xx status with the JSON error body.
    Status(u16),
    /// Any 4xx with the JSON error body.
    Any4xx,
    /// Any 4xx with the JSON error body, or hyper's bare 431: hyper refuses headers over its
    /// buffer limit before the request reaches the app, so that answer cannot carry our JSON.
    Any4xxOrBare431,
}

struct Case {
    name: String,
    request: RawRequest,
    expect: Expect,
}

fn case(name: impl Into<String>, request: RawRequest, expect: Expect) -> Case {
    Case {
        name: name.into(),
        request,
        expect,
    }
}

fn hook_path(project: &TestProject) -> String {
    let url = &project.webhook_url;
    url[url.find("/webhooks/").unwrap()..].to_owned()
}

/// A push as `provider` sends it, but without its signature header: add one with
/// [`RawRequest::signature`].
fn unsigned(provider: Provider, event: &str, path: &str, body: &[u8]) -> RawRequest {
    let mut req = RawRequest::new("POST", path).body(body.to_vec());
    for (name, value) in signed_headers(provider, "", event, "hostile", body) {
        if name != provider.signature_header() {
            req = req.header(&name, value);
        }
    }
    req
}

/// A GitHub push with the given signature header (None: no header).
fn github(path: &str, body: &[u8], signature: Option<&str>) -> RawRequest {
    unsigned(Provider::GitHub, "push", path, body).signature(Provider::GitHub, signature)
}

fn signed_github(path: &str, secret: &str, body: &[u8]) -> RawRequest {
    github(path, body, Some(&github_signature(secret, body)))
}

/// A Gitea or Forgejo push.
fn gitea(path: &str, provider: Provider, body: &[u8], sig: Option<&str>) -> RawRequest {
    unsigned(provider, "push", path, body).signature(provider, sig)
}

fn gitlab(path: &str, body: &[u8], token: Option<&str>) -> RawRequest {
    unsigned(Provider::GitLab, "Push Hook", path, body).signature(Provider::GitLab, token)
}

fn bitbucket(path: &str, body: &[u8], sig: Option<&str>) -> RawRequest {
    unsigned(Provider::Bitbucket, "repo:push", path, body).signature(Provider::Bitbucket, sig)
}

fn api(path: &str, key: Option<&str>) -> RawRequest {
    let req = RawRequest::new("GET", path);
    match key {
        Some(key) => req.header("Authorization", format!("Bearer {key}")),
        None => req,
    }
}

/// Every bad request, generated.
fn corpus(project: &TestProject) -> Vec<Case> {
    use Expect::*;
    let path = hook_path(project);
    let secret = project.secret.as_str();
    let body = github_payload("main", &["fix: a thing", "feat: another"], 1_760_000_000);
    let good_sig = github_signature(secret, &body);
    let mut cases = Vec::new();

    // Wrong and missing signatures, for each provider.
    let wrong_secret_sig = github_signature("not the secret", &body);
    let other_body_sig = github_signature(secret, b"{}");
    let sha1_style = format!("sha1={}", &good_sig[7..47]);
    let flipped = {
        let mut s = good_sig.clone().into_bytes();
        let last = s.len() - 1;
        s[last] = if s[last] == b'0' { b'1' } else { b'0' };
        String::from_utf8(s).unwrap()
    };
    let long_sig = format!("sha256={}", "ab".repeat(5000));
    let github_sigs: Vec<(&str, Option<&str>)> = vec![
        ("missing", None),
        ("empty", Some("")),
        ("wrong secret", Some(&wrong_secret_sig)),
        ("signature of another body", Some(&other_body_sig)),
        ("sha1 prefix", Some(&sha1_style)),
        ("one digit flipped", Some(&flipped)),
        ("not hex", Some("sha256=zzzzzzzz")),
        ("prefix only", Some("sha256=")),
        ("10 KB signature", Some(&long_sig)),
    ];
    for (what, sig) in &github_sigs {
        cases.push(case(
            format!("github signature: {what}"),
            github(&path, &body, *sig),
            Status(401),
        ));
    }
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    cases.push(case(
        "github: body changed after signing",
        github(&path, &tampered, Some(&good_sig)),
        Status(401),
    ));

    let hex_good = hmac_hex(secret, &body);
    let hex_wrong = hmac_hex("not the secret", &body);
    for provider in [Provider::Gitea, Provider::Forgejo] {
        let event = provider.event_header();
        for (what, sig) in [
            ("missing", None),
            ("empty", Some("")),
            ("wrong secret", Some(hex_wrong.as_str())),
            ("truncated", Some(&hex_good[..20])),
            ("not hex", Some("xyz")),
        ] {
            cases.push(case(
                format!("{event} signature: {what}"),
                gitea(&path, provider, &body, sig),
                Status(401),
            ));
        }
    }

    let secret_plus = format!("{secret}x");
    let secret_prefix = &secret[..secret.len() / 2];
    for (what, token) in [
        ("missing", None),
        ("empty", Some("")),
        ("wrong", Some("definitely-not-the-secret")),
        ("secret plus a character", Some(secret_plus.as_str())),
        ("half the secret", Some(secret_prefix)),
    ] {
        cases.push(case(
            format!("gitlab token: {what}"),
            gitlab(&path, &body, token),
            Status(401),
        ));
    }
    cases.push(case(
        "gitlab standard-webhooks signature: forged",
        gitlab(&path, &body, None)
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", "1760000000")
            .header(
                "webhook-signature",
                "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
        Status(401),
    ));

    let bb_wrong = format!("sha256={hex_wrong}");
    for (what, sig) in [
        ("missing", None),
        ("empty", Some("")),
        ("wrong secret", Some(bb_wrong.as_str())),
        ("not hex", Some("sha256=nope")),
    ] {
        cases.push(case(
            format!("bitbucket signature: {what}"),
            bitbucket(&path, &body, sig),
            Status(401),
        ));
    }

    // Truncated JSON, correctly signed so it reaches the parser, at many cut points.
    let cuts = 100;
    for i in 0..cuts {
        let cut = i * body.len() / cuts;
        let part = &body[..cut];
        cases.push(case(
            format!("github: truncated at byte {cut}"),
            signed_github(&path, secret, part),
            Status(400),
        ));
    }
    for i in 0..20 {
        let cut = i * body.len() / 20;
        let part = &body[..cut];
        cases.push(case(
            format!("gitea: truncated at byte {cut}"),
            gitea(&path, Provider::Gitea, part, Some(&hmac_hex(secret, part))),
            Status(400),
        ));
        cases.push(case(
            format!("gitlab: truncated at byte {cut}"),
            gitlab(&path, part, Some(secret)),
            Status(400),
        ));
    }

    // Deep nesting and structurally wrong JSON, signed.
    let deep_arrays = "[".repeat(100_000).into_bytes();
    let deep_objects = "{\"a\":".repeat(100_000).into_bytes();
    let mut deep_in_field =
        br#"{"ref":"refs/heads/main","repository":{"full_name":"a/b"},"commits":"#.to_vec();
    deep_in_field.extend_from_slice(&"[".repeat(50_000).into_bytes());
    let closed_deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
    for (what, b) in [
        ("100k [", deep_arrays),
        ("100k {\"a\":", deep_objects),
        ("50k [ inside commits", deep_in_field),
        ("10k balanced []", closed_deep),
        ("a JSON string", b"\"push\"".to_vec()),
        ("a JSON number", b"12345".to_vec()),
        ("null", b"null".to_vec()),
        ("an empty object", b"{}".to_vec()),
        ("ref of the wrong type", br#"{"ref":1,"repository":{"full_name":"a/b"}}"#.to_vec()),
        ("empty ref", br#"{"ref":"  ","repository":{"full_name":"a/b"}}"#.to_vec()),
        ("no repository name", br#"{"ref":"refs/heads/x","repository":{}}"#.to_vec()),
        ("commits not a list", br#"{"ref":"refs/heads/x","repository":{"full_name":"a/b"},"commits":"x"}"#.to_vec()),
        ("commit without id", br#"{"ref":"refs/heads/x","repository":{"full_name":"a/b"},"commits":[{"message":"m"}]}"#.to_vec()),
    ] {
        cases.push(case(format!("github signed: {what}"), signed_github(&path, secret, &b), Status(400)));
    }

    // Invalid UTF-8, signed.
    for (what, b) in [
        ("raw 0xff bytes", vec![0xff, 0xfe, 0xfd]),
        ("lone continuation byte in a string", {
            let mut b = br#"{"ref":"refs/heads/"#.to_vec();
            b.push(0x80);
            b.extend_from_slice(br#"","repository":{"full_name":"a/b"}}"#);
            b
        }),
        ("overlong encoding", {
            let mut b = body.clone();
            b.splice(10..10, [0xc0, 0xaf]);
            b
        }),
    ] {
        cases.push(case(
            format!("invalid UTF-8: {what}"),
            signed_github(&path, secret, &b),
            Status(400),
        ));
    }

    // Wrong content types, signed.
    for ct in [
        "text/plain",
        "application/xml",
        "text/html; charset=utf-8",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "image/png",
    ] {
        cases.push(case(
            format!("content type {ct}"),
            signed_github(&path, secret, &body).content_type(ct),
            Status(415),
        ));
    }
    cases.push(case(
        "gitlab with a form body",
        gitlab(&path, b"payload=%7B%7D", Some(secret))
            .content_type("application/x-www-form-urlencoded"),
        Status(415),
    ));
    for (what, form) in [
        ("no payload field", b"other=1".to_vec()),
        ("payload not JSON", b"payload=%7Bnope".to_vec()),
        ("bad percent-encoding", b"payload=%ZZ%".to_vec()),
    ] {
        cases.push(case(
            format!("github form: {what}"),
            signed_github(&path, secret, &form).content_type("application/x-www-form-urlencoded"),
            Status(400),
        ));
    }

    // A body over the 25 MB default limit.
    let mut huge = body.clone();
    huge.resize(30 * 1024 * 1024, b' ');
    cases.push(case(
        "30 MB body",
        signed_github(&path, secret, &huge),
        Status(413),
    ));

    // Unknown providers, hooks and methods.
    cases.push(case(
        "no event header",
        RawRequest::new("POST", &path)
            .header("Content-Type", "application/json")
            .header(Provider::GitHub.signature_header(), &good_sig)
            .body(body.clone()),
        Status(400),
    ));
    for hook in [
        "/webhooks/0000000000000000000000000000000",
        "/webhooks/..%2F..%2Fetc%2Fpasswd",
        "/webhooks/%00",
        "/webhooks/'%20OR%201=1--",
        &format!("/webhooks/{}", "a".repeat(10_000)),
    ] {
        cases.push(case(
            format!("unknown hook {:.40}", hook),
            signed_github(hook, secret, &body),
            Status(404),
        ));
    }
    cases.push(case(
        "GET on a webhook",
        RawRequest::new("GET", &path),
        Status(405),
    ));
    cases.push(case(
        "DELETE on the API",
        api("/api/v1/pushes", Some(&project.key)).method("DELETE"),
        Status(405),
    ));

    // The public API: credentials.
    for (what, auth) in [
        ("no Authorization", None),
        ("empty bearer", Some("Bearer ".to_owned())),
        (
            "unknown key",
            Some(format!("Bearer gpt_{}", "x".repeat(40))),
        ),
        ("basic scheme", Some("Basic dXNlcjpwYXNz".to_owned())),
        ("key without scheme", Some(project.key.clone())),
        ("SQL as a key", Some("Bearer ' OR '1'='1".to_owned())),
        (
            "10 KB key",
            Some(format!("Bearer gpt_{}", "k".repeat(10_000))),
        ),
    ] {
        for target in [
            "/api/v1/pushes",
            "/api/v1/pushes/00000000-0000-0000-0000-000000000000",
        ] {
            let mut req = RawRequest::new("GET", target);
            if let Some(auth) = &auth {
                req = req.header("Authorization", auth);
            }
            cases.push(case(format!("{target}: {what}"), req, Status(401)));
        }
    }

    // The public API: absurd query parameters with a valid key.
    let long_branch = "b".repeat(10_000);
    let long_since = "2".repeat(10_000);
    for query in [
        "limit=99999999999999999999".to_owned(),
        "limit=-1".to_owned(),
        "limit=abc".to_owned(),
        "limit=1.5".to_owned(),
        "limit=".to_owned(),
        "offset=-1".to_owned(),
        "offset=99999999999999999999".to_owned(),
        "offset=1e3".to_owned(),
        "since=garbage".to_owned(),
        "since=2024-13-45".to_owned(),
        "since=%00".to_owned(),
        "since=1'%20OR%20'1'='1".to_owned(),
        format!("since={long_since}"),
        format!("branch={long_branch}"),
        "limit=abc&limit=1".to_owned(),
        "offset=-5&offset=-5".to_owned(),
        "since=x&since=y".to_owned(),
    ] {
        cases.push(case(
            format!("query {:.60}", query),
            api(&format!("/api/v1/pushes?{query}"), Some(&project.key)),
            Status(400),
        ));
    }
    for id in [
        "nope".to_owned(),
        "'%20OR%201=1--".to_owned(),
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "x".repeat(10_000),
    ] {
        cases.push(case(
            format!("push id {:.40}", id),
            api(&format!("/api/v1/pushes/{id}"), Some(&project.key)),
            // Not a UUID: refused by the id's documented pattern.
            Status(400),
        ));
    }

    // Path traversal.
    for target in [
        "/assets/../../etc/passwd",
        "/assets/..%2F..%2Fetc%2Fpasswd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2e%2e/",
        "/docs/../../etc/passwd",
        "/docs/%2e%2e/%2e%2e/etc/passwd",
        "/docs/..%2f..%2f..%2fetc%2fpasswd",
        "/..%5c..%5cwindows%5cwin.ini",
        "/openapi.json/../../etc/passwd",
        "/static/%252e%252e/%252e%252e/etc/passwd",
    ] {
        cases.push(case(
            format!("path {target}"),
            RawRequest::new("GET", target),
            Any4xx,
        ));
    }

    // Oversized headers.
    let big = "h".repeat(100 * 1024);
    cases.push(case(
        "100 KB header on a webhook",
        github(&path, &body, Some("sha256=00")).header("X-Padding", &big),
        Any4xxOrBare431,
    ));
    cases.push(case(
        "100 KB Authorization header",
        api("/api/v1/pushes", None).header("Authorization", format!("Bearer {big}")),
        Any4xxOrBare431,
    ));
    let many: RawRequest = (0..200).fold(github(&path, &body, None), |r, i| {
        r.header(&format!("X-Junk-{i}"), "j".repeat(1000))
    });
    cases.push(case("200 headers of 1 KB", many, Any4xxOrBare431));
    cases.push(case(
        "1 MB header",
        api("/api/v1/pushes", Some(&project.key)).header("X-Padding", "h".repeat(1024 * 1024)),
        Any4xxOrBare431,
    ));

    cases
}

impl RawRequest {
    fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }

    /// `provider`'s signature header with `value` as it is; None: no header.
    fn signature(self, provider: Provider, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.header(provider.signature_header(), value),
            None => self,
        }
    }
}

#[test]
fn every_request_in_the_hostile_corpus_gets_a_json_4xx_and_stores_nothing() {
    let app = TestApp::spawn();
    let project = app.create_project("target");
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    // One real push, so listing returns data and a leak would show.
    let reply = app.github_push(
        &project,
        "real-1",
        &github_payload("main", &["real"], 1_760_000_000),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let before = app.stored_rows();

    let cases = corpus(&project);
    assert!(
        cases.len() >= 200,
        "the corpus has only {} requests",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut bare_431 = 0;
    for Case {
        name,
        request,
        expect,
    } in &cases
    {
        let reply = request.send(&addr);
        let json = reply.json();
        let has_error_body = json.as_ref().is_some_and(|j| {
            j["error"]["code"].as_str().is_some_and(|c| !c.is_empty())
                && j["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
        });
        let ok = match expect {
            Expect::Status(s) => reply.status == *s && has_error_body,
            Expect::Any4xx => (400..500).contains(&reply.status) && has_error_body,
            Expect::Any4xxOrBare431 => {
                if reply.status == 431 && !has_error_body {
                    bare_431 += 1;
                    true
                } else {
                    (400..500).contains(&reply.status) && has_error_body
                }
            }
        };
        let leaked = String::from_utf8_lossy(&reply.body).contains("root:");
        if !ok || leaked {
            failures.push(format!(
                "{name}: {} {:.200}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests were mishandled:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        app.stored_rows(),
        before,
        "a refused request stored something"
    );
    eprintln!(
        "hostile corpus: {} requests, {bare_431} answered by hyper's bare 431",
        cases.len()
    );

    // Repeated parameters are not an error: the first value wins, as with any query parser
    // that reads one value per name. The page is still the key's own project.
    let page = app.get(
        "/api/v1/pushes?limit=1&limit=abc&limit=-1",
        Some(&project.key),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["pagination"]["limit"], 1);
    assert_eq!(page.body["project"], "target");

    let health = app.get("/healthz", None);
    assert_eq!(
        health.status, 200,
        "the server stopped serving after the corpus"
    );
    let page = app.get("/api/v1/pushes", Some(&project.key));
    assert_eq!(page.status, 200);
    assert_eq!(page.body["pagination"]["total"], 1);
}

/// Strings that would do harm if anything interpreted them as SQL, HTML or a format string.
const EVIL: &[&str] = &[
    "'; DROP TABLE pushes; --",
    "\" OR 1=1 --",
    "Robert'); DELETE FROM commits WHERE ('1'='1",
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "</pre><h1>hi</h1>&amp;&lt;",
    "%s%n%x{0}${jndi:ldap://x}{{7*7}}",
    "ünïcödé ✓ 🚀 \\\" \\n",
];

#[test]
fn sql_and_html_in_every_string_field_are_stored_and_served_verbatim() {
    let app = TestApp::spawn();
    let project = app.create_project("verbatim");
    for (i, evil) in EVIL.iter().enumerate() {
        let field = |name: &str| format!("{name}:{evil}");
        let payload = json!({
            "ref": format!("refs/heads/{}", field("branch")),
            "before": field("before"),
            "after": field("after"),
            "created": false, "deleted": false, "forced": false,
            "compare": field("compare"),
            "commits": [{
                "id": field("sha"),
                "message": field("message"),
                "timestamp": "2026-01-01T10:00:00Z",
                "url": field("url"),
                "author": {"name": field("name"), "email": field("email"), "username": field("username")},
                "added": [field("added")], "removed": [field("removed")], "modified": [field("modified")]
            }],
            "head_commit": null,
            "pusher": {"name": field("pusher"), "email": field("pusher-email")},
            "sender": {"login": field("sender")},
            "repository": {"full_name": field("repository"), "name": field("repo-name"), "pushed_at": 1_760_000_000 + i as i64}
        });
        let body = serde_json::to_vec(&payload).unwrap();
        let reply = app.github_push(&project, &format!("evil-{i}"), &body);
        assert!(
            (200..300).contains(&reply.status),
            "{evil}: {} {}",
            reply.status,
            reply.body
        );
        let id = reply.body["pushes"][0].as_str().unwrap().to_owned();

        let detail = app.get(&format!("/api/v1/pushes/{id}"), Some(&project.key));
        assert_eq!(detail.status, 200, "{}", detail.body);
        // Served as JSON data, never as a page a browser would render.
        let content_type = detail.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        assert_eq!(detail.header("x-content-type-options"), Some("nosniff"));
        let d = &detail.body;
        let c = &d["commits"][0];
        for (got, name) in [
            (&d["branch"], "branch"),
            (&d["author"], "pusher"),
            (&d["repository"], "repository"),
            (&d["before"], "before"),
            (&d["after"], "after"),
            (&c["sha"], "sha"),
            (&c["message"], "message"),
            (&c["author"], "username"),
            (&c["added"][0], "added"),
            (&c["removed"][0], "removed"),
            (&c["modified"][0], "modified"),
        ] {
            assert_eq!(
                got.as_str(),
                Some(field(name).as_str()),
                "field {name} of {evil:?}"
            );
        }
        assert_eq!(
            d["ref"].as_str(),
            Some(format!("refs/heads/{}", field("branch")).as_str())
        );
        // Links are the exception: only http(s) URLs are kept, and these are not.
        assert!(d["compareUrl"].is_null() && c["url"].is_null(), "{d}");

        // The branch filter takes the string as data too.
        let branch = field("branch");
        let encoded: String = serde_urlencoded::to_string([("branch", branch.as_str())]).unwrap();
        let page = app.get(&format!("/api/v1/pushes?{encoded}"), Some(&project.key));
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(
            page.body["pagination"]["total"], 1,
            "branch filter {branch:?}"
        );
        assert_eq!(page.body["pushes"][0]["id"], id.as_str());
    }
    // Nothing was executed: every table is intact and holds exactly what was sent.
    assert_eq!(
        app.sql_count("SELECT count(*) FROM pushes"),
        EVIL.len() as i64
    );
    assert_eq!(
        app.sql_count("SELECT count(*) FROM commits"),
        EVIL.len() as i64
    );
    assert_eq!(app.sql_count("SELECT count(*) FROM projects"), 1);
    let page = app.get("/api/v1/pushes?limit=100", Some(&project.key));
    assert_eq!(page.body["pagination"]["total"], EVIL.len());
    eprintln!(
        "verbatim: {} valid signed payloads with SQL/HTML in every string field",
        EVIL.len()
    );
}
