//! GitLab deliveries: `Push Hook`, `Tag Push Hook` and push-kind `System Hook` payloads.

use poem::http::HeaderMap;
use serde::Deserialize;

use super::{
    Delivery, Listed, PayloadCommit, WebhookError, checked_ref, checked_repository, commit_sha,
    count, delivery_id, from_json, is_zero_sha, person_name, split_ref, within_document_budget,
};
use crate::domain::{NewPush, Provider};

/// Tells which kind of payload a System Hook carries before parsing it in full.
#[derive(Deserialize)]
struct Kind {
    object_kind: Option<String>,
    event_name: Option<String>,
}

#[derive(Deserialize)]
struct Push<'a> {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: Option<String>,
    user_name: Option<String>,
    user_username: Option<String>,
    project: Option<Project>,
    repository: Option<Repository>,
    #[serde(borrow)]
    commits: Option<Listed<PayloadCommit<'a>, false>>,
    total_commits_count: Option<u64>,
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
        return Ok(Delivery::Ignored {
            provider,
            event: event.to_owned(),
        });
    }
    let payload: Push = from_json(json)?;
    let push = into_push(payload, delivery_id(headers, &DELIVERY_ID_HEADERS))?;
    Ok(Delivery::Pushes {
        provider,
        pushes: vec![push],
    })
}

fn into_push(p: Push<'_>, delivery_id: Option<String>) -> Result<NewPush, WebhookError> {
    let git_ref = checked_ref(&p.git_ref)?;
    let (ref_kind, ref_name) = split_ref(&git_ref);
    let repository = checked_repository(
        p.project
            .as_ref()
            .and_then(|pr| pr.path_with_namespace.as_deref())
            .or_else(|| p.repository.as_ref().and_then(|r| r.name.as_deref())),
    )?;
    // GitLab has no created/deleted/forced flags: only the zero SHA tells.
    let created = p.before.as_deref().is_some_and(is_zero_sha);
    let deleted = p.after.as_deref().is_some_and(is_zero_sha);
    let (commits, commit_count) = if deleted {
        (Vec::new(), 0)
    } else {
        let listed = p.commits.unwrap_or_default();
        // GitLab lists at most 20 commits; total_commits_count is the real number.
        let total = p
            .total_commits_count
            .map_or(listed.total, |n| n.max(listed.total));
        let commits = listed
            .kept
            .into_iter()
            .map(PayloadCommit::into_new_commit)
            .collect();
        (within_document_budget(commits), count(total))
    };
    Ok(NewPush {
        provider: Provider::GitLab,
        delivery_id,
        repository,
        git_ref,
        ref_kind,
        ref_name,
        before: commit_sha(p.before.as_deref()),
        after: commit_sha(p.after.as_deref()),
        created,
        deleted,
        forced: false,
        pusher: person_name(&[p.user_username.as_deref(), p.user_name.as_deref()]),
        commit_count,
        // GitLab sends no compare link, and building one would mean guessing the instance URL.
        compare_url: None,
        // GitLab does not say when the push happened; the caller uses the receive time.
        pushed_at: None,
        commits,
    })
}
