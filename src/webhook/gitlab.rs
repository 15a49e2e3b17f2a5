//! GitLab deliveries: `Push Hook`, `Tag Push Hook` and push-kind `System Hook` payloads.

use poem::http::HeaderMap;
use serde::Deserialize;

use super::{
    Delivery, HostPush, Listed, PayloadCommit, PushFlags, WebhookError, delivery_id, from_json,
};
use crate::domain::{NewPush, Provider};

/// Tells which kind of payload a System Hook carries before parsing it in full.
#[derive(Deserialize)]
struct Kind {
    object_kind: Option<String>,
    event_name: Option<String>,
}

/// A push event, its fields in the order GitLab sends them.
#[derive(Deserialize)]
struct Push<'a> {
    before: Option<String>,
    after: Option<String>,
    #[serde(rename = "ref")]
    git_ref: String,
    user_name: Option<String>,
    user_username: Option<String>,
    project: Option<Project>,
    #[serde(borrow)]
    commits: Option<Listed<PayloadCommit<'a>, false>>,
    total_commits_count: Option<u64>,
    repository: Option<Repository>,
}

#[derive(Deserialize)]
struct Project {
    path_with_namespace: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    name: Option<String>,
}

/// Which header names the delivery, in order of preference: the Standard Webhooks id is the one
/// GitLab keeps across retries of the same event.
const DELIVERY_ID_HEADERS: [&str; 3] = ["webhook-id", "Idempotency-Key", "X-Gitlab-Event-UUID"];

pub(super) fn parse(
    event: &str,
    headers: &HeaderMap,
    json: &str,
) -> Result<Delivery, WebhookError> {
    let provider = Provider::GitLab;
    let is_push = match event {
        "Push Hook" | "Tag Push Hook" => true,
        "System Hook" => {
            // System hooks carry every kind of instance event; only pushes are ours.
            let kind: Kind = from_json(json)?;
            let kind = kind.object_kind.or(kind.event_name);
            matches!(kind.as_deref(), Some("push" | "tag_push"))
        }
        _ => false,
    };
    if !is_push {
        return Ok(Delivery::ignored(provider, event));
    }
    let payload: Push = from_json(json)?;
    let push = into_push(payload, delivery_id(headers, &DELIVERY_ID_HEADERS))?;
    Ok(Delivery::Pushes {
        provider,
        pushes: vec![push],
    })
}

fn into_push(p: Push<'_>, delivery_id: Option<String>) -> Result<NewPush, WebhookError> {
    HostPush {
        git_ref: &p.git_ref,
        repository: p
            .project
            .as_ref()
            .and_then(|pr| pr.path_with_namespace.as_deref())
            .or_else(|| p.repository.as_ref().and_then(|r| r.name.as_deref())),
        before: p.before.as_deref(),
        after: p.after.as_deref(),
        // GitLab has no created/deleted/forced flags: only the zero SHA tells.
        flags: PushFlags::default(),
        commits: p.commits,
        // GitLab lists at most 20 commits; total_commits_count is the real number.
        total_commits: p.total_commits_count,
        pusher: &[p.user_username.as_deref(), p.user_name.as_deref()],
        // GitLab sends no compare link, and building one would mean guessing the instance URL.
        compare_url: None,
        // GitLab does not say when the push happened; the caller uses the receive time.
        pushed_at: None,
    }
    .into_push(Provider::GitLab, delivery_id)
}
