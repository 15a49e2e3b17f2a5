//! Bitbucket Cloud deliveries: `repo:push` (one push per changed ref) and `diagnostics:ping`.

use poem::http::HeaderMap;
use serde::Deserialize;

use super::{
    Delivery, Listed, MAX_DELIVERY_ID_LEN, MAX_FIELD_LEN, MAX_MESSAGE_LEN, WebhookError, cap,
    checked_repository, clean_message, clean_name, commit_sha, count, delivery_id, from_json,
    parse_timestamp, person_name, url,
};
use crate::domain::{NewCommit, NewPush, Provider, RefKind};

#[derive(Deserialize)]
struct Payload {
    push: PushBody,
    actor: Option<User>,
    repository: Repository,
}

#[derive(Deserialize)]
struct PushBody {
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Repository {
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct User {
    nickname: Option<String>,
    display_name: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct Change {
    new: Option<RefState>,
    old: Option<RefState>,
    created: Option<bool>,
    closed: Option<bool>,
    forced: Option<bool>,
    truncated: Option<bool>,
    commits: Option<Listed<Commit, true>>,
    links: Option<Links>,
}

#[derive(Deserialize)]
struct RefState {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Target {
    hash: Option<String>,
}

#[derive(Deserialize)]
struct Links {
    html: Option<Href>,
}

#[derive(Deserialize)]
struct Href {
    href: Option<String>,
}

#[derive(Deserialize)]
struct Commit {
    hash: String,
    message: Option<String>,
    date: Option<String>,
    author: Option<Author>,
    links: Option<Links>,
}

#[derive(Deserialize)]
struct Author {
    raw: Option<String>,
    user: Option<User>,
}

pub(super) fn parse(
    event: &str,
    headers: &HeaderMap,
    json: &str,
) -> Result<Delivery, WebhookError> {
    Delivery::ping_or_push(
        Provider::Bitbucket,
        event,
        ["diagnostics:ping", "repo:push"],
        || {
            let payload: Payload = from_json(json)?;
            into_pushes(payload, delivery_id(headers, &["X-Request-UUID"]))
        },
    )
}

fn into_pushes(p: Payload, delivery_id: Option<String>) -> Result<Vec<NewPush>, WebhookError> {
    if p.push.changes.is_empty() {
        return Err(WebhookError::MalformedPayload(
            "push.changes is empty".into(),
        ));
    }
    let repository = checked_repository(p.repository.full_name.as_deref())?;
    let actor = p.actor.as_ref();
    let pusher = person_name(&[
        actor.and_then(|a| a.nickname.as_deref()),
        actor.and_then(|a| a.display_name.as_deref()),
        actor.and_then(|a| a.username.as_deref()),
    ]);
    let several = p.push.changes.len() > 1;
    p.push
        .changes
        .into_iter()
        .enumerate()
        .map(|(index, change)| {
            // Each change is stored as its own push, so each needs its own id for deduplication.
            let id = delivery_id.as_deref().map(|id| {
                if several {
                    let suffix = format!("#{index}");
                    format!("{}{suffix}", cap(id, MAX_DELIVERY_ID_LEN - suffix.len()))
                } else {
                    id.to_owned()
                }
            });
            into_push(change, id, &repository, &pusher)
        })
        .collect()
}

fn into_push(
    c: Change,
    delivery_id: Option<String>,
    repository: &str,
    pusher: &str,
) -> Result<NewPush, WebhookError> {
    // A created ref has no `old` and a deleted one no `new`; the name lives on whichever is set.
    let named = c.new.as_ref().or(c.old.as_ref()).ok_or_else(|| {
        WebhookError::MalformedPayload("push change has neither new nor old ref".into())
    })?;
    let ref_name = named
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| cap(&clean_name(n), MAX_FIELD_LEN))
        .ok_or_else(|| WebhookError::MalformedPayload("push change has no ref name".into()))?;
    let (ref_kind, git_ref) = match named.kind.as_deref() {
        Some("tag") => (RefKind::Tag, format!("refs/tags/{ref_name}")),
        // "branch", Mercurial-era "named_branch", or anything new: a branch is the safe reading.
        _ => (RefKind::Branch, format!("refs/heads/{ref_name}")),
    };
    let created = c.created.unwrap_or(c.old.is_none());
    let deleted = c.closed.unwrap_or(c.new.is_none());
    let hash = |side: &Option<RefState>| {
        commit_sha(
            side.as_ref()
                .and_then(|s| s.target.as_ref())
                .and_then(|t| t.hash.as_deref()),
        )
    };
    let (commits, commit_count) = if deleted {
        (Vec::new(), 0)
    } else {
        // Bitbucket lists commits newest first.
        let listed = c.commits.unwrap_or_default();
        let total = count(listed.total);
        let commits = listed.into_stored(into_commit);
        // Bitbucket lists at most 5 commits and gives no total, only `truncated`. The true count
        // is unknown, so one more than listed is the honest lower bound: it keeps
        // `NewPush::commits_truncated` true without inventing a number.
        let total = if c.truncated.unwrap_or(false) {
            total.saturating_add(1)
        } else {
            total
        };
        (commits, total)
    };
    Ok(NewPush {
        provider: Provider::Bitbucket,
        delivery_id,
        repository: repository.to_owned(),
        git_ref,
        ref_kind,
        ref_name,
        before: hash(&c.old),
        after: hash(&c.new),
        created,
        deleted,
        forced: c.forced.unwrap_or(false),
        pusher: pusher.to_owned(),
        commit_count,
        compare_url: url(html_href(c.links.as_ref())),
        // Bitbucket does not say when the push happened; the caller uses the receive time.
        pushed_at: None,
        commits,
    })
}

fn html_href(links: Option<&Links>) -> Option<&str> {
    links
        .and_then(|l| l.html.as_ref())
        .and_then(|h| h.href.as_deref())
}

fn into_commit(c: Commit) -> NewCommit {
    let author = c.author.as_ref();
    let user = author.and_then(|a| a.user.as_ref());
    NewCommit {
        sha: cap(&c.hash, MAX_FIELD_LEN),
        message: clean_message(cap(
            c.message.as_deref().unwrap_or_default(),
            MAX_MESSAGE_LEN,
        )),
        author: person_name(&[
            user.and_then(|u| u.nickname.as_deref()),
            user.and_then(|u| u.display_name.as_deref()),
            author.and_then(|a| a.raw.as_deref()),
        ]),
        timestamp: parse_timestamp(c.date.as_deref()),
        url: url(html_href(c.links.as_ref())),
        // Bitbucket push payloads do not list changed files.
        added: Vec::new(),
        removed: Vec::new(),
        modified: Vec::new(),
    }
}
