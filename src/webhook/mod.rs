//! Webhook deliveries: detect the provider from the headers, verify the signature, parse the payload.
//!
//! Everything here is pure: headers and raw body in, a verified [`Delivery`] or a typed
//! [`WebhookError`] out. Storing is the caller's job.
//!
//! The order matters: the signature is checked over the raw body before anything in it is read,
//! so an unsigned or forged request never reaches the JSON parser.

mod bitbucket;
mod gitea;
mod github;
mod gitlab;
mod verify;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use poem::http::HeaderMap;
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

use crate::domain::{NewCommit, NewPush, Provider, RefKind};
use crate::error_code::ErrorCode;

/// What a verified delivery asks us to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A ping or similar hello from the host: answer 200, store nothing.
    Ping { provider: Provider },
    /// One or more pushes to store (Bitbucket sends one per changed ref).
    Pushes {
        provider: Provider,
        pushes: Vec<NewPush>,
    },
    /// A verified event we do not track: answer 202 saying it was ignored.
    Ignored { provider: Provider, event: String },
}

/// Why a delivery was refused. Each maps to one HTTP status and error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error(
        "could not tell which git host sent this request: expected X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event, X-Forgejo-Event or X-Event-Key"
    )]
    UnknownProvider,
    #[error("missing signature: set the webhook secret in your git host's webhook settings ({0})")]
    MissingSignature(&'static str),
    #[error(
        "signature does not match: check that the webhook secret in your git host matches this project's secret"
    )]
    BadSignature,
    #[error(
        "webhook-timestamp is more than 5 minutes away from this server's time: a replayed delivery, or a clock out of sync on the git host or this server (check NTP)"
    )]
    StaleTimestamp,
    #[error("unsupported content type {0:?}: configure the webhook to send application/json")]
    UnsupportedContentType(String),
    #[error("malformed payload: {0}")]
    MalformedPayload(String),
}

impl Delivery {
    /// The answer to a host whose events we track are `ping` and `push` (by its names for them):
    /// a ping is greeted, a push parsed by `pushes`, anything else ignored.
    fn ping_or_push(
        provider: Provider,
        event: &str,
        [ping, push]: [&str; 2],
        pushes: impl FnOnce() -> Result<Vec<NewPush>, WebhookError>,
    ) -> Result<Delivery, WebhookError> {
        Ok(if event == ping {
            Delivery::Ping { provider }
        } else if event == push {
            Delivery::Pushes {
                provider,
                pushes: pushes()?,
            }
        } else {
            Delivery::ignored(provider, event)
        })
    }

    /// The answer to a verified `event` we do not track.
    fn ignored(provider: Provider, event: &str) -> Delivery {
        Delivery::Ignored {
            provider,
            event: event.to_owned(),
        }
    }
}

impl WebhookError {
    /// The catalog entry this refusal is answered with (its code and status).
    pub fn code(&self) -> ErrorCode {
        match self {
            WebhookError::UnknownProvider => ErrorCode::UnknownProvider,
            WebhookError::MissingSignature(_) => ErrorCode::MissingSignature,
            WebhookError::BadSignature => ErrorCode::InvalidSignature,
            WebhookError::StaleTimestamp => ErrorCode::StaleTimestamp,
            WebhookError::UnsupportedContentType(_) => ErrorCode::UnsupportedContentType,
            WebhookError::MalformedPayload(_) => ErrorCode::MalformedPayload,
        }
    }
}

/// Verifies and parses one delivery with the project's webhook secret. `now` is the time it
/// was received, which signed timestamps are checked against.
pub fn parse_delivery(
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    now: DateTime<Utc>,
) -> Result<Delivery, WebhookError> {
    let (provider, event) = detect_provider(headers)?;
    verify::signature(provider, headers, body, secret, now)?;
    let json = json_text(provider, headers, body)?;
    match provider {
        Provider::GitHub => github::parse(&event, headers, &json),
        Provider::GitLab => gitlab::parse(&event, headers, &json),
        Provider::Gitea | Provider::Forgejo => gitea::parse(provider, &event, headers, &json),
        Provider::Bitbucket => bitbucket::parse(&event, headers, &json),
    }
}

/// The git host a request claims to come from, by its event header; for counting refusals.
pub fn provider_of(headers: &HeaderMap) -> Option<Provider> {
    detect_provider(headers).ok().map(|(provider, _)| provider)
}

/// Gitea and Forgejo also send `X-GitHub-Event` for compatibility, so their own headers are
/// checked first; otherwise a Gitea delivery would be verified with GitHub's rules.
const EVENT_HEADERS: [(&str, Provider); 5] = [
    ("x-forgejo-event", Provider::Forgejo),
    ("x-gitea-event", Provider::Gitea),
    ("x-gitlab-event", Provider::GitLab),
    ("x-event-key", Provider::Bitbucket),
    ("x-github-event", Provider::GitHub),
];

fn detect_provider(headers: &HeaderMap) -> Result<(Provider, String), WebhookError> {
    EVENT_HEADERS
        .iter()
        .find_map(|(name, provider)| {
            let value = headers.get(*name)?;
            let event = String::from_utf8_lossy(value.as_bytes());
            Some((*provider, cap(event.trim(), MAX_EVENT_LEN)))
        })
        .ok_or(WebhookError::UnknownProvider)
}

/// The longest event name echoed back in [`Delivery::Ignored`].
const MAX_EVENT_LEN: usize = 100;
/// The longest content type echoed back in [`WebhookError::UnsupportedContentType`].
const MAX_CONTENT_TYPE_LEN: usize = 100;
/// The longest delivery id kept; real ids are UUIDs, anything longer is noise.
const MAX_DELIVERY_ID_LEN: usize = 200;
/// Commit messages past this are truncated: a summary never needs more, and the database should
/// not grow by megabytes because one payload asked it to.
const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Names, refs, SHAs and URLs past this are truncated.
const MAX_FIELD_LEN: usize = 1024;
/// File paths past this are truncated (PATH_MAX on Linux).
const MAX_PATH_LEN: usize = 4096;
/// GitHub itself lists at most 3000 changed files per commit; more is not a real push.
const MAX_FILES_PER_LIST: usize = 3000;
/// At most this many commits are stored per push: GitHub's own limit for one push payload, so a
/// real delivery is never cut, while a hand-made one of a million tiny commits cannot make every
/// read of the push cost hundreds of megabytes. The newest are kept; `commit_count` stays true.
pub const MAX_STORED_COMMITS: usize = 2048;
/// The most a push's stored commits document may take, as its JSON is written. 2,048 real
/// commits (a message, an author and a few changed files each) take about 1-2 MB; 4 MiB leaves
/// room for verbose ones while one read of the detail stays a few MB however the payload was
/// padded (long messages, thousands of long file paths per commit). Past it the oldest commits
/// are dropped, as for the count cap.
pub const MAX_COMMITS_DOCUMENT: usize = 4 * 1024 * 1024;
/// The largest commit count believed. The longest public histories (Linux, Chromium) hold under
/// two million commits, so even a whole mirror pushed as one new branch stays below it; a larger
/// `total_commits` can only be made up, and is clamped to this rather than refused, because the
/// rest of the push is real.
pub const MAX_COMMIT_COUNT: u32 = 10_000_000;
/// How much of a parser error is echoed back, so a reply never mirrors a large part of the body.
const MAX_ERROR_DETAIL_LEN: usize = 120;

enum BodyKind {
    Json,
    Form,
}

/// Checks the content type and returns the JSON text of the payload.
fn json_text<'a>(
    provider: Provider,
    headers: &HeaderMap,
    body: &'a [u8],
) -> Result<Cow<'a, str>, WebhookError> {
    let kind = match headers.get(poem::http::header::CONTENT_TYPE) {
        None => BodyKind::Json,
        Some(value) => body_kind(provider, value.as_bytes())?,
    };
    let text = std::str::from_utf8(body)
        .map_err(|_| WebhookError::MalformedPayload("body is not valid UTF-8".into()))?;
    match kind {
        BodyKind::Json => Ok(Cow::Borrowed(text)),
        BodyKind::Form => {
            #[derive(Deserialize)]
            struct Form {
                payload: Option<String>,
            }
            let form: Form = serde_urlencoded::from_str(text).map_err(|e| {
                WebhookError::MalformedPayload(format!(
                    "form body could not be decoded: {}",
                    cap(&e.to_string(), MAX_ERROR_DETAIL_LEN)
                ))
            })?;
            form.payload.map(Cow::Owned).ok_or_else(|| {
                WebhookError::MalformedPayload("form body has no payload field".into())
            })
        }
    }
}

fn body_kind(provider: Provider, raw: &[u8]) -> Result<BodyKind, WebhookError> {
    let value = String::from_utf8_lossy(raw);
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        // Some proxies forward an empty header where there was none: same as missing.
        "" | "application/json" => Ok(BodyKind::Json),
        "application/x-www-form-urlencoded" if provider == Provider::GitHub => Ok(BodyKind::Form),
        _ => Err(WebhookError::UnsupportedContentType(cap(
            &value,
            MAX_CONTENT_TYPE_LEN,
        ))),
    }
}

/// Deserializes a payload, turning serde's error into a short message that never quotes much of
/// the input.
fn from_json<'a, T: Deserialize<'a>>(json: &'a str) -> Result<T, WebhookError> {
    serde_json::from_str(json).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => {
                "payload is missing a field a push needs or has one of the wrong type"
            }
            _ => "body is not valid JSON",
        };
        WebhookError::MalformedPayload(format!(
            "{what} ({})",
            cap(&e.to_string(), MAX_ERROR_DETAIL_LEN)
        ))
    })
}

/// A header's value as text, trimmed; `None` when absent, empty or not visible ASCII.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The first usable delivery id among `names`, capped.
fn delivery_id(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| header(headers, name))
        .map(|id| cap(id, MAX_DELIVERY_ID_LEN))
}

/// Truncates `s` to at most `max` bytes without splitting a character.
fn cap(s: &str, max: usize) -> String {
    s[..cap_len(s, max)].to_owned()
}

/// [`cap`] for a string parsed from the payload: borrowed from the body unless it held escapes,
/// and an owned one is kept rather than copied.
fn cap_parsed(s: Text<'_>, max: usize) -> String {
    match s.0 {
        Cow::Borrowed(s) => cap(s, max),
        Cow::Owned(mut s) => {
            s.truncate(cap_len(&s, max));
            s
        }
    }
}

/// The length of `s` cut to at most `max` bytes on a character boundary.
fn cap_len(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// The first of `candidates` that is present and not blank. Providers send `""` for unknown
/// users (Gitea does for commit authors without an account), which should fall through.
fn first_present<'a>(candidates: impl IntoIterator<Item = Option<&'a str>>) -> Option<&'a str> {
    candidates
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
}

/// Splits a full ref into its kind and short name.
fn split_ref(git_ref: &str) -> (RefKind, String) {
    if let Some(name) = git_ref.strip_prefix("refs/heads/") {
        (RefKind::Branch, name.to_owned())
    } else if let Some(name) = git_ref.strip_prefix("refs/tags/") {
        (RefKind::Tag, name.to_owned())
    } else {
        // Not a branch or tag (refs/notes/..., a bare name): keep it whole so nothing is lost.
        (RefKind::Branch, git_ref.to_owned())
    }
}

/// The all-zero SHA providers send for "no commit": SHA-1 (40) or SHA-256 (64) repositories.
fn is_zero_sha(sha: &str) -> bool {
    matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b == b'0')
}

/// A before/after SHA as stored: the zero SHA becomes `None`, the same as Bitbucket's `null`
/// side, so every provider reports "no commit" one way. `created`/`deleted` keep the meaning.
fn commit_sha(sha: Option<&str>) -> Option<String> {
    sha.map(str::trim)
        .filter(|s| !s.is_empty() && !is_zero_sha(s))
        .map(|s| cap(s, MAX_FIELD_LEN))
}

fn parse_timestamp(raw: Option<&str>) -> Option<DateTime<Utc>> {
    raw.and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn file_list(files: Option<Vec<Text<'_>>>) -> Vec<String> {
    files
        .unwrap_or_default()
        .into_iter()
        .take(MAX_FILES_PER_LIST)
        .map(|f| cap_parsed(f, MAX_PATH_LEN))
        .collect()
}

/// Checks the ref and repository every push needs and caps the strings a push stores.
fn checked_ref(git_ref: &str) -> Result<String, WebhookError> {
    let git_ref = git_ref.trim();
    if git_ref.is_empty() {
        return Err(WebhookError::MalformedPayload("ref is empty".into()));
    }
    Ok(cap(&clean_name(git_ref), MAX_FIELD_LEN))
}

fn checked_repository(repository: Option<&str>) -> Result<String, WebhookError> {
    first_present([repository])
        .map(|r| cap(&clean_name(r), MAX_FIELD_LEN))
        .ok_or_else(|| WebhookError::MalformedPayload("payload names no repository".into()))
}

fn person_name(candidates: &[Option<&str>]) -> String {
    let name = first_present(candidates.iter().copied()).unwrap_or_default();
    cap(&clean_name(name), MAX_FIELD_LEN)
}

/// Characters no stored name or message may carry: the C0 and C1 controls and DEL (NUL, and the
/// CR/LF that would split a log line or a header line in a client), and the bidi embeddings,
/// overrides and isolates (U+202A-U+202E, U+2066-U+2069) that make text display in another order
/// than it is stored, so `main\u{202E}exe.txt` would show as another name ("Trojan Source").
/// The implicit marks (U+200E, U+200F, U+061C) stay: right-to-left names need them, and they
/// reorder nothing on their own.
fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A quick look at the bytes: every unsafe character's UTF-8 starts with a byte below 0x20,
/// 0x7F, 0xC2 (the C1 controls) or 0xE2 (the bidi controls), so text without them, nearly all of
/// it, is kept without a character-by-character pass.
fn may_be_unsafe(b: u8) -> bool {
    b < 0x20 || matches!(b, 0x7F | 0xC2 | 0xE2)
}

/// A name (branch, tag, ref, repository, pusher, commit author) with every unsafe character
/// replaced by U+FFFD, so a name that held one stays visibly different from one that did not.
fn clean_name(name: &str) -> Cow<'_, str> {
    if !name.bytes().any(may_be_unsafe) || !name.chars().any(is_unsafe_char) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(
        name.chars()
            .map(|c| if is_unsafe_char(c) { '\u{FFFD}' } else { c })
            .collect(),
    )
}

/// A commit message without unsafe characters, except the newlines and tabs a message is made
/// of. They are dropped rather than replaced, so CRLF line ends become plain LF.
fn clean_message(mut message: String) -> String {
    let keep = |c: char| c == '\n' || c == '\t' || !is_unsafe_char(c);
    let may_be = |b: u8| may_be_unsafe(b) && b != b'\n' && b != b'\t';
    if message.bytes().any(may_be) && !message.chars().all(keep) {
        message.retain(keep);
    }
    message
}

/// A link from the payload, kept only when it is an `http` or `https` URL with a host: API
/// consumers and dashboards render these as links, where a `javascript:` or `data:` one would
/// run in their page. Anything else is dropped (shown as no link).
fn url(raw: Option<&str>) -> Option<String> {
    let url = first_present([raw])?;
    let rest = ["https://", "http://"].into_iter().find_map(|scheme| {
        url.get(..scheme.len())
            .filter(|prefix| prefix.eq_ignore_ascii_case(scheme))
            .map(|_| &url[scheme.len()..])
    })?;
    let has_host = !rest.is_empty() && !rest.starts_with(['/', '?', '#']);
    let clean = !url.chars().any(|c| c.is_control() || c.is_whitespace());
    (has_host && clean).then(|| cap(url, MAX_FIELD_LEN))
}

/// A commit count from the payload, clamped to [`MAX_COMMIT_COUNT`].
fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX).min(MAX_COMMIT_COUNT)
}

/// A payload's commit list as it is parsed: every entry is read (so a malformed one is still
/// refused) but only the [`MAX_STORED_COMMITS`] newest are kept, so a payload of a million
/// commits never holds a million parsed ones in memory. `NEWEST_FIRST` is the provider's order:
/// GitHub and GitLab list oldest first, Gitea and Bitbucket newest first.
struct Listed<T, const NEWEST_FIRST: bool> {
    /// The newest commits, in the payload's order.
    kept: Vec<T>,
    /// How many the payload listed.
    total: u64,
}

impl<T, const NEWEST_FIRST: bool> Default for Listed<T, NEWEST_FIRST> {
    fn default() -> Self {
        Listed {
            kept: Vec::new(),
            total: 0,
        }
    }
}

impl<'de, T: Deserialize<'de>, const NEWEST_FIRST: bool> Deserialize<'de>
    for Listed<T, NEWEST_FIRST>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T, const NEWEST_FIRST: bool>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>, const NEWEST_FIRST: bool> Visitor<'de> for Entries<T, NEWEST_FIRST> {
            type Value = Listed<T, NEWEST_FIRST>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of commits")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut kept = VecDeque::new();
                let mut total = 0u64;
                while let Some(commit) = seq.next_element::<T>()? {
                    total += 1;
                    if NEWEST_FIRST {
                        if kept.len() < MAX_STORED_COMMITS {
                            kept.push_back(commit);
                        }
                    } else {
                        if kept.len() == MAX_STORED_COMMITS {
                            kept.pop_front();
                        }
                        kept.push_back(commit);
                    }
                }
                Ok(Listed {
                    kept: kept.into(),
                    total,
                })
            }
        }

        deserializer.deserialize_seq(Entries(PhantomData))
    }
}

impl<T, const NEWEST_FIRST: bool> Listed<T, NEWEST_FIRST> {
    /// The kept commits as they are stored: oldest first, within the document budget.
    fn into_stored(self, into_commit: impl FnMut(T) -> NewCommit) -> Vec<NewCommit> {
        let mut commits: Vec<NewCommit> = self.kept.into_iter().map(into_commit).collect();
        if NEWEST_FIRST {
            // Stored oldest first like the other providers, so summaries read in the order the
            // work happened.
            commits.reverse();
        }
        within_document_budget(commits)
    }
}

/// The commits to store, oldest first: the newest that fit in [`MAX_COMMITS_DOCUMENT`].
fn within_document_budget(mut commits: Vec<NewCommit>) -> Vec<NewCommit> {
    let mut used = 2; // the document's brackets
    let mut first_kept = commits.len();
    for (i, commit) in commits.iter().enumerate().rev() {
        used += encoded_len(commit) + 1;
        if used > MAX_COMMITS_DOCUMENT {
            break;
        }
        first_kept = i;
    }
    commits.split_off(first_kept)
}

/// An upper bound of the length of `commit` in the stored document.
fn encoded_len(commit: &NewCommit) -> usize {
    // The keys, punctuation and a timestamp; what the strings add comes on top.
    const FIXED: usize = 120;
    let files: usize = [&commit.added, &commit.removed, &commit.modified]
        .into_iter()
        .flatten()
        .map(|f| json_string_len(f) + 1)
        .sum();
    FIXED
        + json_string_len(&commit.sha)
        + json_string_len(&commit.message)
        + json_string_len(&commit.author)
        + commit.url.as_deref().map_or(0, json_string_len)
        + files
}

/// An upper bound of `s`'s length as a JSON string: quotes, and escapes counted at their longest.
fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests;

/// A string from the payload, borrowed from the body unless it held escapes. serde borrows a
/// `Cow` only when it is a field's whole type, so options and lists of text need this wrapper.
#[derive(Deserialize, Default)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// The commit shape GitHub, GitLab and Gitea/Forgejo share in push payloads. Its strings borrow
/// from the body where they can: a push carries dozens of them.
#[derive(Deserialize)]
struct PayloadCommit<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
    #[serde(borrow)]
    timestamp: Option<Text<'a>>,
    #[serde(borrow)]
    url: Option<Text<'a>>,
    #[serde(borrow)]
    author: Option<PayloadAuthor<'a>>,
    #[serde(borrow)]
    added: Option<Vec<Text<'a>>>,
    #[serde(borrow)]
    removed: Option<Vec<Text<'a>>>,
    #[serde(borrow)]
    modified: Option<Vec<Text<'a>>>,
}

#[derive(Deserialize)]
struct PayloadAuthor<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
    /// GitHub and Gitea name the account; GitLab sends none, so its authors go by name.
    #[serde(borrow)]
    username: Option<Text<'a>>,
}

/// What GitHub, GitLab and Gitea/Forgejo say alike about a push, borrowed from the host's own
/// payload type: each host only names where its payload keeps these, and
/// [`HostPush::into_push`] checks and caps them the same way for all three.
struct HostPush<'p, 'a, const NEWEST_FIRST: bool> {
    git_ref: &'p str,
    repository: Option<&'p str>,
    before: Option<&'p str>,
    after: Option<&'p str>,
    flags: PushFlags,
    commits: Option<Listed<PayloadCommit<'a>, NEWEST_FIRST>>,
    /// The host's count, where it lists fewer commits than the push holds.
    total_commits: Option<u64>,
    /// Who pushed, the first present of these.
    pusher: &'p [Option<&'p str>],
    compare_url: Option<&'p str>,
    pushed_at: Option<DateTime<Utc>>,
}

/// The created/deleted/forced flags a host states about a push. Where it leaves one out, the
/// zero SHA tells whether the ref was created or deleted, and the push is not taken as forced.
#[derive(Default)]
struct PushFlags {
    created: Option<bool>,
    deleted: Option<bool>,
    forced: Option<bool>,
}

impl<const NEWEST_FIRST: bool> HostPush<'_, '_, NEWEST_FIRST> {
    /// The push to store, from `provider`'s delivery `delivery_id`.
    fn into_push(
        self,
        provider: Provider,
        delivery_id: Option<String>,
    ) -> Result<NewPush, WebhookError> {
        let git_ref = checked_ref(self.git_ref)?;
        let (ref_kind, ref_name) = split_ref(&git_ref);
        let repository = checked_repository(self.repository)?;
        let created = self
            .flags
            .created
            .unwrap_or_else(|| self.before.is_some_and(is_zero_sha));
        let deleted = self
            .flags
            .deleted
            .unwrap_or_else(|| self.after.is_some_and(is_zero_sha));
        let (commits, commit_count) = if deleted {
            (Vec::new(), 0)
        } else {
            let listed = self.commits.unwrap_or_default();
            let total = self
                .total_commits
                .map_or(listed.total, |n| n.max(listed.total));
            (
                listed.into_stored(PayloadCommit::into_new_commit),
                count(total),
            )
        };
        Ok(NewPush {
            provider,
            delivery_id,
            repository,
            git_ref,
            ref_kind,
            ref_name,
            before: commit_sha(self.before),
            after: commit_sha(self.after),
            created,
            deleted,
            forced: self.flags.forced.unwrap_or(false),
            pusher: person_name(self.pusher),
            commit_count,
            compare_url: url(self.compare_url),
            pushed_at: self.pushed_at,
            commits,
        })
    }
}

impl PayloadCommit<'_> {
    fn into_new_commit(self) -> NewCommit {
        let author = self.author.as_ref();
        NewCommit {
            sha: cap(&self.id, MAX_FIELD_LEN),
            message: clean_message(cap_parsed(
                self.message.unwrap_or_default(),
                MAX_MESSAGE_LEN,
            )),
            author: person_name(&[
                author.and_then(|a| a.username.as_deref()),
                author.and_then(|a| a.name.as_deref()),
            ]),
            timestamp: parse_timestamp(self.timestamp.as_deref()),
            url: url(self.url.as_deref()),
            added: file_list(self.added),
            removed: file_list(self.removed),
            modified: file_list(self.modified),
        }
    }
}
