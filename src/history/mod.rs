//! Asking the history, independent of HTTP: the validated [`PushQuery`] and the list, digest
//! and activity answers, each for one [`ProjectScope`], in the API's response shapes.
//!
//! Contact points: the public API's handlers (`http::api`, `http::history`) and any other
//! front end (the MCP tools) parse their parameters into a [`RawQuery`] and call [`list`],
//! [`digest`] or [`activity`]; all counting and searching is SQL behind [`Store`]; [`markdown`]
//! renders the same answers for `Accept: text/markdown`.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use poem_openapi::Object;
use sha2::{Digest as _, Sha256};

use crate::db::{
    DbError, DigestPush, GroupCount, Grouping, PageCursor, PageStart, ProjectScope, PushFilter,
    PushOrder, SearchTerm, Store,
};
use crate::domain::{NewCommit, RefKind};
use crate::http::api::{Pagination, PushItem, PushPage, time_param};
use crate::summarize::{DEFAULT_INPUT_BUDGET, Summarizer, SummaryInput, normalize_reply};

pub mod markdown;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;
/// The longest range a digest or an activity chart covers.
pub const MAX_RANGE_DAYS: i64 = 366;
/// `author` and `repository` values per request.
pub const MAX_VALUES: usize = 20;
/// The pushes a digest reads (newest first) for its themes and a model's input.
pub const DIGEST_READ: u32 = 10_000;
/// The push ids a digest lists.
pub const DIGEST_IDS: usize = 1_000;

/// Query parameters as they arrive, by the API's names; [`PushQuery::parse`] validates them.
#[derive(Debug, Clone, Default)]
pub struct RawQuery {
    pub q: Option<String>,
    pub branch: Option<String>,
    pub author: Vec<String>,
    pub repository: Vec<String>,
    pub ref_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub cursor: Option<String>,
    pub sort: Option<String>,
}

/// A parameter that is not valid; the message names it and says what would be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "a range covers at most 366 days: narrow `since` and `until` (or split it in several calls)"
    )]
    RangeTooLong,
}

impl QueryError {
    fn invalid(message: impl Into<String>) -> QueryError {
        QueryError::Invalid(message.into())
    }
}

/// What asking the history can fail with: the caller's mistake, or storage.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl HistoryError {
    /// The caller's mistake as a value, storage as the error: the shape `Store` work returns.
    pub fn split<T>(result: Result<T, HistoryError>) -> Result<Result<T, QueryError>, DbError> {
        match result {
            Ok(value) => Ok(Ok(value)),
            Err(HistoryError::Query(e)) => Ok(Err(e)),
            Err(HistoryError::Db(e)) => Err(e),
        }
    }
}

/// A validated list, digest or activity request.
#[derive(Debug, Clone)]
pub struct PushQuery {
    pub filter: PushFilter,
    pub limit: u32,
    pub offset: u64,
    pub cursor: Option<String>,
}

/// Splits a search into words (whitespace separates them; a trailing `*` makes a word a
/// prefix). Words without a letter or digit can never match a token and are dropped, unless
/// nothing else is left, when they make a search that finds nothing. A `q` of blanks alone is
/// no search, as an empty `since=` is no bound. The schema's length cap on `q` is the only
/// bound on the words: one that says what it refuses, where a word count would not.
pub fn parse_search(q: &str) -> Vec<SearchTerm> {
    // Control characters separate words too: a NUL would end the query early inside SQLite.
    let words: Vec<&str> = q
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let mut terms = Vec::new();
    for word in words {
        let stem = word.trim_end_matches('*');
        let (word, prefix) = if stem.is_empty() || stem.len() == word.len() {
            (word, false)
        } else {
            (stem, true)
        };
        terms.push(SearchTerm {
            word: word.to_owned(),
            prefix,
        });
    }
    let meaningful: Vec<SearchTerm> = terms
        .iter()
        .filter(|t| t.word.chars().any(char::is_alphanumeric))
        .cloned()
        .collect();
    if meaningful.is_empty() {
        terms
    } else {
        meaningful
    }
}

/// The distinct non-blank values of a repeatable parameter. A blank one is no filter, as an empty
/// `since=` is no bound; one longer than anything stored is kept, and matches nothing.
fn values(name: &str, raw: Vec<String>) -> Result<Vec<String>, QueryError> {
    if raw.len() > MAX_VALUES {
        return Err(QueryError::invalid(format!(
            "`{name}` can be given at most {MAX_VALUES} times"
        )));
    }
    let mut out = Vec::with_capacity(raw.len());
    for value in raw {
        let value = value.trim().to_owned();
        if !value.is_empty() && !out.contains(&value) {
            out.push(value);
        }
    }
    Ok(out)
}

impl PushQuery {
    /// Validates every parameter a list request may carry.
    pub fn parse(raw: RawQuery) -> Result<PushQuery, QueryError> {
        let limit = match raw.limit {
            None => DEFAULT_LIMIT,
            Some(n) if n < 0 => {
                return Err(QueryError::invalid("`limit` must be between 0 and 100"));
            }
            Some(n) => n.min(MAX_LIMIT),
        } as u32;
        let offset = match raw.offset {
            None => 0,
            Some(n) if n < 0 => return Err(QueryError::invalid("`offset` must be 0 or more")),
            Some(n) => n as u64,
        };
        let since = time_param("since", raw.since.as_deref()).map_err(QueryError::Invalid)?;
        let until = time_param("until", raw.until.as_deref()).map_err(QueryError::Invalid)?;
        if raw.cursor.is_some() && offset > 0 {
            return Err(QueryError::invalid(
                "`cursor` and `offset` cannot be used together: a cursor already says where the page starts",
            ));
        }
        let text = match raw.q.as_deref() {
            None => Vec::new(),
            Some(q) => parse_search(q),
        };
        let ref_kind = match raw.ref_type.as_deref() {
            None => None,
            Some("branch") => Some(RefKind::Branch),
            Some("tag") => Some(RefKind::Tag),
            Some(_) => return Err(QueryError::invalid("`refType` must be `branch` or `tag`")),
        };
        let order = match raw.sort.as_deref() {
            None | Some("newest") => PushOrder::Newest,
            Some("relevance") if !text.is_empty() => PushOrder::Relevance,
            Some("relevance") => {
                return Err(QueryError::invalid(
                    "`sort=relevance` ranks search results: give `q` too",
                ));
            }
            Some(_) => {
                return Err(QueryError::invalid(
                    "`sort` must be `newest` or `relevance`",
                ));
            }
        };
        if order == PushOrder::Relevance && raw.cursor.is_some() {
            return Err(QueryError::invalid(
                "`sort=relevance` pages by `offset`: a relevance order has no position a cursor could keep",
            ));
        }
        if let Some(branch) = &raw.branch
            && branch.len() > 1024
        {
            return Err(QueryError::invalid("`branch` must be at most 1024 bytes"));
        }
        Ok(PushQuery {
            filter: PushFilter {
                branch: raw.branch,
                since,
                until,
                text,
                authors: values("author", raw.author)?,
                repositories: values("repository", raw.repository)?,
                ref_kind,
                order,
            },
            limit,
            offset,
            cursor: raw.cursor,
        })
    }

    /// A range request (digest, activity): `since` is required, `until` is `now` when left
    /// out, and the two are at most [`MAX_RANGE_DAYS`] apart.
    pub fn parse_range(raw: RawQuery, now: DateTime<Utc>) -> Result<PushQuery, QueryError> {
        if raw.since.is_none() {
            return Err(QueryError::invalid(
                "`since` is required: the start of the range, such as 2024-01-01",
            ));
        }
        let mut query = PushQuery::parse(RawQuery {
            limit: None,
            offset: None,
            cursor: None,
            ..raw
        })?;
        let since = query.filter.since.expect("since was given");
        let until = *query.filter.until.get_or_insert(now);
        if until <= since {
            return Err(QueryError::invalid("`until` must be after `since`"));
        }
        if until - since > Duration::days(MAX_RANGE_DAYS) {
            return Err(QueryError::RangeTooLong);
        }
        query.filter.order = PushOrder::Newest;
        Ok(query)
    }
}

/// One page of the scope's pushes under the query.
pub fn list(
    store: &dyn Store,
    scope: &ProjectScope,
    query: &PushQuery,
) -> Result<PushPage, HistoryError> {
    let start = match query.cursor.as_deref() {
        None => PageStart::Offset(query.offset),
        Some(raw) => PageStart::After(
            PageCursor::parse(raw, scope, &query.filter)
                .map_err(|e| QueryError::invalid(e.to_string()))?,
        ),
    };
    let page = store.list_pushes(scope, &query.filter, query.limit, &start)?;
    Ok(PushPage {
        pushes: page.pushes.into_iter().map(PushItem::from).collect(),
        project: scope.project().to_string(),
        pagination: Pagination {
            limit: query.limit,
            offset: page.offset,
            total: page.total,
            next_cursor: page.next.map(|c| c.encode()),
        },
    })
}

#[derive(Debug, Clone, Object)]
pub struct AuthorCount {
    /// The pusher.
    pub author: String,
    pub pushes: u64,
    pub commits: u64,
}

#[derive(Debug, Clone, Object)]
pub struct BranchCount {
    pub branch: String,
    pub pushes: u64,
    pub commits: u64,
}

#[derive(Debug, Clone, Object)]
pub struct RepositoryCount {
    /// `owner/name`.
    pub repository: String,
    pub pushes: u64,
    pub commits: u64,
}

/// One summary of a whole range; every count is the database's.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct Digest {
    pub project: String,
    /// The range's start (inclusive), ISO 8601 UTC.
    pub since: String,
    /// The range's end (exclusive); the time of the request when `until` was left out.
    pub until: String,
    pub push_count: u64,
    /// Commits as the hosts counted them, listed or not.
    pub commit_count: u64,
    /// Per pusher, most pushes first.
    pub authors: Vec<AuthorCount>,
    pub branches: Vec<BranchCount>,
    pub repositories: Vec<RepositoryCount>,
    /// `- ` bullets, one per line.
    pub summary: String,
    /// `builtin`, or the name of the model that wrote `summary`.
    pub summary_source: String,
    /// The range's pushes, newest first: the newest 1,000 when there are more.
    pub push_ids: Vec<String>,
    /// True when `pushIds` lists only the newest 1,000.
    pub push_ids_truncated: bool,
}

/// A digest of the scope's pushes in the query's range. With a model (`summarizer` not
/// offline), the summary is the model's, from the pushes' own summaries, cached until a push
/// of the range changes; when the model fails, the builtin digest stands in.
pub fn digest(
    store: &dyn Store,
    scope: &ProjectScope,
    query: &PushQuery,
    summarizer: &dyn Summarizer,
    now: DateTime<Utc>,
) -> Result<Digest, HistoryError> {
    let filter = &query.filter;
    let counts = store.range_counts(scope, filter)?;
    let pushes = store.digest_pushes(scope, filter, DIGEST_READ)?;
    let (summary, source) = if summarizer.is_offline() || pushes.is_empty() {
        (builtin_digest(&counts, &pushes), "builtin".to_owned())
    } else {
        let key = range_key(filter);
        let fingerprint = fingerprint(&counts, &pushes);
        match store.cached_digest(scope, &key, &fingerprint)? {
            Some(cached) => cached,
            None => match model_digest(summarizer, scope, filter, &counts, &pushes) {
                Some(summary) => {
                    let source = summarizer.source().to_owned();
                    store.store_digest(scope, &key, &fingerprint, &summary, &source, now)?;
                    (summary, source)
                }
                None => (builtin_digest(&counts, &pushes), "builtin".to_owned()),
            },
        }
    };
    let push_ids: Vec<String> = pushes
        .iter()
        .take(DIGEST_IDS)
        .map(|p| p.id.clone())
        .collect();
    Ok(Digest {
        project: scope.project().to_string(),
        since: filter.since.map(crate::http::api::iso).unwrap_or_default(),
        until: filter.until.map(crate::http::api::iso).unwrap_or_default(),
        push_ids_truncated: counts.pushes > push_ids.len() as u64,
        push_ids,
        push_count: counts.pushes,
        commit_count: counts.commits,
        authors: counts
            .authors
            .iter()
            .map(|g| AuthorCount {
                author: g.key.clone(),
                pushes: g.pushes,
                commits: g.commits,
            })
            .collect(),
        branches: counts
            .branches
            .iter()
            .map(|g| BranchCount {
                branch: g.key.clone(),
                pushes: g.pushes,
                commits: g.commits,
            })
            .collect(),
        repositories: counts
            .repositories
            .iter()
            .map(|g| RepositoryCount {
                repository: g.key.clone(),
                pushes: g.pushes,
                commits: g.commits,
            })
            .collect(),
        summary,
        summary_source: source,
    })
}

/// What a cached digest is stored under: the filters of its range.
fn range_key(filter: &PushFilter) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"digest range v1\0");
    let mut field = |tag: u8, value: &str| {
        hash.update([tag]);
        hash.update((value.len() as u64).to_le_bytes());
        hash.update(value.as_bytes());
    };
    if let Some(branch) = &filter.branch {
        field(1, branch);
    }
    field(
        2,
        &filter
            .since
            .map(|t| t.timestamp_millis())
            .unwrap_or(0)
            .to_string(),
    );
    field(
        3,
        &filter
            .until
            .map(|t| t.timestamp_millis())
            .unwrap_or(0)
            .to_string(),
    );
    filter.each_extended_value(4, field);
    hash.finalize().into()
}

/// Changes whenever a push of the range arrives, goes or gets another summary.
fn fingerprint(counts: &crate::db::RangeCounts, pushes: &[DigestPush]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(counts.pushes.to_le_bytes());
    hash.update(counts.commits.to_le_bytes());
    for push in pushes {
        hash.update(push.id.as_bytes());
        hash.update((push.summary.len() as u64).to_le_bytes());
        hash.update(push.summary.as_bytes());
    }
    hash.finalize().into()
}

/// The model's digest, from the range's push summaries (newest first) within the input
/// budget; None when the model gave none (the caller falls back to the builtin digest).
fn model_digest(
    summarizer: &dyn Summarizer,
    scope: &ProjectScope,
    filter: &PushFilter,
    counts: &crate::db::RangeCounts,
    pushes: &[DigestPush],
) -> Option<String> {
    // The summarizers take a push: the range's pushes become its "commits", one per push.
    let mut used = 0;
    let mut items = Vec::new();
    for push in pushes {
        let line = format!(
            "{} {} on {} ({}): {}",
            day_key(push.pushed_at),
            push.pusher,
            push.branch,
            push.repository,
            push.summary.replace('\n', " ")
        );
        if used + line.len() > DEFAULT_INPUT_BUDGET && !items.is_empty() {
            break;
        }
        used += line.len();
        items.push(NewCommit {
            sha: push.id.clone(),
            message: line,
            author: push.pusher.clone(),
            timestamp: None,
            url: None,
            added: Vec::new(),
            removed: Vec::new(),
            modified: Vec::new(),
        });
    }
    let left_out = counts.pushes.saturating_sub(items.len() as u64);
    let range = format!(
        "digest {} to {}",
        filter.since.map(crate::http::api::iso).unwrap_or_default(),
        filter.until.map(crate::http::api::iso).unwrap_or_default()
    );
    let input = SummaryInput {
        repository: scope.project().as_str(),
        ref_kind: RefKind::Branch,
        ref_name: &range,
        pusher: "",
        created: false,
        deleted: false,
        forced: false,
        commit_count: items.len() as u32,
        commits: &items,
    };
    match summarizer.summarize(&input) {
        Ok(reply) => {
            let mut summary = normalize_reply(&reply)?;
            if left_out > 0 {
                summary.push_str(&format!(
                    "\n- ({left_out} older pushes were left out of the model's input)"
                ));
            }
            Some(summary)
        }
        Err(e) => {
            tracing::warn!(project = %scope.project(), error = %e, "the model gave no digest; the builtin digest stands in");
            None
        }
    }
}

/// A conventional-commit type (`feat`, `fix(api)!:` is `fix`), if the subject starts with one.
fn commit_type(subject: &str) -> Option<String> {
    let (head, _) = subject.split_once(':')?;
    let head = head.trim_end_matches('!');
    let kind = head.split('(').next()?.trim();
    (!kind.is_empty() && kind.len() <= 12 && kind.chars().all(|c| c.is_ascii_alphabetic()))
        .then(|| kind.to_ascii_lowercase())
}

const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "with", "from", "into", "that", "this", "when", "then", "than", "was",
    "were", "are", "not", "but", "all", "add", "adds", "added", "fix", "fixes", "fixed", "feat",
    "use", "uses", "make", "makes", "update", "updates", "updated", "remove", "removed", "merge",
    "branch", "pull", "request", "commit", "commits", "push", "pushed", "its", "has", "have",
    "new", "more", "some", "also", "chore", "docs", "refactor", "test", "tests", "main",
];

/// Words in subjects, lowercased, without stop words; each word once per push.
fn push_words(push: &DigestPush) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for subject in &push.subjects {
        let body = match subject.split_once(':') {
            Some((head, rest)) if commit_type(subject).is_some() && !head.is_empty() => rest,
            _ => subject.as_str(),
        };
        for word in body.split(|c: char| !c.is_alphanumeric()) {
            let word = word.to_lowercase();
            if word.chars().count() >= 3
                && !word.chars().all(|c| c.is_ascii_digit())
                && !STOP_WORDS.contains(&word.as_str())
                && !words.contains(&word)
            {
                words.push(word);
            }
        }
    }
    words
}

/// How often each theme or word occurs.
type Tally = HashMap<String, u64>;

fn top(counts: Tally, n: usize, min: u64) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().filter(|(_, c)| *c >= min).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

fn join_counts(items: &[(String, u64)]) -> String {
    items
        .iter()
        .map(|(k, n)| format!("{k} ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The digest without a model: the range's totals, its themes (conventional-commit types and
/// words that recur across pushes), and one line per author.
pub fn builtin_digest(counts: &crate::db::RangeCounts, pushes: &[DigestPush]) -> String {
    if counts.pushes == 0 {
        return "- No pushes in this range.".to_owned();
    }
    let mut lines = vec![format!(
        "- {} with {} by {} on {}{}",
        plural(counts.pushes, "push", "pushes"),
        plural(counts.commits, "commit", "commits"),
        plural(counts.authors.len() as u64, "author", "authors"),
        plural(counts.branches.len() as u64, "branch", "branches"),
        if counts.repositories.len() > 1 {
            format!(" in {} repositories", counts.repositories.len())
        } else {
            String::new()
        }
    )];
    let mut kinds: HashMap<String, u64> = HashMap::new();
    let mut words: HashMap<String, u64> = HashMap::new();
    let mut by_author: HashMap<&str, (Tally, Tally)> = HashMap::new();
    for push in pushes {
        let entry = by_author.entry(push.pusher.as_str()).or_default();
        for kind in push.subjects.iter().filter_map(|s| commit_type(s)) {
            *kinds.entry(kind.clone()).or_default() += 1;
            *entry.0.entry(kind).or_default() += 1;
        }
        for word in push_words(push) {
            *words.entry(word.clone()).or_default() += 1;
            *entry.1.entry(word).or_default() += 1;
        }
    }
    let kinds = top(kinds, 6, 1);
    if !kinds.is_empty() {
        lines.push(format!("- Themes: {}", join_counts(&kinds)));
    }
    let words = top(words, 6, 2);
    if !words.is_empty() {
        lines.push(format!("- Recurring words: {}", join_counts(&words)));
    }
    for author in counts.authors.iter().take(crate::summarize::MAX_BULLETS) {
        let mut line = format!(
            "- {}: {}, {}",
            author.key,
            plural(author.pushes, "push", "pushes"),
            plural(author.commits, "commit", "commits")
        );
        if let Some((kinds, words)) = by_author.remove(author.key.as_str()) {
            let kinds = top(kinds, 3, 1);
            if !kinds.is_empty() {
                line.push_str(&format!("; {}", join_counts(&kinds)));
            }
            let words: Vec<String> = top(words, 3, 1).into_iter().map(|(w, _)| w).collect();
            if !words.is_empty() {
                line.push_str(&format!("; {}", words.join(", ")));
            }
        }
        lines.push(line);
    }
    if counts.authors.len() > crate::summarize::MAX_BULLETS {
        lines.push(format!(
            "- and {} more",
            plural(
                (counts.authors.len() - crate::summarize::MAX_BULLETS) as u64,
                "author",
                "authors"
            )
        ));
    }
    if (pushes.len() as u64) < counts.pushes {
        lines.push(format!(
            "- (themes from the newest {} pushes)",
            pushes.len()
        ));
    }
    lines.join("\n")
}

/// The UTC date of a day number (days since 1970-01-01).
fn date_of_day(day: i64) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(Duration::days(day)))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn day_key(ms: i64) -> String {
    date_of_day(ms.div_euclid(86_400_000))
}

/// How `activity` groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum GroupBy {
    Day,
    Week,
    Author,
    Branch,
    Repository,
}

impl GroupBy {
    /// `groupBy` as text, for front ends whose arguments arrive as strings (MCP tool calls).
    pub fn parse(raw: Option<&str>) -> Result<GroupBy, QueryError> {
        Ok(match raw {
            None | Some("day") => GroupBy::Day,
            Some("week") => GroupBy::Week,
            Some("author") => GroupBy::Author,
            Some("branch") => GroupBy::Branch,
            Some("repository") => GroupBy::Repository,
            Some(_) => {
                return Err(QueryError::invalid(
                    "`groupBy` must be `day`, `week`, `author`, `branch` or `repository`",
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Week => "week",
            GroupBy::Author => "author",
            GroupBy::Branch => "branch",
            GroupBy::Repository => "repository",
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct Bucket {
    /// A UTC date (`day`; for `week`, the week's Monday), or the author, branch or repository.
    pub key: String,
    pub pushes: u64,
    pub commits: u64,
}

/// Pushes and commits per group over a range.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct Activity {
    pub project: String,
    /// `day`, `week`, `author`, `branch` or `repository`.
    pub group_by: String,
    pub since: String,
    pub until: String,
    /// Days and weeks in time order, every one of the range (empty ones with zeros); names
    /// most pushes first.
    pub buckets: Vec<Bucket>,
}

/// The activity of the scope's pushes in the query's range.
pub fn activity(
    store: &dyn Store,
    scope: &ProjectScope,
    query: &PushQuery,
    by: GroupBy,
) -> Result<Activity, HistoryError> {
    let filter = &query.filter;
    let grouping = match by {
        GroupBy::Day => Grouping::Day,
        GroupBy::Week => Grouping::Week,
        GroupBy::Author => Grouping::Author,
        GroupBy::Branch => Grouping::Branch,
        GroupBy::Repository => Grouping::Repository,
    };
    let groups = store.activity(scope, filter, grouping)?;
    let buckets = match by {
        GroupBy::Day | GroupBy::Week => {
            let step = if by == GroupBy::Day { 1 } else { 7 };
            let first = |ms: i64| {
                let day = ms.div_euclid(86_400_000);
                if by == GroupBy::Week {
                    day - (day + 3).rem_euclid(7)
                } else {
                    day
                }
            };
            let lo = first(filter.since.map_or(0, |t| t.timestamp_millis()));
            // `until` is exclusive: its last day is the one before it starts.
            let hi = first(filter.until.map_or(0, |t| t.timestamp_millis()) - 1);
            let found: HashMap<i64, &GroupCount> = groups
                .iter()
                .filter_map(|g| g.key.parse::<i64>().ok().map(|d| (d, g)))
                .collect();
            let mut out = Vec::new();
            let mut day = lo;
            while day <= hi {
                let (pushes, commits) = found.get(&day).map_or((0, 0), |g| (g.pushes, g.commits));
                out.push(Bucket {
                    key: date_of_day(day),
                    pushes,
                    commits,
                });
                day += step;
            }
            out
        }
        _ => groups
            .into_iter()
            .map(|g| Bucket {
                key: g.key,
                pushes: g.pushes,
                commits: g.commits,
            })
            .collect(),
    };
    Ok(Activity {
        project: scope.project().to_string(),
        group_by: by.as_str().to_owned(),
        since: filter.since.map(crate::http::api::iso).unwrap_or_default(),
        until: filter.until.map(crate::http::api::iso).unwrap_or_default(),
        buckets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_become_terms_and_a_trailing_star_a_prefix() {
        let terms = parse_search("auth*  token \"x\" -");
        assert_eq!(
            terms,
            vec![
                SearchTerm {
                    word: "auth".into(),
                    prefix: true
                },
                SearchTerm {
                    word: "token".into(),
                    prefix: false
                },
                SearchTerm {
                    word: "\"x\"".into(),
                    prefix: false
                },
            ]
        );
        assert_eq!(parse_search("- :").len(), 2);
        assert!(parse_search("   ").is_empty(), "blanks alone are no search");
    }

    #[test]
    fn conventional_commit_types_are_read_from_subjects() {
        assert_eq!(commit_type("feat(api)!: x").as_deref(), Some("feat"));
        assert_eq!(commit_type("Fix: y").as_deref(), Some("fix"));
        assert_eq!(commit_type("see http://x: y"), None);
        assert_eq!(commit_type("no colon"), None);
    }

    #[test]
    fn a_range_longer_than_366_days_is_refused() {
        let now = Utc::now();
        let raw = RawQuery {
            since: Some("2024-01-01".into()),
            until: Some("2025-01-02T00:00:01Z".into()),
            ..RawQuery::default()
        };
        assert_eq!(
            PushQuery::parse_range(raw, now).unwrap_err(),
            QueryError::RangeTooLong
        );
        let raw = RawQuery {
            since: Some("2024-01-01".into()),
            until: Some("2025-01-01".into()),
            ..RawQuery::default()
        };
        assert!(PushQuery::parse_range(raw, now).is_ok());
    }
}
