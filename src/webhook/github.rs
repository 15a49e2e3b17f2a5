//! GitHub deliveries: `ping` and `push` payloads, JSON or form-encoded, into domain pushes.

use chrono::DateTime;
use poem::http::HeaderMap;
use serde::Deserialize;

use super::{
    Delivery, HostPush, Listed, PayloadCommit, PushFlags, WebhookError, delivery_id, from_json,
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
    Delivery::ping_or_push(Provider::GitHub, event, ["ping", "push"], || {
        let payload: Push = from_json(json)?;
        let push = into_push(payload, delivery_id(headers, &["X-GitHub-Delivery"]))?;
        Ok(vec![push])
    })
}

fn into_push(p: Push<'_>, delivery_id: Option<String>) -> Result<NewPush, WebhookError> {
    let pushed_at = p
        .repository
        .pushed_at
        .as_ref()
        .and_then(serde_json::Value::as_i64)
        .and_then(|secs| DateTime::from_timestamp(secs, 0));
    HostPush {
        git_ref: &p.git_ref,
        repository: p.repository.full_name.as_deref(),
        before: p.before.as_deref(),
        after: p.after.as_deref(),
        // GitHub states the flags; the zero SHA is only a fallback for trimmed or hand-made
        // payloads.
        flags: PushFlags {
            created: p.created,
            deleted: p.deleted,
            forced: p.forced,
        },
        commits: p.commits,
        // Push payloads carry no total; GitHub lists every commit up to 2048.
        total_commits: None,
        pusher: &[
            p.pusher.as_ref().and_then(|u| u.name.as_deref()),
            p.sender.as_ref().and_then(|u| u.login.as_deref()),
        ],
        compare_url: p.compare.as_deref(),
        pushed_at,
    }
    .into_push(Provider::GitHub, delivery_id)
}
