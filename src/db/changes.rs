//! SQL for the change log (`push_changes`, kept by triggers): the changes after a cursor, the
//! newest seq, the floor below which a cursor is too old, and the versions ETags are made of.

use rusqlite::{Connection, OptionalExtension, params};

use super::pushes::{PUSH_COLUMNS, push_from_row};
use super::{DbError, ProjectScope};
use crate::domain::Push;

/// What happened to a push: it was stored, or what the API shows of it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
}

/// One row of the change log with the push as it is now.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: ChangeCursor,
    pub kind: ChangeKind,
    pub push: Push,
    /// Who the `author` filter matches the push by, as `push_authors` holds them: the pusher
    /// and every commit author.
    pub authors: Vec<String>,
    project_id: i64,
}

impl Change {
    /// True when this change is to a push of `scope`'s project.
    pub fn in_scope(&self, scope: &ProjectScope) -> bool {
        self.project_id == scope.id()
    }
}

/// A position in the change log: every change after it has a higher one. Opaque to clients
/// ([`ChangeCursor::encode`], [`ChangeCursor::parse`]); 0 is before the first change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ChangeCursor(i64);

const CHANGE_CURSOR_PREFIX: &str = "c1.";

impl ChangeCursor {
    pub fn encode(self) -> String {
        use base64::Engine;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0.to_be_bytes());
        format!("{CHANGE_CURSOR_PREFIX}{text}")
    }

    /// None for anything [`ChangeCursor::encode`] did not make.
    pub fn parse(raw: &str) -> Option<ChangeCursor> {
        use base64::Engine;
        let text = raw.trim().strip_prefix(CHANGE_CURSOR_PREFIX)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let seq = i64::from_be_bytes(bytes.try_into().ok()?);
        (seq >= 0).then_some(ChangeCursor(seq))
    }
}

/// Up to `limit` changes after `after`, oldest first, of one project or of all.
pub fn after(
    conn: &Connection,
    after: ChangeCursor,
    project_id: Option<i64>,
    limit: u32,
) -> Result<Vec<Change>, DbError> {
    let sql = format!(
        "SELECT c.seq, c.kind, c.project_id, pr.name,
                (SELECT json_group_array(a.author) FROM push_authors a WHERE a.push_id = p.id),
                {PUSH_COLUMNS}
         FROM push_changes c JOIN pushes p ON p.id = c.push_id JOIN projects pr ON pr.id = c.project_id
         WHERE c.seq > ?1 AND (?2 IS NULL OR c.project_id = ?2)
         ORDER BY c.seq LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after.0, project_id, limit], |r| {
        let kind: String = r.get(1)?;
        let project: String = r.get(3)?;
        let authors: String = r.get(4)?;
        let authors = serde_json::from_str(&authors).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
        })?;
        Ok(Change {
            seq: ChangeCursor(r.get(0)?),
            kind: if kind == "created" {
                ChangeKind::Created
            } else {
                ChangeKind::Updated
            },
            project_id: r.get(2)?,
            authors,
            push: push_from_row(r, 5, &project)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest change ever made (also when its row was deleted since).
pub fn latest(conn: &Connection) -> Result<ChangeCursor, DbError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'push_changes'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(ChangeCursor(seq.unwrap_or(0)))
}

/// The highest seq of the project's changes that were deleted: a cursor below it missed one.
pub fn floor(conn: &Connection, scope: &ProjectScope) -> Result<ChangeCursor, DbError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM push_change_floors WHERE project_id = ?1")?
        .query_row([scope.id()], |r| r.get(0))
        .optional()?;
    Ok(ChangeCursor(seq.unwrap_or(0)))
}

/// Two numbers that together change whenever any of the project's pushes is stored, changes
/// what the API shows of it, or is deleted: its newest change row and its push count. A store
/// or a change adds a row with a seq higher than any before; deletes alone lower the count; and
/// the newest row can only go back to an earlier one by deleting every push touched since,
/// which brings the count back only if exactly those were added since, the same pushes.
pub fn project_version(conn: &Connection, scope: &ProjectScope) -> Result<(i64, i64), DbError> {
    let newest: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM push_changes WHERE project_id = ?1")?
        .query_row([scope.id()], |r| r.get(0))?;
    let count: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(n), 0) FROM push_counts WHERE project_id = ?1")?
        .query_row([scope.id()], |r| r.get(0))?;
    Ok((newest.unwrap_or(0), count))
}

/// What of one push can change after it is stored (attempts, status, summary and its source),
/// as text to hash; None when the project has no such push.
pub fn push_version(
    conn: &Connection,
    scope: &ProjectScope,
    public_id: &str,
) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT attempts, replace(summary_status, 'in_progress', 'pending'), summary_source,
                summary FROM pushes WHERE project_id = ?1 AND public_id = ?2",
        )?
        .query_row(params![scope.id(), public_id], |r| {
            Ok(format!(
                "{}\0{}\0{}\0{}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?
            ))
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_anything_else_is_refused() {
        for seq in [0, 1, 255, i64::MAX] {
            let c = ChangeCursor(seq);
            assert_eq!(ChangeCursor::parse(&c.encode()), Some(c));
        }
        for bad in [
            "",
            "c1.",
            "12",
            "c1.AAAA",
            "c2.AAAAAAAAAAA",
            "c1.gAAAAAAAAAA",
        ] {
            assert_eq!(ChangeCursor::parse(bad), None, "{bad}");
        }
    }
}
