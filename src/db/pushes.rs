//! SQL for pushes and their commits: insert (inside the writer's transaction), list, get one.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{DbError, ProjectScope, from_millis, to_millis};
use crate::domain::{NewCommit, NewPush, Push, SummaryStatus};
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
    if !p.push.commits.is_empty() {
        conn.prepare_cached("INSERT INTO push_commits (push_id, commits) VALUES (?1, ?2)")?
            .execute(params![conn.last_insert_rowid(), p.commits_document])?;
    }
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
    pub since: Option<DateTime<Utc>>,
}

pub(crate) const PUSH_COLUMNS: &str = "p.public_id, p.provider, p.delivery_id, p.repository,
    p.git_ref, p.ref_type, p.branch, p.before_sha, p.after_sha, p.created, p.deleted, p.forced,
    p.pusher, p.commit_count, p.commits_truncated, p.compare_url, p.pushed_at, p.received_at,
    p.summary, p.summary_status, p.summary_source, p.attempts, p.last_error";

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
    })
}

/// One page of a project's pushes, newest first, and how many match in all.
pub fn list(
    conn: &Connection,
    scope: &ProjectScope,
    filter: &PushFilter,
    limit: u32,
    offset: u64,
) -> Result<(Vec<Push>, u64), DbError> {
    let (project_id, project) = (scope.id(), scope.project().as_str());
    let mut conditions = String::from("p.project_id = ?1");
    if filter.branch.is_some() {
        conditions.push_str(" AND p.branch = ?2");
    }
    if filter.since.is_some() {
        conditions.push_str(" AND p.pushed_at >= ?3");
    }
    let branch = filter.branch.as_deref();
    let since = filter.since.map(to_millis);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);

    let pushes = if limit == 0 {
        Vec::new()
    } else {
        let sql = format!(
            "SELECT {PUSH_COLUMNS} FROM pushes p WHERE {conditions}
             ORDER BY p.pushed_at DESC, p.id DESC LIMIT ?4 OFFSET ?5"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![project_id, branch, since, limit, offset], |r| {
            push_from_row(r, 0, project)
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };

    // Without a date filter the total comes from the per-branch counters kept by triggers,
    // so page one costs the same at a million pushes as at a thousand.
    let total: i64 = match (branch, since) {
        (None, None) => conn
            .prepare_cached("SELECT COALESCE(SUM(n), 0) FROM push_counts WHERE project_id = ?1")?
            .query_row([project_id], |r| r.get(0))?,
        (Some(branch), None) => conn
            .prepare_cached("SELECT n FROM push_counts WHERE project_id = ?1 AND branch = ?2")?
            .query_row(params![project_id, branch], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
        _ => {
            let sql = format!("SELECT count(*) FROM pushes p WHERE {conditions}");
            conn.prepare_cached(&sql)?
                .query_row(params![project_id, branch, since], |r| r.get(0))?
        }
    };
    Ok((pushes, total.max(0) as u64))
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
        .query_row(params![project_id, public_id], |r| {
            let row_id: i64 = r.get(0)?;
            Ok((row_id, push_from_row(r, 1, project)?))
        })
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
