//! SQL for asking the history: pages under search and author, repository and ref-type filters,
//! and the counts digests and activity charts are made of, all computed by SQLite.
//!
//! Contact points: [`super::pushes::list`] hands a filter here when it needs more than the day
//! counters; the `push_fts`, `push_search` and `push_authors` schema is migration 7's.

use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use super::pushes::{
    PUSH_COLUMNS, PageStart, PushFilter, PushOrder, PushPage, SearchTerm, keyed_push, read_page,
};
use super::{DbError, ProjectScope, to_millis};

/// The FTS5 query for the search terms: each one quoted as an FTS5 string (embedded quotes
/// doubled), so no character of the user's reaches the query grammar (`-`, `:`, `AND`, `NEAR(`
/// are text); a prefix term gets its `*` outside the quotes.
pub(super) fn fts_query(terms: &[SearchTerm]) -> String {
    terms
        .iter()
        .map(|t| {
            let star = if t.prefix { "*" } else { "" };
            format!("\"{}\"{star}", t.word.replace('"', "\"\""))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The FROM and WHERE of a filtered read, with its parameters in order.
struct Filtered {
    from: &'static str,
    /// The rank column of the search index that drives the join, when a search does.
    rank: Option<&'static str>,
    conditions: String,
    params: Vec<Value>,
}

impl Filtered {
    fn new(scope: &ProjectScope, filter: &PushFilter) -> Filtered {
        let mut f = Filtered {
            from: "pushes p",
            rank: None,
            conditions: String::from("p.project_id = ?"),
            params: vec![Value::Integer(scope.id())],
        };
        // Whole words match stemmed (`push_fts`), prefixes match words as written
        // (`push_fts_prefix`); the first index a search uses drives the join and ranks.
        let (prefixes, words): (Vec<SearchTerm>, Vec<SearchTerm>) =
            filter.text.iter().cloned().partition(|t| t.prefix);
        if !words.is_empty() {
            f.from = "push_fts JOIN pushes p ON p.id = push_fts.rowid";
            f.rank = Some("push_fts.rank");
            f.conditions.push_str(" AND push_fts MATCH ?");
            f.params.push(Value::Text(fts_query(&words)));
            if !prefixes.is_empty() {
                f.conditions.push_str(
                    " AND p.id IN (SELECT rowid FROM push_fts_prefix WHERE push_fts_prefix MATCH ?)",
                );
                f.params.push(Value::Text(fts_query(&prefixes)));
            }
        } else if !prefixes.is_empty() {
            f.from = "push_fts_prefix JOIN pushes p ON p.id = push_fts_prefix.rowid";
            f.rank = Some("push_fts_prefix.rank");
            f.conditions.push_str(" AND push_fts_prefix MATCH ?");
            f.params.push(Value::Text(fts_query(&prefixes)));
        }
        if let Some(branch) = &filter.branch {
            f.conditions.push_str(" AND p.branch = ?");
            f.params.push(Value::Text(branch.clone()));
        }
        if let Some(since) = filter.since {
            f.conditions.push_str(" AND p.pushed_at >= ?");
            f.params.push(Value::Integer(to_millis(since)));
        }
        if let Some(until) = filter.until {
            f.conditions.push_str(" AND p.pushed_at < ?");
            f.params.push(Value::Integer(to_millis(until)));
        }
        if let Some(kind) = filter.ref_kind {
            f.conditions.push_str(" AND p.ref_type = ?");
            f.params.push(Value::Text(kind.as_str().to_owned()));
        }
        if !filter.repositories.is_empty() {
            f.conditions.push_str(" AND p.repository IN (");
            f.conditions
                .push_str(&vec!["?"; filter.repositories.len()].join(", "));
            f.conditions.push(')');
            f.params
                .extend(filter.repositories.iter().cloned().map(Value::Text));
        }
        if !filter.authors.is_empty() {
            f.conditions.push_str(
                " AND p.id IN (SELECT push_id FROM push_authors WHERE project_id = ? AND author IN (",
            );
            f.conditions
                .push_str(&vec!["?"; filter.authors.len()].join(", "));
            f.conditions.push_str("))");
            f.params.push(Value::Integer(scope.id()));
            f.params
                .extend(filter.authors.iter().cloned().map(Value::Text));
        }
        f
    }

    fn count(
        &self,
        conn: &Connection,
        extra: &str,
        extra_params: &[Value],
    ) -> Result<i64, DbError> {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE {}{extra}",
            self.from, self.conditions
        );
        let params = self.params.iter().chain(extra_params);
        Ok(conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(params), |r| r.get(0))?)
    }
}

/// One page under an extended filter. Newest first pages by cursor or offset like
/// [`super::pushes::list`]; relevance (bm25, ties newest first) by offset only.
pub(super) fn list(
    conn: &Connection,
    scope: &ProjectScope,
    filter: &PushFilter,
    limit: u32,
    start: &PageStart,
) -> Result<PushPage, DbError> {
    let project = scope.project().as_str();
    let base = Filtered::new(scope, filter);
    let total = base.count(conn, "", &[])?;
    let (cursor, skip, offset) = match start {
        PageStart::Offset(n) => (None, *n, *n),
        PageStart::After(c) => {
            let at = [Value::Integer(c.pushed_at), Value::Integer(c.id)];
            let upto = base.count(conn, " AND (p.pushed_at, p.id) >= (?, ?)", &at)?;
            (Some(c.clone()), 0, upto.max(0) as u64)
        }
    };
    read_page(scope, filter, limit, total, offset, || {
        let mut conditions = base.conditions.clone();
        let mut params = base.params.clone();
        if let Some(c) = &cursor {
            conditions.push_str(" AND (p.pushed_at, p.id) < (?, ?)");
            params.push(Value::Integer(c.pushed_at));
            params.push(Value::Integer(c.id));
        }
        let order = match (filter.order, base.rank) {
            (PushOrder::Relevance, Some(rank)) => format!("{rank}, p.pushed_at DESC, p.id DESC"),
            _ => "p.pushed_at DESC, p.id DESC".to_owned(),
        };
        params.push(Value::Integer(i64::from(limit) + 1));
        params.push(Value::Integer(i64::try_from(skip).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT p.id, {PUSH_COLUMNS} FROM {} WHERE {conditions}
             ORDER BY {order} LIMIT ? OFFSET ?",
            base.from
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(params.iter()), |r| keyed_push(r, project))?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

/// Pushes and commits of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    pub key: String,
    pub pushes: u64,
    pub commits: u64,
}

/// What a range of history holds, counted by the database.
#[derive(Debug, Clone, Default)]
pub struct RangeCounts {
    pub pushes: u64,
    pub commits: u64,
    pub authors: Vec<GroupCount>,
    pub branches: Vec<GroupCount>,
    pub repositories: Vec<GroupCount>,
}

/// How activity is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// UTC day: the key is `floor(pushed_at / 1 day)`.
    Day,
    /// ISO week (Monday to Sunday, UTC): the key is the day number of its Monday.
    Week,
    Author,
    Branch,
    Repository,
}

/// Pushes and commits per group of the filtered pushes, most first for names and in time
/// order for days and weeks (as day numbers in `key`).
pub(super) fn group(
    conn: &Connection,
    scope: &ProjectScope,
    filter: &PushFilter,
    by: Grouping,
) -> Result<Vec<GroupCount>, DbError> {
    if matches!(by, Grouping::Day | Grouping::Week)
        && !filter.is_extended()
        && let (Some(since), Some(until)) = (filter.since, filter.until)
    {
        let days = per_day(conn, scope, filter, to_millis(since), to_millis(until))?;
        return Ok(by_day_or_week(days, by));
    }
    let base = Filtered::new(scope, filter);
    // Day numbers as the day counters compute them (floor, also before 1970); 1970-01-01 was
    // a Thursday, so day + 3 counts weeks from a Monday.
    const DAY: &str =
        "((p.pushed_at - ((p.pushed_at % 86400000) + 86400000) % 86400000) / 86400000)";
    let (key, order) = match by {
        Grouping::Day => (format!("CAST({DAY} AS TEXT)"), "min(p.pushed_at)"),
        Grouping::Week => (
            format!("CAST({DAY} - ((({DAY} + 3) % 7) + 7) % 7 AS TEXT)"),
            "min(p.pushed_at)",
        ),
        Grouping::Author => ("p.pusher".to_owned(), "count(*) DESC, k"),
        Grouping::Branch => ("p.branch".to_owned(), "count(*) DESC, k"),
        Grouping::Repository => ("p.repository".to_owned(), "count(*) DESC, k"),
    };
    let sql = format!(
        "SELECT {key} AS k, count(*), COALESCE(sum(p.commit_count), 0) FROM {} WHERE {}
         GROUP BY k ORDER BY {order}",
        base.from, base.conditions
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(base.params.iter()), |r| {
        Ok(GroupCount {
            key: r.get(0)?,
            pushes: r.get::<_, i64>(1)?.max(0) as u64,
            commits: r.get::<_, i64>(2)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const DAY_MS: i64 = 86_400_000;

/// Pushes and commits per UTC day of `lo <= pushed_at < hi` (of one branch or all), oldest
/// first: whole days from the day counters, the partial days at the edges from the pushes.
fn per_day(
    conn: &Connection,
    scope: &ProjectScope,
    filter: &PushFilter,
    lo: i64,
    hi: i64,
) -> Result<Vec<(i64, u64, u64)>, DbError> {
    let first_whole = lo.div_euclid(DAY_MS) + i64::from(lo.rem_euclid(DAY_MS) != 0);
    let end_whole = hi.div_euclid(DAY_MS);
    let mut days = Vec::new();
    let rows = |sql: &str, params: Vec<Value>, days: &mut Vec<(i64, u64, u64)>| {
        let mut stmt = conn.prepare_cached(sql)?;
        let found = stmt.query_map(params_from_iter(params.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?.max(0) as u64,
                r.get::<_, i64>(2)?.max(0) as u64,
            ))
        })?;
        for day in found {
            days.push(day?);
        }
        Ok::<_, DbError>(())
    };
    let edge = |from: i64, to: i64, days: &mut Vec<(i64, u64, u64)>| {
        if from >= to {
            return Ok(());
        }
        let (index, branch) = match &filter.branch {
            Some(b) => ("pushes_project_branch_time", Some(b.clone())),
            None => ("pushes_project_time", None),
        };
        let sql = format!(
            "SELECT (pushed_at - ((pushed_at % 86400000) + 86400000) % 86400000) / 86400000 AS d,
                count(*), COALESCE(sum(commit_count), 0)
             FROM pushes INDEXED BY {index}
             WHERE project_id = ?1 AND (?2 IS NULL OR branch = ?2) AND pushed_at >= ?3
                AND pushed_at < ?4
             GROUP BY d ORDER BY d"
        );
        let params = vec![
            Value::Integer(scope.id()),
            branch.map_or(Value::Null, Value::Text),
            Value::Integer(from),
            Value::Integer(to),
        ];
        rows(&sql, params, days)
    };
    if first_whole >= end_whole {
        edge(lo, hi, &mut days)?;
        return Ok(days);
    }
    edge(lo, first_whole * DAY_MS, &mut days)?;
    let (sql, params) = match &filter.branch {
        None => (
            "SELECT day, n, commits FROM push_days WHERE project_id = ?1 AND day >= ?2
                AND day < ?3 ORDER BY day",
            vec![
                Value::Integer(scope.id()),
                Value::Integer(first_whole),
                Value::Integer(end_whole),
            ],
        ),
        Some(branch) => (
            "SELECT day, n, commits FROM push_branch_days WHERE project_id = ?1 AND branch = ?4
                AND day >= ?2 AND day < ?3 ORDER BY day",
            vec![
                Value::Integer(scope.id()),
                Value::Integer(first_whole),
                Value::Integer(end_whole),
                Value::Text(branch.clone()),
            ],
        ),
    };
    rows(sql, params, &mut days)?;
    edge(end_whole * DAY_MS, hi, &mut days)?;
    Ok(days)
}

/// Day counts as [`group`] answers them: by day, or summed into ISO weeks (keyed by the day
/// number of their Monday; 1970-01-01 was a Thursday).
fn by_day_or_week(days: Vec<(i64, u64, u64)>, by: Grouping) -> Vec<GroupCount> {
    let mut out: Vec<(i64, u64, u64)> = Vec::new();
    for (day, pushes, commits) in days {
        let key = match by {
            Grouping::Week => day - (day + 3).rem_euclid(7),
            _ => day,
        };
        match out.last_mut() {
            Some(last) if last.0 == key => {
                last.1 += pushes;
                last.2 += commits;
            }
            _ => out.push((key, pushes, commits)),
        }
    }
    out.into_iter()
        .map(|(key, pushes, commits)| GroupCount {
            key: key.to_string(),
            pushes,
            commits,
        })
        .collect()
}

/// The counts of a digest.
pub(super) fn counts(
    conn: &Connection,
    scope: &ProjectScope,
    filter: &PushFilter,
) -> Result<RangeCounts, DbError> {
    let base = Filtered::new(scope, filter);
    let sql = format!(
        "SELECT count(*), COALESCE(sum(p.commit_count), 0) FROM {} WHERE {}",
        base.from, base.conditions
    );
    let (pushes, commits): (i64, i64) = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(base.params.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(RangeCounts {
        pushes: pushes.max(0) as u64,
        commits: commits.max(0) as u64,
        authors: group(conn, scope, filter, Grouping::Author)?,
        branches: group(conn, scope, filter, Grouping::Branch)?,
        repositories: group(conn, scope, filter, Grouping::Repository)?,
    })
}

/// One push as a digest reads it.
#[derive(Debug, Clone)]
pub struct DigestPush {
    pub id: String,
    pub pusher: String,
    pub branch: String,
    pub repository: String,
    pub commit_count: u64,
    pub pushed_at: i64,
    pub summary: String,
    /// The first line of each listed commit's message.
    pub subjects: Vec<String>,
}

/// The filtered pushes, newest first, as a digest reads them; at most `max`.
pub(super) fn digest_pushes(
    conn: &Connection,
    scope: &ProjectScope,
    filter: &PushFilter,
    max: u32,
) -> Result<Vec<DigestPush>, DbError> {
    let base = Filtered::new(scope, filter);
    let sql = format!(
        "SELECT p.public_id, p.pusher, p.branch, p.repository, p.commit_count, p.pushed_at,
            p.summary,
            (SELECT json_group_array(json_extract(c.value, '$.message'))
             FROM push_commits pc, json_each(pc.commits) c WHERE pc.push_id = p.id)
         FROM {} WHERE {} ORDER BY p.pushed_at DESC, p.id DESC LIMIT ?",
        base.from, base.conditions
    );
    let mut params = base.params.clone();
    params.push(Value::Integer(i64::from(max)));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(params.iter()), |r| {
        let messages: Option<String> = r.get(7)?;
        Ok((
            DigestPush {
                id: r.get(0)?,
                pusher: r.get(1)?,
                branch: r.get(2)?,
                repository: r.get(3)?,
                commit_count: r.get::<_, i64>(4)?.max(0) as u64,
                pushed_at: r.get(5)?,
                summary: r.get(6)?,
                subjects: Vec::new(),
            },
            messages,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut push, messages) = row?;
        if let Some(messages) = messages {
            let messages: Vec<Option<String>> =
                serde_json::from_str(&messages).map_err(DbError::CorruptCommits)?;
            push.subjects = messages
                .into_iter()
                .flatten()
                .map(|m| m.lines().next().unwrap_or("").trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        out.push(push);
    }
    Ok(out)
}

/// A cached model digest: its summary and source, if the range still has the fingerprint it
/// was written for.
pub(super) fn cached_digest(
    conn: &Connection,
    scope: &ProjectScope,
    key: &[u8; 32],
    fingerprint: &[u8; 32],
) -> Result<Option<(String, String)>, DbError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached(
            "SELECT summary, source FROM digest_cache
             WHERE project_id = ?1 AND range_key = ?2 AND fingerprint = ?3",
        )?
        .query_row(
            rusqlite::params![scope.id(), &key[..], &fingerprint[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Stores a model digest for a range and the fingerprint of its pushes.
pub(super) fn store_digest(
    conn: &Connection,
    scope: &ProjectScope,
    key: &[u8; 32],
    fingerprint: &[u8; 32],
    summary: &str,
    source: &str,
    now: i64,
) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO digest_cache (project_id, range_key, fingerprint, summary, source, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (project_id, range_key) DO UPDATE SET fingerprint = excluded.fingerprint,
            summary = excluded.summary, source = excluded.source, created_at = excluded.created_at",
    )?
    .execute(rusqlite::params![
        scope.id(),
        &key[..],
        &fingerprint[..],
        summary,
        source,
        now
    ])?;
    Ok(())
}
