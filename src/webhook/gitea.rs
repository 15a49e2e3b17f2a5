//! Gitea and Forgejo deliveries: `push` payloads (GitHub-like, without the created/deleted flags).

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
    compare_url: Option<String>,
    #[serde(borrow)]
    commits: Option<Listed<PayloadCommit<'a>, true>>,
    total_commits: Option<u64>,
    pusher: Option<User>,
    sender: Option<User>,
    repository: Repository,
}

#[derive(Deserialize)]
struct User {
    login: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: Option<String>,
}

pub(super) fn parse(
    provider: Provider,
    event: &str,
    headers: &HeaderMap,
    json: &str,
) -> Result<Delivery, WebhookError> {
    // Gitea sends no ping today, but a hello should never be refused or stored.
    Delivery::ping_or_push(provider, event, ["ping", "push"], || {
        let payload: Push = from_json(json)?;
        let id = delivery_id(
            headers,
            &[
                "X-Forgejo-Delivery",
                "X-Gitea-Delivery",
                "X-GitHub-Delivery",
            ],
        );
        Ok(vec![into_push(provider, payload, id)?])
    })
}

fn into_push(
    provider: Provider,
    p: Push,
    delivery_id: Option<String>,
) -> Result<NewPush, WebhookError> {
    let [pusher_login, pusher_username] = user_names(p.pusher.as_ref());
    let [sender_login, sender_username] = user_names(p.sender.as_ref());
    HostPush {
        git_ref: &p.git_ref,
        repository: p.repository.full_name.as_deref(),
        before: p.before.as_deref(),
        after: p.after.as_deref(),
        // Gitea has no created/deleted/forced flags: only the zero SHA tells.
        flags: PushFlags::default(),
        // Gitea lists commits newest first (git log order).
        commits: p.commits,
        // total_commits arrived in Gitea 1.14; older servers list every commit they count.
        total_commits: p.total_commits,
        pusher: &[pusher_login, pusher_username, sender_login, sender_username],
        compare_url: p.compare_url.as_deref(),
        // Gitea does not say when the push happened; the caller uses the receive time.
        pushed_at: None,
    }
    .into_push(provider, delivery_id)
}

fn user_names(user: Option<&User>) -> [Option<&str>; 2] {
    [
        user.and_then(|u| u.login.as_deref()),
        user.and_then(|u| u.username.as_deref()),
    ]
}
