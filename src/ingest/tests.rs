//! The pipeline driven directly, with a real database and writer but no server.

use hmac::{Hmac, Mac};
use poem::http::{HeaderName, HeaderValue};
use sha2::Sha256;

use super::*;
use crate::clock::SystemClock;
use crate::db::{Db, PageStart, PushFilter};
use crate::secret::Secret;

struct Fixture {
    ingest: Ingest,
    db: Db,
    hook_id: String,
    _dir: tempfile::TempDir,
}

const SECRET: &str = "first-secret";

fn fixture(summarize_at_ingest: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("ingest.db")).unwrap();
    let name = ProjectName::parse("app").unwrap();
    let hook_id = "h00k".repeat(8);
    db.create_project(&name, &hook_id, &Secret::new(SECRET), Utc::now())
        .unwrap();
    let (writer, _thread) = IngestWriter::spawn(&db, |_| {}).unwrap();
    let ingest = Ingest::new(
        Arc::new(db.clone()),
        writer,
        Arc::new(SystemClock),
        summarize_at_ingest,
    );
    Fixture {
        ingest,
        db,
        hook_id,
        _dir: dir,
    }
}

fn payload() -> Bytes {
    Bytes::from(
        serde_json::json!({
            "ref": "refs/heads/main",
            "before": "1111111111111111111111111111111111111111",
            "after": "2222222222222222222222222222222222222222",
            "commits": [{
                "id": "2222222222222222222222222222222222222222",
                "message": "feat: add the thing",
                "timestamp": "2026-01-01T10:00:00Z",
                "author": {"name": "Ada", "username": "ada"},
                "added": [], "removed": [], "modified": ["a.rs"]
            }],
            "pusher": {"name": "ada"},
            "repository": {"full_name": "acme/app"}
        })
        .to_string(),
    )
}

fn github_headers(event: &str, delivery: &str, secret: &str, body: &[u8]) -> HeaderMap {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-github-event", event),
        ("x-github-delivery", delivery),
        ("x-hub-signature-256", &signature),
        ("content-type", "application/json"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

impl Fixture {
    async fn push(&self, delivery: &str, secret: &str) -> Result<Outcome, Refused> {
        let body = payload();
        let headers = github_headers("push", delivery, secret, &body);
        self.ingest
            .receive(&self.hook_id, &headers, ready(body))
            .await
    }

    /// Pushes signed with `secret` and asserts the push is refused for its signature.
    async fn assert_bad_signature(&self, delivery: &str, secret: &str) {
        let refused = self.push(delivery, secret).await.unwrap_err();
        assert_eq!(refused.code(), ErrorCode::InvalidSignature, "{refused:?}");
    }

    /// Rotates the project's secret to `secret` directly in the database, as another process
    /// would, behind the back of whatever this ingest has cached.
    fn rotate_elsewhere(&self, secret: &str) {
        let name = ProjectName::parse("app").unwrap();
        self.db.rotate_secret(&name, &Secret::new(secret)).unwrap();
    }

    fn stored_statuses(&self) -> Vec<SummaryStatus> {
        let scope = self
            .db
            .owner_scope(&ProjectName::parse("app").unwrap())
            .unwrap();
        let page = self
            .db
            .list_pushes(&scope, &PushFilter::default(), 100, &PageStart::Offset(0))
            .unwrap();
        page.pushes.into_iter().map(|p| p.summary_status).collect()
    }
}

/// A body that is already here.
async fn ready(body: Bytes) -> Result<Bytes, Refused> {
    Ok(body)
}

fn stored_ids(outcome: &Result<Outcome, Refused>) -> Vec<Inserted> {
    match outcome {
        Ok(Outcome::Stored { pushes, .. }) => pushes.clone(),
        other => panic!("expected stored pushes, got {other:?}"),
    }
}

#[tokio::test]
async fn a_signed_push_is_stored_and_its_redelivery_is_a_duplicate_of_it() {
    let f = fixture(true);
    let first = stored_ids(&f.push("d-1", SECRET).await);
    let [Inserted::New(id)] = first.as_slice() else {
        panic!("one new push expected, got {first:?}");
    };
    let again = stored_ids(&f.push("d-1", SECRET).await);
    assert_eq!(again, vec![Inserted::Duplicate(id.clone())]);
    assert_eq!(f.stored_statuses(), vec![SummaryStatus::Summarized]);
}

#[tokio::test]
async fn with_a_model_configured_a_push_waits_in_the_queue() {
    let f = fixture(false);
    f.push("d-1", SECRET).await.unwrap();
    assert_eq!(f.stored_statuses(), vec![SummaryStatus::Pending]);
}

#[tokio::test]
async fn an_unknown_or_malformed_hook_id_is_refused_without_storing() {
    let f = fixture(true);
    let body = payload();
    let headers = github_headers("push", "d-1", SECRET, &body);
    for hook in ["x".repeat(32), "../etc/passwd".to_owned(), "a".repeat(65)] {
        let refused = f.ingest.receive(&hook, &headers, ready(body.clone())).await;
        assert!(
            matches!(refused, Err(Refused::UnknownHook)),
            "{hook}: {refused:?}"
        );
    }
    assert!(f.stored_statuses().is_empty());
}

#[tokio::test]
async fn a_wrong_signature_is_refused_with_the_catalogs_code() {
    let f = fixture(true);
    f.assert_bad_signature("d-1", "not-the-secret").await;
    assert!(f.stored_statuses().is_empty());
}

#[tokio::test]
async fn a_secret_rotated_by_another_process_is_picked_up_at_once_by_push_and_ping() {
    let f = fixture(true);
    f.push("d-1", SECRET).await.unwrap();
    // The target is cached now; another process rotates the secret behind its back.
    f.rotate_elsewhere("second-secret");

    let ping = payload();
    let headers = github_headers("ping", "p-1", "second-secret", &ping);
    let pong = f
        .ingest
        .receive(&f.hook_id, &headers, ready(ping))
        .await
        .unwrap();
    assert!(matches!(pong, Outcome::Pong { .. }), "{pong:?}");
    assert_eq!(stored_ids(&f.push("d-2", "second-secret").await).len(), 1);
    f.assert_bad_signature("d-3", SECRET).await;
}

#[tokio::test]
async fn a_push_signed_with_a_cached_secret_that_was_rotated_meanwhile_is_not_stored() {
    let f = fixture(true);
    f.push("d-1", SECRET).await.unwrap();
    f.rotate_elsewhere("second-secret");
    // Signed with the old secret, which the cache still holds: the writer's check inside the
    // commit refuses it, and the target read again refuses the signature.
    f.assert_bad_signature("d-2", SECRET).await;
    assert_eq!(f.stored_statuses().len(), 1);
}

#[tokio::test]
async fn a_project_deleted_by_another_process_is_an_unknown_hook() {
    let f = fixture(true);
    f.push("d-1", SECRET).await.unwrap();
    f.db.delete_project(&ProjectName::parse("app").unwrap())
        .unwrap();
    let refused = f.push("d-2", SECRET).await.unwrap_err();
    assert!(matches!(refused, Refused::UnknownHook), "{refused:?}");
}

#[tokio::test]
async fn a_delivery_to_an_unknown_hook_is_refused_before_its_body_is_read() {
    let f = fixture(true);
    let headers = github_headers("push", "d-1", SECRET, b"");
    let body = async { panic!("the body was read") as Result<Bytes, Refused> };
    let refused = f.ingest.receive(&"x".repeat(32), &headers, body).await;
    assert!(matches!(refused, Err(Refused::UnknownHook)), "{refused:?}");
}

/// A push of its own: a ref change no other delivery of the test repeats.
fn numbered_payload(n: u32) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "ref": "refs/heads/main",
            "before": format!("{:040x}", n - 1),
            "after": format!("{n:040x}"),
            "commits": [{
                "id": format!("{n:040x}"),
                "message": format!("feat: zeppelin number {n}"),
                "timestamp": "2026-01-01T10:00:00Z",
                "author": {"name": "Ada", "username": "ada"},
            }],
            "pusher": {"name": "ada"},
            "repository": {"full_name": "acme/app"}
        })
        .to_string(),
    )
}

#[tokio::test]
async fn a_read_right_after_a_stored_push_counts_searches_and_streams_it() {
    let f = fixture(true);
    let scope =
        f.db.owner_scope(&ProjectName::parse("app").unwrap())
            .unwrap();
    let search = PushFilter {
        text: vec![crate::db::SearchTerm {
            word: "zeppelin".into(),
            prefix: false,
        }],
        ..PushFilter::default()
    };
    for n in 1..=20 {
        let body = numbered_payload(n);
        let headers = github_headers("push", &format!("d-{n}"), SECRET, &body);
        stored_ids(&f.ingest.receive(&f.hook_id, &headers, ready(body)).await);
        // The derived rows are written after the answer; the reads wait for them.
        let all =
            f.db.list_pushes(&scope, &PushFilter::default(), 1, &PageStart::Offset(0))
                .unwrap();
        let found =
            f.db.list_pushes(&scope, &search, 1, &PageStart::Offset(0))
                .unwrap();
        let changes =
            f.db.changes_after(crate::db::ChangeCursor::default(), Some(&scope), 100)
                .unwrap();
        assert_eq!(
            (all.total, found.total, changes.len()),
            (u64::from(n), u64::from(n), n as usize),
            "after push {n}"
        );
    }
}
