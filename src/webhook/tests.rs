//! Whole-delivery tests: every shared fixture signed, sent through `parse_delivery` and checked.

use hmac::{Hmac, Mac};
use poem::http::{HeaderName, HeaderValue};
use sha2::Sha256;

use super::*;

const SECRET: &str = "test-secret";

/// The fixed time these deliveries are received at (and verify.rs's tests' "now").
pub(super) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("a time")
}

/// A file under tests/fixtures; verify.rs's tests read the same fixtures.
pub(super) fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

fn hex_hmac(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The header map of `pairs`, repeated names kept; verify.rs's tests build theirs here too.
pub(super) fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

/// The headers `provider` would send for `body` signed with [`SECRET`].
fn signed_headers(provider: Provider, event: &str, body: &[u8]) -> HeaderMap {
    let sig = hex_hmac(body);
    let json = ("Content-Type", "application/json".to_owned());
    let pairs = match provider {
        Provider::GitHub => vec![
            ("X-GitHub-Event", event.to_owned()),
            ("X-GitHub-Delivery", "gh-1".to_owned()),
            ("X-Hub-Signature-256", format!("sha256={sig}")),
            json,
        ],
        Provider::GitLab => vec![
            ("X-Gitlab-Event", event.to_owned()),
            ("X-Gitlab-Token", SECRET.to_owned()),
            ("X-Gitlab-Event-UUID", "gl-1".to_owned()),
            json,
        ],
        // Gitea and Forgejo send GitHub's headers too; detection must still pick them.
        Provider::Gitea | Provider::Forgejo => {
            let mut pairs = vec![
                ("X-GitHub-Event", event.to_owned()),
                ("X-Gitea-Event", event.to_owned()),
            ];
            let (delivery, signature, id) = if provider == Provider::Forgejo {
                pairs.push(("X-Forgejo-Event", event.to_owned()));
                ("X-Forgejo-Delivery", "X-Forgejo-Signature", "fj-1")
            } else {
                ("X-Gitea-Delivery", "X-Gitea-Signature", "gt-1")
            };
            pairs.extend([(delivery, id.to_owned()), (signature, sig), json]);
            pairs
        }
        Provider::Bitbucket => vec![
            ("X-Event-Key", event.to_owned()),
            ("X-Request-UUID", "bb-1".to_owned()),
            ("X-Hub-Signature", format!("sha256={sig}")),
            json,
        ],
    };
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(name, v)| (*name, v.as_str())).collect();
    header_map(&pairs)
}

/// What one pushed ref in a fixture must parse into.
struct Expected {
    ref_kind: RefKind,
    ref_name: &'static str,
    created: bool,
    deleted: bool,
    forced: bool,
    commit_count: u32,
    listed: usize,
    pusher: &'static str,
    repository: &'static str,
}

/// Every payload fixture, one a line: its file, provider and event, then for a push (a ping
/// has no more) the kind and name of the ref, `new`, `gone`, `plain` or `forced`, the commit
/// count and the commits listed, the pusher and the repository. `#` starts a comment line.
const TABLE: &str = "
github/ping.payload.json                           | github    | ping
github/ping.with-app_id.json                       | github    | ping
github/ping.with-organization.json                 | github    | ping
github/push.1.json                                 | github    | push          | tag simple-tag        | gone   | 0 0 | Codertocat     | Codertocat/Hello-World
github/push.ghes-35.payload.json                   | github    | push          | tag simple-tag        | new    | 0 0 | Codertocat     | Codertocat/Hello-World
github/push.go-scm-push.json                       | github    | push          | branch master         | plain  | 1 1 | Codertocat     | Codertocat/Hello-World
github/push.go-scm-push_branch_create.json         | github    | push          | branch feature-branch | new    | 0 0 | bradrydzewski  | bradrydzewski/drone-test-go
github/push.go-scm-push_branch_delete.json         | github    | push          | branch feature-branch | gone   | 0 0 | bradrydzewski  | bradrydzewski/drone-test-go
github/push.payload.json                           | github    | push          | tag simple-tag        | gone   | 0 0 | Codertocat     | Codertocat/Hello-World
github/push.with-installation.json                 | github    | push          | tag simple-tag        | gone   | 0 0 | Codertocat     | Codertocat/Hello-World
github/push.with-new-branch.json                   | github    | push          | branch master         | new    | 1 1 | Codertocat     | Codertocat/Hello-World
github/push.with-no-username-committer.json        | github    | push          | branch master         | new    | 1 1 | Codertocat     | Codertocat/Hello-World
github/push.with-organization.json                 | github    | push          | tag simple-tag        | gone   | 0 0 | Codertocat     | Codertocat/Hello-World
github/push.woodpecker-HookPush.json               | github    | push          | branch main           | plain  | 1 1 | 6543           | woodpecker-ci/woodpecker
github/push.woodpecker-HookPushForced.json         | github    | push          | branch main           | forced | 1 1 | 6543           | 6543/oxiduct
github/push.woodpecker-HookTag.json                | github    | push          | tag the-tag-v1        | new    | 0 0 | 6543           | 6543/test_ci_tmp
gitlab/push.gitlab-docs.json                       | gitlab    | Push Hook     | branch master         | plain  | 4 2 | jsmith         | mike/diaspora
gitlab/push.go-gitlab.json                         | gitlab    | Push Hook     | branch master         | plain  | 4 2 | jsmith         | mike/diaspora
gitlab/push.go-scm-branch_create.json              | gitlab    | Push Hook     | branch feature        | new    | 1 1 | sytses         | gitlab-org/hello-world
gitlab/push.go-scm-branch_delete.json              | gitlab    | Push Hook     | branch feature        | gone   | 0 0 | sytses         | gitlab-org/hello-world
gitlab/push.go-scm-push.json                       | gitlab    | Push Hook     | branch master         | plain  | 1 1 | sytses         | gitlab-org/hello-world
gitlab/push.go-scm-push_merge.json                 | gitlab    | Push Hook     | branch master         | plain  | 2 2 | sytses         | gitlab-org/hello-world
gitlab/push.woodpecker-HookPush.json               | gitlab    | Push Hook     | branch main           | plain  | 1 1 | test           | test/woodpecker
# No user_username in this docs example: the display name stands in.
gitlab/tag_push.gitlab-docs.json                   | gitlab    | Tag Push Hook | tag v1.0.0            | new    | 0 0 | John Smith     | jsmith/example
gitlab/tag_push.go-gitlab.json                     | gitlab    | Tag Push Hook | tag v1.0.0            | new    | 1 1 | jsmith         | jsmith/example
gitlab/tag_push.go-scm-tag_create.json             | gitlab    | Tag Push Hook | tag v1.0.0            | new    | 1 1 | sytses         | gitlab-org/hello-world
gitlab/tag_push.go-scm-tag_delete.json             | gitlab    | Tag Push Hook | tag v1.0.0            | gone   | 0 0 | sytses         | gitlab-org/hello-world
gitlab/tag_push.woodpecker-HookTag.json            | gitlab    | Tag Push Hook | tag v22               | new    | 1 1 | test           | test/woodpecker
gitea/push.gitea-docs.json                         | gitea     | push          | branch develop        | plain  | 1 1 | gitea          | gitea/webhooks
gitea/push.go-scm-push.json                        | gitea     | push          | branch master         | plain  | 1 1 | unknwon        | gogits/hello-world
# Captured from codeberg.org, a Forgejo instance.
gitea/push.woodpecker-gitea-HookPushBranch.json    | forgejo   | push          | branch fdsafdsa       | new    | 0 0 | 6543           | meisam/woodpecktester
gitea/push.woodpecker-gitea-HookPushMulti.json     | gitea     | push          | branch main           | plain  | 3 3 | test-user      | Test-CI/multi-line-secrets
bitbucket/repo-push.go-scm-push.json               | bitbucket | repo:push     | branch master         | plain  | 1 1 | Brad Rydzewski | brydzewski/foo
bitbucket/repo-push.go-scm-push_branch_create.json | bitbucket | repo:push     | branch develop        | new    | 2 2 | Brad Rydzewski | brydzewski/foo
bitbucket/repo-push.go-scm-push_branch_delete.json | bitbucket | repo:push     | branch develop        | gone   | 0 0 | Brad Rydzewski | brydzewski/foo
bitbucket/repo-push.go-scm-push_tag_create.json    | bitbucket | repo:push     | tag feature/x         | new    | 0 0 | Brad Rydzewski | brydzewski/foo
bitbucket/repo-push.go-scm-push_tag_delete.json    | bitbucket | repo:push     | tag feature/x         | gone   | 0 0 | Brad Rydzewski | brydzewski/foo
bitbucket/repo-push.woodpecker-HookPush.json       | bitbucket | repo:push     | branch main           | plain  | 1 1 | Martin Herren  | martinherren1984/publictestrepo
";

/// [`TABLE`] as (file, provider, event, expected push or `None` for a ping).
fn table() -> Vec<(&'static str, Provider, &'static str, Option<Expected>)> {
    let lines = TABLE
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    lines
        .map(|line| {
            let cells: Vec<&'static str> = line.split('|').map(str::trim).collect();
            let provider = [
                Provider::GitHub,
                Provider::GitLab,
                Provider::Gitea,
                Provider::Forgejo,
                Provider::Bitbucket,
            ]
            .into_iter()
            .find(|p| p.as_str() == cells[1])
            .unwrap_or_else(|| panic!("{line}: no provider {}", cells[1]));
            let expected = cells.get(3).map(|_| expected_push(line, &cells[3..]));
            (cells[0], provider, cells[2], expected)
        })
        .collect()
}

/// The push columns of a [`TABLE`] line: ref, flags, counts, pusher and repository.
fn expected_push(line: &str, cells: &[&'static str]) -> Expected {
    let [reference, flags, counts, pusher, repository] = cells else {
        panic!("{line}: expected five push columns");
    };
    let (kind, ref_name) = reference.split_once(' ').expect("a kind and a ref name");
    let (count, listed) = counts.split_once(' ').expect("a count and a listed count");
    let [created, deleted, forced] = match *flags {
        "new" => [true, false, false],
        "gone" => [false, true, false],
        "plain" => [false, false, false],
        "forced" => [false, false, true],
        other => panic!("{line}: unknown flags {other}"),
    };
    Expected {
        ref_kind: RefKind::parse(kind).expect("branch or tag"),
        ref_name,
        created,
        deleted,
        forced,
        commit_count: count.parse().expect("a commit count"),
        listed: listed.parse().expect("a listed count"),
        pusher,
        repository,
    }
}

fn parse_fixture(file: &str, provider: Provider, event: &str) -> Delivery {
    let body = fixture(file);
    let headers = signed_headers(provider, event, &body);
    parse_delivery(&headers, &body, SECRET, now()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn only_push(delivery: Delivery) -> NewPush {
    match delivery {
        Delivery::Pushes { mut pushes, .. } if pushes.len() == 1 => pushes.remove(0),
        other => panic!("expected one push, got {other:?}"),
    }
}

#[test]
fn every_fixture_parses_into_the_expected_push_or_ping() {
    for (file, provider, event, expected) in table() {
        let delivery = parse_fixture(file, provider, event);
        let Some(expected) = expected else {
            assert_eq!(delivery, Delivery::Ping { provider }, "{file}");
            continue;
        };
        let Delivery::Pushes {
            provider: got_provider,
            pushes,
        } = delivery
        else {
            panic!("{file}: expected pushes, got {delivery:?}");
        };
        assert_eq!(got_provider, provider, "{file}");
        assert_eq!(pushes.len(), 1, "{file}");
        let p = &pushes[0];
        let e = expected;
        assert_eq!(
            (
                p.ref_kind,
                p.ref_name.as_str(),
                p.created,
                p.deleted,
                p.forced
            ),
            (e.ref_kind, e.ref_name, e.created, e.deleted, e.forced),
            "{file}: ref and flags"
        );
        assert_eq!(
            (p.commit_count, p.commits.len()),
            (e.commit_count, e.listed),
            "{file}: commit count and listed commits"
        );
        assert_eq!(
            (p.pusher.as_str(), p.repository.as_str()),
            (e.pusher, e.repository),
            "{file}: pusher and repository"
        );
        assert_eq!(p.provider, provider, "{file}");
        assert!(p.delivery_id.is_some(), "{file}: delivery id");
        if p.deleted {
            assert!(
                p.commits.is_empty() && p.after.is_none(),
                "{file}: deletion"
            );
        }
        if p.created {
            assert!(p.before.is_none(), "{file}: creation has no before");
        }
        for c in &p.commits {
            assert!(!c.sha.is_empty() && !c.author.is_empty(), "{file}: {c:?}");
            assert!(c.timestamp.is_some(), "{file}: timestamp of {}", c.sha);
        }
    }
}

#[test]
fn the_table_covers_every_payload_fixture() {
    let listed: Vec<&str> = table().into_iter().map(|row| row.0).collect();
    let root = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    for dir in ["github", "gitlab", "gitea", "bitbucket"] {
        for entry in std::fs::read_dir(format!("{root}/{dir}")).expect("fixture dir") {
            let name = entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            let path = format!("{dir}/{name}");
            // The test vector is not a delivery; verify.rs checks it.
            if name.ends_with(".json") && name != "signature-test-vector.json" {
                assert!(
                    listed.contains(&path.as_str()),
                    "{path} is not in the table"
                );
            }
        }
    }
}

#[test]
fn a_truncated_gitlab_push_keeps_the_true_commit_count() {
    let p = only_push(parse_fixture(
        "gitlab/push.gitlab-docs.json",
        Provider::GitLab,
        "Push Hook",
    ));
    assert_eq!((p.commit_count, p.commits.len()), (4, 2));
    assert!(p.commits_truncated());
    assert_eq!(p.commits[0].author, "Jordi Mallach");
    assert_eq!(p.delivery_id.as_deref(), Some("gl-1"));
    assert_eq!(p.compare_url, None);
}

#[test]
fn github_push_fields_come_through_as_sent() {
    let p = only_push(parse_fixture(
        "github/push.woodpecker-HookPush.json",
        Provider::GitHub,
        "push",
    ));
    assert_eq!(p.git_ref, "refs/heads/main");
    assert_eq!(p.delivery_id.as_deref(), Some("gh-1"));
    assert_eq!(
        p.after.as_deref(),
        Some("366701fde727cb7a9e7f21eb88264f59f6f9b89c")
    );
    assert_eq!(
        p.compare_url.as_deref(),
        Some("https://github.com/woodpecker-ci/woodpecker/compare/2f780193b136...366701fde727")
    );
    assert_eq!(p.pushed_at.map(|t| t.timestamp()), Some(1_642_370_257));
    let c = &p.commits[0];
    assert_eq!(c.author, "nupplaphil");
    assert!(
        c.message.contains('\n') && !c.message.contains('\r'),
        "CRLF line ends are stored as LF"
    );
    assert_eq!(c.modified.len(), 2);
    assert_eq!(
        c.timestamp.map(|t| t.to_rfc3339()).as_deref(),
        Some("2022-01-16T21:57:37+00:00")
    );
}

#[test]
fn gitea_and_bitbucket_commits_are_stored_oldest_first() {
    for (file, provider, event, author, delivery) in [
        (
            "gitea/push.woodpecker-gitea-HookPushMulti.json",
            Provider::Gitea,
            "push",
            "test-user",
            "gt-1",
        ),
        (
            "bitbucket/repo-push.go-scm-push_branch_create.json",
            Provider::Bitbucket,
            "repo:push",
            "Brad Rydzewski",
            "bb-1",
        ),
    ] {
        let p = only_push(parse_fixture(file, provider, event));
        assert_eq!(
            p.commits.last().map(|c| c.sha.as_str()),
            p.after.as_deref(),
            "{file}"
        );
        assert_eq!(p.commits[0].author, author, "{file}");
        assert_eq!(p.delivery_id.as_deref(), Some(delivery), "{file}");
    }
}

#[test]
fn gitea_headers_alone_are_detected_as_gitea_not_github() {
    let body = fixture("gitea/push.gitea-docs.json");
    let mut headers = header_map(&[("X-Gitea-Signature", &hex_hmac(&body))]);
    for line in String::from_utf8(fixture("gitea/push.gitea-docs.headers.txt"))
        .expect("utf-8")
        .lines()
    {
        if let Some((name, value)) = line.split_once(':') {
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes()).expect("name"),
                HeaderValue::from_str(value.trim()).expect("value"),
            );
        }
    }
    let p = only_push(parse_delivery(&headers, &body, SECRET, now()).expect("gitea push"));
    assert_eq!(p.provider, Provider::Gitea);
    assert_eq!(
        p.delivery_id.as_deref(),
        Some("f6266f16-1bf3-46a5-9ea4-602e06ead473")
    );
    assert_eq!(
        p.compare_url.as_deref().map(|u| u.contains("/compare/")),
        Some(true)
    );
}

#[test]
fn a_bitbucket_push_with_several_changes_gives_one_push_per_change_with_its_own_id() {
    let body = fixture("bitbucket/repo-push.go-scm-push.json");
    let mut value: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let changes = &mut value["push"]["changes"];
    let mut second = changes[0].clone();
    second["new"]["name"] = "other".into();
    second["truncated"] = true.into();
    changes.as_array_mut().expect("array").push(second);
    let body = serde_json::to_vec(&value).expect("json");
    let headers = signed_headers(Provider::Bitbucket, "repo:push", &body);
    let Ok(Delivery::Pushes { pushes, .. }) = parse_delivery(&headers, &body, SECRET, now()) else {
        panic!("expected pushes");
    };
    let ids: Vec<_> = pushes.iter().map(|p| p.delivery_id.as_deref()).collect();
    assert_eq!(ids, [Some("bb-1#0"), Some("bb-1#1")]);
    assert_eq!(pushes[1].ref_name, "other");
    // Truncated: one more than listed, the lower bound of the real count.
    assert_eq!((pushes[1].commit_count, pushes[1].commits.len()), (2, 1));
    assert!(pushes[1].commits_truncated());
}

#[test]
fn unhandled_events_are_ignored_after_verification() {
    for (provider, event) in [
        (Provider::GitHub, "issues"),
        (Provider::GitLab, "Merge Request Hook"),
        (Provider::Gitea, "create"),
        (Provider::Bitbucket, "pullrequest:created"),
    ] {
        let headers = signed_headers(provider, event, b"{}");
        assert_eq!(
            parse_delivery(&headers, b"{}", SECRET, now()),
            Ok(Delivery::Ignored {
                provider,
                event: event.to_owned()
            })
        );
    }
    let headers = signed_headers(Provider::Bitbucket, "diagnostics:ping", b"{}");
    assert_eq!(
        parse_delivery(&headers, b"{}", SECRET, now()),
        Ok(Delivery::Ping {
            provider: Provider::Bitbucket
        })
    );
}

#[test]
fn a_gitlab_system_hook_push_is_a_push_and_other_system_hooks_are_ignored() {
    let body = fixture("gitlab/push.go-scm-push.json");
    let headers = signed_headers(Provider::GitLab, "System Hook", &body);
    assert_eq!(
        only_push(parse_delivery(&headers, &body, SECRET, now()).expect("push")).ref_name,
        "master"
    );
    let body = br#"{"object_kind":"merge_request"}"#;
    let headers = signed_headers(Provider::GitLab, "System Hook", body);
    assert!(matches!(
        parse_delivery(&headers, body, SECRET, now()),
        Ok(Delivery::Ignored { .. })
    ));
}

#[test]
fn a_form_encoded_github_push_parses_like_json() {
    let json = fixture("github/push.woodpecker-HookPushForced.json");
    let form =
        serde_urlencoded::to_string([("payload", String::from_utf8(json.clone()).expect("utf-8"))])
            .expect("form");
    let mut headers = signed_headers(Provider::GitHub, "push", form.as_bytes());
    headers.insert(
        poem::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let from_form = parse_delivery(&headers, form.as_bytes(), SECRET, now()).expect("form push");
    let from_json = parse_delivery(
        &signed_headers(Provider::GitHub, "push", &json),
        &json,
        SECRET,
        now(),
    )
    .expect("json push");
    assert_eq!(from_form, from_json);
}

#[test]
fn a_missing_content_type_is_read_as_json_and_a_charset_is_allowed() {
    let body = fixture("github/push.go-scm-push.json");
    let mut headers = signed_headers(Provider::GitHub, "push", &body);
    headers.remove(poem::http::header::CONTENT_TYPE);
    assert!(parse_delivery(&headers, &body, SECRET, now()).is_ok());
    headers.insert(
        poem::http::header::CONTENT_TYPE,
        HeaderValue::from_static("Application/JSON; charset=utf-8"),
    );
    assert!(parse_delivery(&headers, &body, SECRET, now()).is_ok());
}

#[test]
fn other_content_types_are_refused_with_a_short_echo() {
    let body = b"{}";
    let long = format!("text/plain; x={}", "a".repeat(500));
    for (provider, value, echoed) in [
        (Provider::GitHub, "text/plain", "text/plain".to_owned()),
        (
            Provider::GitLab,
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        (Provider::GitHub, long.as_str(), long[..100].to_owned()),
    ] {
        let mut headers = signed_headers(provider, "push", body);
        headers.insert(
            poem::http::header::CONTENT_TYPE,
            HeaderValue::from_str(value).expect("value"),
        );
        let err = parse_delivery(&headers, body, SECRET, now()).expect_err("refused");
        assert_eq!(err, WebhookError::UnsupportedContentType(echoed));
        assert_eq!(err.code().status(), 415);
    }
}

fn malformed(provider: Provider, event: &str, body: &[u8]) -> String {
    let headers = signed_headers(provider, event, body);
    match parse_delivery(&headers, body, SECRET, now()) {
        Err(WebhookError::MalformedPayload(msg)) => msg,
        other => panic!("expected malformed payload, got {other:?}"),
    }
}

#[test]
fn malformed_json_is_a_malformed_payload() {
    let msg = malformed(Provider::GitHub, "push", b"{\"ref\": ");
    assert!(msg.contains("not valid JSON"), "{msg}");
}

#[test]
fn a_push_without_a_ref_is_a_malformed_payload() {
    let msg = malformed(
        Provider::GitHub,
        "push",
        br#"{"repository":{"full_name":"a/b"}}"#,
    );
    assert!(msg.contains("`ref`"), "{msg}");
    let msg = malformed(
        Provider::GitLab,
        "Push Hook",
        br#"{"ref":"refs/heads/x","commits":[]}"#,
    );
    assert!(msg.contains("repository"), "{msg}");
    let msg = malformed(
        Provider::Bitbucket,
        "repo:push",
        br#"{"repository":{"full_name":"a/b"}}"#,
    );
    assert!(msg.contains("`push`"), "{msg}");
}

#[test]
fn invalid_utf8_is_a_malformed_payload() {
    let msg = malformed(Provider::Gitea, "push", b"{\"ref\":\"\xff\xfe\"}");
    assert!(msg.contains("UTF-8"), "{msg}");
}

#[test]
fn error_messages_never_echo_much_of_the_body() {
    let huge = format!(
        r#"{{"ref": {{"{}": 1}}, "repository": {{"full_name": "a/b"}}}}"#,
        "x".repeat(10_000)
    );
    let msg = malformed(Provider::GitHub, "push", huge.as_bytes());
    assert!(msg.len() < 250, "{} bytes", msg.len());
}

#[test]
fn huge_commit_messages_are_truncated_on_a_char_boundary() {
    let message = "é".repeat(100_000);
    let body = serde_json::json!({
        "ref": "refs/heads/main",
        "before": "1".repeat(40),
        "after": "2".repeat(40),
        "repository": {"full_name": "a/b"},
        "pusher": {"name": "<script>"},
        "commits": [{"id": "2".repeat(40), "message": message, "author": {"name": "n"}}],
    });
    let body = serde_json::to_vec(&body).expect("json");
    let headers = signed_headers(Provider::GitHub, "push", &body);
    let p = only_push(parse_delivery(&headers, &body, SECRET, now()).expect("push"));
    assert!(p.commits[0].message.len() <= MAX_MESSAGE_LEN);
    assert!(p.commits[0].message.len() > MAX_MESSAGE_LEN - 4);
    assert_eq!(
        p.pusher, "<script>",
        "stored as-is, escaping is the renderer's job"
    );
    assert!(
        !p.created && !p.deleted,
        "flags fall back to the zero-SHA rule"
    );
}

#[test]
fn requests_without_a_provider_header_are_unknown() {
    let headers = header_map(&[("Content-Type", "application/json")]);
    let err = parse_delivery(&headers, b"{}", SECRET, now()).expect_err("unknown");
    assert_eq!(err, WebhookError::UnknownProvider);
    assert_eq!(err.code(), crate::error_code::ErrorCode::UnknownProvider);
}

#[test]
fn the_signature_is_checked_before_the_body_is_read() {
    let mut headers = signed_headers(Provider::GitHub, "push", b"{}");
    headers.insert("X-Hub-Signature-256", HeaderValue::from_static("sha256=00"));
    assert_eq!(
        parse_delivery(&headers, b"not json", SECRET, now()),
        Err(WebhookError::BadSignature)
    );
    headers.remove("X-Hub-Signature-256");
    assert_eq!(
        parse_delivery(&headers, b"not json", SECRET, now()),
        Err(WebhookError::MissingSignature("X-Hub-Signature-256"))
    );
}

#[test]
fn refs_split_into_kind_and_name() {
    assert_eq!(
        split_ref("refs/heads/feature/x"),
        (RefKind::Branch, "feature/x".to_owned())
    );
    assert_eq!(split_ref("refs/tags/v1"), (RefKind::Tag, "v1".to_owned()));
    assert_eq!(
        split_ref("refs/notes/x"),
        (RefKind::Branch, "refs/notes/x".to_owned())
    );
    assert!(is_zero_sha(&"0".repeat(64)) && !is_zero_sha("0000"));
}

#[test]
fn delivery_ids_are_trimmed_and_capped() {
    let headers = header_map(&[("X-GitHub-Delivery", &format!("  {}  ", "d".repeat(500)))]);
    assert_eq!(
        delivery_id(&headers, &["X-GitHub-Delivery"]).map(|id| id.len()),
        Some(200)
    );
    let headers = header_map(&[("webhook-id", " "), ("Idempotency-Key", "k")]);
    assert_eq!(
        delivery_id(&headers, &["webhook-id", "Idempotency-Key"]).as_deref(),
        Some("k")
    );
}

#[test]
fn commit_strings_borrow_from_the_body_unless_escaped_and_are_capped_either_way() {
    use std::borrow::Cow;
    let message = format!("{}\\n{}", "é".repeat(40_000), "tail");
    let json = format!(
        r#"{{"id":"abc","message":"{message}","added":["a.rs"],"author":{{"username":"ada"}}}}"#
    );
    let commit: super::PayloadCommit = serde_json::from_str(&json).unwrap();
    assert!(matches!(commit.id.0, Cow::Borrowed("abc")));
    assert!(matches!(
        commit.added.as_ref().unwrap()[0].0,
        Cow::Borrowed("a.rs")
    ));
    assert!(matches!(commit.message.as_ref().unwrap().0, Cow::Owned(_)));
    let commit = commit.into_new_commit();
    assert_eq!(
        commit.message.len(),
        super::MAX_MESSAGE_LEN,
        "cut on a character boundary"
    );
    assert!(commit.message.chars().all(|c| c == 'é'));
    assert_eq!(
        (commit.author.as_str(), commit.added),
        ("ada", vec!["a.rs".to_owned()])
    );
}

/// A push of `commits` to `main` of `a/b`, each `{"id": ..., "message": ...}` as given; a test
/// adds the fields its host sends besides.
fn push_payload(commits: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
        "ref": "refs/heads/main",
        "before": "1".repeat(40),
        "after": "2".repeat(40),
        "repository": {"full_name": "a/b"},
        "commits": commits,
    })
}

/// `payload` delivered as `provider`'s signed push event, parsed into its one push.
fn delivered_push(provider: Provider, payload: &serde_json::Value) -> NewPush {
    let body = serde_json::to_vec(payload).expect("json");
    let headers = signed_headers(provider, "push", &body);
    only_push(parse_delivery(&headers, &body, SECRET, now()).expect("push"))
}

/// A signed GitHub push of `commits`, each `{"id": ..., "message": ...}` as given.
fn github_push_of(commits: Vec<serde_json::Value>) -> NewPush {
    delivered_push(Provider::GitHub, &push_payload(commits))
}

fn tiny_commits(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| serde_json::json!({"id": format!("{i:040}"), "message": format!("c{i}")}))
        .collect()
}

#[test]
fn a_push_of_more_than_2048_commits_stores_the_newest_2048_and_the_true_count() {
    let p = github_push_of(tiny_commits(3_000));
    assert_eq!(p.commit_count, 3_000);
    assert_eq!(p.commits.len(), MAX_STORED_COMMITS);
    assert!(p.commits_truncated());
    assert_eq!(p.commits[0].message, "c952", "the oldest are dropped");
    assert_eq!(p.commits.last().map(|c| c.message.as_str()), Some("c2999"));
}

#[test]
fn a_gitea_push_of_more_than_2048_commits_keeps_the_newest_which_it_lists_first() {
    let commits: Vec<_> = tiny_commits(2_500).into_iter().rev().collect();
    let mut payload = push_payload(commits);
    payload["total_commits"] = 2_500.into();
    let p = delivered_push(Provider::Gitea, &payload);
    assert_eq!(
        (p.commit_count, p.commits.len()),
        (2_500, MAX_STORED_COMMITS)
    );
    assert_eq!(p.commits[0].message, "c452");
    assert_eq!(p.commits.last().map(|c| c.message.as_str()), Some("c2499"));
}

#[test]
fn the_stored_commits_stay_within_the_document_budget_by_dropping_the_oldest() {
    // 100 commits of 60 KB messages plus long file lists: about 10 MB as sent.
    let commits: Vec<_> = (0..100)
        .map(|i| {
            serde_json::json!({
                "id": format!("{i:040}"),
                "message": format!("{i} {}", "m".repeat(60_000)),
                "added": vec!["p".repeat(2_000); 20],
            })
        })
        .collect();
    let p = github_push_of(commits);
    assert_eq!(p.commit_count, 100);
    assert!(p.commits_truncated() && !p.commits.is_empty());
    assert!(p.commits.last().unwrap().message.starts_with("99 "));
    let document = serde_json::to_string(
        &p.commits
            .iter()
            .map(|c| {
                serde_json::json!({"sha": c.sha, "message": c.message, "author": c.author,
                    "timestamp": null, "url": c.url, "added": c.added, "removed": c.removed,
                    "modified": c.modified})
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(
        document.len() <= MAX_COMMITS_DOCUMENT,
        "{} bytes",
        document.len()
    );
    assert!(
        document.len() > MAX_COMMITS_DOCUMENT / 2,
        "not cut far more than needed"
    );
}

#[test]
fn an_absurd_total_commit_count_is_clamped() {
    for (provider, event, field) in [
        (Provider::GitLab, "Push Hook", "total_commits_count"),
        (Provider::Gitea, "push", "total_commits"),
    ] {
        let body = serde_json::to_vec(&serde_json::json!({
            "ref": "refs/heads/main",
            "before": "1".repeat(40),
            "after": "2".repeat(40),
            "project": {"path_with_namespace": "a/b"},
            "repository": {"full_name": "a/b", "name": "b"},
            "commits": tiny_commits(1),
            field: u64::MAX,
        }))
        .expect("json");
        let headers = signed_headers(provider, event, &body);
        let p = only_push(parse_delivery(&headers, &body, SECRET, now()).expect("push"));
        assert_eq!(p.commit_count, MAX_COMMIT_COUNT, "{provider}");
        assert!(p.commits_truncated());
    }
}

#[test]
fn only_http_and_https_links_are_kept() {
    for kept in [
        "https://github.com/a/b/compare/1...2",
        "http://gitea.local:3000/a/b/commit/1",
        "HTTPS://GitHub.com/a/b",
    ] {
        assert_eq!(url(Some(kept)).as_deref(), Some(kept), "{kept}");
    }
    for dropped in [
        "javascript:alert(document.cookie)",
        "JavaScript://github.com/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox",
        "//evil.example/x",
        "https://",
        "https:///path",
        "http:/evil.example",
        "ftp://host/file",
        "https://host/a b",
        "https://host/\u{0}x",
        " javascript:alert(1)",
    ] {
        assert_eq!(url(Some(dropped)), None, "{dropped:?}");
    }
}

#[test]
fn a_javascript_compare_or_commit_url_is_dropped_from_the_push() {
    let body = serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/main",
        "before": "1".repeat(40),
        "after": "2".repeat(40),
        "compare": "javascript:alert(1)",
        "repository": {"full_name": "a/b"},
        "commits": [
            {"id": "2".repeat(40), "message": "m", "url": "javascript:fetch('//evil')"},
            {"id": "3".repeat(40), "message": "m", "url": "https://github.com/a/b/commit/3"},
        ],
    }))
    .expect("json");
    let headers = signed_headers(Provider::GitHub, "push", &body);
    let p = only_push(parse_delivery(&headers, &body, SECRET, now()).expect("push"));
    assert_eq!(p.compare_url, None);
    assert_eq!(p.commits[0].url, None);
    assert_eq!(
        p.commits[1].url.as_deref(),
        Some("https://github.com/a/b/commit/3")
    );
}

#[test]
fn control_and_bidi_characters_in_names_are_replaced_visibly() {
    assert_eq!(
        clean_name("a\u{0}b\u{202E}txt.exe\r\nX-Injected: 1"),
        "a\u{FFFD}b\u{FFFD}txt.exe\u{FFFD}\u{FFFD}X-Injected: 1"
    );
    for unsafe_char in [
        '\u{1}', '\t', '\u{1B}', '\u{7F}', '\u{80}', '\u{85}', '\u{9F}', '\u{202A}', '\u{202B}',
        '\u{202C}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    ] {
        assert_eq!(
            clean_name(&format!("x{unsafe_char}y")),
            "x\u{FFFD}y",
            "{unsafe_char:?}"
        );
    }
    // Right-to-left text and its implicit marks, and other non-ASCII, are kept as they are.
    for kept in [
        "שלום\u{200F}",
        "عربي\u{061C}",
        "café — “quoted” © «»",
        "feature/x",
    ] {
        assert!(
            matches!(clean_name(kept), Cow::Borrowed(k) if k == kept),
            "{kept}"
        );
    }
}

#[test]
fn commit_messages_keep_newlines_and_tabs_and_lose_other_controls() {
    assert_eq!(
        clean_message("fix:\tthing\r\n\r\nbody\u{0}\u{202E}txt\u{85}\u{7}.".to_owned()),
        "fix:\tthing\n\nbodytxt."
    );
    let plain = "feat: ümlaut — “done”\n\n\tindented".to_owned();
    assert_eq!(clean_message(plain.clone()), plain);
}

#[test]
fn a_push_s_names_and_messages_are_cleaned_at_parse_time() {
    let body = serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/a\u{0}b\u{202E}txt.exe\r\nX-Injected: 1",
        "before": "1".repeat(40),
        "after": "2".repeat(40),
        "repository": {"full_name": "acme/\u{2066}app"},
        "pusher": {"name": "eve\u{7}\u{1B}[31m"},
        "commits": [{
            "id": "2".repeat(40),
            "message": "subject\r\n\nbody\u{202E}\u{0}",
            "author": {"username": "mal\u{202D}lory\n"},
        }],
    }))
    .expect("json");
    let headers = signed_headers(Provider::GitHub, "push", &body);
    let p = only_push(parse_delivery(&headers, &body, SECRET, now()).expect("push"));
    assert_eq!(
        p.ref_name,
        "a\u{FFFD}b\u{FFFD}txt.exe\u{FFFD}\u{FFFD}X-Injected: 1"
    );
    assert_eq!(p.git_ref, format!("refs/heads/{}", p.ref_name));
    assert_eq!(p.repository, "acme/\u{FFFD}app");
    assert_eq!(p.pusher, "eve\u{FFFD}\u{FFFD}[31m");
    assert_eq!(p.commits[0].author, "mal\u{FFFD}lory");
    assert_eq!(p.commits[0].message, "subject\n\nbody");
}

#[test]
fn bitbucket_ref_names_and_messages_are_cleaned_too() {
    let body = serde_json::to_vec(&serde_json::json!({
        "actor": {"nickname": "bob\u{202E}"},
        "repository": {"full_name": "a/b"},
        "push": {"changes": [{
            "new": {"name": "main\u{0}", "type": "branch", "target": {"hash": "2".repeat(40)}},
            "old": {"name": "main\u{0}", "type": "branch", "target": {"hash": "1".repeat(40)}},
            "commits": [{"hash": "2".repeat(40), "message": "m\r\n\u{1}",
                "author": {"raw": "Eve \u{2067}<e@x>"}}],
        }]},
    }))
    .expect("json");
    let headers = signed_headers(Provider::Bitbucket, "repo:push", &body);
    let p = only_push(parse_delivery(&headers, &body, SECRET, now()).expect("push"));
    assert_eq!(p.ref_name, "main\u{FFFD}");
    assert_eq!(p.pusher, "bob\u{FFFD}");
    assert_eq!(p.commits[0].author, "Eve \u{FFFD}<e@x>");
    assert_eq!(p.commits[0].message, "m\n");
}
