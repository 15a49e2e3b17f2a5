//! GitHub deliveries: `ping` and `push` payloads, JSON or form-encoded, into domain pushes.

use chrono::DateTime;
use poem::http::HeaderMap;
use serde::Deserialize;

use super::{
    Delivery, MAX_FIELD_LEN, MAX_MESSAGE_LEN, WebhookError, cap, checked_ref, checked_repository,
    commit_sha, count, delivery_id, file_list, from_json, is_zero_sha, parse_timestamp,
    person_name, split_ref, url,
};
use crate::domain::{NewCommit, NewPush, Provider};

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: Option<String>,
    created: Option<bool>,
    deleted: Option<bool>,
    forced: Option<bool>,
    compare: Option<String>,
    commits: Option<Vec<Commit>>,
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

#[derive(Deserialize)]
struct Commit {
    id: String,
    message: Option<String>,
    timestamp: Option<String>,
    url: Option<String>,
    author: Option<Author>,
    added: Option<Vec<String>>,
    removed: Option<Vec<String>>,
    modified: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Author {
    name: Option<String>,
    username: Option<String>,
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

fn into_push(p: Push, delivery_id: Option<String>) -> Result<NewPush, WebhookError> {
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
    let commits: Vec<NewCommit> = if deleted {
        Vec::new()
    } else {
        p.commits
            .unwrap_or_default()
            .into_iter()
            .map(into_commit)
            .collect()
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
        // Push payloads carry no total; GitHub lists every commit up to 2048.
        commit_count: count(commits.len()),
        compare_url: url(p.compare.as_deref()),
        pushed_at,
        commits,
    })
}

fn into_commit(c: Commit) -> NewCommit {
    let author = c.author.as_ref();
    NewCommit {
        sha: cap(&c.id, MAX_FIELD_LEN),
        message: cap(c.message.as_deref().unwrap_or_default(), MAX_MESSAGE_LEN),
        author: person_name(&[
            author.and_then(|a| a.username.as_deref()),
            author.and_then(|a| a.name.as_deref()),
        ]),
        timestamp: parse_timestamp(c.timestamp.as_deref()),
        url: url(c.url.as_deref()),
        added: file_list(c.added),
        removed: file_list(c.removed),
        modified: file_list(c.modified),
    }
}
