//! Gitea and Forgejo deliveries: `push` payloads (GitHub-like, without the created/deleted flags).

use poem::http::HeaderMap;
use serde::Deserialize;

use super::{
    Delivery, Listed, PayloadCommit, WebhookError, checked_ref, checked_repository, commit_sha,
    count, delivery_id, from_json, is_zero_sha, person_name, split_ref, url,
    within_document_budget,
};
use crate::domain::{NewCommit, NewPush, Provider};

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
    match event {
        // Gitea sends no ping today, but a hello should never be refused or stored.
        "ping" => Ok(Delivery::Ping { provider }),
        "push" => {
            let payload: Push = from_json(json)?;
            let id = delivery_id(
                headers,
                &[
                    "X-Forgejo-Delivery",
                    "X-Gitea-Delivery",
                    "X-GitHub-Delivery",
                ],
            );
            let push = into_push(provider, payload, id)?;
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

fn into_push(
    provider: Provider,
    p: Push,
    delivery_id: Option<String>,
) -> Result<NewPush, WebhookError> {
    let git_ref = checked_ref(&p.git_ref)?;
    let (ref_kind, ref_name) = split_ref(&git_ref);
    let repository = checked_repository(p.repository.full_name.as_deref())?;
    // Gitea has no created/deleted/forced flags: only the zero SHA tells.
    let created = p.before.as_deref().is_some_and(is_zero_sha);
    let deleted = p.after.as_deref().is_some_and(is_zero_sha);
    let (commits, commit_count) = if deleted {
        (Vec::new(), 0)
    } else {
        // Gitea lists commits newest first (git log order); store them oldest first like the
        // other providers so summaries read in the order the work happened.
        let listed = p.commits.unwrap_or_default();
        let mut commits: Vec<NewCommit> = listed
            .kept
            .into_iter()
            .map(PayloadCommit::into_new_commit)
            .collect();
        commits.reverse();
        // total_commits arrived in Gitea 1.14; older servers list every commit they count.
        let total = p
            .total_commits
            .map_or(listed.total, |n| n.max(listed.total));
        (within_document_budget(commits), count(total))
    };
    let [pusher_login, pusher_username] = user_names(p.pusher.as_ref());
    let [sender_login, sender_username] = user_names(p.sender.as_ref());
    Ok(NewPush {
        provider,
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
        pusher: person_name(&[pusher_login, pusher_username, sender_login, sender_username]),
        commit_count,
        compare_url: url(p.compare_url.as_deref()),
        // Gitea does not say when the push happened; the caller uses the receive time.
        pushed_at: None,
        commits,
    })
}

fn user_names(user: Option<&User>) -> [Option<&str>; 2] {
    [
        user.and_then(|u| u.login.as_deref()),
        user.and_then(|u| u.username.as_deref()),
    ]
}
