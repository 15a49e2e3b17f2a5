//! GitHub deliveries: `ping` and `push` payloads, JSON or form-encoded, into domain pushes.

use chrono::DateTime;
use poem::http::HeaderMap;
use serde::Deserialize;

use super::{
    Delivery, Listed, PayloadCommit, WebhookError, checked_ref, checked_repository, commit_sha,
    count, delivery_id, from_json, is_zero_sha, person_name, split_ref, url,
    within_document_budget,
};
use crate::domain::{NewPush, Provider};

#[derive(Deserialize)]
struct Push<'a> {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: Option<String>,
    created: Option<bool>,
    deleted: Option<bool>,
    forced: Option<bool>,
    compare: Option<String>,
    #[serde(borrow)]
    commits: Option<Listed<PayloadCommit<'a>, false>>,
    pusher: Option<Pusher>,
    sender: Option<Sender>,
    repository: Repository,
}

#[derive(Deserialize)]
struct Pusher {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Sender {
    login: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: Option<String>,
    /// A unix timestamp in push payloads but an ISO string in other events, so read loosely.
    pushed_at: Option<serde_json::Value>,
}

pub(super) fn parse(
    event: &str,
    headers: &HeaderMap,
    json: &str,
) -> Result<Delivery, WebhookError> {
    let provider = Provider::GitHub;
    match event {
        "ping" => Ok(Delivery::Ping { provider }),
        "push" => {
            let payload: Push = from_json(json)?;
            let push = into_push(payload, delivery_id(headers, &["X-GitHub-Delivery"]))?;
            Ok(Delivery::Pushes {
                provider,
                pushes: vec![push],
            })
        }
        _ => Ok(Delivery::Ignored {
            provider,
            event: event.to_owned(),
        }),
    }
}

fn into_push(p: Push<'_>, delivery_id: Option<String>) -> Result<NewPush, WebhookError> {
    let git_ref = checked_ref(&p.git_ref)?;
    let (ref_kind, ref_name) = split_ref(&git_ref);
    let repository = checked_repository(p.repository.full_name.as_deref())?;
    // GitHub states the flags; the zero SHA is only a fallback for trimmed or hand-made payloads.
    let created = p
        .created
        .unwrap_or_else(|| p.before.as_deref().is_some_and(is_zero_sha));
    let deleted = p
        .deleted
        .unwrap_or_else(|| p.after.as_deref().is_some_and(is_zero_sha));
    let (commits, commit_count) = if deleted {
        (Vec::new(), 0)
    } else {
        let listed = p.commits.unwrap_or_default();
        let commits = listed
            .kept
            .into_iter()
            .map(PayloadCommit::into_new_commit)
            .collect();
        // Push payloads carry no total; GitHub lists every commit up to 2048.
        (within_document_budget(commits), count(listed.total))
    };
    let pushed_at = p
        .repository
        .pushed_at
        .as_ref()
        .and_then(serde_json::Value::as_i64)
        .and_then(|secs| DateTime::from_timestamp(secs, 0));
    Ok(NewPush {
        provider: Provider::GitHub,
        delivery_id,
        repository,
        git_ref,
        ref_kind,
        ref_name,
        before: commit_sha(p.before.as_deref()),
        after: commit_sha(p.after.as_deref()),
        created,
        deleted,
        forced: p.forced.unwrap_or(false),
        pusher: person_name(&[
            p.pusher.as_ref().and_then(|u| u.name.as_deref()),
            p.sender.as_ref().and_then(|u| u.login.as_deref()),
        ]),
        commit_count,
        compare_url: url(p.compare.as_deref()),
        pushed_at,
        commits,
    })
}
