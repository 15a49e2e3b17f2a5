//! SQL for projects: create, list with counts, delete, rotate the webhook secret, find by hook id.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, HookTarget, from_millis, to_millis};
use crate::domain::{Project, ProjectName, PushCounts, SummaryStatus};
use crate::secret::Secret;

pub fn create(
    conn: &Connection,
    name: &ProjectName,
    hook_id: &str,
    secret: &Secret,
    now: DateTime<Utc>,
) -> Result<Project, DbError> {
    let result = conn.execute(
        "INSERT INTO projects (name, hook_id, webhook_secret, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name.as_str(), hook_id, secret.expose(), to_millis(now)],
    );
    match result {
        Ok(_) => Ok(Project {
            id: conn.last_insert_rowid(),
            name: name.clone(),
            hook_id: hook_id.to_owned(),
            created_at: now,
        }),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(DbError::Conflict)
        }
        Err(e) => Err(e.into()),
    }
}

fn project_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: row.get(0)?,
        name: row.get(1)?,
        hook_id: row.get(2)?,
        created_at: from_millis(row.get(3)?),
    })
}

pub fn list(conn: &Connection) -> Result<Vec<Project>, DbError> {
    let mut stmt =
        conn.prepare_cached("SELECT id, name, hook_id, created_at FROM projects ORDER BY name")?;
    let rows = stmt.query_map([], project_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn find(conn: &Connection, name: &ProjectName) -> Result<Project, DbError> {
    conn.prepare_cached("SELECT id, name, hook_id, created_at FROM projects WHERE name = ?1")?
        .query_row([name.as_str()], project_from_row)
        .optional()?
        .ok_or(DbError::NotFound)
}

pub fn find_by_hook_id(conn: &Connection, hook_id: &str) -> Result<HookTarget, DbError> {
    conn.prepare_cached("SELECT id, name, webhook_secret FROM projects WHERE hook_id = ?1")?
        .query_row([hook_id], |row| {
            Ok(HookTarget {
                project_id: row.get(0)?,
                project: row.get(1)?,
                secret: Secret::new(row.get::<_, String>(2)?),
            })
        })
        .optional()?
        .ok_or(DbError::NotFound)
}

/// Whether `secret` is still the project's webhook secret; `NotFound` when the project is gone.
pub fn secret_is_current(
    conn: &Connection,
    project_id: i64,
    secret: &Secret,
) -> Result<bool, DbError> {
    conn.prepare_cached("SELECT webhook_secret = ?2 FROM projects WHERE id = ?1")?
        .query_row(params![project_id, secret.expose()], |r| r.get(0))
        .optional()?
        .ok_or(DbError::NotFound)
}

/// Deletes a project with its keys, pushes and commits.
pub fn delete(conn: &Connection, name: &ProjectName) -> Result<(), DbError> {
    match conn.execute("DELETE FROM projects WHERE name = ?1", [name.as_str()])? {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}

pub fn rotate_secret(
    conn: &Connection,
    name: &ProjectName,
    secret: &Secret,
) -> Result<Project, DbError> {
    match conn.execute(
        "UPDATE projects SET webhook_secret = ?2 WHERE name = ?1",
        params![name.as_str(), secret.expose()],
    )? {
        0 => Err(DbError::NotFound),
        _ => find(conn, name),
    }
}

/// Total, pending and failed pushes of one project.
pub fn counts(conn: &Connection, project_id: i64) -> Result<PushCounts, DbError> {
    let total: i64 = conn
        .prepare_cached("SELECT COALESCE(SUM(n), 0) FROM push_counts WHERE project_id = ?1")?
        .query_row([project_id], |r| r.get(0))?;
    let mut counts = PushCounts {
        total: total.max(0) as u64,
        ..PushCounts::default()
    };
    // The status is named in the text so that the partial index of unfinished pushes is used.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT summary_status, count(*) FROM pushes
         WHERE project_id = ?1 AND summary_status <> '{}' GROUP BY summary_status",
        SummaryStatus::Summarized.as_str()
    ))?;
    let rows = stmt.query_map([project_id], |r| {
        Ok((r.get::<_, SummaryStatus>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (status, n) = row?;
        match status {
            SummaryStatus::Pending | SummaryStatus::InProgress => counts.pending += n as u64,
            SummaryStatus::Failed => counts.failed += n as u64,
            SummaryStatus::Summarized => {}
        }
    }
    Ok(counts)
}
