//! SQL for pushes and their commits: insert (inside the writer's transaction), list, get one.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{DbError, ProjectScope, from_millis, to_millis};
use crate::domain::{NewCommit, NewPush, Push, RefKind, SummaryStatus};
use crate::summarize::BuiltinSummarizer;

/// A push with everything decided at ingest: its id, first summary and status, and its commits
/// already encoded as the document stored beside it, so the single writer thread only binds
/// values.
#[derive(Debug, Clone)]
pub struct PreparedPush {
    pub public_id: String,
    pub push: NewPush,
    pub summary: String,
    pub status: SummaryStatus,
    pub received_at: DateTime<Utc>,
    commits_document: String,
}

impl PreparedPush {
    pub fn new(
        public_id: String,
        push: NewPush,
        summary: String,
        status: SummaryStatus,
        received_at: DateTime<Utc>,
    ) -> PreparedPush {
        PreparedPush {
            commits_document: encode_commits(&push.commits),
            public_id,
            push,
            summary,
            status,
            received_at,
        }
    }
}

/// One commit in a push's stored document (`push_commits.commits`, a JSON array).
#[derive(Serialize, Deserialize)]
struct StoredCommit<'a> {
    #[serde(borrow)]
    sha: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(borrow)]
    author: Cow<'a, str>,
    /// Unix milliseconds, like every stored time.
    timestamp: Option<i64>,
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
    added: Cow<'a, [String]>,
    removed: Cow<'a, [String]>,
    modified: Cow<'a, [String]>,
}

/// Encodes commits as their stored document, a JSON array of [`StoredCommit`].
fn encode_commits(commits: &[NewCommit]) -> String {
    let stored: Vec<StoredCommit<'_>> = commits
        .iter()
        .map(|c| StoredCommit {
            sha: Cow::Borrowed(&c.sha),
            message: Cow::Borrowed(&c.message),
            author: Cow::Borrowed(&c.author),
            timestamp: c.timestamp.map(to_millis),
            url: c.url.as_deref().map(Cow::Borrowed),
            added: Cow::Borrowed(&c.added),
            removed: Cow::Borrowed(&c.removed),
            modified: Cow::Borrowed(&c.modified),
        })
        .collect();
    // Only strings, numbers and arrays: serializing them cannot fail.
    serde_json::to_string(&stored).expect("a commits document always serializes")
}

fn decode_commits(document: &str) -> Result<Vec<NewCommit>, DbError> {
    let stored: Vec<StoredCommit<'_>> =
        serde_json::from_str(document).map_err(DbError::CorruptCommits)?;
    Ok(stored
        .into_iter()
        .map(|c| NewCommit {
            sha: c.sha.into_owned(),
            message: c.message.into_owned(),
            author: c.author.into_owned(),
            timestamp: c.timestamp.map(from_millis),
            url: c.url.map(Cow::into_owned),
            added: c.added.into_owned(),
            removed: c.removed.into_owned(),
            modified: c.modified.into_owned(),
        })
        .collect())
}

/// What inserting one push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New(String),
    /// The delivery id was seen before; carries the stored push's id.
    Duplicate(String),
}

impl Inserted {
    pub fn public_id(&self) -> &str {
        match self {
            Inserted::New(id) | Inserted::Duplicate(id) => id,
        }
    }
}

/// Inserts a push and its commits. Call inside a transaction so the pair is all or nothing.
pub fn insert(conn: &Connection, project_id: i64, p: &PreparedPush) -> Result<Inserted, DbError> {
    let push = &p.push;
    let received = to_millis(p.received_at);
    if let Some(stored) = same_ref_change(conn, project_id, p)? {
        return Ok(Inserted::Duplicate(stored));
    }
    let pushed = push.pushed_at.map(to_millis).unwrap_or(received);
    conn.prepare_cached(
        "INSERT INTO pushes (public_id, project_id, provider, delivery_id, repository, git_ref,
            ref_type, branch, before_sha, after_sha, created, deleted, forced, pusher,
            commit_count, commits_truncated, compare_url, pushed_at, received_at, summary,
            summary_status, summary_source, next_attempt_at, summarized_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22, ?23, ?24)
         ON CONFLICT (project_id, delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING",
    )
    .map_err(map_fk)?
    .execute(params![
        p.public_id,
        project_id,
        push.provider,
        push.delivery_id,
        push.repository,
        push.git_ref,
        push.ref_kind,
        push.ref_name,
        push.before,
        push.after,
        push.created,
        push.deleted,
        push.forced,
        push.pusher,
        push.commit_count,
        push.commits_truncated(),
        push.compare_url,
        pushed,
        received,
        p.summary,
        p.status,
        BuiltinSummarizer::SOURCE,
        (p.status == SummaryStatus::Pending).then_some(received),
        (p.status != SummaryStatus::Pending).then_some(received),
    ])
    .map_err(map_fk)?;
    // A redelivery hits the unique delivery index and inserts nothing: answer with the stored id.
    if conn.changes() == 0 {
        let existing: String = conn
            .prepare_cached(
                "SELECT public_id FROM pushes WHERE project_id = ?1 AND delivery_id = ?2",
            )?
            .query_row(params![project_id, push.delivery_id], |r| r.get(0))?;
        return Ok(Inserted::Duplicate(existing));
    }
    // Every push gets its commits document, an empty one too: its search entry is written
    // once, when the document arrives (migration 12).
    conn.prepare_cached("INSERT INTO push_commits (push_id, commits) VALUES (?1, ?2)")?
        .execute(params![conn.last_insert_rowid(), p.commits_document])?;
    Ok(Inserted::New(p.public_id.clone()))
}

/// How long a ref change is remembered for replay detection.
pub const REPLAY_WINDOW: chrono::Duration = chrono::Duration::days(1);

/// The stored push this one repeats, if any: the same project, repository, ref, `before` and
/// `after`, received within [`REPLAY_WINDOW`]. Git moves a ref from `before` to `after` once;
/// a second delivery of that change (a captured GitHub delivery replayed under a new delivery
/// id, a relabelled provider) is the same change. The one legitimate repeat is a ref that came
/// back: A to B, then B to A (a force-push or a delete and re-create), then A to B again; so a
/// match does not count when a push stored after it left the ref at this push's `before`.
/// Pushes without both shas are never matched. Runs in the writer's transaction, so two
/// concurrent replays cannot both be stored.
fn same_ref_change(
    conn: &Connection,
    project_id: i64,
    p: &PreparedPush,
) -> Result<Option<String>, DbError> {
    let push = &p.push;
    let (Some(before), Some(after)) = (&push.before, &push.after) else {
        return Ok(None);
    };
    let since = to_millis(p.received_at - REPLAY_WINDOW);
    let matched: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, public_id FROM pushes INDEXED BY pushes_ref_change
             WHERE project_id = ?1 AND repository = ?2 AND git_ref = ?3 AND after_sha = ?4
               AND before_sha = ?5 AND received_at >= ?6
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(
            params![
                project_id,
                push.repository,
                push.git_ref,
                after,
                before,
                since
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((id, public_id)) = matched else {
        return Ok(None);
    };
    let came_back = conn
        .prepare_cached(
            "SELECT 1 FROM pushes INDEXED BY pushes_ref_change
             WHERE project_id = ?1 AND repository = ?2 AND git_ref = ?3 AND after_sha = ?4
               AND id > ?5
             LIMIT 1",
        )?
        .query_row(
            params![project_id, push.repository, push.git_ref, before, id],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    Ok((!came_back).then_some(public_id))
}

/// A push for a project deleted a moment ago hits the foreign key: report it as not found.
fn map_fk(e: rusqlite::Error) -> DbError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            DbError::NotFound
        }
        _ => e.into(),
    }
}

/// Which pushes a list request wants.
#[derive(Debug, Clone, Default)]
pub struct PushFilter {
    pub branch: Option<String>,
    /// Pushed at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Pushed before this time (exclusive).
    pub until: Option<DateTime<Utc>>,
    /// Full-text search: every term must match (summaries, messages, branch, authors).
    pub text: Vec<SearchTerm>,
    /// Pushed by, or holding a commit by, any of these (case-insensitive).
    pub authors: Vec<String>,
    /// In any of these repositories (`owner/name`).
    pub repositories: Vec<String>,
    pub ref_kind: Option<RefKind>,
    pub order: PushOrder,
}

impl PushFilter {
    /// True when the filter needs more than the day counters and page indexes of `list`.
    pub(super) fn is_extended(&self) -> bool {
        !self.text.is_empty()
            || !self.authors.is_empty()
            || !self.repositories.is_empty()
            || self.ref_kind.is_some()
            || self.order != PushOrder::Newest
    }

    /// Hands the values of the search, author, repository and ref-type filters to `field`, each
    /// with a tag of its own numbered from `first_tag` (a prefix term, a whole word, an author
    /// lowercased, a repository, the ref type): what a cursor and a cached digest are keyed on.
    pub fn each_extended_value(&self, first_tag: u8, mut field: impl FnMut(u8, &str)) {
        for term in &self.text {
            let tag = if term.prefix {
                first_tag
            } else {
                first_tag + 1
            };
            field(tag, &term.word);
        }
        for author in &self.authors {
            field(first_tag + 2, &author.to_lowercase());
        }
        for repository in &self.repositories {
            field(first_tag + 3, repository);
        }
        if let Some(kind) = self.ref_kind {
            field(first_tag + 4, kind.as_str());
        }
    }
}

/// One word of a search: matched as itself (stemmed), or as a prefix of words (`auth*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm {
    pub word: String,
    pub prefix: bool,
}

/// The order of a page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PushOrder {
    #[default]
    Newest,
    /// Best search match first (bm25); paged by offset only.
    Relevance,
}

/// Where a page starts: after skipping this many matching pushes, or right after the push a
/// [`PageCursor`] points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    Offset(u64),
    After(PageCursor),
}

/// One page of pushes, newest first.
#[derive(Debug, Clone)]
pub struct PushPage {
    pub pushes: Vec<Push>,
    /// How many pushes match the filters in all.
    pub total: u64,
    /// How many matching pushes come before this page (for a cursor: at the time of the read).
    pub offset: u64,
    /// Where the next page starts; None on the last page (or when the page size is 0).
    pub next: Option<PageCursor>,
}

/// The position of a push in the newest-first order (its `pushed_at` and row id, which together
/// are unique and never change), tied to the project and filters it was made for by a tag that
/// hashes them with the position, so a cursor that was cut, altered or made for other filters is
/// refused. (Not a secret: a forged cursor can only point elsewhere in the caller's own project.)
/// Opaque to clients: [`PageCursor::encode`] and [`PageCursor::parse`] are its only forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    pub(super) pushed_at: i64,
    pub(super) id: i64,
    tag: [u8; 8],
}

/// Why a `cursor` parameter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("`cursor` is not a cursor this server made: pass `pagination.nextCursor` as it is")]
    Malformed,
    #[error(
        "`cursor` was made for other filters (`q`, `branch`, `author`, `repository`, `refType`, `since`, `until`) or another project, or was altered: repeat the filters of the first page, or start again without a cursor"
    )]
    OtherFilters,
}

const CURSOR_VERSION: u8 = 1;

impl PageCursor {
    /// The tag of a position within the project and filters a cursor belongs to.
    fn tag(scope: &ProjectScope, filter: &PushFilter, pushed_at: i64, id: i64) -> [u8; 8] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"git-push-tracker cursor v1\0");
        hash.update(scope.id().to_le_bytes());
        match &filter.branch {
            Some(branch) => {
                hash.update([1]);
                hash.update((branch.len() as u64).to_le_bytes());
                hash.update(branch.as_bytes());
            }
            None => hash.update([0]),
        }
        for bound in [filter.since, filter.until] {
            match bound {
                Some(t) => {
                    hash.update([1]);
                    hash.update(to_millis(t).to_le_bytes());
                }
                None => hash.update([0]),
            }
        }
        // Only filters that are set are hashed, so cursors made before these filters existed
        // still read back.
        if filter.is_extended() {
            filter.each_extended_value(2, |tag, value| {
                hash.update([tag]);
                hash.update((value.len() as u64).to_le_bytes());
                hash.update(value.as_bytes());
            });
        }
        hash.update(pushed_at.to_le_bytes());
        hash.update(id.to_le_bytes());
        let digest = hash.finalize();
        let mut out = [0; 8];
        out.copy_from_slice(&digest[..8]);
        out
    }

    pub(super) fn new(
        scope: &ProjectScope,
        filter: &PushFilter,
        pushed_at: i64,
        id: i64,
    ) -> PageCursor {
        PageCursor {
            pushed_at,
            id,
            tag: PageCursor::tag(scope, filter, pushed_at, id),
        }
    }

    /// The cursor as clients see it: URL-safe base64, no padding.
    pub fn encode(&self) -> String {
        use base64::Engine;
        let mut bytes = Vec::with_capacity(25);
        bytes.push(CURSOR_VERSION);
        bytes.extend_from_slice(&self.pushed_at.to_be_bytes());
        bytes.extend_from_slice(&self.id.to_be_bytes());
        bytes.extend_from_slice(&self.tag);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a cursor back, refusing one made for another project or other filters.
    pub fn parse(
        raw: &str,
        scope: &ProjectScope,
        filter: &PushFilter,
    ) -> Result<PageCursor, CursorError> {
        use base64::Engine;
        if raw.len() > 64 {
            return Err(CursorError::Malformed);
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| CursorError::Malformed)?;
        if bytes.len() != 25 || bytes[0] != CURSOR_VERSION {
            return Err(CursorError::Malformed);
        }
        let word = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            b
        };
        let cursor = PageCursor {
            pushed_at: i64::from_be_bytes(word(1)),
            id: i64::from_be_bytes(word(9)),
            tag: word(17),
        };
        if cursor.tag != PageCursor::tag(scope, filter, cursor.pushed_at, cursor.id) {
            return Err(CursorError::OtherFilters);
        }
        Ok(cursor)
    }
}

pub(crate) const PUSH_COLUMNS: &str = "p.public_id, p.provider, p.delivery_id, p.repository,
    p.git_ref, p.ref_type, p.branch, p.before_sha, p.after_sha, p.created, p.deleted, p.forced,
    p.pusher, p.commit_count, p.commits_truncated, p.compare_url, p.pushed_at, p.received_at,
    p.summary, p.summary_status, p.summary_source, p.attempts, p.last_error,
    COALESCE(p.summarized_at, p.received_at)";

/// Maps the [`PUSH_COLUMNS`] that start at column `base` of a row.
pub(crate) fn push_from_row(row: &Row<'_>, base: usize, project: &str) -> rusqlite::Result<Push> {
    let col = |i: usize| base + i;
    Ok(Push {
        id: row.get(col(0))?,
        project: project.to_owned(),
        provider: row.get(col(1))?,
        delivery_id: row.get(col(2))?,
        repository: row.get(col(3))?,
        git_ref: row.get(col(4))?,
        ref_kind: row.get(col(5))?,
        ref_name: row.get(col(6))?,
        before: row.get(col(7))?,
        after: row.get(col(8))?,
        created: row.get(col(9))?,
        deleted: row.get(col(10))?,
        forced: row.get(col(11))?,
        pusher: row.get(col(12))?,
        commit_count: row.get(col(13))?,
        commits_truncated: row.get(col(14))?,
        compare_url: row.get(col(15))?,
        pushed_at: from_millis(row.get(col(16))?),
        received_at: from_millis(row.get(col(17))?),
        summary: row.get(col(18))?,
        summary_status: row.get(col(19))?,
        summary_source: row.get(col(20))?,
        attempts: row.get(col(21))?,
        last_error: row.get(col(22))?,
        updated_at: from_millis(row.get(col(23))?),
    })
}

const DAY_MS: i64 = 86_400_000;

/// The UTC day a time in Unix milliseconds falls in, as the day counters number it.
fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The first day that starts at or after `ms`.
fn first_day_from(ms: i64) -> i64 {
    day_of(ms) + i64::from(ms.rem_euclid(DAY_MS) != 0)
}

/// Below this many pushes, an offset is skipped by SQLite itself: cheaper than asking the
/// day counters where it falls.
const DIRECT_OFFSET: u64 = 2_000;

/// One level of the push counters (migrations 6 and 10): the size of its buckets, its tables
/// (all branches, one branch) and their bucket column.
struct Level {
    size: i64,
    all: &'static str,
    branch: &'static str,
    column: &'static str,
}

const HOUR_MS: i64 = 3_600_000;
const DAYS_PER_BLOCK: i64 = 32;

/// Coarsest first; each level's buckets are whole multiples of the next one's.
const LEVELS: [Level; 3] = [
    Level {
        size: DAYS_PER_BLOCK * DAY_MS,
        all: "push_blocks",
        branch: "push_branch_blocks",
        column: "bucket",
    },
    Level {
        size: DAY_MS,
        all: "push_days",
        branch: "push_branch_days",
        column: "day",
    },
    Level {
        size: HOUR_MS,
        all: "push_hours",
        branch: "push_branch_hours",
        column: "bucket",
    },
];

/// The levels finer than a day.
const WITHIN_A_DAY: &[Level] = LEVELS.split_at(2).1;

/// Counts one project's pushes (of one branch) in a window of time from the counters of whole
/// 32-day blocks, days and hours, and the `pushes` indexes only within the hour at each edge,
/// all in one statement.
struct Counter<'c> {
    conn: &'c Connection,
    project_id: i64,
    branch: Option<&'c str>,
}

/// The terms of a count being built: SQL scalar subqueries to add up, and their parameters.
#[derive(Default)]
struct Terms {
    sql: Vec<String>,
    params: Vec<rusqlite::types::Value>,
}

impl Counter<'_> {
    /// Pushes with `lo <= pushed_at < hi`, or at or after `lo` without `hi`.
    fn count(&self, lo: i64, hi: Option<i64>, levels: &[Level]) -> Result<i64, DbError> {
        let mut terms = Terms::default();
        self.terms(lo, hi, levels, &mut terms);
        if terms.sql.is_empty() {
            return Ok(0);
        }
        let sql = format!("SELECT {}", terms.sql.join(" + "));
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(terms.params), |r| r.get(0))?)
    }

    /// Adds the terms for `lo <= pushed_at < hi`: the whole buckets of the coarsest of
    /// `levels` that fit, the edges on either side from the finer ones, and rows one by one
    /// below the finest. Without `hi`, every bucket from the first whole one on is summed at
    /// once, so an open window has one edge.
    fn terms(&self, lo: i64, hi: Option<i64>, levels: &[Level], terms: &mut Terms) {
        use rusqlite::types::Value;
        if hi.is_some_and(|hi| lo >= hi) {
            return;
        }
        let scope = |terms: &mut Terms| {
            terms.params.push(Value::Integer(self.project_id));
            if let Some(branch) = self.branch {
                terms.params.push(Value::Text(branch.to_owned()));
            }
        };
        let branch = if self.branch.is_some() {
            " AND branch = ?"
        } else {
            ""
        };
        let Some((level, finer)) = levels.split_first() else {
            let index = if self.branch.is_some() {
                "pushes_project_branch_time"
            } else {
                "pushes_project_time"
            };
            let below = if hi.is_some() {
                " AND pushed_at < ?"
            } else {
                ""
            };
            terms.sql.push(format!(
                "(SELECT count(*) FROM pushes INDEXED BY {index} WHERE project_id = ?{branch} \
                 AND pushed_at >= ?{below})"
            ));
            scope(terms);
            terms.params.push(Value::Integer(lo));
            terms.params.extend(hi.map(Value::Integer));
            return;
        };
        let size = level.size;
        let first = lo.div_euclid(size) + i64::from(lo.rem_euclid(size) != 0);
        let end = hi.map(|hi| hi.div_euclid(size));
        if end.is_some_and(|end| first >= end) {
            return self.terms(lo, hi, finer, terms);
        }
        self.terms(lo, Some(first * size), finer, terms);
        let (table, column) = match self.branch {
            None => (level.all, level.column),
            Some(_) => (level.branch, level.column),
        };
        let below = if end.is_some() {
            format!(" AND {column} < ?")
        } else {
            String::new()
        };
        terms.sql.push(format!(
            "(SELECT COALESCE(SUM(n), 0) FROM {table} WHERE project_id = ?{branch} \
             AND {column} >= ?{below})"
        ));
        scope(terms);
        terms.params.push(Value::Integer(first));
        terms.params.extend(end.map(Value::Integer));
        if let Some(end) = end {
            self.terms(end * size, hi, finer, terms);
        }
    }

    /// Every push of the project (or branch), from the per-branch counters.
    fn all(&self) -> Result<i64, DbError> {
        Ok(match self.branch {
            None => self
                .conn
                .prepare_cached(
                    "SELECT COALESCE(SUM(n), 0) FROM push_counts WHERE project_id = ?1",
                )?
                .query_row([self.project_id], |r| r.get(0))?,
            Some(branch) => self
                .conn
                .prepare_cached("SELECT n FROM push_counts WHERE project_id = ?1 AND branch = ?2")?
                .query_row(params![self.project_id, branch], |r| r.get(0))
                .optional()?
                .unwrap_or(0),
        })
    }

    /// Pushes with `lo <= pushed_at < hi`, either bound open.
    fn between(&self, lo: Option<i64>, hi: Option<i64>) -> Result<i64, DbError> {
        match (lo, hi) {
            (None, None) => self.all(),
            // Everything before `hi` is everything but what is at or after it: the same cost as
            // a `since` count, and no walk over the history's start.
            (None, Some(hi)) => Ok(self.all()? - self.between(Some(hi), None)?),
            (Some(lo), hi) => self.count(lo, hi, &LEVELS),
        }
    }

    /// Turns "skip `offset` pushes below `hi`" into "skip `rest` pushes below `new_hi`", with
    /// `rest` at most the pushes of one hour (of one day in the partial days at the window's
    /// edges): the counters are walked newest first instead of the pushes.
    fn locate(
        &self,
        lo: Option<i64>,
        hi: Option<i64>,
        offset: u64,
    ) -> Result<(Option<i64>, u64), DbError> {
        if offset < DIRECT_OFFSET {
            return Ok((hi, offset));
        }
        let first_whole = lo.map_or(i64::MIN, first_day_from);
        let end_whole = hi.map_or(i64::MAX, day_of);
        if first_whole >= end_whole {
            return Ok((hi, offset));
        }
        let mut rest = offset as i64;
        // The partial day at the top.
        if let Some(hi) = hi {
            let top = self.count(end_whole * DAY_MS, Some(hi), WITHIN_A_DAY)?;
            if rest < top {
                return Ok((Some(hi), rest as u64));
            }
            rest -= top;
        }
        // Whole days newest first: those above the first whole 32-day block from the day
        // counters, whole blocks from the block counters (the days of the one the offset falls
        // in from the day counters), then the days below the last whole block.
        let (blocks_from, blocks_to) = (
            first_whole
                .saturating_add(DAYS_PER_BLOCK - 1)
                .div_euclid(DAYS_PER_BLOCK),
            end_whole.div_euclid(DAYS_PER_BLOCK),
        );
        let found = if blocks_from < blocks_to {
            let (above, below) = (blocks_to * DAYS_PER_BLOCK, blocks_from * DAYS_PER_BLOCK);
            match self.walk_days(above, end_whole, &mut rest)? {
                Some(day) => Some(day),
                None => match self.walk_blocks(blocks_from, blocks_to, &mut rest)? {
                    Some(block) => {
                        let days = block * DAYS_PER_BLOCK;
                        self.walk_days(days, days + DAYS_PER_BLOCK, &mut rest)?
                    }
                    None => self.walk_days(first_whole, below, &mut rest)?,
                },
            }
        } else {
            self.walk_days(first_whole, end_whole, &mut rest)?
        };
        if let Some(day) = found {
            // Within the day, the hour counters leave at most an hour's pushes to skip one by one.
            let hours_per_day = DAY_MS / HOUR_MS;
            let mut within = rest;
            let hours = (day * hours_per_day, (day + 1) * hours_per_day);
            if let Some(hour) = self.walk_hours(hours.0, hours.1, &mut within)? {
                return Ok((Some((hour + 1) * HOUR_MS), within as u64));
            }
            return Ok((Some((day + 1) * DAY_MS), rest as u64));
        }
        // What is left falls in the partial day at the bottom, or past the end.
        let bottom = if first_whole == i64::MIN {
            i64::MIN
        } else {
            first_whole * DAY_MS
        };
        Ok((Some(bottom), rest as u64))
    }

    /// Walks the day counters of `[from, to)` newest first, taking each day's pushes off `rest`;
    /// the day `rest` falls in, if any.
    fn walk_days(&self, from: i64, to: i64, rest: &mut i64) -> Result<Option<i64>, DbError> {
        self.walk(&LEVELS[1], from, to, rest)
    }

    /// [`Counter::walk_days`] over hours.
    fn walk_hours(&self, from: i64, to: i64, rest: &mut i64) -> Result<Option<i64>, DbError> {
        self.walk(&LEVELS[2], from, to, rest)
    }

    /// [`Counter::walk_days`] over whole 32-day blocks.
    fn walk_blocks(&self, from: i64, to: i64, rest: &mut i64) -> Result<Option<i64>, DbError> {
        self.walk(&LEVELS[0], from, to, rest)
    }

    fn walk(
        &self,
        level: &Level,
        from: i64,
        to: i64,
        rest: &mut i64,
    ) -> Result<Option<i64>, DbError> {
        if from >= to {
            return Ok(None);
        }
        let (table, column) = (level.all, level.column);
        let sql = match self.branch {
            None => format!(
                "SELECT {column}, n FROM {table} WHERE project_id = ?1 AND {column} >= ?3 \
                 AND {column} < ?4 AND ?2 IS NULL ORDER BY {column} DESC"
            ),
            Some(_) => format!(
                "SELECT {column}, n FROM {} WHERE project_id = ?1 AND branch = ?2 \
                 AND {column} >= ?3 AND {column} < ?4 ORDER BY {column} DESC",
                level.branch
            ),
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params![self.project_id, self.branch, from, to])?;
        while let Some(row) = rows.next()? {
            let (bucket, n): (i64, i64) = (row.get(0)?, row.get(1)?);
            if *rest < n {
                return Ok(Some(bucket));
            }
            *rest -= n;
        }
        Ok(None)
    }
}

/// The page query for a combination of filters: `?1` project, `?2` branch, `?3` since, `?4`
/// until, `?5`/`?6` the cursor's time and id, `?7` limit, `?8` offset.
fn page_sql(branch: bool, since: bool, until: bool, cursor: bool) -> String {
    let mut conditions = String::from("p.project_id = ?1");
    if branch {
        conditions.push_str(" AND p.branch = ?2");
    }
    if since {
        conditions.push_str(" AND p.pushed_at >= ?3");
    }
    if until {
        conditions.push_str(" AND p.pushed_at < ?4");
    }
    if cursor {
        conditions.push_str(" AND (p.pushed_at, p.id) < (?5, ?6)");
    }
    // The index is named: without it, and without statistics, SQLite may walk the time index
    // and filter by branch, which visits every push between two of a rare branch's.
    let index = if branch {
        "pushes_project_branch_time"
    } else {
        "pushes_project_time"
    };
    format!(
        "SELECT p.id, {PUSH_COLUMNS} FROM pushes p INDEXED BY {index} WHERE {conditions}
         ORDER BY p.pushed_at DESC, p.id DESC LIMIT ?7 OFFSET ?8"
    )
}

/// One page of a project's pushes, newest first, how many match in all and where the next page
/// starts. Neither the total nor the start visits the pushes before the page.
pub fn list(
    conn: &Connection,
    scope: &ProjectScope,
    filter: &PushFilter,
    limit: u32,
    start: &PageStart,
) -> Result<PushPage, DbError> {
    if filter.is_extended() {
        return super::history::list(conn, scope, filter, limit, start);
    }
    let (project_id, project) = (scope.id(), scope.project().as_str());
    let branch = filter.branch.as_deref();
    let lo = filter.since.map(to_millis);
    let hi = filter.until.map(to_millis);
    let counter = Counter {
        conn,
        project_id,
        branch,
    };
    if let (Some(lo), Some(hi)) = (lo, hi)
        && lo >= hi
    {
        let offset = match start {
            PageStart::Offset(n) => *n,
            PageStart::After(_) => 0,
        };
        return Ok(PushPage {
            pushes: Vec::new(),
            total: 0,
            offset,
            next: None,
        });
    }
    let total = counter.between(lo, hi)?;

    // Where the page starts: an upper time bound, a cursor, and how many rows to skip below them.
    let (page_hi, after, skip, offset) = match start {
        PageStart::Offset(offset) => {
            let (page_hi, skip) = counter.locate(lo, hi, *offset)?;
            (page_hi, None, skip, *offset)
        }
        PageStart::After(cursor) => {
            // The pushes up to the cursor's own: later in time, or at its time with an id as high.
            let later = counter.between(Some(cursor.pushed_at.saturating_add(1)), hi)?;
            let in_window = lo.is_none_or(|lo| cursor.pushed_at >= lo)
                && hi.is_none_or(|hi| cursor.pushed_at < hi);
            let tied: i64 = if in_window {
                let sql = match branch {
                    None => {
                        "SELECT count(*) FROM pushes INDEXED BY pushes_project_time WHERE project_id = ?1 AND pushed_at = ?3 AND id >= ?4 AND ?2 IS NULL"
                    }
                    Some(_) => {
                        "SELECT count(*) FROM pushes INDEXED BY pushes_project_branch_time WHERE project_id = ?1 AND branch = ?2 AND pushed_at = ?3 AND id >= ?4"
                    }
                };
                conn.prepare_cached(sql)?.query_row(
                    params![project_id, branch, cursor.pushed_at, cursor.id],
                    |r| r.get(0),
                )?
            } else {
                0
            };
            // The cursor is the walk's upper bound, and the only one: with `until` beside it,
            // SQLite could start from `until` and filter its way down to the cursor. A cursor
            // made for these filters is below `until` already; one that is not starts at its top.
            let after = match hi {
                Some(hi) if cursor.pushed_at >= hi => (hi - 1, i64::MAX),
                _ => (cursor.pushed_at, cursor.id),
            };
            (None, Some(after), 0, (later + tied).max(0) as u64)
        }
    };

    read_page(scope, filter, limit, total, offset, || {
        let sql = page_sql(
            branch.is_some(),
            lo.is_some(),
            page_hi.is_some(),
            after.is_some(),
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![
                project_id,
                branch,
                lo,
                page_hi,
                after.map(|a| a.0),
                after.map(|a| a.1),
                i64::from(limit) + 1,
                i64::try_from(skip).unwrap_or(i64::MAX),
            ],
            |r| keyed_push(r, project),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

/// A page of `total` matching pushes starting at `offset`, its rows read by `query` (not run
/// for an empty page) as [`keyed_push`]es, one over `limit`: the row left over says a next page
/// exists, so both page queries name the cursor after the page here.
pub(super) fn read_page(
    scope: &ProjectScope,
    filter: &PushFilter,
    limit: u32,
    total: i64,
    offset: u64,
    query: impl FnOnce() -> Result<Vec<(i64, Push)>, DbError>,
) -> Result<PushPage, DbError> {
    let (pushes, next) = if limit > 0 {
        cut_page(query()?, limit, scope, filter)
    } else {
        (Vec::new(), None)
    };
    Ok(PushPage {
        pushes,
        total: total.max(0) as u64,
        offset,
        next,
    })
}

/// A row of a page query: the push's row id, then its [`PUSH_COLUMNS`].
pub(super) fn keyed_push(row: &Row<'_>, project: &str) -> rusqlite::Result<(i64, Push)> {
    Ok((row.get(0)?, push_from_row(row, 1, project)?))
}

/// Cuts `(row id, push)` rows, read one over `limit`, to the page and the cursor after it.
fn cut_page(
    mut keyed: Vec<(i64, Push)>,
    limit: u32,
    scope: &ProjectScope,
    filter: &PushFilter,
) -> (Vec<Push>, Option<PageCursor>) {
    let mut next = None;
    if keyed.len() > limit as usize {
        keyed.truncate(limit as usize);
        // A relevance order has no position a cursor could name: its pages go by offset.
        if filter.order == PushOrder::Newest {
            let (id, last) = keyed.last().expect("a full page has a last push");
            next = Some(PageCursor::new(
                scope,
                filter,
                to_millis(last.pushed_at),
                *id,
            ));
        }
    }
    (keyed.into_iter().map(|(_, push)| push).collect(), next)
}

/// One push of a project, with its commits; another project's id is not found.
pub fn get(
    conn: &Connection,
    scope: &ProjectScope,
    public_id: &str,
) -> Result<(Push, Vec<NewCommit>), DbError> {
    let (project_id, project) = (scope.id(), scope.project().as_str());
    let sql = format!(
        "SELECT p.id, {PUSH_COLUMNS} FROM pushes p WHERE p.project_id = ?1 AND p.public_id = ?2"
    );
    let found = conn
        .prepare_cached(&sql)?
        .query_row(params![project_id, public_id], |r| keyed_push(r, project))
        .optional()?;
    let (row_id, push) = found.ok_or(DbError::NotFound)?;
    Ok((push, commits(conn, row_id)?))
}

/// The commits of a push, in the order the provider listed them.
pub fn commits(conn: &Connection, push_row_id: i64) -> Result<Vec<NewCommit>, DbError> {
    let document: Option<String> = conn
        .prepare_cached("SELECT commits FROM push_commits WHERE push_id = ?1")?
        .query_row([push_row_id], |r| r.get(0))
        .optional()?;
    document.map_or(Ok(Vec::new()), |d| decode_commits(&d))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Text with the characters JSON must escape mixed into arbitrary Unicode.
    fn text() -> impl Strategy<Value = String> {
        let tricky = prop::sample::select(vec![
            '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{8}', '\u{c}', '\u{1f}', '\u{7f}', 'é', '💥',
        ]);
        prop::collection::vec(prop_oneof![any::<char>(), tricky], 0..24).prop_map(String::from_iter)
    }

    fn commit() -> impl Strategy<Value = NewCommit> {
        let files = || prop::collection::vec(text(), 0..3);
        (
            (text(), text(), text()),
            prop::option::of(-62_000_000_000_000i64..250_000_000_000_000),
            prop::option::of(text()),
            (files(), files(), files()),
        )
            .prop_map(
                |((sha, message, author), millis, url, (added, removed, modified))| NewCommit {
                    sha,
                    message,
                    author,
                    timestamp: millis.map(from_millis),
                    url,
                    added,
                    removed,
                    modified,
                },
            )
    }

    /// Every page query walks an index in its order from where the page starts: no scan of the
    /// project's pushes, no sort.
    #[test]
    fn every_page_query_seeks_an_index_and_sorts_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate::migrate(&mut conn).unwrap();
        // Bits: branch, since, until, cursor; `list` never sends a cursor with an until.
        for bits in (0..16u8).filter(|b| b & 12 != 12) {
            let sql = page_sql(bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, bits & 8 != 0);
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params![1, "main", 0, 1, 1, 1, 20, 0], |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("; ");
            let index = if bits & 1 != 0 {
                "USING INDEX pushes_project_branch_time"
            } else {
                "USING INDEX pushes_project_time"
            };
            assert!(plan.contains(index), "{sql}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
            // A cursor or an until is where the walk starts, not a filter.
            if bits & 12 != 0 {
                assert!(plan.contains("pushed_at<?"), "{sql}: {plan}");
            }
        }
    }

    proptest! {
        #[test]
        fn the_commits_document_reads_back_the_commits_it_was_written_from(
            commits in prop::collection::vec(commit(), 0..4)
        ) {
            let document = encode_commits(&commits);
            prop_assert_eq!(decode_commits(&document).unwrap(), commits);
        }
    }
}
